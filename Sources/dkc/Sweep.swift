import ArgumentParser
import Core
import DistCircuits
import Foundation
import MPIShim

/// `dkc sweep`: circuit discovery, evaluation and full-model acquisition over a whole run, on MPI ranks.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Discover and evaluate the circuits of every checkpoint × task × type × frequency of a run, on MPI ranks.",
        discussion: """
        Run as `mpirun -np R dkc sweep --config NAME|FILE [--set key=value ...]`. Rank 0 hands out grid \
        cells (grouped by checkpoint, so a rank loads a checkpoint once for its cells) and computes too; \
        results go to <run_dir>/circuits/{scores,circuits,acquisition}.nc, rewritten every write_interval_s, \
        and manifest.jsonl gets one line per finished item. Each cell is computed by one rank with \
        blas_threads threads, so the numbers do not depend on R. acquisition.nc holds the full model's query \
        accuracy (the study's substring rule) and exact match per attribute × type × bucket, and per test \
        person (query_correct, exact_correct); every file's test_set attribute says whether the test \
        people are the circuit people (docs/test-set.md).

        Re-running the same command resumes: items whose results are in the files are skipped. SIGTERM or \
        SIGUSR1 on any rank finish the items in flight, write the files and exit 0 (Slurm signals every task; \
        by hand, send SIGUSR1 to mpirun, which forwards it, while mpirun itself ends the job on SIGTERM). \
        --plan prints the grid and a cost estimate without computing.

        Job arrays: `--part I/N` computes only the I-th of N contiguous ranges of the work items (in \
        checkpoint order, so N = number of checkpoints gives one checkpoint per part) into \
        <run_dir>/circuits/parts/part-I-of-N/, with its own manifest, resume and lock. Once every part has \
        finished, `dkc sweep --config NAME --merge` joins them into the three files of <run_dir>/circuits/, \
        equal to a single job's files (creation time and history aside); it exits 65 and lists what is \
        missing when parts are absent or unfinished (the files then hold what was found).

        Config keys (configs/sweep/*.toml; override with --set key=value, value in TOML syntax):
        \(ConfigSchema.sweep.keys.map { "  \($0.name): \($0.help)" }.joined(separator: "\n"))
        """
    )

    @OptionGroup var configOptions: ConfigOptions<SweepConfigKind>

    @Flag(name: .long, help: "Print the grid, the number of cells and a cost estimate; compute nothing.")
    var plan = false

    @Option(name: .long, help: ArgumentHelp("Compute only part I of N of the work items (0 ≤ I < N), into circuits/parts/part-I-of-N/ (for job arrays).", valueName: "I/N"))
    var part: String?

    @Flag(name: .long, help: "Join the results of the parts (--part) into the three files of <run_dir>/circuits/; computes nothing.")
    var merge = false

    @Flag(name: .long, help: "Do not lock <run_dir>/circuits (same as --set lock=false): only for file systems without locks, when no other sweep uses the folder.")
    var noLock = false

    @Flag(name: .customLong("json-summary"), help: "End with one JSON line summarising the run (for dkc bench sweep and scripts).")
    var jsonSummary = false

    /// `--set` values, then `--no-lock`'s.
    private var overrides: [String] { configOptions.overrides + (noLock ? ["lock=false"] : []) }

    func validate() throws {
        if merge, part != nil || plan {
            throw ValidationError("--merge: cannot be combined with \(part != nil ? "--part" : "--plan"); merge in a job of its own once every part has finished")
        }
    }

    func run() throws {
        if merge {
            // One process, no MPI: reads the parts' files and writes the three files.
            try runReporting("sweep") {
                for sweepConfig in try SweepConfig.load(file: try configOptions.file(), overrides: overrides).subRuns() {
                    try mergeParts(try SweepPlan(config: sweepConfig))
                }
            }
            return
        }
        StopRequest.shared.install()
        withWorld { comm in
            let sweeps = try SweepConfig.load(file: try configOptions.file(), overrides: overrides).subRuns()
            for sweepConfig in sweeps {
                if sweeps.count > 1, comm.isRoot { print("== \(sweepConfig.stage) → \(sweepConfig.outputDir.path)") }
                // A stop request ends the whole command: the sub-runs after a stopped one are left for the resume.
                // Every rank learns rank 0's verdict (only rank 0 holds the summary).
                let finished = try sweep(sweepConfig, comm: comm)
                guard try comm.allreduce(Int32(finished ? 0 : 1), op: .max) == 0 else { return }
            }
        }
    }

    /// Sweeps one stage (or prints its plan); false on rank 0 when a stop request ended it early.
    private func sweep(_ sweepConfig: SweepConfig, comm: Communicator) throws -> Bool {
        var grid = try SweepPlan(config: sweepConfig)
        if let part { grid = try grid.restricted(to: SweepPart(parsing: part)) }
        if plan {
            if comm.isRoot { try printPlan(grid, ranks: comm.size) }
            return true
        }
        let progress = ProgressLine(enabled: comm.isRoot && liveProgress(2))
        var remaining: [Int64: Int] = [:]
        for item in grid.allItems { remaining[item.checkpoint, default: 0] += 1 }
        let started = Date()
        var computed = 0, samples = 0
        let summary = try SweepRun.run(plan: grid, comm: comm) { event in
            switch event {
            case let .started(planned, done, ranks):
                print("sweep: \(planned) items\(grid.part.map { " (part \($0) of the grid's \(grid.gridItems.count))" } ?? " (\(grid.cells.count) cells\(sweepConfig.acquisition ? " + \(grid.checkpoints.count) acquisitions" : "")\(grid.transplantItems.isEmpty ? "" : " + \(grid.transplantItems.count) transplants"))") on \(ranks) rank(s), \(done) already done; results in \(grid.outputDir.path)")
            case let .finished(item, _, n, done, planned):
                computed += 1
                samples += n
                remaining[item.checkpoint, default: 1] -= 1
                let elapsed = Date().timeIntervalSince(started)
                if progress.enabled {
                    let rate = Double(samples) / max(elapsed, 1e-9)
                    let eta = Double(planned - done) * elapsed / Double(computed)
                    progress.show(String(format: "sweep: %d/%d items, %d samples, %.1f samples/s, ETA %@",
                                         done, planned, samples, rate, ProgressLine.clock(eta)))
                } else if remaining[item.checkpoint] == 0 {
                    print("checkpoint \(item.checkpoint) done (\(done)/\(planned) items, \(String(format: "%.0f", elapsed)) s)")
                }
            case .wrote:
                break
            case let .stopping(signal):
                progress.finish()
                print("stop requested (\(signal)): finishing the items in flight, then writing")
            }
        }
        progress.finish()
        guard let s = summary else { return true }
        let busy = s.loadSeconds + s.computeSeconds
        print(String(format: "sweep: %d item(s) computed (%d samples) in %.1f s on %d rank(s), %.2f items/s; checkpoint loading %.1f s (%.1f %% of rank time), writing %.2f s in %d writes (%.1f %% of wall time)",
                     s.computed, s.samples, s.wallSeconds, s.ranks, Double(s.computed) / max(s.wallSeconds, 1e-9), s.loadSeconds,
                     100 * s.loadSeconds / max(busy, 1e-9), s.writeSeconds, s.writes, 100 * s.writeSeconds / max(s.wallSeconds, 1e-9)))
        print("items per rank: " + s.itemsPerRank.enumerated().map { "\($0.offset): \($0.element)" }.joined(separator: ", "))
        if jsonSummary {
            print(JSONValue.object([
                ("items", .int(s.computed)), ("samples", .int(s.samples)), ("wall_s", .double(s.wallSeconds)),
                ("load_s", .double(s.loadSeconds)), ("compute_s", .double(s.computeSeconds)), ("write_s", .double(s.writeSeconds)),
                ("writes", .int(s.writes)), ("ranks", .int(s.ranks)), ("blas_threads", .int(BLAS.threads)),
                ("items_per_rank", .array(s.itemsPerRank.map { .int($0) })), ("complete", .bool(s.complete)),
            ]).compactText)
        }
        if let signal = s.stoppedBy {
            print("stopped by \(signal) after \(s.alreadyDone + s.computed) of \(s.planned) items; the files in \(s.outputDir.path) are complete for those.")
            print("resume with the same command: \(Provenance.quote(CommandLine.arguments))")
            return false
        }
        print("done: \(s.planned) of \(s.planned) items in \(s.outputDir.path)")
        return true
    }

    private func mergeParts(_ plan: SweepPlan) throws {
        let s = try SweepRun.merge(plan: plan)
        let split = s.parts[0].count
        print("merged \(s.parts.count) of \(split) part(s) from \(SweepPlan.partsDir(plan.config).path): items added per part " +
              zip(s.parts, s.itemsAdded).map { "\($0.0.index): \($0.1)" }.joined(separator: ", "))
        print("\(s.outputDir.path): \(s.done) of \(s.planned) items")
        guard s.complete else {
            var problems: [String] = []
            if !s.absentParts.isEmpty { problems.append("no folder for part(s) \(s.absentParts.map(String.init).joined(separator: ", ")) of \(split)") }
            let shown = s.missing.prefix(5).map(\.description).joined(separator: "; ")
            problems.append("\(s.missing.count) item(s) missing (\(shown)\(s.missing.count > 5 ? "; …" : ""))")
            throw CircuitsError(item: s.outputDir.path, problem: "is incomplete: " + problems.joined(separator: ", "),
                                fix: "run the missing or unfinished parts (the same --part command resumes), then merge again; or run dkc sweep without --part to compute the rest")
        }
        if s.transplantsLeft > 0 {
            print("done: the grid's \(s.planned - s.transplantsLeft) items in \(s.outputDir.path); \(s.transplantsLeft) transplant item(s) left: run dkc sweep without --part to compute them")
        } else {
            print("done: \(s.planned) of \(s.planned) items in \(s.outputDir.path)")
        }
    }

    private func printPlan(_ plan: SweepPlan, ranks: Int) throws {
        let c = plan.config
        let m = plan.modelConfig
        let cells = plan.cells
        let acquisitions = c.acquisition ? plan.checkpoints.count : 0
        let steps = plan.checkpoints.map { String($0.step) }
        print("sweep plan for \(c.runDir.path) (stage \(c.stage))")
        print("  checkpoints: \(plan.checkpoints.count) (steps \(steps.count > 12 ? steps.prefix(6).joined(separator: ", ") + ", …, " + steps.suffix(3).joined(separator: ", ") : steps.joined(separator: ", ")))")
        print("  tasks: \(plan.tasks.joined(separator: ", ")); types: \(plan.types.joined(separator: ", ")); frequencies: \(plan.frequencies.joined(separator: ", ")) (\(plan.data.buckets.source))")
        print("  cells: \(cells.count) = \(plan.checkpoints.count) checkpoints × \(plan.tasks.count) tasks × \(plan.types.count) types × \(plan.frequencies.count) frequencies")
        let transplants = plan.transplantItems.count
        print("  items: \(cells.count + acquisitions + transplants) (\(cells.count) cells + \(acquisitions) acquisitions + \(transplants) transplants)")
        if transplants > 0 {
            print("  transplants: circuits of checkpoints \(plan.transplantSources.map(String.init).joined(separator: ", ")) evaluated on every checkpoint's model (parts skip them; a plain sweep after --merge computes them)")
        }
        if let part = plan.part {
            let range = part.range(of: plan.gridItems.count), items = plan.allItems
            print("  part \(part): items \(range.lowerBound + 1)–\(range.upperBound) of \(plan.gridItems.count), checkpoints \(items.first!.checkpoint)–\(items.last!.checkpoint)")
        }
        print("  already done in \(plan.outputDir.path): \(SweepRun.finishedItems(plan: plan).count) of \(plan.allItems.count)")
        print("  model: \(m.family.rawValue), \(m.numLayers) layers × \(m.numHeads) heads, d_model \(m.hiddenSize); \(c.cell.attribution.method.rawValue)\(c.cell.attribution.method.usesSteps ? " \(c.cell.attribution.igSteps) steps" : ""), batch \(c.cell.batchSize), topn \(c.cell.topn)")
        print("  samples per cell (task/type/frequency):")
        for t in plan.tasks {
            let row = plan.types.flatMap { y in plan.frequencies.map { f in "\(y)/\(f) \(plan.samples(of: ResultCell(checkpoint: 0, task: t, type: y, frequency: f)))" } }
            print("    \(t): " + row.joined(separator: ", "))
        }
        let cost = try SweepCost(plan: plan, cells: cells.filter { $0.checkpoint == plan.checkpoints[0].step }, acquisitions: c.acquisition ? 1 : 0,
                                 tokenizer: try SweepWorker.tokenizer(for: plan))
        if c.blasThreads > 0 { BLAS.setThreads(c.blasThreads) }
        let roof = SweepCost.measureRoof()
        let efficiency = 0.4
        func seconds(_ flops: Double) -> Double { flops / (roof * 1e9 * efficiency) }
        let perCheckpoint = cost.totalFlops
        let total = perCheckpoint * Double(plan.checkpoints.count)
        let meanCell = cost.flopsPerCell.values.reduce(0, +) / Double(max(cost.flopsPerCell.count, 1))
        print(String(format: "  cost: ~%.3g GFLOP per cell (~%.1f s), ~%.3g GFLOP per acquisition (~%.1f s), ~%.3g GFLOP in total",
                     meanCell / 1e9, seconds(meanCell), cost.flopsPerAcquisition / 1e9, c.acquisition ? seconds(cost.flopsPerAcquisition) : 0,
                     total / 1e9))
        print(String(format: "  estimate: ~%@ on %d rank(s) (sgemm measured now: %.0f GFLOP/s with %d thread(s) per rank, core %@; estimates assume %.0f %% of it)",
                     ProgressLine.clock(seconds(total) / Double(max(ranks, 1))), ranks, roof, BLAS.threads, BLAS.coreName, efficiency * 100))
    }
}
