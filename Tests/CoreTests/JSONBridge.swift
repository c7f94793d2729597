import Foundation
@testable import Core

extension JSONValue {
    /// A Foundation JSON object (as the tests' fixture readers decode it) as the project's `JSONValue`,
    /// for the APIs that take one. Object keys are sorted (Foundation keeps no order).
    init(foundation value: Any) {
        switch value {
        case is NSNull: self = .null
        case let s as String: self = .string(s)
        case let n as NSNumber:
            let type = String(cString: n.objCType)
            if type == "c" { self = .bool(n.boolValue) } else if ["d", "f"].contains(type) { self = .double(n.doubleValue) } else { self = .int(n.intValue) }
        case let a as [Any]: self = .array(a.map { JSONValue(foundation: $0) })
        case let d as [String: Any]: self = .object(d.keys.sorted().map { ($0, JSONValue(foundation: d[$0]!)) })
        default: self = .string("\(value)")
        }
    }
}
