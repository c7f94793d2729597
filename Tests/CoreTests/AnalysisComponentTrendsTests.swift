import Foundation
import XCTest
@testable import Core

/// Logit lens, head classes and transplant curves in `dkc analyze` (docs/analyze.md), on a
/// hand-made components.nc (written by ComponentsTable) and circuits.nc with transplant variables.
final class AnalysisComponentTrendsTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-analysis-components-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    private let fixture = SweepFixture(steps: [10, 20, 30], tasks: ["city"], types: ["new", "revised"], frequencies: ["high"])

    /// Circuits at every cell (faithfulness 0.9); transplant sources 10 and 30 with
    /// faithfulness 0.1·s + 0.2·c (+0.2 for revised) and hits@10 0.2·c.
    private func writeCircuits() throws {
        let mask = fixture.mask(["input->logits", "a0.h0->logits"])
        try fixture.writeCircuits(path("circuits.nc"), transplant: ([10, 30], { s, c, _, y, _ in
            (0.1 * Double(s) + 0.2 * Double(c) + (y == 1 ? 0.2 : 0), 0.2 * Double(c))
        })) { _, _, _, _, _ in SweepFixture.CircuitCell(mask: mask) }
    }

    /// Lens ranks and circuit heads (classes mover, relation, mixture × layers 0, 1) by hand:
    /// step 10 new: ranks 50, 20, 8; heads [1,0 | 0,1 | 1,1] of 10 nodes. Step 10 revised: ranks 100 ×3;
    /// no heads, 4 nodes. Step 30 new: ranks 30, 5, 2; heads [2,1 | 1,0 | 0,0] of 10 nodes. Step 20: not computed.
    private func writeComponents() throws {
        var table = ComponentsTable(nLayers: 2, nHeads: 2)
        for step: Int64 in [10, 20, 30] { try table.addCheckpoint(step: step, path: "/c/checkpoint-\(step)") }
        table.declare(tasks: ["city"], types: ["new", "revised"], frequencies: ["high"], topn: [5])
        func cell(_ ranks: [Double], _ heads: [Int], _ nodes: Int) -> ComponentsTable.Cell {
            ComponentsTable.Cell(nEntities: 3, rankPlus1: ranks, probability: ranks.map { 1 / $0 }, subjectRankPlus1: ranks,
                                 meanSubject: [1, 0, 0, 0], meanRelation: [0, 1, 0, 0], circuitHeads: [5: heads], circuitNodes: [5: nodes])
        }
        try table.set(ResultCell(checkpoint: 10, task: "city", type: "new", frequency: "high"), cell([50, 20, 8], [1, 0, 0, 1, 1, 1], 10))
        try table.set(ResultCell(checkpoint: 10, task: "city", type: "revised", frequency: "high"), cell([100, 100, 100], [0, 0, 0, 0, 0, 0], 4))
        try table.set(ResultCell(checkpoint: 30, task: "city", type: "new", frequency: "high"), cell([30, 5, 2], [2, 1, 1, 0, 0, 0], 10))
        let provenance = try Provenance(commandLine: "dkc sweep", config: "{}", mpiRanks: 1, blasThreads: 1,
                                        created: "2026-01-01T00:00:00Z", source: "dkc test")
        try table.write(to: folder.appendingPathComponent("components.nc"), provenance: provenance)
    }

    func testFirstRank10ByHand() {
        XCTAssertEqual(ComponentTrends.firstRank10([50, 10, 3]), 1, "≤ 10 counts")
        XCTAssertEqual(ComponentTrends.firstRank10([.nan, 11, 9]), 2)
        XCTAssertNil(ComponentTrends.firstRank10([11, 12]))
    }

    func testComponentsAndTransplant() throws {
        try writeCircuits()
        try writeComponents()
        let inputs = try AnalysisInputPaths.resolve(run: nil, scores: nil, circuits: path("circuits.nc"), acquisition: nil,
                                                    components: path("components.nc"))
        let r = try Analysis.run(inputs: inputs, options: AnalysisOptions(phaseSimulations: 50))
        let c = try XCTUnwrap(r.components)
        XCTAssertEqual(c.lens, ["0_pre", "1_pre", "final_post"])
        XCTAssertEqual(c.classes, ["mover", "relation", "mixture"])
        // Lens curves and the first point ≤ 10 (checkpoint, task, type, frequency).
        XCTAssertEqual((0..<3).map { c.lensRankPlus1[2, 0, 0, 0, $0] }, [30, 5, 2])
        XCTAssertEqual(c.lensProbability[0, 0, 0, 0, 2], 1.0 / 8, accuracy: 1e-12)
        XCTAssertEqual(c.lensFirstRank10[0, 0, 0, 0], 2)
        XCTAssertEqual(c.lensFirstRank10[2, 0, 0, 0], 1)
        XCTAssertTrue(c.lensFirstRank10[0, 0, 1, 0].isNaN, "never ≤ 10")
        XCTAssertTrue(c.lensFirstRank10[1, 0, 0, 0].isNaN, "step 20 not computed")
        // Proportions: class heads summed over layers ÷ node-set size.
        XCTAssertEqual((0..<3).map { c.headClassShare[0, 0, 0, 0, 0, $0] }, [0.1, 0.1, 0.2])
        XCTAssertEqual((0..<3).map { c.headClassShare[2, 0, 0, 0, 0, $0] }, [0.3, 0.1, 0])
        XCTAssertEqual((0..<3).map { c.headClassShare[0, 0, 1, 0, 0, $0] }, [0, 0, 0])
        XCTAssertEqual((0..<2).map { c.circuitHeadsByLayer[2, 0, 0, 0, 0, 0, $0] }, [2, 1], "mover heads per layer at step 30")
        XCTAssertEqual((0..<3).map { c.headClassShareAll[0, $0] }, [0.05, 0.05, 0.1], "mean of new and revised")
        XCTAssertEqual((0..<3).map { c.headClassShareAll[2, $0] }, [0.3, 0.1, 0])
        XCTAssertTrue(c.headClassShareAll[1, 0].isNaN)
        // Transplant: per cell, and the high-bucket curve (mean of new and revised).
        let t = try XCTUnwrap(r.transplant)
        XCTAssertEqual(t.sources, [10, 30])
        XCTAssertEqual(t.faithfulness[1, 2, 0, 1, 0], 0.1 + 0.4 + 0.2, accuracy: 1e-12)
        XCTAssertEqual(t.faithfulnessCurve[0, 1], 0.2 + 0.1, accuracy: 1e-12)
        XCTAssertEqual(t.faithfulnessCurve[1, 2], 0.1 + 0.4 + 0.1, accuracy: 1e-12)
        XCTAssertEqual(t.hitsAt10Curve[0, 2], 0.4, accuracy: 1e-12)
        XCTAssertEqual(t.ownFaithfulness, [0.9, 0.9, 0.9])

        // Files: variables with named dimensions, figures, report sentences.
        try AnalysisOutput.write(r, to: folder.appendingPathComponent("out"), commandLine: "test")
        let nc = try AnalysisInputFile(path: path("out/analysis.nc"))
        XCTAssertEqual(try nc.labels("lens"), ["0_pre", "1_pre", "final_post"])
        XCTAssertEqual(try nc.integers("source_checkpoint"), [10, 30])
        let share = try nc.array("head_class_share", order: ["checkpoint", "task", "type", "frequency", "component_topn", "class"])
        XCTAssertEqual(share[2, 0, 0, 0, 0, 0], 0.3)
        XCTAssertEqual(try nc.array("logit_lens_first_rank10", order: ["checkpoint", "task", "type", "frequency"])[2, 0, 0, 0], 1)
        XCTAssertEqual(try nc.array("circuit_heads_by_layer", order: ["checkpoint", "task", "type", "frequency", "component_topn", "class", "head_layer"])[0, 0, 0, 0, 0, 2, 1], 1)
        XCTAssertEqual(try nc.array("transplant_hits_at_10_curve", order: ["source_checkpoint", "checkpoint"])[0, 1], 0.2, accuracy: 1e-12)
        XCTAssertEqual(try nc.array("own_circuit_faithfulness_curve", order: ["checkpoint"])[1], 0.9)
        let files = try FileManager.default.contentsOfDirectory(atPath: path("out"))
        for f in ["components_logit_lens_rank.svg", "components_head_classes.svg", "topology_transplant_hits_at_10.svg",
                  "topology_transplant_faithfulness.svg"] {
            XCTAssertTrue(files.contains(f), "\(f) in \(files)")
        }
        let report = try String(contentsOfFile: path("out/report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("the first lens point where the mean answer rank + 1 is at most 10 is final_post at step 10 and 1_pre at step 30: it moves earlier"), report)
        XCTAssertTrue(report.contains("city/new/high circuit (top-5, class count ÷ node-set size, the study's proportion), step 10 to step 30: mover share rises from 0.10 to 0.30; relation share stays at 0.10; mixture share falls from 0.20 to 0.00."), report)
        XCTAssertTrue(report.contains("Mover and relation heads together: 0.20 at the first checkpoint, 0.40 at the last (more specialised heads"), report)
        XCTAssertTrue(report.contains("The circuit of checkpoint 10 keeps faithfulness 0.40 and hits@10 0.30 on the 2 later checkpoint(s)"), report)
        XCTAssertTrue(report.contains("their own circuits: faithfulness 0.90"), report)
    }

    func testWithoutComponentsStillWorks() throws {
        try writeCircuits()
        let r = try Analysis.run(inputs: AnalysisInputPaths(circuits: path("circuits.nc")), options: AnalysisOptions(phaseSimulations: 50))
        XCTAssertNil(r.components)
        XCTAssertTrue(r.notes.contains { $0.contains("components.nc not given") }, "\(r.notes)")
        XCTAssertNotNil(r.transplant)
        try AnalysisOutput.write(r, to: folder.appendingPathComponent("out"), commandLine: "test")
        let nc = try AnalysisInputFile(path: path("out/analysis.nc"))
        XCTAssertFalse(nc.has("head_class_share"))
        XCTAssertTrue(nc.has("transplant_faithfulness"))
    }
}
