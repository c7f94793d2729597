import Core
import Foundation
import XCTest

/// `dkc bench discover --json` as a script reads it (not a timing test).
final class BenchDiscoverCommandTests: XCTestCase {
    func testJSONLinesCarryTheDocumentedKeys() throws {
        let lines = try benchJSONLines(["discover", "--config", "tiny", "--method", "EAP", "--prompts", "4", "--batch-size", "2", "4",
                                        "--repeats", "1", "--warmup", "0", "--threads", "1"])
        XCTAssertEqual(lines.count, 2, lines.map(\.text).joined(separator: "\n"))
        for ((line, o), batch) in zip(lines, [2, 4]) {
            for k in benchCommonKeys { XCTAssertNotNil(o[k], "\(k) missing in \(line)") }
            XCTAssertEqual(o["bench"] as? String, "discover")
            XCTAssertEqual(o["config"] as? String, "tiny")
            XCTAssertEqual(o["method"] as? String, "EAP")
            XCTAssertTrue(o["ig_steps"] is NSNull, "EAP has no steps")
            XCTAssertEqual(o["batch_size"] as? Int, batch)
            XCTAssertEqual(o["threads"] as? Int, 1)
            XCTAssertEqual(o["ranks"] as? Int, 1)
            let rate = try XCTUnwrap(o["samples_per_s"] as? Double), roof = try XCTUnwrap(o["roof_gflops"] as? Double)
            XCTAssertGreaterThan(rate, 0)
            XCTAssertGreaterThan(roof, 0)
            XCTAssertEqual(try XCTUnwrap(o["mfu"] as? Double), try XCTUnwrap(o["gflops"] as? Double) / roof, accuracy: 1e-4)
            XCTAssertGreaterThan(try XCTUnwrap(o["peak_rss_mib"] as? Double), try XCTUnwrap(o["base_rss_mib"] as? Double))
            XCTAssertTrue(o["ratio_to_study"] is NSNull, "4 prompts: no study figure applies")
        }
    }

    /// The Llama and Phi shapes: prompts from the fixture model folder's tokenizer.json, a transformers-style
    /// initialisation, every documented key; the score sum shows the attribution ran.
    func testFamilyShapesRun() throws {
        for name in ["tiny-llama", "tiny-phi"] {
            let r = try Launch.run(try Launch.executable("dkc"),
                                   ["bench", "discover", "--config", name, "--prompts", "4", "--batch-size", "4", "--repeats", "1", "--warmup", "0",
                                    "--threads", "1", "--json"], timeout: 300)
            XCTAssertEqual(r.status, 0, r.stderr)
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
            XCTAssertEqual(o["config"] as? String, name)
            XCTAssertEqual(o["method"] as? String, "EAP-IG")
            XCTAssertEqual(o["ig_steps"] as? Int, 5)
            XCTAssertGreaterThan(try XCTUnwrap(o["samples_per_s"] as? Double), 0)
            XCTAssertGreaterThan(try XCTUnwrap(o["gflops"] as? Double), 0)
            XCTAssertGreaterThan(try XCTUnwrap(o["seq_len"] as? Int), 8, "\(name): BOS + a name + the template")
        }
    }
}
