import Foundation
import XCTest
import Core

/// Result files damaged outside dkc before a sweep resumes (docs/fault-tolerance.md).
final class SweepFaultTests: XCTestCase {
    override class func tearDown() {
        SweepFixture.cleanUp()
        super.tearDown()
    }

    /// A truncated scores.nc: the resumed sweep stops with exit 65 naming the file and what to do, and
    /// leaves the folder as it was; with the file moved away, the same command computes the missing cells
    /// again and ends with every planned item in the files.
    func testTruncatedScoresFileBeforeResumeIsANamedError() throws {
        let dkc = try Launch.executable("dkc")
        let run = try SweepFixture.run("truncated")
        let args = SweepFixture.arguments(run, SweepFixture.grid)
        let first = try Launch.run(dkc, args, timeout: 300)
        XCTAssertEqual(first.status, 0, first.stdout + first.stderr)
        let scores = run.appendingPathComponent("circuits/scores.nc")
        let data = try Data(contentsOf: scores)
        try data.prefix(data.count / 2).write(to: scores)
        let circuitsBefore = try Data(contentsOf: run.appendingPathComponent("circuits/circuits.nc"))

        let second = try Launch.run(dkc, args, timeout: 120)
        XCTAssertEqual(second.status, 65, second.stdout + second.stderr)
        XCTAssertTrue(second.stderr.contains(scores.path) && second.stderr.contains("cannot be read, so the sweep cannot resume")
                      && second.stderr.contains("move the file away"), second.stderr)
        XCTAssertEqual(try Data(contentsOf: scores).count, data.count / 2, "the damaged file is left for the user")
        XCTAssertEqual(try Data(contentsOf: run.appendingPathComponent("circuits/circuits.nc")), circuitsBefore)

        try FileManager.default.moveItem(at: scores, to: run.appendingPathComponent("scores.nc.damaged"))
        let third = try Launch.run(dkc, args, timeout: 300)
        XCTAssertEqual(third.status, 0, third.stdout + third.stderr)
        // The 12 cells were computed again (the acquisitions and the transplants, which live in circuits.nc and
        // acquisition.nc, were kept), and now everything is in the files.
        XCTAssertTrue(third.stdout.contains("18 items") && third.stdout.contains("6 already done")
                      && third.stdout.contains("12 item(s) computed"), third.stdout)
        let fourth = try Launch.run(dkc, args, timeout: 120)
        XCTAssertEqual(fourth.status, 0, fourth.stdout + fourth.stderr)
        XCTAssertTrue(fourth.stdout.contains("18 already done"), fourth.stdout)
    }
}
