import ArgumentParser
import Core
import Benchmarks
import DistTrain
import Foundation
import MPIShim

/// `dkc bench train`: data-parallel training throughput, at the world size it runs with, or — with
/// `--scaling` — the comparison the performance target names: 1 rank × 1 thread, 1 rank × 2 threads and
/// 2 ranks × 1 thread (`mpirun --bind-to core`), each in a child process.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Data-parallel training throughput (forward + backward + gradient allreduce + AdamW) and its scaling over ranks.",
        discussion: """
        Random initialisation and random tokens, steps without dropout; each rank runs --batch-size blocks of --seq-len tokens per \
        micro-step (weak scaling: the global batch grows with the ranks). tokens/s counts all ranks; FLOPs as \
        `dkc bench model` counts them, for the global batch; the roof is the sum over ranks of the sgemm rate \
        each measures at its thread count, all at once; MFU = GFLOP/s / roof.

        Run it under mpirun for one rank count, e.g. `mpirun -np 2 --bind-to core dkc bench train --threads 1`, \
        or once without mpirun with --scaling for R = 1 (1 and 2 threads) and R = 2 (1 thread each) and the \
        speed-up of 2 × 1 over 1 × 1 (target ≥ 1.9, tiny and GPT-2 small).
        """
    )

    enum ConfigChoice: String, ExpressibleByArgument, CaseIterable {
        case tiny, gpt2, gpt2Medium = "gpt2-medium", all
    }

    @Option(help: "Model: \(ConfigChoice.allCases.map(\.rawValue).joined(separator: ", ")) (the shapes of `dkc bench model`).")
    var config: ConfigChoice = .all

    @Option(help: "Threads per rank for OpenBLAS and dkc's kernels (default: cores / ranks on this node).")
    var threads: Int?

    @OptionGroup var steps: BenchStepOptions

    @Option(help: "Micro-steps per optimizer step.")
    var accumulation: Int = 1

    @Flag(help: "Use the exact (fixed-point) gradient reduction of deterministic = true.")
    var deterministic = false

    @Flag(help: "Run 1 × 1, 1 × 2 and 2 × 1 (ranks × threads) in child processes and report the 2-rank speed-up.")
    var scaling = false

    @Flag(help: "Print one JSON object per measurement and line instead of a table.")
    var json = false

    func validate() throws {
        try requireAtLeast(1, ["--threads": threads ?? 1, "--accumulation": accumulation])
    }

    func run() throws {
        if scaling { return try runScaling() }
        let names = config == .all ? ["tiny", "gpt2"] : [config.rawValue]
        let threads = self.threads
        withWorld { comm in
            let n = threads ?? defaultThreadsPerRank()
            let live = comm.isRoot && liveProgress(STDERR_FILENO)
            let progress: (String) -> Void = { line in
                guard comm.isRoot else { return }
                FileHandle.standardError.write(Data((live ? "\r\u{1B}[K" + line : line + "\n").utf8))
            }
            var results: [TrainBenchResult] = []
            for name in names {
                let r = try TrainBench.run(name: name, config: ModelBench.config(named: name)!, comm: comm, batch: steps.batchSize,
                                           accumulation: accumulation, seqLen: steps.seqLen, threads: n, repeats: steps.repeats,
                                           warmup: steps.warmup, deterministic: deterministic, progress: progress)
                results.append(r)
                if json && comm.isRoot { print(Self.jsonLine(r)); fflush(stdout) }
            }
            if live { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            if !json && comm.isRoot { print(Self.table(results)) }
        }
    }

    // MARK: scaling

    /// Runs the three layouts as child processes of this binary and prints their lines and the speed-ups.
    func runScaling() throws {
        var common = ["bench", "train", "--config", config.rawValue, "--repeats", "\(steps.repeats)", "--warmup", "\(steps.warmup)",
                      "--batch-size", "\(steps.batchSize)", "--seq-len", "\(steps.seqLen)", "--accumulation", "\(accumulation)", "--json"]
        if deterministic { common.append("--deterministic") }
        let layouts: [(ranks: Int, threads: Int)] = [(1, 1), (1, 2), (2, 1)]
        var all: [JSONValue] = []
        for (ranks, threads) in layouts {
            FileHandle.standardError.write(Data("bench train --scaling: \(ranks) rank(s) × \(threads) thread(s)…\n".utf8))
            let output = try runBenchChild(common + ["--threads", "\(threads)"], ranks: ranks, threads: threads, what: "run")
            for line in output.split(separator: "\n") {
                if json { print(line) }
                if let obj = try? JSONValue(parsing: String(line)), obj.isObject { all.append(obj) }
            }
        }
        var lines: [String] = []
        for name in Set(all.compactMap { $0["config"]?.stringValue }).sorted(by: >) {
            func rate(_ r: Int, _ t: Int) -> Double? {
                all.first { $0["config"]?.stringValue == name && $0["ranks"]?.intValue == r && $0["threads"]?.intValue == t }?["tokens_per_s"]?.doubleValue
            }
            guard let one = rate(1, 1), let two = rate(2, 1) else { continue }
            let line = String(format: "%@: 2 ranks × 1 thread = %.0f tokens/s, %.2f× 1 rank × 1 thread (%.0f; efficiency %.0f%%)",
                              name as NSString, two, two / one, one, 50 * two / one)
                + (rate(1, 2).map { String(format: "; 1 rank × 2 threads = %.0f tokens/s (%.2f×)", $0, $0 / one) } ?? "")
            lines.append(line)
            if json {
                print("{\"bench\": \"train\", \"config\": \"\(name)\", \"method\": \"scaling\", \"speedup_2x1_over_1x1\": \(two / one), \"efficiency\": \(two / one / 2)}")
            }
        }
        if !json {
            for obj in all {
                let name = obj["config"]?.stringValue ?? "?"
                let r = obj["ranks"]?.intValue ?? 0, t = obj["threads"]?.intValue ?? 0
                let tps = obj["tokens_per_s"]?.doubleValue ?? 0, mfu = obj["mfu"]?.doubleValue ?? 0
                print(String(format: "%-5@ %d rank(s) × %d thread(s): %10.1f tokens/s  MFU %5.1f%%", name as NSString, r, t, tps, 100 * mfu))
            }
        }
        for l in lines { (json ? FileHandle.standardError : FileHandle.standardOutput).write(Data((l + "\n").utf8)) }
    }

    // MARK: output

    static func jsonLine(_ r: TrainBenchResult) -> String {
        func num(_ x: Double) -> JSONValue { x.isFinite ? .double(x) : .null }
        return JSONValue.object([
            ("bench", .string("train")), ("config", .string(r.config)), ("method", .string("data-parallel forward+backward+allreduce+adamw")),
            ("batch_size", .int(r.batchSize)), ("seq_len", .int(r.seqLen)), ("ig_steps", .null), ("ranks", .int(r.ranks)),
            ("threads", .int(r.threads)), ("repeats", .int(r.repeats)), ("tokens_per_s", num(r.tokensPerS)),
            ("min", num(r.minTokensPerS)), ("max", num(r.maxTokensPerS)), ("gflops", num(r.gflops)),
            ("roof_gflops", num(r.roofGflops)), ("mfu", num(r.mfu)), ("peak_rss_mib", num(r.peakRSSMiB)),
            ("blas_core", .string(r.blasCore)), ("kernels_isa", .string(NativeKernels.instructionSet)),
            ("dkc_version", .string(DKCVersion.source)),
            ("accumulation", .int(r.accumulation)), ("global_batch", .int(r.ranks * r.batchSize * r.accumulation)),
            ("deterministic", .bool(r.deterministic)), ("reduce_seconds", num(r.reduceSeconds)),
        ]).compactText
    }

    static func table(_ results: [TrainBenchResult]) -> String {
        var lines = ["dkc bench train: data-parallel forward + backward + allreduce + AdamW, \(DKCVersion.source), OpenBLAS core \(BLAS.coreName)",
                     "config  ranks × threads  blocks × T   tokens/s   (min – max)          GFLOP/s   roof    MFU   reduce   peak RSS"]
        for r in results {
            lines.append(String(format: "%-6@  %5d × %-7d  %4d × %-5d %10.1f  (%.1f – %.1f)  %8.1f %7.1f %5.1f%% %6.1f ms %7.0f MiB",
                                r.config as NSString, r.ranks, r.threads, r.ranks * r.batchSize * r.accumulation, r.seqLen,
                                r.tokensPerS, r.minTokensPerS, r.maxTokensPerS, r.gflops, r.roofGflops, 100 * r.mfu,
                                1000 * r.reduceSeconds, r.peakRSSMiB))
        }
        lines.append("tokens/s over all ranks; roof = Σ over ranks of the sgemm rate each measured at its thread count, concurrently.")
        return lines.joined(separator: "\n")
    }
}
