import Core
import Foundation
import XCTest

/// `dkc sweep` with `stage = "forget"` (docs/forgetting.md): one sweep per replay sub-run of the forget
/// stage, each into `circuits/forget/replay_<r>/`. The sub-runs' checkpoints are copies of the template's
/// continual checkpoints, so their results must equal the continual sweep's.
final class ForgetSweepTests: XCTestCase {
    override class func tearDown() {
        SweepFixture.cleanUp()
        super.tearDown()
    }

    func testForgetStageSweepsEverySubRunIntoItsOwnFolder() throws {
        let dkc = try Launch.executable("dkc")
        let run = try SweepFixture.run("forget")
        let fm = FileManager.default
        // Ratios 1 and 0.5 (listed out of order: the sweep goes by ratio).
        for label in ["1", "0.5"] {
            let sub = run.appendingPathComponent("train/forget/replay_\(label)")
            try fm.createDirectory(at: sub, withIntermediateDirectories: true)
            try fm.copyItem(at: run.appendingPathComponent("train/continual/checkpoints"), to: sub.appendingPathComponent("checkpoints"))
        }
        let settings = SweepFixture.grid + ["transplant_sources=[]"]
        let forget = try Launch.run(dkc, SweepFixture.arguments(run, settings + ["stage=\"forget\""]), ranks: 2, timeout: 300)
        XCTAssertEqual(forget.status, 0, forget.stdout + forget.stderr)
        let circuits = run.appendingPathComponent("circuits")
        let half = forget.stdout.range(of: "== forget/replay_0.5 → \(circuits.path)/forget/replay_0.5")
        let one = forget.stdout.range(of: "== forget/replay_1 → \(circuits.path)/forget/replay_1")
        XCTAssertNotNil(half, forget.stdout)
        XCTAssertNotNil(one, forget.stdout)
        if let half, let one { XCTAssertLessThan(half.lowerBound, one.lowerBound, "sub-runs are swept by ratio") }
        XCTAssertFalse(fm.fileExists(atPath: circuits.appendingPathComponent("scores.nc").path), "nothing written into the continual folder")

        // The continual sweep of the same checkpoints: every sub-run's tables equal its tables.
        let continual = try Launch.run(dkc, SweepFixture.arguments(run, settings), ranks: 2, timeout: 300)
        XCTAssertEqual(continual.status, 0, continual.stdout + continual.stderr)
        let reference = try ScoresTable.read(from: circuits.appendingPathComponent("scores.nc"))
        let referenceCircuits = try CircuitsTable.read(from: circuits.appendingPathComponent("circuits.nc"))
        XCTAssertEqual(reference.cells.count, 12)
        for label in ["0.5", "1"] {
            let folder = circuits.appendingPathComponent("forget/replay_\(label)")
            for name in ["scores.nc", "circuits.nc", "acquisition.nc", "components.nc", "manifest.jsonl"] {
                XCTAssertTrue(fm.fileExists(atPath: folder.appendingPathComponent(name).path), "replay_\(label)/\(name)")
            }
            let scores = try ScoresTable.read(from: folder.appendingPathComponent("scores.nc"))
            XCTAssertEqual(scores.checkpoints.steps, [10, 20])
            XCTAssertEqual(Set(scores.cells.keys), Set(reference.cells.keys), "replay_\(label)")
            for (cell, value) in reference.cells {
                XCTAssertEqual(scores[cell]?.scores.count, value.scores.count)
                XCTAssertTrue(zip(scores[cell]?.scores ?? [], value.scores).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(cell)")
            }
            let evaluated = try CircuitsTable.read(from: folder.appendingPathComponent("circuits.nc"))
            XCTAssertEqual(evaluated.cells, referenceCircuits.cells, "replay_\(label)")
        }

        // Resuming finds every sub-run done.
        let again = try Launch.run(dkc, SweepFixture.arguments(run, settings + ["stage=\"forget\""]), ranks: 2, timeout: 120)
        XCTAssertEqual(again.status, 0, again.stdout + again.stderr)
        XCTAssertEqual(again.stdout.components(separatedBy: "14 already done").count - 1, 2, again.stdout)
    }

    func testForgetStageWithoutSubRunsIsANamedError() throws {
        let run = try SweepFixture.run("forget-missing")
        let r = try Launch.run(try Launch.executable("dkc"), SweepFixture.arguments(run, SweepFixture.grid + ["stage=\"forget\""]), timeout: 60)
        XCTAssertEqual(r.status, 65, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("train/forget holds no replay_<r> sub-run"), r.stderr)
    }
}
