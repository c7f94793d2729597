import Foundation
import XCTest
@testable import Core

/// The forgetting curves of `dkc analyze` (docs/forgetting.md) on a hand-made run folder whose answers
/// are known: two replay sub-runs with three evaluations each.
final class ForgettingCurvesTests: XCTestCase {
    /// train/forget/replay_1 and replay_0 (created out of order), an unrelated folder, and lines the
    /// curves must skip (training logs, the extra forget validation set).
    func makeRun() throws -> URL {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-forgetting-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: run) }
        func sub(_ label: String, _ rows: [(Int, Double, Double)]) throws {
            let dir = run.appendingPathComponent("train/forget/replay_\(label)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            var lines: [String] = []
            for (step, new, revised) in rows {
                lines.append("{\"loss\": 1.5, \"step\": \(step)}")
                lines.append("{\"eval_loss\": 2.0, \"eval_first_token_accuracy_new\": \(new), \"eval_first_token_accuracy_revised\": \(revised), "
                             + "\"eval_first_token_accuracy_new_city\": 0.9, \"step\": \(step)}")
                lines.append("{\"eval_forget_loss\": 3.0, \"eval_forget_first_token_accuracy_new\": 0.01, \"step\": \(step)}")
            }
            try (lines.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        }
        try sub("1", [(0, 0.6, 0.5), (10, 0.5, 0.45), (20, 0.55, 0.5)])
        try sub("0", [(0, 0.6, 0.5), (10, 0.2, 0.3), (20, 0.1, 0.2)])
        try FileManager.default.createDirectory(at: run.appendingPathComponent("train/forget/notes"), withIntermediateDirectories: true)
        return run
    }

    func testSummariesFileFiguresAndReportHoldTheKnownNumbers() throws {
        let run = try makeRun()
        let curves = try XCTUnwrap(try ForgettingCurves.read(trainFolder: run.appendingPathComponent("train")))
        XCTAssertEqual(curves.runs.map(\.label), ["0", "1"], "by ratio")
        XCTAssertEqual(curves.types, ["new", "revised"])
        XCTAssertEqual(curves.steps, [0, 10, 20])

        let none = curves.runs[0], full = curves.runs[1]
        XCTAssertEqual(curves.summary(none, type: "new"),
                       .init(initial: 0.6, initialStep: 0, lowest: 0.1, lowestStep: 20, final: 0.1, finalStep: 20, halfStep: 10))
        XCTAssertEqual(curves.summary(none, type: "revised")?.halfStep, 20, "0.2 < 0.25 first at step 20")
        XCTAssertEqual(curves.summary(full, type: "new"),
                       .init(initial: 0.6, initialStep: 0, lowest: 0.5, lowestStep: 10, final: 0.55, finalStep: 20, halfStep: nil))

        let folder = run.appendingPathComponent("analysis")
        let written = try AnalysisOutput.write(curves, to: folder, commandLine: "dkc analyze --run x")
        XCTAssertEqual(written, ["forgetting.nc", "forget_first_token_new.svg", "forget_first_token_revised.svg", "forgetting.md"])
        let nc = try NetCDFFile.open(path: folder.appendingPathComponent("forgetting.nc").path)
        defer { try? nc.close() }
        XCTAssertEqual(try nc.read("replay_ratio", as: Double.self), [0, 1])
        XCTAssertEqual(try nc.read("step", as: Int64.self), [0, 10, 20])
        XCTAssertEqual(try nc.readStrings("type"), ["new", "revised"])
        // (replay_ratio, step, type): ratio 0 new/revised at steps 0, 10, 20, then ratio 1.
        XCTAssertEqual(try nc.read("first_token_accuracy", as: Double.self), [0.6, 0.5, 0.2, 0.3, 0.1, 0.2, 0.6, 0.5, 0.5, 0.45, 0.55, 0.5])
        XCTAssertEqual(try nc.read("first_token_accuracy_final", as: Double.self), [0.1, 0.2, 0.55, 0.5])
        XCTAssertEqual(try nc.read("first_token_accuracy_lowest_step", as: Double.self), [20, 20, 10, 10])
        let half = try nc.read("half_step", as: Double.self)
        XCTAssertEqual(Array(half[0..<2]), [10, 20])
        XCTAssertTrue(half[2].isNaN && half[3].isNaN)

        let report = try String(contentsOf: folder.appendingPathComponent("forgetting.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("| new | 0 | 60.0 % | 10.0 % (20) | 10.0 % (20) | 10 |"), report)
        XCTAssertTrue(report.contains("| new | 1 | 60.0 % | 50.0 % (10) | 55.0 % (20) | never |"), report)
        XCTAssertTrue(report.contains("it keeps 92 % of the starting accuracy against 17 % without replay"), report)
        let svg = try String(contentsOf: folder.appendingPathComponent("forget_first_token_new.svg"), encoding: .utf8)
        XCTAssertEqual(svg.components(separatedBy: "<g class=\"series\"").count - 1, 2, "one line per replay ratio")
    }

    func testNoForgetSubRunsGivesNothing() throws {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-forgetting-none-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: run.appendingPathComponent("train/continual"), withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: run) }
        XCTAssertNil(try ForgettingCurves.read(trainFolder: run.appendingPathComponent("train")))
    }

    func testAMalformedMetricsLineIsANamedError() throws {
        let run = try makeRun()
        let metrics = run.appendingPathComponent("train/forget/replay_0/metrics.jsonl")
        try "{\"eval_first_token_accuracy_new\": 1.5, \"step\": 0}\n".write(to: metrics, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ForgettingCurves.read(trainFolder: run.appendingPathComponent("train"))) { error in
            XCTAssertTrue("\(error)".contains(metrics.path), "\(error)")
        }
    }
}
