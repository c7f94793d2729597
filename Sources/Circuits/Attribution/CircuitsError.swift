import Support

/// What can go wrong running circuit discovery, evaluation, acquisition or a sweep on real files:
/// a missing or malformed data file, an unknown task or bucket, a filter that leaves no sample, a
/// checkpoint folder that does not fit the grid, a results folder of another configuration.
/// The text names the file (and line), the option or config key, what is wrong and what to do.
public struct CircuitsError: UserFacingError, Equatable {
    /// The file (with line), option or key concerned: `test.jsonl line 7`, `--frequency`, `topn`.
    public let item: String
    /// What is wrong.
    public let problem: String
    /// What the user can do about it.
    public let fix: String?
    /// 65 for bad input (the default), 1 for a failure of the machine (I/O).
    public let exitCode: Int32

    public init(item: String, problem: String, fix: String? = nil, exitCode: Int32 = 65) {
        self.item = item
        self.problem = problem
        self.fix = fix
        self.exitCode = exitCode
    }

    public var description: String {
        var s = "\(item): \(problem)"
        if let fix { s += " (\(fix))" }
        return s
    }

    /// A file that should exist and does not.
    package static func missing(_ path: String, what: String, fix: String) -> CircuitsError {
        CircuitsError(item: path, problem: "\(what) not found", fix: fix)
    }
}
