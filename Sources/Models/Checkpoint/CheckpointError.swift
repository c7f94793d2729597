import Foundation
import Support

/// Everything that can be wrong with a checkpoint on disk: a safetensors file, a `config.json`, or a
/// Hugging Face model folder. The text names the file, the tensor or field, what is wrong and what to do.
public struct CheckpointError: UserFacingError {
    /// The file (or folder) the problem is in.
    public let file: String
    /// The tensor or JSON field concerned, when there is one.
    public let item: String?
    /// What is wrong.
    public let problem: String
    /// What the user can do about it.
    public let fix: String?

    public init(file: String, item: String? = nil, problem: String, fix: String? = nil) {
        self.file = file
        self.item = item
        self.problem = problem
        self.fix = fix
    }

    public init(file: URL, item: String? = nil, problem: String, fix: String? = nil) {
        self.init(file: file.path, item: item, problem: problem, fix: fix)
    }

    public var description: String {
        var s = "\(file)"
        if let item { s += ": \(item)" }
        s += ": \(problem)"
        if let fix { s += " (\(fix))" }
        return s
    }
}
