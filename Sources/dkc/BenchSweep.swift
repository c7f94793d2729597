import ArgumentParser
import Core
import Benchmarks
import DistCircuits
import Foundation

/// `dkc bench sweep`: circuit-sweep throughput and its scaling over ranks, on a run folder made for the
/// benchmark (random GPT-2 checkpoints and a generated data set), each layout a `dkc sweep` child process.
struct BenchSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Sweep throughput (cells of discovery + evaluation + tests, and acquisitions) for rank × thread layouts.",
        discussion: """
        Builds a run folder in a temporary directory (or --keep): --checkpoints random checkpoints of the model \
        (tiny: 4 layers × 4 heads × 128; gpt2: 12 × 12 × 768; 128 positions) and a generated data set (2000 \
        entities, --circuit-n circuit and --test-per-cell test entities per type × bucket, the fixture tokenizer \
        or --tokenizer). Then runs `dkc sweep --config tiny` over it (every task, type and bucket; topn \
        [10, 50, 200]; batch --batch-size) for each layout, --repeats times, results folder cleared between runs.

        Reported per layout: samples/s (circuit samples over all ranks per wall second; median, min, max), \
        items/s, GFLOP/s from the FLOP count of `dkc sweep --plan`, the sgemm roof (rate at the layout's thread \
        count × ranks, measured by this process), MFU, the share of rank time spent loading checkpoints and of \
        wall time spent writing files, and the busy share of rank time. With --scaling: 1 × 1, 1 × 2 and 2 × 1 (ranks × threads) and the \
        parallel efficiency of 2 × 1 over 1 × 2 and over 1 × 1 (target ≥ 95 % over 1 × 1).
        """
    )

    enum ConfigChoice: String, ExpressibleByArgument, CaseIterable { case tiny, gpt2 }

    @Option(help: "Model shape: tiny or gpt2.") var config: ConfigChoice = .tiny
    @Option(help: "Checkpoints in the run folder.") var checkpoints = 2
    @Option(name: .customLong("circuit-n"), help: "Circuit entities per type × bucket.") var circuitN = 24
    @Option(name: .customLong("test-per-cell"), help: "Test entities per type × bucket.") var testPerCell = 8
    @Option(name: .customLong("batch-size"), help: "Sweep batch size.") var batchSize = 8
    @Option(help: "Runs per layout.") var repeats = 1
    @Option(help: "Threads per rank (without --scaling).") var threads = 1
    @Option(help: "Ranks (without --scaling; more than 1 runs under mpirun).") var ranks = 1
    @Flag(help: "Run 1 × 1, 1 × 2 and 2 × 1 (ranks × threads).") var scaling = false
    @Option(help: "Tokenizer folder (default: the fixtures' tokenizer, else GPT-2's).") var tokenizer: String?
    @Option(help: "Build the run folder here and keep it (default: a temporary folder, removed).") var keep: String?
    @Flag(help: "Print one JSON object per measurement and line instead of a table.") var json = false

    func validate() throws {
        guard checkpoints >= 1, circuitN >= 6, testPerCell >= 1, batchSize >= 1, repeats >= 1, threads >= 1, ranks >= 1 else {
            throw ValidationError("--checkpoints, --test-per-cell, --batch-size, --repeats, --threads and --ranks must be ≥ 1, --circuit-n ≥ 6")
        }
    }

    func run() throws {
        try runReporting("bench sweep") {
            let fm = FileManager.default
            let root = keep.map { ConfigLoader.absolute($0, relativeTo: ConfigLoader.cwd) }
                ?? fm.temporaryDirectory.appendingPathComponent("dkc-bench-sweep-\(getpid())")
            defer { if keep == nil { try? fm.removeItem(at: root) } }
            let tok = try benchTokenizer()
            try makeRun(root, tokenizer: tok)

            let layouts: [(ranks: Int, threads: Int)] = scaling ? [(1, 1), (1, 2), (2, 1)] : [(ranks, threads)]
            let base = ["sweep", "--config", "tiny", "--set", "run_dir=\(root.path)", "--set", "batch_size=\(batchSize)",
                        "--set", "write_interval_s=60", "--set", "tokenizer=\(tok.path)", "--json-summary"]
            let plan = try SweepPlan(config: try SweepConfig.load(file: try ConfigLoader.locate("tiny", kind: "sweep"),
                                                                  overrides: ["run_dir=\(root.path)", "batch_size=\(batchSize)", "tokenizer=\(tok.path)"]))
            let flops = try SweepCost(plan: plan, cells: plan.cells, acquisitions: plan.checkpoints.count,
                                      tokenizer: try TokenizerLoader.resolveGPT2(explicit: tok, model: nil)).totalFlops
            let seqLen = try meanPromptTokens(plan, tokenizer: try TokenizerLoader.resolveGPT2(explicit: tok, model: nil))
            let progress = BenchProgress()
            var records: [BenchRecord] = []
            for (r, t) in layouts {
                BLAS.setThreads(t)
                let roof = SweepCost.measureRoof() * Double(r)
                var rates: [Double] = [], summaries: [JSONValue] = []
                func number(_ o: JSONValue, _ key: String) throws -> Double {
                    guard let x = o[key]?.doubleValue else { throw BenchError.usage("the sweep's summary lacks the number \"\(key)\": \(o.compactText)") }
                    return x
                }
                for i in 0..<repeats {
                    try? fm.removeItem(at: root.appendingPathComponent("circuits"))
                    progress("bench sweep: \(r) rank(s) × \(t) thread(s), run \(i + 1) of \(repeats)…")
                    let summary = try runSweep(base + ["--set", "blas_threads=\(t)"], ranks: r, threads: t)
                    summaries.append(summary)
                    rates.append(try number(summary, "samples") / number(summary, "wall_s"))
                }
                let order = rates.indices.sorted { rates[$0] < rates[$1] }
                let median = summaries[order[order.count / 2]], wall = try number(median, "wall_s")
                let busy = try number(median, "load_s") + number(median, "compute_s")
                let perRank = median["items_per_rank"]?.arrayValue?.compactMap(\.intValue) ?? []
                let items = try number(median, "items"), samples = try number(median, "samples"), write = try number(median, "write_s")
                let gflops = flops / wall / 1e9
                records.append(BenchRecord(
                    bench: "sweep", config: config.rawValue, method: plan.config.cell.attribution.method.rawValue, batchSize: batchSize,
                    seqLen: seqLen, igSteps: plan.config.cell.attribution.igSteps, ranks: r, threads: t, repeats: repeats,
                    rateKey: "samples_per_s", rate: rates[order[order.count / 2]], min: rates[order.first!], max: rates[order.last!],
                    gflops: gflops, roofGflops: roof, mfu: gflops / roof, peakRSSMiB: childrenPeakRSSMiB(),
                    extra: [("items", "\(Int(items))"), ("samples", "\(Int(samples))"),
                            ("items_per_s", BenchJSON.number(items / wall)), ("wall_s", BenchJSON.number(wall)),
                            ("load_fraction", BenchJSON.number(try number(median, "load_s") / max(busy, 1e-9))),
                            ("write_fraction", BenchJSON.number(write / wall)),
                            ("busy_fraction", BenchJSON.number(busy / (Double(r) * wall))),
                            ("items_per_rank", "[" + perRank.map(String.init).joined(separator: ", ") + "]")]))
            }
            progress.finish()
            report(records, plan: plan)
        }
    }

    /// The records as JSON lines or a table, then the 2-rank speed-ups when the layouts allow them.
    private func report(_ records: [BenchRecord], plan: SweepPlan) {
        if json {
            for r in records { print(r.jsonLine) }
        } else {
            print("dkc bench sweep: \(config.rawValue) model, \(plan.checkpoints.count) checkpoints × \(plan.tasks.count) tasks × \(plan.types.count) types × \(plan.frequencies.count) buckets + acquisitions, \(DKCVersion.source), OpenBLAS core \(BLAS.coreName)")
            var table = BenchTable([("ranks × threads", 15, true), ("samples/s", 10, false), ("(min – max)", 16, false), ("items/s", 8, false),
                                    ("GFLOP/s", 8, false), ("roof", 6, false), ("MFU", 6, false), ("loading", 8, false), ("writing", 8, false),
                                    ("busy", 6, false), ("items per rank", 16, false)])
            for r in records {
                let extra = Dictionary(uniqueKeysWithValues: r.extra)
                table.add(["\(r.ranks) × \(r.threads)", String(format: "%.1f", r.rate), String(format: "(%.1f – %.1f)", r.min, r.max),
                           String(format: "%.2f", Double(extra["items_per_s"]!)!), String(format: "%.1f", r.gflops),
                           String(format: "%.0f", r.roofGflops), String(format: "%.1f%%", 100 * r.mfu),
                           String(format: "%.2f%%", 100 * Double(extra["load_fraction"]!)!),
                           String(format: "%.2f%%", 100 * Double(extra["write_fraction"]!)!),
                           String(format: "%.0f%%", 100 * Double(extra["busy_fraction"]!)!), extra["items_per_rank"]!])
            }
            for line in table.lines { print(line) }
            print("samples/s: circuit samples of all cells over all ranks per wall second; loading: share of rank time; writing: share of wall time;")
            print("busy: time the ranks spent loading and computing items over ranks × wall time (the rest is waiting, writing, start-up).")
        }
        func rate(_ r: Int, _ t: Int) -> Double? { records.first { $0.ranks == r && $0.threads == t }?.rate }
        if let two = rate(2, 1), let one = rate(1, 1) {
            var line = String(format: "2 ranks × 1 thread: %.2f× 1 rank × 1 thread (parallel efficiency %.0f%%)", two / one, 50 * two / one)
            if let oneTwo = rate(1, 2) { line += String(format: "; %.2f× 1 rank × 2 threads", two / oneTwo) }
            (json ? FileHandle.standardError : FileHandle.standardOutput).write(Data((line + "\n").utf8))
        }
    }

    /// Mean token count (BOS included) of the circuit prompts of the plan's cells.
    private func meanPromptTokens(_ plan: SweepPlan, tokenizer: GPT2Tokenizer) throws -> Int {
        var total = 0, n = 0
        for t in plan.tasks {
            let task = try CircuitTask.named(t, option: "tasks")
            for r in try CircuitSample.read(plan.data.circuitFile(t)) {
                total += tokenizer.encode(task.prompt(subject: r.cleanSubject)).count + 1
                n += 1
            }
        }
        return n > 0 ? Int((Double(total) / Double(n)).rounded()) : 0
    }

    /// Peak resident memory of the largest child process so far.
    private func childrenPeakRSSMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// The tokenizer folder: --tokenizer, else the fixtures' tokenizer, else GPT-2's in the cache.
    private func benchTokenizer() throws -> URL {
        if let tokenizer { return try existingPath(tokenizer, option: "--tokenizer", folder: true) }
        let fixture = Paths.fixtures.appendingPathComponent("tokenizer")
        if FileManager.default.fileExists(atPath: fixture.appendingPathComponent("vocab.json").path) { return fixture }
        _ = try TokenizerLoader.resolveGPT2(explicit: nil, model: nil)
        return Paths.gpt2Tokenizer
    }

    /// `root/data` (generated) and `root/train/continual/checkpoints/checkpoint-<100·k>` (random), unless present.
    private func makeRun(_ root: URL, tokenizer: URL) throws {
        let fm = FileManager.default
        let data = root.appendingPathComponent("data")
        if !fm.fileExists(atPath: data.appendingPathComponent("manifest.json").path) {
            let config = try DataConfig.load(file: try ConfigLoader.locate("tiny", kind: "data"), overrides: [
                "n_entities=2000", "circuit_n=\(circuitN)", "test_per_cell=\(testPerCell)", "test_set=independent", "tokenizer=\(tokenizer.path)",
            ])
            try DataGeneration.run(config: config, out: data, force: true) { try TokenizerLoader.resolveGPT2(explicit: $0, model: nil) }
        }
        var shape = ModelBench.config(named: config.rawValue)!
        shape.nPositions = 128
        for k in 1...checkpoints {
            let folder = root.appendingPathComponent("train/continual/checkpoints/checkpoint-\(100 * k)")
            guard !fm.fileExists(atPath: folder.appendingPathComponent(HFCheckpoint.weightsFileName).path) else { continue }
            let arena = ParameterArena(config: shape)
            arena.initializeGPT2(seed: UInt64(k))
            try HFCheckpoint.save(arena, to: folder, extraFiles: ["vocab.json", "merges.txt"].map { tokenizer.appendingPathComponent($0) })
        }
    }

    /// Runs one `dkc sweep` child (under mpirun for several ranks) and returns its JSON summary.
    private func runSweep(_ arguments: [String], ranks: Int, threads: Int) throws -> JSONValue {
        let output = try runBenchChild(arguments, ranks: ranks, threads: threads, what: "sweep")
        for line in output.split(separator: "\n").reversed() {
            if let o = try? JSONValue(parsing: String(line)), o["wall_s"] != nil { return o }
        }
        throw BenchError.usage("the \(ranks) × \(threads) sweep printed no summary")
    }
}
