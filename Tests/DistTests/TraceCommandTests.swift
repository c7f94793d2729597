import Core
import Foundation
import XCTest

/// `dkc trace` as a user runs it, on the fixture model.
final class TraceCommandTests: XCTestCase {
    func fixtureModel() throws -> URL {
        let url = Paths.fixtures.appendingPathComponent("model")
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) else {
            throw missingFixtures(Paths.fixtures.path)
        }
        return url
    }

    func testPrintsAHookLineForEveryLayerWithFiniteSums() throws {
        let model = try fixtureModel()
        let r = try Launch.run(try Launch.executable("dkc"), ["trace", "--model", model.path, "--bos",
                                                              "--text", "Everett Kendrick Waring lives in the city of"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        // The fixture model has 2 layers; BOS + 10 tokens.
        var hooks = ["blocks.0.hook_resid_pre"]
        for l in 0..<2 {
            hooks += ["ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z",
                      "hook_resid_mid", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_resid_post"].map { "blocks.\(l).\($0)" }
        }
        hooks += ["ln_final.hook_normalized", "logits"]
        XCTAssertEqual(lines.map { String($0.prefix { $0 != " " }) }, hooks, r.stdout)
        for line in lines {
            // hook-name [shape] sum
            let open = try XCTUnwrap(line.firstIndex(of: "["), line), close = try XCTUnwrap(line.firstIndex(of: "]"), line)
            let dims = line[line.index(after: open)..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            XCTAssertEqual(dims.first, 1, line)
            XCTAssertTrue(dims.contains(11), "\(line): 11 positions")
            let sum = try XCTUnwrap(Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)), line)
            XCTAssertTrue(sum.isFinite, line)
        }
        // Each real query's pattern row sums to 1: 4 heads × 11 positions.
        let pattern = try XCTUnwrap(lines.first { $0.hasPrefix("blocks.1.attn.hook_pattern ") })
        XCTAssertEqual(Double(pattern.split(separator: " ").last!)!, 44, accuracy: 1e-4)
        // The ids go to standard error, so standard output diffs cleanly.
        XCTAssertTrue(r.stderr.contains("50256, 36, 33395"), r.stderr)
    }

    func testErrorsNameTheProblem() throws {
        let dkc = try Launch.executable("dkc")
        let missing = try Launch.run(dkc, ["trace", "--model", "/nonexistent/model", "--text", "Hi"])
        XCTAssertEqual(missing.status, 65, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/model"), missing.stderr)
        let noText = try Launch.run(dkc, ["trace", "--model", try fixtureModel().path])
        XCTAssertEqual(noText.status, 64, noText.stderr)
        XCTAssertTrue(noText.stderr.contains("--text"), noText.stderr)
    }
}
