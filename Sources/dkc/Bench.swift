import ArgumentParser
import Core
import Benchmarks
import Foundation
import MPIShim

/// `dkc bench …`: performance measurements, each printed as a table or as JSON lines.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration.group("bench", abstract: "Measure dkc's speed (tokens/s, GFLOP/s, MFU against the sgemm roof measured in the same run).",
                                                          [BenchModel.self, BenchTrain.self, BenchDiscover.self, BenchCell.self, BenchSweep.self])
}

/// `dkc bench model`: forward + backward + AdamW training steps of a randomly initialised GPT-2.
struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Training-step throughput of GPT-2 (forward + backward + AdamW) on one process.",
        discussion: """
        Random initialisation and random tokens, steps without dropout; warm-up steps, then --repeats timed steps (median, min, max). \
        FLOPs per step: 6 × parameters × tokens + 12 × n_layer × B × T² × n_embd. The roof is the best sgemm rate \
        measured in the same run (before and after each config's steps, the higher of the two) at the same thread count; \
        MFU = achieved GFLOP/s / roof. \
        Configs: tiny (4 layers, 4 heads, n_embd 128), gpt2 (12 / 12 / 768), gpt2-medium (24 / 16 / 1024; not in "all"), all with vocabulary 50257 and 1024 positions; \
        the Llama and Phi shapes (not in "all"; docs/model-families.md): tiny-llama and tiny-phi (the demo's fixture models), tinyllama-4l and \
        phi-1_5-4l (4-layer slices of TinyLlama v1.1 and Phi-1.5 at full width and vocabulary).
        """
    )

    enum ConfigChoice: String, ExpressibleByArgument, CaseIterable {
        case tiny, gpt2, gpt2Medium = "gpt2-medium", tinyLlama = "tiny-llama", tinyPhi = "tiny-phi", tinyLlama4l = "tinyllama-4l",
             phi4l = "phi-1_5-4l", all
    }

    @Option(help: "Model: \(ConfigChoice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var config: ConfigChoice = .all

    @Option(help: "Threads for OpenBLAS and dkc's kernels (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @OptionGroup var steps: BenchStepOptions

    @Flag(help: "Print one JSON object per measurement and line instead of a table.")
    var json = false

    @Flag(help: "Also print the time per step of every kernel (forward, backward, optimizer) to standard error.")
    var profile = false

    func validate() throws {
        try requireAtLeast(1, ["--threads": threads])
    }

    func run() throws {
        let names = config == .all ? ["tiny", "gpt2"] : [config.rawValue]
        withWorld { comm in
            guard comm.size == 1 else {
                throw BenchError.usage("bench model runs on one process; run it without mpirun (data-parallel training has its own benchmark)")
            }
            let progress = BenchProgress()
            var results: [ModelBenchResult] = []
            for name in names {
                var r: ModelBenchResult
                if let family = ModelBench.familyConfig(named: name) {
                    guard !profile else { throw BenchError.usage("--profile times GPT-2's kernels only; leave it out for \(name)") }
                    r = try ModelBench.run(name: name, family: family, batch: steps.batchSize, seqLen: steps.seqLen, threads: threads,
                                           repeats: steps.repeats, warmup: steps.warmup, progress: { progress($0) })
                } else {
                    r = try ModelBench.run(name: name, config: ModelBench.config(named: name)!, batch: steps.batchSize, seqLen: steps.seqLen,
                                           threads: threads, repeats: steps.repeats, warmup: steps.warmup, profile: profile, progress: { progress($0) })
                }
                // The roof is measured before and after the steps; the higher value keeps MFU conservative when
                // other processes share the cores.
                r.roofGflops = max(r.roofGflops, ModelBench.sgemmRoof(threads: threads, progress: { progress($0) }))
                results.append(r)
                if profile {
                    let total = r.stepSeconds.sorted()[r.stepSeconds.count / 2]
                    var text = "\(name): time per step by phase (median step \(String(format: "%.1f", 1000 * total)) ms)\n"
                    for (phase, s) in r.phases {
                        text += "  " + phase.padding(toLength: 20, withPad: " ", startingAt: 0)
                            + String(format: "%9.1f ms  %5.1f%%\n", 1000 * s, 100 * s / total)
                    }
                    progress.write(text)
                }
                if json { print(record(r, ranks: comm.size).jsonLine); fflush(stdout) }
            }
            progress.finish()
            if !json { print(table(results)) }
        }
    }

    func record(_ r: ModelBenchResult, ranks: Int) -> BenchRecord {
        BenchRecord(bench: "model", config: r.config, method: "forward+backward+adamw", batchSize: r.batchSize, seqLen: r.seqLen,
                    igSteps: nil, ranks: ranks, threads: r.threads, repeats: r.repeats, rateKey: "tokens_per_s",
                    rate: r.tokensPerS, min: r.minTokensPerS, max: r.maxTokensPerS, gflops: r.gflops, roofGflops: r.roofGflops,
                    mfu: r.mfu, peakRSSMiB: r.peakRSSMiB, blasCore: r.blasCore)
    }

    func table(_ results: [ModelBenchResult]) -> String {
        var t = BenchTable([("config", 6, true), ("B × T", 9, false), ("threads", 7, false), ("tokens/s", 10, false),
                            ("(min – max)", 19, false), ("GFLOP/s", 8, false), ("roof", 7, false), ("MFU", 6, false),
                            ("peak RSS", 10, false)])
        for r in results {
            t.add([r.config, "\(r.batchSize) × \(r.seqLen)", "\(r.threads)", String(format: "%.1f", r.tokensPerS),
                   String(format: "(%.1f – %.1f)", r.minTokensPerS, r.maxTokensPerS), String(format: "%.1f", r.gflops),
                   String(format: "%.1f", r.roofGflops), String(format: "%.1f%%", 100 * r.mfu), String(format: "%.0f MiB", r.peakRSSMiB)])
        }
        let lines = ["dkc bench model: forward + backward + AdamW, \(DKCVersion.source), OpenBLAS core \(BLAS.coreName)"] + t.lines
            + ["FLOPs per step = 6 × parameters × tokens + attention; roof = best sgemm seen before, between and after the steps at the same thread count."]
        return lines.joined(separator: "\n")
    }
}
