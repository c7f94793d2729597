import ArgumentParser
import Core
import Foundation
import MPIShim

/// `dkc bench …`: performance measurements, each printed as a table or as JSON lines.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure dkc's speed (tokens/s, GFLOP/s, MFU against the sgemm roof measured in the same run).",
        subcommands: [BenchModel.self, BenchTrain.self, BenchSweep.self]
    )
}

/// `dkc bench model`: forward + backward + AdamW training steps of a randomly initialised GPT-2.
struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Training-step throughput of GPT-2 (forward + backward + AdamW) on one process.",
        discussion: """
        Random initialisation and random tokens; warm-up steps, then --repeats timed steps (median, min, max). \
        FLOPs per step: 6 × parameters × tokens + 12 × n_layer × B × T² × n_embd. The roof is the best sgemm rate \
        measured in the same run (before and after each config's steps, the higher of the two) at the same thread count; \
        MFU = achieved GFLOP/s / roof. \
        Configs: tiny (4 layers, 4 heads, n_embd 128), gpt2 (12 / 12 / 768), both with vocabulary 50257 and 1024 positions.
        """
    )

    enum ConfigChoice: String, ExpressibleByArgument, CaseIterable {
        case tiny, gpt2, all
    }

    @Option(help: "Model: \(ConfigChoice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var config: ConfigChoice = .all

    @Option(help: "Threads for OpenBLAS and dkc's kernels (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed steps per config.")
    var repeats: Int = 5

    @Option(help: "Untimed warm-up steps per config.")
    var warmup: Int = 2

    @Option(name: .customLong("batch-size"), help: "Sequences per step.")
    var batchSize: Int = 8

    @Option(name: .customLong("seq-len"), help: "Tokens per sequence (at most 1024).")
    var seqLen: Int = 128

    @Flag(help: "Print one JSON object per measurement and line instead of a table.")
    var json = false

    @Flag(help: "Also print the time per step of every kernel (forward, backward, optimizer) to standard error.")
    var profile = false

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard (2...1024).contains(seqLen) else { throw ValidationError("--seq-len must be in 2...1024 (the configs' n_positions)") }
    }

    func run() throws {
        let names = config == .all ? ["tiny", "gpt2"] : [config.rawValue]
        withWorld { comm in
            guard comm.size == 1 else {
                throw BenchError("bench model runs on one process; run it without mpirun (data-parallel training has its own benchmark)")
            }
            let live = isatty(STDERR_FILENO) == 1
            let progress: (String) -> Void = { line in
                let text = live ? "\r\u{1B}[K" + line : line + "\n"
                FileHandle.standardError.write(Data(text.utf8))
            }
            var results: [ModelBenchResult] = []
            for name in names {
                let cfg = ModelBench.config(named: name)!
                var r = try ModelBench.run(name: name, config: cfg, batch: batchSize, seqLen: seqLen, threads: threads,
                                           repeats: repeats, warmup: warmup, profile: profile, progress: progress)
                // The roof is measured before and after the steps; the higher value keeps MFU conservative when
                // other processes share the cores.
                r.roofGflops = max(r.roofGflops, ModelBench.sgemmRoof(threads: threads, progress: progress))
                results.append(r)
                if profile {
                    let total = r.stepSeconds.sorted()[r.stepSeconds.count / 2]
                    var text = (live ? "\r\u{1B}[K" : "") + "\(name): time per step by phase (median step \(String(format: "%.1f", 1000 * total)) ms)\n"
                    for (phase, s) in r.phases {
                        text += "  " + phase.padding(toLength: 20, withPad: " ", startingAt: 0)
                            + String(format: "%9.1f ms  %5.1f%%\n", 1000 * s, 100 * s / total)
                    }
                    FileHandle.standardError.write(Data(text.utf8))
                }
                if json { print(jsonLine(r, ranks: comm.size)); fflush(stdout) }
            }
            if live { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            if !json { print(table(results)) }
        }
    }

    func jsonLine(_ r: ModelBenchResult, ranks: Int) -> String {
        func num(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "null" }
        func str(_ s: String) -> String {
            "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        let fields: [(String, String)] = [
            ("bench", str("model")), ("config", str(r.config)), ("method", str("forward+backward+adamw")),
            ("batch_size", "\(r.batchSize)"), ("seq_len", "\(r.seqLen)"), ("ig_steps", "null"), ("ranks", "\(ranks)"),
            ("threads", "\(r.threads)"), ("repeats", "\(r.repeats)"), ("tokens_per_s", num(r.tokensPerS)),
            ("min", num(r.minTokensPerS)), ("max", num(r.maxTokensPerS)), ("gflops", num(r.gflops)),
            ("roof_gflops", num(r.roofGflops)), ("mfu", num(r.mfu)), ("peak_rss_mib", num(r.peakRSSMiB)),
            ("blas_core", str(r.blasCore)), ("dkc_version", str(DKCVersion.source)),
        ]
        return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }

    func table(_ results: [ModelBenchResult]) -> String {
        func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
            let p = String(repeating: " ", count: max(0, n - s.count))
            return left ? s + p : p + s
        }
        let header = [pad("config", 6, left: true), pad("B × T", 9), pad("threads", 7), pad("tokens/s", 10), pad("(min – max)", 19),
                      pad("GFLOP/s", 8), pad("roof", 7), pad("MFU", 6), pad("peak RSS", 10)]
        var lines = ["dkc bench model: forward + backward + AdamW, \(DKCVersion.source), OpenBLAS core \(BLAS.coreName)",
                     header.joined(separator: " ")]
        for r in results {
            lines.append([pad(r.config, 6, left: true), pad("\(r.batchSize) × \(r.seqLen)", 9), pad("\(r.threads)", 7),
                          pad(String(format: "%.1f", r.tokensPerS), 10),
                          pad(String(format: "(%.1f – %.1f)", r.minTokensPerS, r.maxTokensPerS), 19),
                          pad(String(format: "%.1f", r.gflops), 8), pad(String(format: "%.1f", r.roofGflops), 7),
                          pad(String(format: "%.1f%%", 100 * r.mfu), 6), pad(String(format: "%.0f MiB", r.peakRSSMiB), 10)].joined(separator: " "))
        }
        lines.append("FLOPs per step = 6 × parameters × tokens + attention; roof = best sgemm seen before, between and after the steps at the same thread count.")
        return lines.joined(separator: "\n")
    }
}

/// A benchmark that cannot run as asked.
struct BenchError: UserFacingError {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
    var exitCode: Int32 { 64 }
}
