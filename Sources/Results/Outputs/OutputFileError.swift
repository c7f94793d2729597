import Support

/// A problem with a result table or result file (scores.nc, circuits.nc, acquisition.nc): a file
/// that is not the dkc file it should be, or cells and tables that do not fit together.
///
/// Every message names the file (when there is one), the variable, dimension, cell or label
/// concerned, and what to do about it.
public struct OutputFileError: UserFacingError {
    public enum Kind: Equatable, Sendable {
        /// The file lacks a dimension a dkc file of this kind has.
        case missingDimension(String)
        /// The file lacks a variable a dkc file of this kind has.
        case missingVariable(String)
        /// A variable has other dimensions, or another type, than a dkc file of this kind gives it.
        case wrongLayout(variable: String)
        /// A coordinate repeats a label or a step.
        case duplicateCoordinate(dimension: String)
        /// Values handed to a table have the wrong size (a score matrix that is not n_forward × n_backward, ...).
        case wrongSize
        /// A cell refers to a checkpoint step the table has not been told about.
        case unknownCheckpoint(Int64)
        /// One checkpoint step given with two different folders.
        case conflictingCheckpoint(Int64)
        /// Two tables hold the same cell with different values.
        case conflictingCell(String)
        /// Two tables being merged disagree on something shared (graph, attributes).
        case incompatibleTables
        /// The request itself is invalid (an option out of range, ...).
        case invalidArgument
    }

    public let kind: Kind
    /// The file concerned, or nil for in-memory tables.
    public let path: String?
    /// What went wrong, as a sentence.
    public let reason: String
    /// What to do about it.
    public let hint: String?

    public init(_ kind: Kind, path: String? = nil, reason: String, hint: String? = nil) {
        self.kind = kind; self.path = path; self.reason = reason; self.hint = hint
    }

    public var description: String {
        var text = path.map { "\($0): " } ?? ""
        text += reason
        if let hint { text += ". \(hint)" }
        return text
    }

    /// 65 (bad input) for files that are not what they should be and for conflicting inputs;
    /// 1 for misuse of the API by the program itself.
    public var exitCode: Int32 {
        switch kind {
        case .wrongSize, .invalidArgument, .unknownCheckpoint: return 1
        default: return 65
        }
    }
}
