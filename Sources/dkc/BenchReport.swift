import Core
import Benchmarks
import Foundation

/// The keys every `dkc bench …` JSON line carries (docs/performance.md, "JSON keys"), in order;
/// a benchmark appends its own keys after them. Scripts and dashboards read these names: keep them.
struct BenchRecord {
    var bench: String
    var config: String
    var method: String
    var batchSize: Int
    var seqLen: Int
    var igSteps: Int?
    var ranks: Int
    var threads: Int
    var repeats: Int
    /// `tokens_per_s` or `samples_per_s`.
    var rateKey: String
    /// Median over the repeats, with the slowest and fastest repeat.
    var rate: Double
    var min: Double
    var max: Double
    var gflops: Double
    var roofGflops: Double
    var mfu: Double
    var peakRSSMiB: Double
    var blasCore: String = BLAS.coreName
    var dkcVersion: String = DKCVersion.source
    /// Further keys, values already JSON (see `BenchJSON`).
    var extra: [(String, String)] = []

    /// One JSON object on one line.
    var jsonLine: String {
        typealias J = BenchJSON
        let fields: [(String, String)] = [
            ("bench", J.string(bench)), ("config", J.string(config)), ("method", J.string(method)),
            ("batch_size", "\(batchSize)"), ("seq_len", "\(seqLen)"), ("ig_steps", igSteps.map(String.init) ?? "null"),
            ("ranks", "\(ranks)"), ("threads", "\(threads)"), ("repeats", "\(repeats)"), (rateKey, J.number(rate)),
            ("min", J.number(min)), ("max", J.number(max)), ("gflops", J.number(gflops)),
            ("roof_gflops", J.number(roofGflops)), ("mfu", J.number(mfu)), ("peak_rss_mib", J.number(peakRSSMiB)),
            ("blas_core", J.string(blasCore)), ("kernels_isa", J.string(NativeKernels.instructionSet)),
            ("dkc_version", J.string(dkcVersion)),
        ]
        return J.object(fields + extra)
    }
}

/// JSON values for benchmark lines.
enum BenchJSON {
    /// A number with 6 significant digits; `null` when not finite.
    static func number(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "null" }

    static func number(_ x: Double?) -> String { x.map { number($0) } ?? "null" }

    static func bool(_ b: Bool?) -> String { b.map { $0 ? "true" : "false" } ?? "null" }

    /// A quoted JSON string.
    static func string(_ s: String) -> String { JSONText.quoted(s) }

    /// `{"key": value, …}` on one line, keys in the given order.
    static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\(string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
    }
}

/// A plain-text table: right-aligned columns unless marked left, one space between them.
struct BenchTable {
    var columns: [(title: String, width: Int, left: Bool)]
    var rows: [[String]] = []

    init(_ columns: [(String, Int, Bool)]) { self.columns = columns.map { ($0.0, $0.1, $0.2) } }

    static func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
        let p = String(repeating: " ", count: Swift.max(0, n - s.count))
        return left ? s + p : p + s
    }

    mutating func add(_ cells: [String]) {
        precondition(cells.count == columns.count, "a row needs one cell per column")
        rows.append(cells)
    }

    /// The header line and one line per row.
    var lines: [String] {
        let header = columns.map { Self.pad($0.title, $0.width, left: $0.left) }.joined(separator: " ")
        return [header] + rows.map { row in zip(row, columns).map { Self.pad($0, $1.width, left: $1.left) }.joined(separator: " ") }
    }
}

/// Progress lines of a benchmark on standard error: one live, rewritten line on a terminal, plain lines otherwise.
struct BenchProgress {
    let live = liveProgress(STDERR_FILENO)

    func callAsFunction(_ line: String) {
        let text = live ? "\r\u{1B}[K" + line : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Text for standard error that starts on a clean line.
    func write(_ text: String) {
        FileHandle.standardError.write(Data(((live ? "\r\u{1B}[K" : "") + text).utf8))
    }

    /// Clears the live line.
    func finish() { if live { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
}

/// Runs this dkc binary as a benchmark child, under mpirun for more than one rank, with `threads` OpenBLAS
/// threads and a clean MPI environment (a child of a rank must not inherit its wiring); returns what it
/// printed on standard output. A non-zero exit is an error naming `what`.
func runBenchChild(_ arguments: [String], ranks: Int, threads: Int, what: String) throws -> String {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let p = Process()
    if ranks == 1 {
        p.executableURL = exe
        p.arguments = arguments
    } else {
        guard let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw BenchError.usage("\(ranks) ranks need mpirun (install openmpi-bin, or run the layouts yourself under mpirun)")
        }
        p.executableURL = URL(fileURLWithPath: mpirun)
        p.arguments = ["--oversubscribe", "--bind-to", "core", "-np", "\(ranks)", exe.path] + arguments
    }
    var env = ProcessInfo.processInfo.environment
    for k in env.keys where k.hasPrefix("OMPI_COMM_WORLD") || k.hasPrefix("PMIX_") { env.removeValue(forKey: k) }
    env["OPENBLAS_NUM_THREADS"] = "\(threads)"
    p.environment = env
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw BenchError.usage("the \(ranks) × \(threads) \(what) failed with status \(p.terminationStatus)") }
    return String(decoding: data, as: UTF8.self)
}
