import Core
import Foundation
import XCTest

/// The keys every `dkc bench … --json` line carries (docs/performance.md).
let benchCommonKeys = ["bench", "config", "method", "batch_size", "seq_len", "ig_steps", "ranks", "threads", "repeats", "samples_per_s",
                       "min", "max", "gflops", "roof_gflops", "mfu", "peak_rss_mib", "blas_core", "kernels_isa", "dkc_version"]

/// Runs `dkc bench <arguments> --json --tokenizer <the fixtures' GPT-2 tokenizer>` and returns each line of its
/// output with the JSON object it holds. A missing fixture tokenizer is `missingFixtures` (a failure under CI);
/// a run that fails, or a line that is not a JSON object, fails the calling test.
func benchJSONLines(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [(text: String, object: [String: Any])] {
    let tokenizer = Paths.fixtures.appendingPathComponent("tokenizer")
    guard FileManager.default.fileExists(atPath: tokenizer.appendingPathComponent("vocab.json").path) else {
        throw missingFixtures(Paths.fixtures.path)
    }
    let r = try Launch.run(try Launch.executable("dkc"), ["bench"] + arguments + ["--json", "--tokenizer", tokenizer.path], timeout: 300)
    XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
    return try r.stdout.split(separator: "\n").map { text in
        (String(text), try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], String(text), file: file, line: line))
    }
}
