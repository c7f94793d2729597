import Core
import DistCircuits
import Foundation
import XCTest

/// `dkc bench cell --json` on the tiny model with tiny sizes: the documented keys, one `<phase>_s` per phase of
/// the cell runner, and phase times that fit in the cell's wall time.
final class BenchCellCommandTests: XCTestCase {
    func testJSONLineCarriesTheKeysAndPhaseTimes() throws {
        let lines = try benchJSONLines(["cell", "--config", "tiny", "--circuit-n", "3", "--batch-size", "2", "--topn", "20,60",
                                        "--threads", "1"])
        XCTAssertEqual(lines.count, 1, lines.map(\.text).joined(separator: "\n"))
        let (line, o) = try XCTUnwrap(lines.first)
        let keys = benchCommonKeys + ["cell_s", "cpu_s"] + CellRunner.phases.map { "\($0)_s" }
        for k in keys { XCTAssertNotNil(o[k], "\(k) missing in \(line)") }
        XCTAssertEqual(o["bench"] as? String, "cell")
        XCTAssertEqual(o["config"] as? String, "tiny")
        XCTAssertEqual(o["method"] as? String, "EAP-IG")
        XCTAssertEqual(o["batch_size"] as? Int, 2)
        XCTAssertEqual(o["samples"] as? Int, 3)
        XCTAssertEqual(o["targets"] as? Int, 6)
        XCTAssertEqual(o["test_prompts"] as? Int, 18)
        XCTAssertEqual(o["topn"] as? [Int], [20, 60])
        XCTAssertEqual(CellRunner.phases, ["attribution", "selection", "baselines", "faithfulness", "tests"])
        let cell = try XCTUnwrap(o["cell_s"] as? Double)
        let phases = try CellRunner.phases.map { try XCTUnwrap(o["\($0)_s"] as? Double, $0) }
        XCTAssertGreaterThan(cell, 0)
        for (name, s) in zip(CellRunner.phases, phases) {
            XCTAssertGreaterThanOrEqual(s, 0, name)
            if name != "selection" { XCTAssertGreaterThan(s, 0, "\(name) did no timed work") }
        }
        XCTAssertLessThanOrEqual(phases.reduce(0, +), cell, "the phases are parts of the cell")
        XCTAssertEqual(try XCTUnwrap(o["samples_per_s"] as? Double), 3 / cell, accuracy: 1e-3 * 3 / cell)
        let roof = try XCTUnwrap(o["roof_gflops"] as? Double)
        XCTAssertGreaterThan(roof, 0)
        XCTAssertEqual(try XCTUnwrap(o["mfu"] as? Double), try XCTUnwrap(o["gflops"] as? Double) / roof, accuracy: 1e-4)
        XCTAssertGreaterThan(try XCTUnwrap(o["peak_rss_mib"] as? Double), try XCTUnwrap(o["base_rss_mib"] as? Double))
        XCTAssertTrue(o["meets_target"] is NSNull, "the target applies to the paper-size GPT-2 cell only")
    }
}
