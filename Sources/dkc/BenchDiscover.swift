import ArgumentParser
import Core
import Benchmarks
import Foundation
import MPIShim

/// `dkc bench discover`: edge-attribution throughput (samples/s) on a randomly initialised GPT-2, Llama or Phi,
/// compared with the study's own code (docs/performance.md, "Reference figures", "Model families").
struct BenchDiscover: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discover",
        abstract: "Edge-attribution throughput (EAP-IG by default) of GPT-2, Llama or Phi on one process, against the study's figures.",
        discussion: """
        Prompts: --prompts pairs of the study's city task, "{First Middle Last} lives in the city of", names and cities \
        drawn from the pools, each corrupted name of the same token length, labels the first token of " " + city; \
        logit-difference metric. For the Llama and Phi shapes (tiny-llama, tiny-phi, tinyllama-4l, phi-1_5-4l) the names \
        are tokenised with the family's tokenizer.json (--tokenizer FOLDER, default the demo's fixture model folder \
        Tests/Fixtures/llama|phi/model; the 4-layer slices have larger vocabularies, so its ids are valid there too) and \
        Llama labels have no leading space, as the study's circuit data; the model is initialised as transformers does. \
        benchmarks/reference/family_eap_bench.py runs the study's code on the same shapes for the ratio. Each measurement creates a randomly initialised model, makes --warmup untimed calls and \
        --repeats timed calls of the attribution over all prompts (median, min, max samples/s).

        FLOPs per call, dkc's own work (2 per multiply-add): per token and layer 24·C² (GPT-2; the families: their block's \
        products) for a forward pass (+ 2·C² for the \
        per-head outputs of the two recorded runs) and 24·C² for the activation backward; attention 4·B·T²·C forward and \
        8·B·T²·C backward per layer; the score contraction; no unembedding for the logit difference. EAP-IG runs 2 \
        recorded forwards + steps × (forward + backward). The roof is the best sgemm rate measured in the same run \
        (before, between and after the calls) at the same thread count; MFU = GFLOP/s / roof.

        Peak RSS: the process's high-water mark, reset (Linux /proc/self/clear_refs) just before each model is \
        created, so it covers that measurement plus what the process already held (runtime, tokenizer: base_rss_mib). \
        Where the reset is not possible the figure is the process peak since start (peak_rss_scope "process"); run one \
        configuration per process then.

        The study's figures (EAP-IG 5 steps, tiny 10.4 / 10.0 samples/s at batch 16 / 64, GPT-2 small 0.67 / 0.36; \
        EAP tiny 51 / 44, GPT-2 small 3.0 / 1.1, recorded on a 2-core Zen 3) and dkc's targets (EAP-IG ≥ 10× the study \
        on tiny, ≥ 8× on GPT-2 small at batch 16; peak ≤ 4 GB for GPT-2 small at batch 64) are compared when the run is \
        like the study's: 64 prompts, 2 threads, 5 steps. The targets are ratios to the study's code run beside dkc on \
        the same machine (docs/performance.md says how); against the recorded figures they are indicative.
        """
    )

    @Option(help: "Model: tiny, gpt2, gpt2-medium, tiny-llama, tiny-phi, tinyllama-4l, phi-1_5-4l or all (= tiny and gpt2; tiny: 4 layers, 4 heads, n_embd 128; gpt2: 12 / 12 / 768).")
    var config: BenchModel.ConfigChoice = .all

    @Option(help: "Attribution method: \(AttributionMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: String = AttributionMethod.eapIG.rawValue

    @Option(name: .customLong("ig-steps"), help: "Integration steps of the IG methods.")
    var igSteps: Int = 5

    @Option(name: .customLong("batch-size"), parsing: .upToNextOption, help: "Batch sizes to measure (one measurement each).")
    var batchSizes: [Int] = [16, 64]

    @Option(help: "Prompt pairs per call.")
    var prompts: Int = 64

    @Option(help: "Threads for OpenBLAS and dkc's kernels.")
    var threads: Int = 2

    @Option(help: "Timed calls per measurement.")
    var repeats: Int = 3

    @Option(help: "Untimed warm-up calls per measurement.")
    var warmup: Int = 1

    @Option(name: .customLong("rows-per-pass"), help: "Rows (B·T) one pass holds: a larger batch is attributed in parts of whole samples, and EAP-IG stacks integration steps up to this many rows.")
    var rowsPerPass: Int = AttributionOptions().rowsPerPass

    @Flag(name: .customLong("gemm-profile"), help: ArgumentHelp(
        "Also time every matrix product of the timed calls by shape and print, after each measurement, their share of the cores' time and GFLOP/s against the roof (on standard error).",
        discussion: "Where the time goes against the roof: the products that run below it, and the time outside products."))
    var gemmProfile = false

    @OptionGroup var promptOptions: BenchPromptOptions

    @Option(name: .customLong("write-prompts"), help: ArgumentHelp(
        "Also write each config's prompts as the study's circuit data (JSON lines; with several configs, <file>.<config>), for the reference script.",
        valueName: "file"))
    var writePrompts: String?

    @Flag(help: "Print one JSON object per measurement and line instead of a table.")
    var json = false

    func validate() throws {
        guard AttributionMethod(rawValue: method) != nil else {
            throw ValidationError("--method \(method) is not a method: use one of \(AttributionMethod.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try requireAtLeast(1, ["--threads": threads, "--repeats": repeats, "--prompts": prompts, "--ig-steps": igSteps,
                               "--rows-per-pass": rowsPerPass])
        try requireAtLeast(0, ["--warmup": warmup])
        guard !batchSizes.isEmpty, batchSizes.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--batch-size needs one or more sizes, each at least 1 (e.g. --batch-size 16 64)")
        }
    }

    func run() throws {
        let names = config == .all ? ["tiny", "gpt2"] : [config.rawValue]
        let options = AttributionOptions(method: AttributionMethod(rawValue: method)!, igSteps: igSteps, rowsPerPass: rowsPerPass)
        withWorld { comm in
            guard comm.size == 1 else {
                throw BenchError.usage("bench discover runs on one process; run it without mpirun (the sweep has its own benchmark)")
            }
            let progress = BenchProgress()
            let loadBefore = ProcessMemory.loadAverage()
            let pools = try DataPools.load(from: promptOptions.poolFolder)
            var results: [DiscoverBenchResult] = []
            for name in names {
                let cfg = ModelBench.familyConfig(named: name) ?? ModelConfig(gpt2: ModelBench.config(named: name)!)
                let encoder = try encoder(for: cfg.family)
                let samples = try DiscoverBench.samples(count: prompts, pools: pools, encoder: encoder,
                                                        labelLeadingSpace: cfg.family.circuitLabelHasLeadingSpace)
                if let writePrompts {
                    let url = URL(fileURLWithPath: names.count == 1 ? writePrompts : writePrompts + "." + name)
                    let text = samples.map(\.jsonObject.compactText).joined(separator: "\n") + "\n"
                    do { try Data(text.utf8).write(to: url, options: .atomic) } catch {
                        throw BenchError.usage("--write-prompts: cannot write \(url.path): \(error.localizedDescription)")
                    }
                }
                let pairs = samples.map { $0.promptPair(task: .city, encoder: encoder) }
                for b in batchSizes {
                    var r = try DiscoverBench.run(name: name, config: cfg, pairs: pairs, batchSize: b, options: options,
                                                  threads: threads, repeats: repeats, warmup: warmup, gemmProfile: gemmProfile,
                                                  progress: { progress($0) })
                    r.roofGflops = max(r.roofGflops, ModelBench.sgemmRoof(threads: threads, progress: { progress($0) }))
                    results.append(r)
                    if gemmProfile {
                        let wall = r.callSeconds.reduce(0, +)
                        let head = "\(name) \(r.method.rawValue) b\(b), \(r.repeats) timed call(s), \(String(format: "%.2f", wall)) s:"
                        let lines = [head] + GemmProfile.report(r.gemmProfile, wallSeconds: wall, threads: threads, roofGflops: r.roofGflops)
                        progress.finish()
                        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
                    }
                    if json { print(record(r, ranks: comm.size).jsonLine); fflush(stdout) }
                }
            }
            progress.finish()
            if !json { print(table(results, load: (loadBefore, ProcessMemory.loadAverage()))) }
        }
    }

    /// The prompts' tokenizer: GPT-2's (`--tokenizer` names vocab.json + merges.txt), or the family's tokenizer.json
    /// (`--tokenizer` names its folder; default the fixture model folder the tiny demos train).
    func encoder(for family: ModelFamily) throws -> any Tokenizer {
        if family == .gpt2 { return try promptOptions.loadTokenizer() }
        let folder = promptOptions.tokenizer.map { URL(fileURLWithPath: $0) }
            ?? Paths.sourceRoot.appendingPathComponent("Tests/Fixtures/\(family.rawValue)/model")
        return try TokenizerLoader.load(directory: folder)
    }

    func record(_ r: DiscoverBenchResult, ranks: Int) -> BenchRecord {
        typealias J = BenchJSON
        let ref = DiscoverBench.reference(for: r)
        let target = ref?.targetSamplesPerS, peakTarget = ref?.targetPeakRSSMiB
        return BenchRecord(
            bench: "discover", config: r.config, method: r.method.rawValue, batchSize: r.batchSize, seqLen: r.seqLen,
            igSteps: r.igSteps, ranks: ranks, threads: r.threads, repeats: r.repeats, rateKey: "samples_per_s",
            rate: r.samplesPerS, min: r.minSamplesPerS, max: r.maxSamplesPerS, gflops: r.gflops, roofGflops: r.roofGflops,
            mfu: r.mfu, peakRSSMiB: r.peakRSSMiB, blasCore: r.blasCore,
            extra: [
                ("samples", "\(r.samples)"), ("rows_per_pass", "\(rowsPerPass)"), ("flops_per_call", J.number(r.flopsPerCall)),
                ("base_rss_mib", J.number(r.baseRSSMiB)), ("peak_rss_scope", J.string(r.peakIsPerMeasurement ? "measurement" : "process")),
                ("study_samples_per_s", J.number(ref?.studySamplesPerS)),
                ("ratio_to_study", J.number(ref.map { r.samplesPerS / $0.studySamplesPerS })),
                ("target_samples_per_s", J.number(target)), ("meets_target", J.bool(target.map { r.samplesPerS >= $0 })),
                ("target_peak_rss_mib", J.number(peakTarget)), ("meets_peak_target", J.bool(peakTarget.map { r.peakRSSMiB <= $0 })),
                ("load_avg_1m", J.number(ProcessMemory.loadAverage())),
            ])
    }

    func table(_ results: [DiscoverBenchResult], load: (Double?, Double?)) -> String {
        let methodWidth = max(6, results.map(\.method.rawValue.count).max() ?? 0)
        var t = BenchTable([("config", 6, true), ("method", methodWidth, true), ("B", 3, false), ("T", 3, false), ("threads", 7, false),
                            ("samples/s", 9, false), ("(min – max)", 19, false), ("GFLOP/s", 7, false), ("roof", 6, false),
                            ("MFU", 6, false), ("peak RSS", 9, false), ("study", 6, false), ("× study", 7, false),
                            ("target", 12, false)])
        var notes: [String] = []
        for r in results {
            let ref = DiscoverBench.reference(for: r)
            var target = "–"
            if let ts = ref?.targetSamplesPerS {
                target = String(format: "≥ %.3g %@", ts, r.samplesPerS >= ts ? "met" : "MISS")
            }
            if let tp = ref?.targetPeakRSSMiB {
                notes.append(String(format: "peak RSS target, %@ %@ b%d: ≤ 4 GB (%.0f MiB): %.0f MiB, %@", r.config, r.method.rawValue, r.batchSize,
                                    tp, r.peakRSSMiB, r.peakRSSMiB <= tp ? "met" : "MISSED"))
            }
            t.add([r.config, r.method.rawValue, "\(r.batchSize)", "\(r.seqLen)", "\(r.threads)", String(format: "%.2f", r.samplesPerS),
                   String(format: "(%.2f – %.2f)", r.minSamplesPerS, r.maxSamplesPerS), String(format: "%.1f", r.gflops),
                   String(format: "%.0f", r.roofGflops), String(format: "%.1f%%", 100 * r.mfu), String(format: "%.0f MiB", r.peakRSSMiB),
                   ref.map { String(format: "%.3g", $0.studySamplesPerS) } ?? "–",
                   ref.map { String(format: "%.2f×", r.samplesPerS / $0.studySamplesPerS) } ?? "–", target])
        }
        func avg(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "?" }
        let samples = results.first?.samples ?? prompts
        let scope = results.allSatisfy(\.peakIsPerMeasurement)
            ? "process high-water mark reset before each model was created (base resident size at the reset: "
                + results.map { String(format: "%.0f", $0.baseRSSMiB) }.joined(separator: ", ") + " MiB)"
            : "process peak since start (the reset is unavailable here): run one configuration per process"
        var lines = ["dkc bench discover: \(samples) prompts per call, median of \(repeats) call(s) after \(warmup) warm-up call(s), "
                     + "\(DKCVersion.source), OpenBLAS core \(BLAS.coreName), load average \(avg(load.0)) → \(avg(load.1))"]
        lines += t.lines
        lines += notes
        lines += ["T = longest padded batch (BOS included). FLOPs = dkc's own work per call (see --help); roof = best sgemm in the same run at the same threads.",
                  "peak RSS = " + scope + ".",
                  "study / target: the study's own code and dkc's targets (docs/performance.md), shown for runs like the study's (64 prompts, 2 threads, 5 steps)."]
        return lines.joined(separator: "\n")
    }
}
