import Foundation
import Support

/// Everything that can go wrong in circuit discovery and evaluation: a graph or score file that does not
/// fit the model, an unknown node or edge name, prompts that cannot be batched, a bad option.
/// The text names the file or option, what is wrong and what to do.
public struct AttributionError: UserFacingError {
    /// The file, option or item concerned (e.g. `graph.json`, `--topn`, `edge a0.h1->m9`).
    public let item: String
    /// What is wrong.
    public let problem: String
    /// What the user can do about it.
    public let fix: String?

    public init(item: String, problem: String, fix: String? = nil) {
        self.item = item
        self.problem = problem
        self.fix = fix
    }

    public var description: String {
        var s = "\(item): \(problem)"
        if let fix { s += " (\(fix))" }
        return s
    }
}
