import Foundation

/// An error whose text is meant for the person running dkc, with the exit code it should end with
/// (65 for bad input data or configuration, 1 otherwise).
public protocol UserFacingError: Error, CustomStringConvertible {
    var exitCode: Int32 { get }
}

public extension UserFacingError {
    var exitCode: Int32 { 65 }
}

/// An error about one item — a file (with its line), an option, a configuration key, a node — with what is wrong
/// and what the user can do: "item: problem (fix)". The areas name it after themselves (`AttributionError`,
/// `CircuitsError`). Exit 65 (bad input) unless `exitCode` says otherwise (1 for a failure of the machine, 64 usage).
public struct ItemError: UserFacingError, Equatable {
    /// The file (with line), option or key concerned: `test.jsonl line 7`, `--frequency`, `topn`, `edge a0.h1->m9`.
    public let item: String
    /// What is wrong.
    public let problem: String
    /// What the user can do about it.
    public let fix: String?
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
}

/// An error whose text is a whole sentence naming what is wrong and what to do, and its exit code. The areas name
/// it after themselves (`TrainError`: 65 by default; `BenchError`: 64, a benchmark that cannot run as asked).
public struct MessageError: UserFacingError, Equatable {
    public let message: String
    public let exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 65) {
        self.message = message
        self.exitCode = exitCode
    }

    public var description: String { message }
}

/// A problem in a file or folder dkc reads, and where in it: a 1-based line, or an item (a tensor, a JSON field):
/// "file:line: problem (fix)", "file: item: problem (fix)". The areas name it after themselves (`CheckpointError`,
/// `TokenizerError`). Exit 65.
public struct FileError: UserFacingError, Equatable {
    /// The file or folder as it was named (a path), unresolved.
    public let path: String
    /// 1-based line in the file, where it is known.
    public let line: Int?
    /// The tensor or field concerned, when there is one.
    public let item: String?
    /// What is wrong.
    public let problem: String
    /// What the user can do about it.
    public let fix: String?

    public init(file: String, line: Int? = nil, item: String? = nil, problem: String, fix: String? = nil) {
        self.path = file
        self.line = line
        self.item = item
        self.problem = problem
        self.fix = fix
    }

    public init(file: URL, line: Int? = nil, item: String? = nil, problem: String, fix: String? = nil) {
        self.init(file: file.path, line: line, item: item, problem: problem, fix: fix)
    }

    /// The file or folder at fault.
    public var file: URL { URL(fileURLWithPath: path) }

    public var description: String {
        var s = path
        if let line { s += ":\(line)" }
        if let item { s += ": \(item)" }
        s += ": \(problem)"
        if let fix { s += " (\(fix))" }
        return s
    }
}
