import Foundation
import XCTest
import Core
@testable import DistCircuits
import MPIShim

/// `SweepRun` (coordinator, workers, scheduler and their messages) on R in-process ranks over a tiny
/// run folder: every item computed exactly once, the same scores for every R, a failing worker surfacing
/// as an error on the coordinator instead of a hang, and a resume computing only what is missing.
/// The mpirun sweep tests (Tests/DistTests) cover the built binary, signals and the full grid.
final class SweepLocalTests: XCTestCase {
    private static var root: URL?
    private var savedThreads = 1

    // `SweepRun` sets the sweep's BLAS threads for the process; later tests get the setting back.
    override func setUp() {
        super.setUp()
        savedThreads = BLAS.threads
    }
    override func tearDown() {
        BLAS.setThreads(savedThreads)
        super.tearDown()
    }

    override class func tearDown() {
        if let root { try? FileManager.default.removeItem(at: root) }
        root = nil
        super.tearDown()
    }

    /// The template run folder, made once: a data set generated with the fixture tokenizer and two tiny
    /// random checkpoints (steps 10 and 20; 2 layers, 2 heads, d_model 32).
    static func template() throws -> URL {
        if let root { return root.appendingPathComponent("template") }
        let tokenizer = Paths.fixtures.appendingPathComponent("tokenizer")
        guard FileManager.default.fileExists(atPath: tokenizer.appendingPathComponent("vocab.json").path) else {
            let text = "fixture tokenizer not found at \(tokenizer.path): set DKC_FIXTURES or keep Tests/Fixtures"
            if Paths.fixtureSkipAllowed { throw XCTSkip(text) }
            throw CommunicatorError(text)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-sweep-local-\(UUID().uuidString)")
        let template = dir.appendingPathComponent("template")
        try FileManager.default.createDirectory(at: template, withIntermediateDirectories: true)
        let data = try DataConfig.load(file: nil, overrides: ["n_entities=600", "test_per_cell=2", "circuit_n=6", "test_set=independent",
                                                             "validation_size=10", "tasks=[\"city\"]", "tokenizer=\(tokenizer.path)"])
        try DataGeneration.run(config: data, out: template.appendingPathComponent("data"), force: false) { try GPT2Tokenizer(directory: $0) }
        let config = GPT2Config(nLayer: 2, nHead: 2, nEmbd: 32, nPositions: 64)
        for (i, step) in [10, 20].enumerated() {
            let arena = ParameterArena(config: config)
            arena.initializeGPT2(seed: UInt64(100 + i))
            try HFCheckpoint.save(arena, to: checkpoint(step, in: template),
                                  extraFiles: ["vocab.json", "merges.txt"].map { tokenizer.appendingPathComponent($0) })
        }
        root = dir
        return template
    }

    static func checkpoint(_ step: Int, in run: URL) -> URL {
        run.appendingPathComponent("train/continual/checkpoints/checkpoint-\(step)")
    }

    /// A fresh copy of the template named `name`.
    static func run(_ name: String) throws -> URL {
        let template = try template()
        let run = template.deletingLastPathComponent().appendingPathComponent(name)
        try? FileManager.default.removeItem(at: run)
        try FileManager.default.copyItem(at: template, to: run)
        return run
    }

    /// 2 checkpoints × (city × new × 3 buckets = 3 cells, 1 acquisition, 1 transplant of checkpoint 10's
    /// circuits, which waits until those cells are done) = 10 items; no component analysis.
    static func plan(_ run: URL) throws -> SweepPlan {
        let file = Paths.sourceRoot.appendingPathComponent("configs/sweep/tiny.toml")
        let config = try SweepConfig.load(file: file, overrides: [
            "run_dir=\(run.path)", "tasks=[\"city\"]", "types=[\"new\"]", "acquisition=true", "components=false",
            "transplant_sources=[0]", "max_new_tokens=4", "topn=[10]", "ig_steps=2", "write_interval_s=0",
        ])
        return try SweepPlan(config: config)
    }

    /// What rank 0 saw: the summary and each finished item with the rank that computed it.
    struct Seen: Sendable {
        var summary: SweepSummary?
        var finished: [(item: SweepItem, rank: Int)] = []
        var alreadyDone: Int?
    }

    /// `SweepRun.run` on `ranks` in-process ranks; rank 0's view.
    static func sweep(_ plan: SweepPlan, ranks: Int) throws -> [Result<Seen, Error>] {
        nonisolated(unsafe) let plan = plan
        return try LocalGroup.run(ranks: ranks, timeout: 60) { comm -> Seen in
            var seen = Seen()
            seen.summary = try SweepRun.run(plan: plan, comm: comm) { event in
                switch event {
                case let .started(_, done, _): seen.alreadyDone = done
                case let .finished(item, rank, _, _, _): seen.finished.append((item, rank))
                default: break
                }
            }
            return seen
        }
    }

    // MARK: Tests

    /// R = 1…4: the ten items are each computed exactly once, by ranks of the job, and every R writes the
    /// same scores (each item is computed whole by one rank).
    func testEveryItemComputedOnceAndTheSameScoresForEveryRankCount() throws {
        var reference: ScoresTable?
        for R in 1...4 {
            let run = try Self.run("ranks\(R)")
            let plan = try Self.plan(run)
            XCTAssertEqual(plan.allItems.count, 10)
            XCTAssertEqual(plan.transplantItems, [.transplant(source: 10, checkpoint: 10), .transplant(source: 10, checkpoint: 20)])
            let outcomes = try Self.sweep(plan, ranks: R)
            let seen = try outcomes[0].get()
            for rank in 1..<R { XCTAssertNil(try outcomes[rank].get().summary, "R \(R): rank \(rank) returns no summary") }
            let summary = try XCTUnwrap(seen.summary)
            XCTAssertEqual(seen.alreadyDone, 0)
            XCTAssertEqual(seen.finished.count, 10, "R \(R): \(seen.finished)")
            XCTAssertEqual(Set(seen.finished.map(\.item)), Set(plan.allItems), "R \(R): every item once")
            XCTAssertTrue(seen.finished.allSatisfy { (0..<R).contains($0.rank) })
            XCTAssertEqual(summary.computed, 10)
            XCTAssertEqual(summary.itemsPerRank.count, R)
            XCTAssertEqual(summary.itemsPerRank.reduce(0, +), 10)
            XCTAssertTrue(summary.complete)
            XCTAssertEqual(SweepRun.finishedItems(plan: plan), Set(plan.allItems))
            let lines = SweepStore.readManifest(plan.outputDir.appendingPathComponent("manifest.jsonl"))
            XCTAssertEqual(lines.filter { $0["event"]?.stringValue == "cell" }.count, 6, "R \(R): one manifest line per cell")
            XCTAssertEqual(lines.filter { $0["event"]?.stringValue == "transplant" }.count, 2, "R \(R)")
            // Each transplant carried every source cell's circuits: 3 source cells on each of 2 checkpoints.
            let circuits = try CircuitsTable.read(from: plan.outputDir.appendingPathComponent("circuits.nc"))
            XCTAssertEqual(circuits.transplants.count, 6, "R \(R): transplant entries")
            let scores = try ScoresTable.read(from: plan.outputDir.appendingPathComponent("scores.nc"))
            XCTAssertEqual(scores.cells.count, 6)
            if let reference {
                for (cell, value) in reference.cells {
                    XCTAssertEqual(scores.cells[cell]?.scores.map(\.bitPattern), value.scores.map(\.bitPattern), "R \(R) \(cell)")
                }
            } else {
                reference = scores
            }
        }
    }

    /// The scheduler's documented policy, by hand: a rank stays on its checkpoint; else takes the earliest
    /// checkpoint nobody works on; else joins the one with most items left; items `ready` refuses (a
    /// transplant whose sources are not done) are passed over until it accepts them.
    func testSchedulerPolicyAndReadiness() {
        func cell(_ step: Int64, _ f: String) -> SweepItem { .cell(ResultCell(checkpoint: step, task: "city", type: "new", frequency: f)) }
        let transplant = SweepItem.transplant(source: 10, checkpoint: 10)
        var scheduler = SweepScheduler(items: [.acquisition(checkpoint: 10), cell(10, "high"), cell(10, "low"), .acquisition(checkpoint: 20),
                                               cell(20, "high"), transplant])
        let notTransplant: (SweepItem) -> Bool = { if case .transplant = $0 { return false }; return true }
        XCTAssertEqual(scheduler.next(for: 0, ready: notTransplant), .acquisition(checkpoint: 10))
        XCTAssertEqual(scheduler.next(for: 1, ready: notTransplant), .acquisition(checkpoint: 20))  // 10 is busy
        XCTAssertEqual(scheduler.next(for: 2, ready: notTransplant), cell(10, "high"))  // both busy: 10 has 3 left, 20 has 1
        XCTAssertEqual(scheduler.next(for: 1, ready: notTransplant), cell(20, "high"))  // stays on its checkpoint
        XCTAssertEqual(scheduler.next(for: 1, ready: notTransplant), cell(10, "low"))   // 20 is empty: joins 10
        XCTAssertNil(scheduler.next(for: 0, ready: notTransplant))  // only the transplant is left, not ready
        XCTAssertEqual(scheduler.remaining, 1)
        XCTAssertEqual(scheduler.next(for: 2), transplant)
        XCTAssertEqual(scheduler.remaining, 0)
        XCTAssertNil(scheduler.next(for: 0))
    }

    /// A worker that cannot load its checkpoint brings the job down with its message on rank 0 (the
    /// coordinator's own error, or the abort of the failing rank), well before the launcher's timeout.
    func testFailingWorkerSurfacesOnTheCoordinator() throws {
        for R in [2, 3] {
            let run = try Self.run("fail\(R)")
            let plan = try Self.plan(run)
            let weights = Self.checkpoint(20, in: run).appendingPathComponent("model.safetensors")
            try Data("not a safetensors file".utf8).write(to: weights)
            let start = Date()
            let outcomes = try Self.sweep(plan, ranks: R)
            XCTAssertLessThan(Date().timeIntervalSince(start), 30)
            XCTAssertThrowsError(try outcomes[0].get(), "R \(R): the coordinator finished despite a failed item") { error in
                XCTAssertTrue("\(error)".contains("checkpoint-20"), "R \(R): \(error)")
                // Rank 0 computes a checkpoint-10 item itself and hands checkpoint 20 to rank 1 (the earliest
                // checkpoint nobody works on): the failure is remote, and reaches rank 0 as rank 1's abort.
                if R == 2, case let .aborted(rank, _, _)? = error as? LocalGroupError { XCTAssertEqual(rank, 1) }
                if R == 2 { XCTAssertTrue(error is LocalGroupError, "R 2: \(error)") }
                if case .timedOut? = error as? LocalGroupError { XCTFail("R \(R): hung: \(error)") }
            }
            for (rank, o) in outcomes.enumerated() {
                XCTAssertThrowsError(try o.get(), "R \(R): rank \(rank) ended normally")
            }
        }
    }

    /// A run that failed on checkpoint 20 keeps checkpoint 10's five items (one rank: the scheduler finishes a
    /// checkpoint before the next); the resume on three ranks computes only checkpoint 20's, each once.
    func testResumeComputesOnlyTheMissingItems() throws {
        let run = try Self.run("resume")
        let plan = try Self.plan(run)
        let weights = Self.checkpoint(20, in: run).appendingPathComponent("model.safetensors")
        let good = try Data(contentsOf: weights)
        try Data("truncated".utf8).write(to: weights)
        let first = try Self.sweep(plan, ranks: 1)
        XCTAssertThrowsError(try first[0].get())
        let early = plan.allItems.filter { $0.checkpoint == 10 }
        XCTAssertEqual(early.count, 5)
        XCTAssertEqual(SweepRun.finishedItems(plan: plan), Set(early))

        try good.write(to: weights)
        let seen = try Self.sweep(plan, ranks: 3)[0].get()
        XCTAssertEqual(seen.alreadyDone, 5)
        XCTAssertEqual(seen.finished.count, 5)
        XCTAssertEqual(Set(seen.finished.map(\.item)), Set(plan.allItems.filter { $0.checkpoint == 20 }))
        XCTAssertEqual(seen.summary?.computed, 5)
        XCTAssertEqual(seen.summary?.alreadyDone, 5)
        XCTAssertEqual(seen.summary?.complete, true)
        XCTAssertEqual(SweepRun.finishedItems(plan: plan), Set(plan.allItems))
    }
}
