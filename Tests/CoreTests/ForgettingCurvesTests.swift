import Foundation
import XCTest
@testable import Core
@testable import StudyAnalysis

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
                lines.append("{\"eval_loss\": \(2.0 + Double(step) / 10), \"eval_first_token_accuracy_new\": \(new), \"eval_first_token_accuracy_revised\": \(revised), "
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
        let curves = try XCTUnwrap(try ForgettingCurves.read(runFolder: run))
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
        XCTAssertEqual(written, ["forgetting.nc", "forget/first_token_new.svg", "forget/first_token_revised.svg", "forget/replay_0.svg",
                                 "forget/replay_1.svg", "forgetting.md"], "no sweep: no circuit figures, no sub-run analyses")
        let nc = try NetCDFFile.open(path: folder.appendingPathComponent("forgetting.nc").path)
        defer { try? nc.close() }
        XCTAssertEqual(try nc.read("replay_ratio", as: Double.self), [0, 1])
        XCTAssertEqual(try nc.read("step", as: Int64.self), [0, 10, 20])
        XCTAssertEqual(try nc.readStrings("type"), ["new", "revised"])
        // (replay_ratio, step, type): ratio 0 new/revised at steps 0, 10, 20, then ratio 1.
        XCTAssertEqual(try nc.read("first_token_accuracy", as: Double.self), [0.6, 0.5, 0.2, 0.3, 0.1, 0.2, 0.6, 0.5, 0.5, 0.45, 0.55, 0.5])
        XCTAssertEqual(try nc.read("eval_loss", as: Double.self), [2, 3, 4, 2, 3, 4])
        XCTAssertEqual(try nc.read("first_token_accuracy_final", as: Double.self), [0.1, 0.2, 0.55, 0.5])
        XCTAssertFalse(nc.hasVariable("faithfulness"), "no sweep, no circuit series")
        XCTAssertEqual(try nc.read("first_token_accuracy_lowest_step", as: Double.self), [20, 20, 10, 10])
        let half = try nc.read("half_step", as: Double.self)
        XCTAssertEqual(Array(half[0..<2]), [10, 20])
        XCTAssertTrue(half[2].isNaN && half[3].isNaN)

        let report = try String(contentsOf: folder.appendingPathComponent("forgetting.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("| new | 0 | 60.0 % | 10.0 % (20) | 10.0 % (20) | 10 |"), report)
        XCTAssertTrue(report.contains("| new | 1 | 60.0 % | 50.0 % (10) | 55.0 % (20) | never |"), report)
        XCTAssertTrue(report.contains("it keeps 92 % of the starting accuracy against 17 % without replay"), report)
        let svg = try String(contentsOf: folder.appendingPathComponent("forget/first_token_new.svg"), encoding: .utf8)
        XCTAssertEqual(svg.components(separatedBy: "<g class=\"series\"").count - 1, 2, "one line per replay ratio (no query accuracy without a sweep)")
    }

    func testNoForgetSubRunsGivesNothing() throws {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-forgetting-none-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: run.appendingPathComponent("train/continual"), withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: run) }
        XCTAssertNil(try ForgettingCurves.read(runFolder: run))
    }

    func testAMalformedMetricsLineIsANamedError() throws {
        let run = try makeRun()
        let metrics = run.appendingPathComponent("train/forget/replay_0/metrics.jsonl")
        try "{\"eval_first_token_accuracy_new\": 1.5, \"step\": 0}\n".write(to: metrics, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ForgettingCurves.read(runFolder: run)) { error in
            XCTAssertTrue("\(error)".contains(metrics.path), "\(error)")
        }
    }

    // MARK: - Circuits of the forget sweep

    /// circuits/forget/replay_0 (checkpoints 0, 4, 8) and replay_1 (0, 2, 8) next to the learning curves
    /// of `makeRun`: circuits.nc at top-n 5 and 10 and acquisition.nc with query accuracy, over
    /// task city, types new and revised, bucket high, a graph of 2 layers × 2 heads.
    func addSweeps(to run: URL) throws {
        let edges0 = ["input->m0", "m0->logits", "a0.h0->m0", "m1->logits"]
        let masks: [[String]] = [edges0, ["input->m0", "m0->logits"], ["input->m0", "a1.h1->logits"]]
        for (label, steps) in [("0", [Int64(0), 4, 8]), ("1", [Int64(0), 2, 8])] {
            var fx = SweepFixture(steps: steps, tasks: ["city"], types: ["new", "revised"], frequencies: ["high"])
            fx.topn = [5, 10]
            let dir = run.appendingPathComponent("circuits/forget/replay_\(label)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try fx.writeCircuits(dir.appendingPathComponent("circuits.nc").path) { c, _, y, _, k in
                // Ratio 0 loses its circuit step by step (top-5); top-10 and ratio 1 keep the initial one.
                let edges = label == "0" && k == 0 ? masks[c] : edges0
                return .init(mask: fx.mask(edges), faithfulness: label == "0" ? [0.9, 0.5, 0.2][c] + 0.01 * Double(y) + 0.001 * Double(k) : 0.95)
            }
            let entities = SweepFixture.EntityRows(names: ["p1", "p2"], types: ["new", "revised"], frequencies: ["high", "high"]) { _, _, _ in 1 }
            try fx.writeAcquisitionWithEntities(dir.appendingPathComponent("acquisition.nc").path, entities: entities, testSet: "test.jsonl") {
                name, c, _, y, _ in name == "query_accuracy" ? (label == "0" ? 0.8 - 0.3 * Double(c) : 0.8) - 0.1 * Double(y) : 0.5
            }
        }
    }

    func testCircuitSeriesOnTheCommonAxesHoldTheKnownNumbers() throws {
        let run = try makeRun()
        try addSweeps(to: run)
        let curves = try XCTUnwrap(try ForgettingCurves.read(runFolder: run))
        XCTAssertEqual(curves.checkpoints, [0, 2, 4, 8], "union of the sub-runs' checkpoints")
        XCTAssertEqual(curves.topn, [5, 10])
        XCTAssertEqual(curves.plotTopn, 5, "the smallest swept when none is asked for")
        XCTAssertEqual(curves.runs.map { $0.circuits.map(\.topn) }, [[5, 10], [5, 10]])

        let folder = run.appendingPathComponent("analysis")
        let written = try AnalysisOutput.write(curves, to: folder, commandLine: "dkc analyze --run x")
        for name in ["forget/jaccard_edges.svg", "forget/jaccard_nodes.svg", "forget/edge_entropy.svg", "forget/faithfulness.svg",
                     "forget/replay_0/analysis.nc", "forget/replay_1/report.md", "forget/replay_0/components_edge_activation_ratio.svg"] {
            XCTAssertTrue(written.contains(name), "\(name) not in \(written)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), name)
        }
        let nc = try NetCDFFile.open(path: folder.appendingPathComponent("forgetting.nc").path)
        defer { try? nc.close() }
        XCTAssertEqual(try nc.read("checkpoint", as: Int64.self), [0, 2, 4, 8])
        XCTAssertEqual(try nc.read("topn", as: Int64.self), [5, 10])
        XCTAssertEqual(try nc.readStrings("task"), ["city"])
        // (replay_ratio, checkpoint, task, type, frequency, topn): ratio 0, new, top-5 along the checkpoints.
        let order = ["replay_ratio", "checkpoint", "task", "type", "frequency", "topn"]
        let jEdges = try AnalysisInputFile(path: folder.appendingPathComponent("forgetting.nc").path).array("jaccard_edges_initial", order: order)
        func series(_ a: LabeledArray, r: Int, y: Int, k: Int) -> [Double] { (0..<4).map { a[r, $0, 0, y, 0, k] } }
        func same(_ a: [Double], _ b: [Double], _ what: String) {
            XCTAssertEqual(a.count, b.count, what)
            for (x, e) in zip(a, b) { XCTAssertTrue(x.isNaN ? e.isNaN : abs(x - e) < 1e-12, "\(what): \(a) vs \(b)") }
        }
        // 4 edges, then 2 of them (2/4), then 1 shared of 5 in the union; checkpoint 2 is not in this sub-run.
        same(series(jEdges, r: 0, y: 0, k: 0), [1, .nan, 0.5, 0.2], "edge Jaccard, ratio 0, top-5")
        same(series(jEdges, r: 0, y: 0, k: 1), [1, .nan, 1, 1], "edge Jaccard, ratio 0, top-10")
        same(series(jEdges, r: 1, y: 1, k: 0), [1, 1, .nan, 1], "edge Jaccard, ratio 1")
        let file = try AnalysisInputFile(path: folder.appendingPathComponent("forgetting.nc").path)
        // Nodes (with logits): {input, m0, a0.h0, m1, logits}; {input, m0, logits} = 3/5; {input, m0, a1.h1, logits}: 3/6.
        same(series(try file.array("jaccard_nodes_initial", order: order), r: 0, y: 0, k: 0), [1, .nan, 0.6, 0.5], "node Jaccard")
        same(series(try file.array("faithfulness", order: order), r: 0, y: 1, k: 1), [0.911, .nan, 0.511, 0.211], "faithfulness, revised, top-10")
        same(series(try file.array("n_edges", order: order), r: 0, y: 0, k: 0), [4, .nan, 2, 2], "edges")
        let query = try file.array("query_accuracy_study", order: ["replay_ratio", "checkpoint", "type", "frequency"])
        same((0..<4).map { query[0, $0, 0, 0] }, [0.8, .nan, 0.5, 0.2], "query accuracy, ratio 0, new (mean over attributes)")
        same((0..<4).map { query[1, $0, 1, 0] }, [0.7, 0.7, .nan, 0.7], "query accuracy, ratio 1, revised")
        // Edge activation ratio at checkpoint 8, ratio 0, top-5: {input->m0} of the 41 edges leaving layer 0
        // (input, two heads, m0), {a1.h1->logits} of the 5 leaving layer 1.
        let ratio = try file.array("edge_activation_ratio", order: order + ["parent_layer"])
        XCTAssertEqual(ratio[0, 3, 0, 0, 0, 0, 0], 1.0 / 41, accuracy: 1e-12)
        XCTAssertEqual(ratio[0, 3, 0, 0, 0, 0, 1], 1.0 / 5, accuracy: 1e-12)
        XCTAssertEqual(ratio[1, 3, 0, 0, 0, 0, 1], 1.0 / 5, accuracy: 1e-12, "m1->logits of the initial circuit")
        XCTAssertTrue(ratio[0, 1, 0, 0, 0, 0, 0].isNaN, "checkpoint 2 is not in sub-run 0")

        let report = try String(contentsOf: folder.appendingPathComponent("forgetting.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("| new | 0 | 0 → 8 | 80.0 % → 20.0 % | 0.900 → 0.200 | 0.200 | 0.500 |"), report)
        XCTAssertTrue(report.contains("| new | 1 | 0 → 8 | 80.0 % → 80.0 % | 0.950 → 0.950 | 1.000 | 1.000 |"), report)
        XCTAssertTrue(report.contains("**new** circuits: at the end, the circuit without replay shares 0.200 of its edges"), report)
        let chart = try String(contentsOf: folder.appendingPathComponent("forget/first_token_new.svg"), encoding: .utf8)
        XCTAssertEqual(chart.components(separatedBy: "<g class=\"series\"").count - 1, 4, "first token and query accuracy per ratio")

        // An asked-for top-n the forget sweep has is the one plotted.
        var options = AnalysisOptions()
        options.topn = 10
        XCTAssertEqual(try ForgettingCurves.read(runFolder: run, options: options)?.plotTopn, 10)
    }
}
