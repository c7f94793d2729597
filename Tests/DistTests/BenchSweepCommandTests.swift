import Core
import Foundation
import XCTest

/// `dkc bench sweep --json` on the smallest run it builds: one JSON line with the documented keys, every item
/// of the plan computed, and rates that agree with the counts and the wall time they report.
final class BenchSweepCommandTests: XCTestCase {
    func testJSONLineCarriesTheKeysAndCounts() throws {
        let lines = try benchJSONLines(["sweep", "--checkpoints", "1", "--circuit-n", "6", "--test-per-cell", "2"])
        XCTAssertEqual(lines.count, 1, lines.map(\.text).joined(separator: "\n"))
        let (line, o) = try XCTUnwrap(lines.first)
        for k in benchCommonKeys + ["items", "samples", "items_per_s", "wall_s", "load_fraction", "write_fraction", "busy_fraction",
                                    "items_per_rank"] {
            XCTAssertNotNil(o[k], "\(k) missing in \(line)")
        }
        XCTAssertEqual(o["bench"] as? String, "sweep")
        XCTAssertEqual(o["ranks"] as? Int, 1)
        // At least the 1 checkpoint × 3 tasks × 2 types × 3 buckets cells and the acquisition, all on the one rank.
        let items = try XCTUnwrap(o["items"] as? Int)
        XCTAssertGreaterThanOrEqual(items, 19)
        XCTAssertEqual(o["items_per_rank"] as? [Int], [items])
        let samples = try XCTUnwrap(o["samples"] as? Double), wall = try XCTUnwrap(o["wall_s"] as? Double)
        let rate = try XCTUnwrap(o["samples_per_s"] as? Double)
        XCTAssertGreaterThan(wall, 0)
        XCTAssertEqual(rate, samples / wall, accuracy: 1e-3 * rate)
    }
}
