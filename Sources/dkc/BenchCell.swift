import ArgumentParser
import Core
import DistCircuits
import Benchmarks
import Foundation
import MPIShim

/// `dkc bench cell`: one cell of the study's circuit grid on a randomly initialised GPT-2, timed by phase
/// (docs/performance.md, "The commands").
struct BenchCell: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cell",
        abstract: "One circuit cell (attribution, selection, faithfulness, zero-ablation tests) timed by phase, on one process.",
        discussion: """
        The cell runs through the code of dkc discover, dkc evaluate and every cell of dkc sweep: EAP-IG attribution of \
        --circuit-n city prompt pairs (the prompts of dkc bench discover), the circuit of each --topn edges (top-n by \
        |score|, pruned), its faithfulness on the same pairs (clean and corrupted baselines, then the patched run), and \
        the zero-ablation test of each circuit on 6 target cells (new, revised × high, medium, low) of --circuit-n test \
        people each (names and cities drawn from the pools, as the study's test people of a cell are its circuit people).

        Phases: attribution, selection (top-n and pruning), baselines (a recorded corrupted and a clean forward per \
        batch), faithfulness (a patched forward per batch and circuit), tests (a zero-ablated forward per batch of test \
        prompts and circuit). FLOPs per phase count dkc's own work (2 per multiply-add; elementwise work not counted; \
        patched forwards as if every input is rebuilt); the roof is the best sgemm rate measured in the same run at the \
        same thread count (before and after the cells); MFU = GFLOP/s / roof. cpu_s is the process's user + system time \
        of the cell. Peak RSS: the process's high-water mark, reset just before the model is created.

        Target (docs/performance.md): the paper-size cell, --config gpt2 --circuit-n 300 --batch-size 64 --topn 8000 on \
        2 threads, in ≤ 90 s with ≤ 2.5 GB peak.
        """
    )

    enum ConfigChoice: String, ExpressibleByArgument, CaseIterable { case tiny, gpt2, gpt2Medium = "gpt2-medium" }

    @Option(help: "Model: tiny (4 layers, 4 heads, n_embd 128), gpt2 (12 / 12 / 768) or gpt2-medium (24 / 16 / 1024).")
    var config: ConfigChoice = .gpt2

    @Option(name: .customLong("circuit-n"), help: "Circuit samples of the cell, and test people per target cell.")
    var circuitN: Int = 300

    @Option(name: .customLong("batch-size"), help: "Samples per batch (attribution, evaluation and tests).")
    var batchSize: Int = 64

    @Option(help: "Circuit sizes (top-n edges), comma-separated, one circuit each.", transform: CircuitSizes.init(parsing:))
    var topn = CircuitSizes([8000])

    @Option(name: .customLong("ig-steps"), help: "EAP-IG integration steps.")
    var igSteps: Int = 5

    @Option(help: "Threads for OpenBLAS and dkc's kernels.")
    var threads: Int = 2

    @Option(help: "Timed cells (the phases reported are the median cell's).")
    var repeats: Int = 1

    @OptionGroup var promptOptions: BenchPromptOptions

    @Flag(help: "Print one JSON object per line instead of a table.")
    var json = false

    func validate() throws {
        try requireAtLeast(1, ["--threads": threads, "--repeats": repeats, "--circuit-n": circuitN, "--batch-size": batchSize,
                               "--ig-steps": igSteps])
    }

    func run() throws {
        let options = CellOptions(attribution: AttributionOptions(method: .eapIG, igSteps: igSteps), batchSize: batchSize, topn: topn.values)
        withWorld { comm in
            guard comm.size == 1 else { throw BenchError.usage("bench cell runs on one process; run it without mpirun (the sweep has its own benchmark)") }
            let progress = BenchProgress()
            let loadBefore = ProcessMemory.loadAverage()
            let tok = try promptOptions.loadTokenizer()
            let poolFolder = promptOptions.poolFolder
            let dataPools = try DataPools.load(from: poolFolder)
            let pairs = try DiscoverBench.prompts(count: circuitN, pools: dataPools, encoder: tok)
            let targets = try CellBench.targets(count: circuitN, pools: dataPools, encoder: tok)
            var r = try CellBench.run(name: config.rawValue, config: ModelBench.config(named: config.rawValue)!, pairs: pairs, targets: targets,
                                      encoder: tok, options: options, threads: threads, repeats: repeats, progress: { progress($0) })
            r.roofGflops = max(r.roofGflops, ModelBench.sgemmRoof(threads: threads, progress: { progress($0) }))
            progress.finish()
            if json { print(record(r, ranks: comm.size).jsonLine) } else { print(table(r, load: (loadBefore, ProcessMemory.loadAverage()))) }
        }
    }

    func record(_ r: CellBenchResult, ranks: Int) -> BenchRecord {
        typealias J = BenchJSON
        let paper = CellBench.isPaperSize(r)
        let n = Double(r.samples)
        var extra: [(String, String)] = [
            ("samples", "\(r.samples)"), ("topn", "[" + r.options.topn.map(String.init).joined(separator: ", ") + "]"),
            ("targets", "\(r.targets)"), ("test_prompts", "\(r.testPrompts)"),
            ("cell_s", J.number(r.medianSeconds)), ("cpu_s", J.number(r.cpuSeconds)),
        ]
        for p in r.phases { extra.append(("\(p.name)_s", J.number(p.seconds))) }
        for p in r.phases where p.flops > 0 {
            extra.append(("\(p.name)_gflops", J.number(p.gflops)))
            extra.append(("\(p.name)_mfu", J.number(p.gflops / r.roofGflops)))
        }
        extra += [
            ("flops_per_cell", J.number(r.flopsPerCell)), ("base_rss_mib", J.number(r.baseRSSMiB)),
            ("discover_peak_rss_mib", J.number(r.discoverPeakRSSMiB > 0 ? r.discoverPeakRSSMiB : nil)),
            ("evaluate_peak_rss_mib", J.number(r.evaluatePeakRSSMiB > 0 ? r.evaluatePeakRSSMiB : nil)),
            ("peak_rss_scope", J.string(r.peakIsPerMeasurement ? "measurement" : "process")),
            ("target_cell_s", J.number(paper ? CellBench.targetSeconds : nil)),
            ("meets_target", J.bool(paper ? r.medianSeconds <= CellBench.targetSeconds : nil)),
            ("target_peak_rss_mib", J.number(paper ? CellBench.targetPeakRSSMiB : nil)),
            ("meets_peak_target", J.bool(paper ? r.peakRSSMiB <= CellBench.targetPeakRSSMiB : nil)),
            ("load_avg_1m", J.number(ProcessMemory.loadAverage())),
        ]
        let rates = r.cellSeconds.map { n / $0 }
        return BenchRecord(bench: "cell", config: r.config, method: r.options.attribution.method.rawValue, batchSize: r.options.batchSize,
                           seqLen: r.seqLen, igSteps: r.options.attribution.igSteps, ranks: ranks, threads: r.threads, repeats: r.cellSeconds.count,
                           rateKey: "samples_per_s", rate: n / r.medianSeconds, min: rates.min()!, max: rates.max()!, gflops: r.gflops,
                           roofGflops: r.roofGflops, mfu: r.mfu, peakRSSMiB: r.peakRSSMiB, blasCore: r.blasCore, extra: extra)
    }

    func table(_ r: CellBenchResult, load: (Double?, Double?)) -> String {
        var t = BenchTable([("phase", 12, true), ("seconds", 8, false), ("share", 6, false), ("GFLOP", 8, false),
                            ("GFLOP/s", 7, false), ("MFU", 6, false)])
        let total = r.medianSeconds
        for p in r.phases {
            t.add([p.name, String(format: "%.2f", p.seconds), String(format: "%.1f%%", 100 * p.seconds / total),
                   p.flops > 0 ? String(format: "%.0f", p.flops / 1e9) : "–", p.flops > 0 ? String(format: "%.1f", p.gflops) : "–",
                   p.flops > 0 ? String(format: "%.1f%%", 100 * p.gflops / r.roofGflops) : "–"])
        }
        let other = total - r.phases.reduce(0) { $0 + $1.seconds }
        t.add(["other", String(format: "%.2f", other), String(format: "%.1f%%", 100 * other / total), "", "", ""])
        t.add(["cell", String(format: "%.2f", total), "100%", String(format: "%.0f", r.flopsPerCell / 1e9), String(format: "%.1f", r.gflops),
               String(format: "%.1f%%", 100 * r.mfu)])
        func avg(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "?" }
        var lines = ["dkc bench cell: \(r.config), \(r.samples) circuit samples, batch \(r.options.batchSize), top-n \(r.options.topn.map(String.init).joined(separator: ", ")), "
                     + "\(r.targets) target cells × \(r.testPrompts / max(1, r.targets)) test people, \(r.threads) thread(s), \(DKCVersion.source), "
                     + "OpenBLAS core \(BLAS.coreName), load average \(avg(load.0)) → \(avg(load.1))"]
        lines += t.lines
        lines.append(String(format: "cell %.1f s wall (%@), %.1f s CPU (user + system); roof %.0f GFLOP/s; peak RSS %.0f MiB (%@)",
                            total, r.cellSeconds.count > 1 ? "median of \(r.cellSeconds.count)" : "one cell", r.cpuSeconds, r.roofGflops,
                            r.peakRSSMiB, r.peakIsPerMeasurement ? "reset before the model was created" : "process peak since start"))
        if r.discoverPeakRSSMiB > 0 {
            lines.append(String(format: "peak RSS by half: discovery %.0f MiB, evaluation %.0f MiB", r.discoverPeakRSSMiB, r.evaluatePeakRSSMiB))
        }
        if CellBench.isPaperSize(r) {
            lines.append(String(format: "target ≤ %.0f s: %@; ≤ 2.5 GB (%.0f MiB): %@", CellBench.targetSeconds,
                                total <= CellBench.targetSeconds ? "met" : "MISSED", CellBench.targetPeakRSSMiB,
                                r.peakRSSMiB <= CellBench.targetPeakRSSMiB ? "met" : "MISSED"))
        }
        return lines.joined(separator: "\n")
    }
}
