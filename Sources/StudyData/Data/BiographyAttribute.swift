import Foundation

/// The attributes whose first token the evaluation scores (docs/pipeline.md §4), in the order the codes use.
public enum BiographyAttribute: String, CaseIterable, Sendable {
    case birthday, city, company, major, university
}

/// The codes `TokenizedText.attributeMask` holds for training data: 0 for an ordinary token, else
/// `type | (attribute + 1) << 2` at the first token of an attribute value, with type 1 for a new
/// entity and 2 for a revised one (the study's codes) and attribute the index in `BiographyAttribute`.
/// `code & 3` is therefore the study's mask value.
public enum FirstTokenMark {
    public static let new: UInt8 = 1
    public static let revised: UInt8 = 2
    /// Type names by code (index 1 and 2).
    public static let typeNames = ["", "new", "revised"]

    public static func code(type: UInt8, attribute: Int) -> UInt8 {
        precondition(type == new || type == revised)
        precondition(attribute >= 0 && attribute < BiographyAttribute.allCases.count)
        return type | UInt8(attribute + 1) << 2
    }

    /// 0 (no mark), 1 (new) or 2 (revised).
    @inline(__always) public static func type(_ code: UInt8) -> Int { Int(code & 3) }

    /// Index in `BiographyAttribute`, or nil when the code names none.
    @inline(__always) public static func attribute(_ code: UInt8) -> Int? {
        let a = Int(code >> 2) - 1
        return a >= 0 && a < BiographyAttribute.allCases.count ? a : nil
    }

    /// The type code of a record's `type` field.
    public static func typeCode(_ name: String) -> UInt8? {
        switch name {
        case "new": return new
        case "revised": return revised
        default: return nil
        }
    }
}
