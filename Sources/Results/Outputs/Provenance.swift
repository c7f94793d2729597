import Foundation
import Support
import Numerics

/// How a result file was made: the global attributes every dkc NetCDF file carries (docs/outputs.md).
///
/// A command builds one `Provenance` when it starts and passes it to every write, so the files it
/// rewrites again and again (a sweep rewrites them every `write_interval_s`) get one history line
/// for the command, not one per write. Tests pin every field (`created` included) to compare files.
public struct Provenance: Equatable, Sendable {
    /// The command line, shell-quoted (`Provenance.quote`).
    public var commandLine: String
    /// The resolved configuration as JSON text (`{}` when the command has none).
    public var config: String
    /// MPI ranks the command ran on.
    public var mpiRanks: Int
    /// OpenBLAS threads per rank.
    public var blasThreads: Int
    /// When the command started, ISO 8601 in UTC (`Provenance.timestamp`).
    public var created: String
    /// "dkc <version> (<git commit>)".
    public var source: String
    /// Which test people the data set used ("circuit" or "independent", its manifest's `test_set`), written
    /// as the global attribute `test_set`; nil when the command read no test set.
    public var testSet: String? = nil

    /// - Parameters:
    ///   - arguments: the command line as the process got it (`CommandLine.arguments`); quoted here.
    ///   - config: JSON text; an error if it does not parse.
    public init(arguments: [String] = CommandLine.arguments, config: String = "{}", mpiRanks: Int = 1,
                blasThreads: Int = BLAS.threads, created: Date = Date(),
                source: String = DKCVersion.source) throws {
        try self.init(commandLine: Provenance.quote(arguments), config: config, mpiRanks: mpiRanks,
                      blasThreads: blasThreads, created: Provenance.timestamp(created), source: source)
    }

    /// Every field as it will appear in the file (for tests and for copying provenance along).
    public init(commandLine: String, config: String, mpiRanks: Int, blasThreads: Int,
                created: String, source: String) throws {
        guard (try? JSONValue(parsing: config)) != nil else {
            throw OutputFileError(.invalidArgument, reason: "the configuration given for the 'config' attribute is not JSON",
                                  hint: "pass the resolved configuration encoded as JSON")
        }
        guard !commandLine.contains("\n") else {
            throw OutputFileError(.invalidArgument, reason: "the command line for the 'history' attribute spans several lines")
        }
        self.commandLine = commandLine; self.config = config; self.mpiRanks = mpiRanks
        self.blasThreads = blasThreads; self.created = created; self.source = source
    }

    /// The line this command adds to a file's `history`: "<created> <command line>".
    public var historyLine: String { "\(created) \(commandLine)" }

    /// ISO 8601, UTC, whole seconds: "2025-01-31T09:05:00Z".
    public static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// Joins arguments into one line a POSIX shell splits back into the same arguments: arguments
    /// made only of safe characters stay as they are, others are single-quoted.
    public static func quote(_ arguments: [String]) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-[]")
        return arguments.map { argument in
            if !argument.isEmpty && argument.allSatisfy({ safe.contains($0) }) { return argument }
            return "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}

/// How the writers treat files and compression.
public struct OutputWriteOptions: Equatable, Sendable {
    /// zlib level of every numeric variable, 1...4 (shuffle is always on).
    public var deflateLevel: Int
    /// When the target file exists: keep its `history` and `created` and append this command's
    /// history line (unless it is already the last line). When false, the file starts afresh.
    public var keepHistory: Bool

    public init(deflateLevel: Int = 1, keepHistory: Bool = true) {
        self.deflateLevel = deflateLevel; self.keepHistory = keepHistory
    }

    func compression() throws -> NetCDFCompression {
        guard (1...4).contains(deflateLevel) else {
            throw OutputFileError(.invalidArgument, reason: "deflate level \(deflateLevel) is not in 1...4",
                                  hint: "levels above 4 cost much time for little space on these files")
        }
        return NetCDFCompression(level: deflateLevel, shuffle: true)
    }
}

/// The three kinds of dkc result files; the global attribute `dkc_file` names the kind.
enum OutputFileKind: String, Sendable {
    case scores, circuits, acquisition, components

    var title: String {
        switch self {
        case .scores: return "dkc edge attribution scores"
        case .circuits: return "dkc circuit evaluation"
        case .acquisition: return "dkc knowledge acquisition (full model)"
        case .components: return "dkc component analysis (logit lens, head classes)"
        }
    }

    var fileName: String { rawValue + ".nc" }
}

/// The global attributes of a dkc file as read back.
public struct OutputFileHeader: Equatable, Sendable {
    public var title: String
    public var source: String
    /// One entry per command that wrote the file, oldest first.
    public var history: [String]
    /// The resolved configuration of the last command that wrote the file, as JSON.
    public var config: String
    public var mpiRanks: Int
    public var blasThreads: Int
    /// When the file was first written (ISO 8601, UTC).
    public var created: String
    /// "scores", "circuits" or "acquisition"; nil when the file lacks `dkc_file`.
    public var kind: String?
    /// The data set's test people ("circuit" or "independent"); nil when the file lacks `test_set`.
    public var testSet: String? = nil

    /// Reads the global attributes of a dkc file; names the first missing attribute.
    public static func read(from url: URL) throws -> OutputFileHeader {
        let file = try NetCDFFile.open(path: url.path)
        defer { try? file.close() }
        return try read(file)
    }

    static func read(_ file: NetCDFFile) throws -> OutputFileHeader {
        func text(_ name: String) throws -> String {
            guard file.hasAttribute(name) else {
                throw OutputFileError(.missingVariable("global attribute '\(name)'"), path: file.path,
                                      reason: "the file has no global attribute '\(name)'",
                                      hint: "this is not a file written by dkc")
            }
            return try file.textAttribute(name)
        }
        func number(_ name: String) throws -> Int {
            guard file.hasAttribute(name), let value = try file.numericAttribute(name, as: Int.self).first else {
                throw OutputFileError(.missingVariable("global attribute '\(name)'"), path: file.path,
                                      reason: "the file has no global attribute '\(name)'",
                                      hint: "this is not a file written by dkc")
            }
            return value
        }
        let history = try text("history")
        return OutputFileHeader(
            title: try text("title"), source: try text("source"),
            history: history.isEmpty ? [] : history.components(separatedBy: "\n"),
            config: try text("config"), mpiRanks: try number("mpi_ranks"),
            blasThreads: try number("blas_threads"), created: try text("created"),
            kind: file.hasAttribute("dkc_file") ? try file.textAttribute("dkc_file") : nil,
            testSet: file.hasAttribute("test_set") ? try file.textAttribute("test_set") : nil)
    }

    /// The header of the file at `url` if there is a readable dkc file of this kind there, else
    /// nil (a file of another kind, or not a dkc file, passes no history on).
    static func existing(at url: URL, kind: OutputFileKind) -> OutputFileHeader? {
        guard FileManager.default.fileExists(atPath: url.path), let header = try? read(from: url),
              header.kind == kind.rawValue else { return nil }
        return header
    }

    /// The header a write by `provenance` gives a file whose previous header was `previous`.
    static func make(kind: OutputFileKind, provenance: Provenance, previous: OutputFileHeader?) -> OutputFileHeader {
        var history = previous?.history ?? []
        if history.last != provenance.historyLine { history.append(provenance.historyLine) }
        return OutputFileHeader(title: kind.title, source: provenance.source, history: history,
                                config: provenance.config, mpiRanks: provenance.mpiRanks,
                                blasThreads: provenance.blasThreads,
                                created: previous?.created ?? provenance.created, kind: kind.rawValue,
                                testSet: provenance.testSet ?? previous?.testSet)
    }

    /// Writes the global attributes, in a fixed order.
    func write(to file: NetCDFFile) throws {
        try file.setAttribute("title", title)
        try file.setAttribute("source", source)
        try file.setAttribute("history", history.joined(separator: "\n"))
        try file.setAttribute("config", config)
        try file.setAttribute("mpi_ranks", Int32(clamping: mpiRanks))
        try file.setAttribute("blas_threads", Int32(clamping: blasThreads))
        try file.setAttribute("created", created)
        try file.setAttribute("dkc_file", kind ?? "")
        if let testSet { try file.setAttribute("test_set", testSet) }
    }
}
