import Foundation
import XCTest
import Core
@testable import DistCircuits

/// A sweep killed, stopped or failing: files stay whole, a re-run resumes to the files an uninterrupted
/// run writes, SIGTERM ends cleanly with exit 0, a failing rank ends the job with its message.
final class SweepInterruptTests: XCTestCase {
    override class func tearDown() {
        SweepFixture.cleanUp()
        super.tearDown()
    }

    /// A sweep started in the background (under mpirun with `ranks`), with its output in files.
    final class Background: BackgroundJob {
        init(_ arguments: [String], ranks: Int) throws {
            try super.init(dkc: try Launch.executable("dkc"), arguments, ranks: ranks, label: "sweep")
        }

        /// The rank processes: children of this mpirun (read from /proc).
        var ranks: [pid_t] { children }

        /// Waits until `condition` holds (checked every 20 ms), failing after `timeout` seconds.
        func wait(until condition: () -> Bool, timeout: Double = 240) -> Bool {
            let start = Date()
            while !condition() {
                if !process.isRunning || Date().timeIntervalSince(start) > timeout { return condition() }
                usleep(20_000)
            }
            return true
        }

        /// Waits for the end; the exit status.
        func finish(timeout: Double = 240) -> Int32 {
            let start = Date()
            while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    static func finishedItems(_ run: URL) -> Int {
        SweepStore.readManifest(run.appendingPathComponent("circuits/manifest.jsonl"))
            .filter { ["cell", "acquisition", "transplant"].contains($0["event"]?.stringValue ?? "") }.count
    }

    /// The file's contents with the wall times blanked and the first-write attributes left out: what must
    /// equal between an interrupted-and-resumed sweep and an uninterrupted one.
    static func contents(_ url: URL) throws -> NetCDFContents {
        var c = try NetCDFContents(path: url.path)
        for i in c.variables.indices where c.variables[i].info.name == "seconds" { c.variables[i].values = .double([]) }
        return c
    }

    /// SIGKILL of every process part-way, then the same command again: the files equal an uninterrupted
    /// sweep's (wall times and the start time aside), and no item finished before the kill is computed again
    /// if it had reached the files.
    func testKilledSweepResumesToTheSameFiles() throws {
        let run = try SweepFixture.run("killed")
        let settings = SweepFixture.grid + ["write_interval_s=0"]
        let arguments = SweepFixture.arguments(run, settings)
        let circuits = run.appendingPathComponent("circuits")
        let reference = run.appendingPathComponent("circuits.reference")

        let uninterrupted = try Launch.run(try Launch.executable("dkc"), arguments, ranks: 2, timeout: 300)
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.stdout + uninterrupted.stderr)
        try FileManager.default.moveItem(at: circuits, to: reference)

        let job = try Background(arguments, ranks: 2)
        XCTAssertTrue(job.wait(until: { Self.finishedItems(run) >= 4 }), job.output)
        let ranks = job.ranks
        XCTAssertEqual(ranks.count, 2, "found the two rank processes of the job")
        for pid in ranks { kill(pid, SIGKILL) }
        kill(job.process.processIdentifier, SIGKILL)
        _ = job.finish()
        let before = Self.finishedItems(run)
        XCTAssertLessThan(before, 18, "killed part-way (\(before) of 18 items finished); the test needs an unfinished sweep")
        // Whatever the kill interrupted, the files under their real names are whole.
        for name in ["scores.nc", "circuits.nc", "acquisition.nc", "components.nc"] {
            let url = circuits.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { XCTAssertNoThrow(try NetCDFContents(path: url.path), name) }
        }
        let inFiles = try ScoresTable.read(from: circuits.appendingPathComponent("scores.nc")).cells.count

        let resumed = try Launch.run(try Launch.executable("dkc"), arguments, ranks: 2, timeout: 300)
        XCTAssertEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("already done"), resumed.stdout)
        let starts = SweepStore.readManifest(circuits.appendingPathComponent("manifest.jsonl")).filter { $0["event"]?.stringValue == "start" }
        XCTAssertEqual(starts.count, 2)
        XCTAssertGreaterThanOrEqual(starts[1]["items_done"]?.intValue ?? -1, inFiles, "cells in the files are not computed again")
        XCTAssertEqual(starts[0]["created"]?.stringValue, starts[1]["created"]?.stringValue, "the first run's start time is kept")
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: circuits.path).allSatisfy { !$0.contains(".tmp-") }, "no temporary files left")

        for name in ["scores.nc", "circuits.nc", "acquisition.nc", "components.nc"] {
            let mine = try Self.contents(circuits.appendingPathComponent(name))
            let theirs = try Self.contents(reference.appendingPathComponent(name))
            let diff = mine.differences(from: theirs, ignoringGlobalAttributes: ["created", "history"])
            XCTAssertEqual(diff, [], "\(name): resumed vs uninterrupted")
        }
        print("kill and resume: \(before) of 18 items finished before SIGKILL, \(inFiles) cells in the files; resumed files equal the uninterrupted run's")
    }

    /// SIGTERM to every rank (as Slurm's scancel sends it) while items run: exit 0, a line saying how to
    /// resume, files holding exactly the items the manifest lists; the same command then completes the grid.
    func testSigtermStopsCleanlyAndResumes() throws {
        let run = try SweepFixture.run("sigterm")
        let arguments = SweepFixture.arguments(run, SweepFixture.grid)
        let job = try Background(arguments, ranks: 2)
        XCTAssertTrue(job.wait(until: { Self.finishedItems(run) >= 2 }), job.output)
        for pid in job.ranks { kill(pid, SIGTERM) }
        let status = job.finish()
        XCTAssertEqual(status, 0, job.output)
        XCTAssertTrue(job.stdout.contains("stopped by SIGTERM"), job.output)
        XCTAssertTrue(job.stdout.contains("resume with the same command"), job.output)
        let circuits = run.appendingPathComponent("circuits")
        let lines = SweepStore.readManifest(circuits.appendingPathComponent("manifest.jsonl"))
        let manifestCells = Set(lines.filter { $0["event"]?.stringValue == "cell" }.map {
            ResultCell(checkpoint: Int64($0["checkpoint"]!.intValue!), task: $0["task"]!.stringValue!, type: $0["type"]!.stringValue!,
                       frequency: $0["frequency"]!.stringValue!)
        })
        let scores = try ScoresTable.read(from: circuits.appendingPathComponent("scores.nc"))
        let circuitsTable = try CircuitsTable.read(from: circuits.appendingPathComponent("circuits.nc"))
        XCTAssertEqual(Set(scores.cells.keys), manifestCells, "the files hold exactly the finished cells")
        XCTAssertEqual(Set(circuitsTable.cells.keys), manifestCells)
        XCTAssertEqual(Set(try ComponentsTable.read(from: circuits.appendingPathComponent("components.nc")).cells.keys), manifestCells)
        XCTAssertLessThan(manifestCells.count, 12, "stopped before the end")

        let resumed = try Launch.run(try Launch.executable("dkc"), arguments, ranks: 2, timeout: 300)
        XCTAssertEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("done: 18 of 18 items"), resumed.stdout)
        XCTAssertEqual(try ScoresTable.read(from: circuits.appendingPathComponent("scores.nc")).cells.count, 12)
    }

    /// A checkpoint that cannot be read fails the rank that loads it; the job ends (no hang) with a non-zero
    /// status and the message naming the file.
    func testFailingRankStopsTheJobWithItsMessage() throws {
        let run = try SweepFixture.run("failing")
        let weights = run.appendingPathComponent("train/continual/checkpoints/checkpoint-20/model.safetensors")
        try Data("not a safetensors file".utf8).write(to: weights)
        let r = try Launch.run(try Launch.executable("dkc"), SweepFixture.arguments(run, SweepFixture.grid), ranks: 2, timeout: 240)
        XCTAssertFalse(r.timedOut, "the job hung")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue((r.stdout + r.stderr).contains("checkpoint-20/model.safetensors"), r.stdout + r.stderr)
    }

    /// A second sweep on a folder another sweep is writing is refused. The test holds the folder's lock
    /// itself (as a running sweep does), so the outcome does not depend on how fast a first sweep finishes.
    func testSecondSweepOnTheSameFolderIsRefused() throws {
        let run = try SweepFixture.run("locked")
        let circuits = run.appendingPathComponent("circuits")
        try FileManager.default.createDirectory(at: circuits, withIntermediateDirectories: true)
        let lockPath = circuits.appendingPathComponent(".sweep.lock").path
        let fd = open(lockPath, O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        _ = "pid \(getpid()) (the test)\n".withCString { write(fd, $0, strlen($0)) }
        let second = try Launch.run(try Launch.executable("dkc"), SweepFixture.arguments(run, SweepFixture.grid), timeout: 60)
        XCTAssertEqual(second.status, 65, second.stdout + second.stderr)
        XCTAssertTrue(second.stderr.contains("another sweep is writing here"), second.stderr)
        // --no-lock (for file systems without locks) neither takes nor checks the lock: it runs although the lock is held.
        let unlocked = try Launch.run(try Launch.executable("dkc"), SweepFixture.arguments(run, SweepFixture.grid) + ["--no-lock"], timeout: 300)
        XCTAssertEqual(unlocked.status, 0, unlocked.stdout + unlocked.stderr)
        XCTAssertTrue(unlocked.stdout.contains("0 already done"), unlocked.stdout)
        // Once the lock is released the same command runs (and finds everything done).
        flock(fd, LOCK_UN)
        let after = try Launch.run(try Launch.executable("dkc"), SweepFixture.arguments(run, SweepFixture.grid), timeout: 300)
        XCTAssertEqual(after.status, 0, after.stdout + after.stderr)
        XCTAssertTrue(after.stdout.contains("18 already done"), after.stdout)
    }
}

/// The pieces of the sweep that need no processes: scheduling and messages.
final class SweepUnitTests: XCTestCase {
    /// Items grouped by checkpoint: simulated ranks finishing in turn get every item once, and load each
    /// checkpoint rarely (a rank sticks to its checkpoint while it has items).
    func testSchedulerHandsOutEveryItemOnceGroupedByCheckpoint() {
        let steps: [Int64] = [10, 20, 30, 40]
        let items = steps.flatMap { s in [SweepItem.acquisition(checkpoint: s)] + (0..<9).map { SweepItem.cell(ResultCell(checkpoint: s, task: "city", type: "new", frequency: "f\($0)")) } }
        for ranks in [1, 2, 3, 5] {
            var scheduler = SweepScheduler(items: items)
            var given: [SweepItem] = []
            var loads = 0
            var current: [Int: Int64] = [:]
            var active = Set(0..<ranks)
            var turn = 0
            while !active.isEmpty {
                let rank = turn % ranks
                turn += 1
                guard active.contains(rank) else { continue }
                guard let item = scheduler.next(for: rank) else { active.remove(rank); continue }
                if current[rank] != item.checkpoint { loads += 1; current[rank] = item.checkpoint }
                given.append(item)
            }
            XCTAssertEqual(given.count, items.count, "R=\(ranks)")
            XCTAssertEqual(Set(given), Set(items), "R=\(ranks): every item once")
            XCTAssertLessThanOrEqual(loads, steps.count + ranks - 1 + ranks, "R=\(ranks): \(loads) checkpoint loads")
            XCTAssertEqual(scheduler.remaining, 0)
        }
        // Acquisition first within a checkpoint; a fresh rank takes a checkpoint nobody works on.
        var s = SweepScheduler(items: items)
        XCTAssertEqual(s.next(for: 0), .acquisition(checkpoint: 10))
        XCTAssertEqual(s.next(for: 1), .acquisition(checkpoint: 20))
        XCTAssertEqual(s.next(for: 0)?.checkpoint, 10)
    }

    /// Items the readiness check refuses (transplants whose sources are not done) wait; the others go in order.
    func testSchedulerPassesOverItemsNotReady() {
        let t = SweepItem.transplant(source: 20, checkpoint: 10)
        let a = SweepItem.acquisition(checkpoint: 10), c = SweepItem.cell(ResultCell(checkpoint: 20, task: "city", type: "new", frequency: "high"))
        var s = SweepScheduler(items: [a, t, c])
        var sourceDone = false
        let ready: (SweepItem) -> Bool = { if case .transplant = $0 { return sourceDone }; return true }
        XCTAssertEqual(s.next(for: 0, ready: ready), a)
        XCTAssertEqual(s.next(for: 0, ready: ready), c, "the transplant waits; rank 0 moves to the next checkpoint")
        XCTAssertNil(s.next(for: 0, ready: ready))
        XCTAssertEqual(s.remaining, 1)
        sourceDone = true
        XCTAssertEqual(s.next(for: 1, ready: ready), t)
        XCTAssertEqual(s.remaining, 0)
    }

    func testMessagesRoundTrip() throws {
        var circuits = CircuitsTable.Cell(cleanBaseline: 0.25, corruptedBaseline: -1.5)
        circuits.circuits[10] = CircuitsTable.Circuit(performance: .nan, nEdges: 9, nNodes: 7, edgeEntropy: .nan, inCircuit: [0, 1, 0, 1],
                                                      targets: [CircuitsTable.Target(type: "new", frequency: "high"):
                                                                    CircuitsTable.TargetResult(labelProb: 1e-5, labelRankMean: 3.5, hitsAt1: 0, hitsAt10: 0.5, nTest: 4)])
        circuits.circuits[50] = CircuitsTable.Circuit(performance: 0.125, nEdges: 50, nNodes: 12, edgeEntropy: 3.25, inCircuit: [1, 1, 1, 1])
        let cell = ResultCell(checkpoint: 1200, task: "city", type: "new", frequency: "high")
        var outcome = CellOutcome(scores: [0, -0.0, 1.5e-9, .nan], nSamples: 24, discoverSeconds: 1.25, evaluateSeconds: 2, circuits: circuits)
        let components = ComponentsTable.Cell(nEntities: 24, rankPlus1: [3, 2.5, 1], probability: [1e-9, .nan, 0.5], subjectRankPlus1: [7, 8, 9],
                                              meanSubject: [0.1, -0.2], meanRelation: [0.3, .nan], circuitHeads: [10: [1, 0, 2, 0, 0, 1]],
                                              circuitNodes: [10: 7])
        outcome.components = components
        let request = SweepMessage.Request(stopRequested: true, loadSeconds: 0.5, computeSeconds: 3, result: .cell(cell, outcome))
        let back = try SweepMessage.decodeRequest(SweepMessage.encode(request))
        XCTAssertTrue(back.stopRequested)
        XCTAssertEqual(back.loadSeconds, 0.5)
        guard case let .cell(c, o)? = back.result else { return XCTFail("cell result expected") }
        XCTAssertEqual(c, cell)
        XCTAssertEqual(o.scores.map(\.bitPattern), outcome.scores.map(\.bitPattern))
        XCTAssertEqual(o.circuits, circuits)
        XCTAssertEqual(o.nSamples, 24)
        XCTAssertEqual(o.components, components)

        let acquisition = SweepItemResult.acquisition(checkpoint: 7, [AcquisitionCell(checkpoint: 7, attribute: "city", type: "new", frequency: "low"):
            AcquisitionTable.Result(queryAccuracy: 0.75, exactMatch: 0.5, hitsAt1: 0.25, hitsAt10: 1, labelProb: 0.01, nEntities: 4)],
            entities: .init(query: ["city": [1, 1, 0, 1], "major": [-1, 0, 1, 0]], exact: ["city": [1, 0, 0, 1], "major": [-1, 0, 0, 0]]),
            prompts: 20, seconds: 1)
        var w = ByteWriter()
        SweepMessage.encode(acquisition, &w)
        var r = ByteReader(w.bytes)
        guard case let .acquisition(step, results, entities, prompts, _) = try SweepMessage.decodeResult(&r) else { return XCTFail("acquisition expected") }
        XCTAssertEqual(step, 7)
        XCTAssertEqual(prompts, 20)
        XCTAssertEqual(results.values.first?.nEntities, 4)
        XCTAssertEqual(results.values.first?.queryAccuracy, 0.75)
        XCTAssertEqual(entities.query["major"], [-1, 0, 1, 0])
        XCTAssertEqual(entities.exact["city"], [1, 0, 0, 1])

        for a in [SweepMessage.Assignment.stop, .item(.cell(cell), folder: "/runs/x/checkpoint-1200"), .item(.acquisition(checkpoint: 3), folder: "/c")] {
            XCTAssertEqual(try SweepMessage.decodeAssignment(SweepMessage.encode(a)), a)
        }
        let transplantAssignment = SweepMessage.Assignment.item(.transplant(source: 10, checkpoint: 20), folder: "/c/checkpoint-20",
                                                                sourceCircuits: [cell: [10: [0, 1, 1, 0], 50: [1, 1, 1, 1]]])
        XCTAssertEqual(try SweepMessage.decodeAssignment(SweepMessage.encode(transplantAssignment)), transplantAssignment)
        let transplant = SweepItemResult.transplant(source: 10, checkpoint: 20, [cell: CircuitsTable.Transplant(cleanBaseline: 1, corruptedBaseline: -0.5,
            circuits: [10: .init(performance: 0.25, hitsAt10: .nan, nTest: -1), 50: .init(performance: 1, hitsAt10: 0.5, nTest: 4)])], seconds: 2)
        var tw = ByteWriter()
        SweepMessage.encode(transplant, &tw)
        var tr = ByteReader(tw.bytes)
        guard case let .transplant(source, target, results, _) = try SweepMessage.decodeResult(&tr) else { return XCTFail("transplant expected") }
        XCTAssertEqual([source, target], [10, 20])
        guard case let .transplant(_, _, sent, _) = transplant else { return }
        XCTAssertEqual(results, sent)
        XCTAssertThrowsError(try SweepMessage.decodeAssignment([9]))
        XCTAssertThrowsError(try SweepMessage.decodeRequest(Array(SweepMessage.encode(request).dropLast())))
    }
}
