import Foundation
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Core

final class AnalysisTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-analysis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    // MARK: - Pure functions, by hand

    func testJaccardByHand() {
        XCTAssertEqual(CircuitMetrics.jaccard([1, 2, 3], [2, 3, 4]), 2.0 / 4.0)
        XCTAssertEqual(CircuitMetrics.jaccard([1, 5, 9], [1, 5, 9]), 1)
        XCTAssertEqual(CircuitMetrics.jaccard([1], [2]), 0)
        XCTAssertEqual(CircuitMetrics.jaccard([], [7]), 0)
        XCTAssertTrue(CircuitMetrics.jaccard([], []).isNaN)
        XCTAssertEqual(CircuitMetrics.jaccard([0, 2, 4, 6, 8], [4, 5, 6, 7, 8, 9]), 3.0 / 8.0)
    }

    func testEntropyByHand() {
        // p = 1/4, 1/4, 1/2 → H = 2 · (1/4) ln 4 + (1/2) ln 2.
        XCTAssertEqual(CircuitMetrics.entropy([1, -1, 2]), 0.5 * log(4) + 0.5 * log(2), accuracy: 1e-12)
        // A zero score contributes 0 · ln 0 = 0.
        XCTAssertEqual(CircuitMetrics.entropy([3, 0, 3]), log(2), accuracy: 1e-12)
        XCTAssertEqual(CircuitMetrics.entropy([5]), 0)
        XCTAssertTrue(CircuitMetrics.entropy([]).isNaN)
        XCTAssertTrue(CircuitMetrics.entropy([0, 0]).isNaN)
    }

    /// The study's own entropies for top-10/50/200 of the EAP-IG fixture graph (fixtures README: abs ≤ 1e-4).
    func testEntropyMatchesReferenceCircuits() throws {
        let eap = Paths.fixtures.appendingPathComponent("reference/eap")
        let evalURL = Paths.fixtures.appendingPathComponent("reference/eval.json")
        guard FileManager.default.fileExists(atPath: evalURL.path) else {
            throw missingFixtures(Paths.fixtures.path)
        }
        let graph = try JSONSerialization.jsonObject(with: Data(contentsOf: eap.appendingPathComponent("graph_EAP-IG.json"))) as! [String: Any]
        let edges = graph["edges"] as! [String: [String: Any]]
        let eval = try JSONSerialization.jsonObject(with: Data(contentsOf: evalURL)) as! [String: Any]
        var worst = 0.0
        for result in eval["results"] as! [[String: Any]] {
            let kept = result["edges_in_graph"] as! [String]
            let scores = kept.map { Float(($0 == "" ? 0 : (edges[$0]!["score"] as! Double))) }
            let reference = result["edge_entropy"] as! Double
            let diff = abs(CircuitMetrics.entropy(scores) - reference)
            worst = max(worst, diff)
            XCTAssertLessThanOrEqual(diff, 1e-4, "top-\(result["topn"]!): entropy \(CircuitMetrics.entropy(scores)) vs reference \(reference)")
        }
        print("edge entropy vs reference: max abs diff \(worst)")
    }

    func testGraphNames() throws {
        let g = GraphNames.standard(layers: 2, heads: 2)
        XCTAssertEqual(g.upstream, ["input", "a0.h0", "a0.h1", "m0", "a1.h0", "a1.h1", "m1"])
        XCTAssertEqual(g.downstream.count, 15)
        XCTAssertEqual(g.upstreamLayer, [-1, 0, 0, 0, 1, 1, 1])
        XCTAssertEqual(g.nLayers, 2)
        XCTAssertEqual(g.layers, [-1, 0, 1])
        XCTAssertEqual(GraphNames.node(ofDownstream: "a1.h0<k>"), "a1.h0")
        XCTAssertNil(GraphNames.layer(ofNode: "logits"))
        XCTAssertNil(GraphNames.layer(ofNode: "a1"))
        XCTAssertEqual(GraphNames.shape(nForward: 157, nBackward: 445)?.layers, 12)
        XCTAssertEqual(GraphNames.shape(nForward: 157, nBackward: 445)?.heads, 12)
        XCTAssertNil(GraphNames.shape(nForward: 157, nBackward: 444))
        // Edge counts from eap.md: GPT-2 small 32,491; the fixture's 2 × 4 graph 110.
        for (l, h, expected) in [(12, 12, 32491), (2, 4, 110)] {
            let graph = GraphNames.standard(layers: l, heads: h)
            var count = 0
            for u in graph.upstream.indices { for d in graph.downstream.indices where graph.isEdge(upstream: u, downstream: d) { count += 1 } }
            XCTAssertEqual(count, expected, "\(l) × \(h)")
        }
        XCTAssertThrowsError(try GraphNames(upstream: ["input", "x0"], downstream: ["logits"]))
    }

    func testLayerProfileByHand() {
        let fx = SweepFixture(steps: [1], tasks: ["city"], types: ["new"], frequencies: ["high"])
        let g = GraphNames.standard(layers: 2, heads: 2)
        let scores: [String: Float] = ["input->m0": 1, "m0->logits": -2, "a1.h0->logits": 0.5, "m1->logits": 0.25, "a1.h1->m1": 0.25]
        let circuit = CircuitEdges(mask: fx.mask(Array(scores.keys)), scores: fx.scoreMatrix(scores))
        let p = CircuitMetrics.layerProfile(circuit, graph: g)
        // Upstream layers: input → embed; m0 → 0; a1.h0, m1, a1.h1 → 1.
        XCTAssertEqual(p.edgeCount, [1, 1, 3])
        XCTAssertEqual(p.edgeShare, [0.2, 0.2, 0.6])
        XCTAssertEqual(p.scoreMass, [1, 2, 1])
        XCTAssertEqual(p.scoreShare!, [0.25, 0.5, 0.25])
        let weighted: Double = (-1.0 * 1 + 0.0 * 2 + 1.0 * 1) / 4
        XCTAssertEqual(p.meanLayer, weighted)
        XCTAssertEqual(p.meanLayerByCount, (-1 + 0 + 3.0) / 5.0)
        let present = CircuitMetrics.nodesPresent(circuit, graph: g)
        XCTAssertEqual(present, [true, false, false, true, true, true, true])   // a0.h* absent
    }

    // MARK: - Phase shift

    func testPhaseShiftFindsKnownKink() {
        // Similarity rises linearly to checkpoint 8, then stays flat (plus small wiggles).
        let x = (0..<20).map { Double(100 * ($0 + 1)) }
        for kink in [5, 8, 13] {
            let y: [Double] = (0..<20).map { (i: Int) -> Double in
                let rise: Double = 0.8 * Double(min(i, kink)) / Double(kink)
                return 0.2 + rise + 0.01 * sin(Double(i) * 1.7)
            }
            let fit = PhaseShift.fit(x: x, y: y)
            XCTAssertTrue(fit.isShift, "kink at \(kink): \(fit)")
            XCTAssertLessThanOrEqual(abs(fit.breakX! - x[kink]), 100, "kink at \(x[kink]), found \(fit.breakX!)")
            XCTAssertGreaterThan(fit.slopeBefore, 10 * abs(fit.slopeAfter))
            XCTAssertLessThan(fit.sseTwoSegments, 0.01 * fit.sseOneSegment)
            XCTAssertEqual(fit.segmentX.count, 3)
        }
        // Uneven spacing, no noise: exact break found.
        let xs: [Double] = [10, 20, 40, 80, 160, 320, 640]
        let ys = xs.map { $0 <= 80 ? $0 / 80 : 1 }
        let fit = PhaseShift.fit(x: xs, y: ys)
        XCTAssertTrue(fit.isShift)
        XCTAssertEqual(fit.breakX, 80)
        XCTAssertEqual(fit.sseTwoSegments, 0, accuracy: 1e-20)
    }

    func testPhaseShiftNoneForAStraightLine() {
        let x = (0..<12).map(Double.init)
        let straight = PhaseShift.fit(x: x, y: x.map { 0.1 + 0.05 * $0 })
        XCTAssertFalse(straight.isShift)
        XCTAssertEqual(straight.reasonNone, "one straight line fits exactly")
        XCTAssertNil(PhaseShift.fit(x: x, y: x.map { _ in 1 }).segmentX.first)
        XCTAssertFalse(PhaseShift.fit(x: x, y: x.map { _ in 1 }).isShift)

        // A straight line with noise: two segments do not help enough.
        var rng = SplitMix64(seed: 7)
        let noisy: [Double] = (0..<25).map { i -> Double in
            let e = Double(rng.nextGaussian())
            return 0.3 + 0.02 * Double(i) + 0.03 * e
        }
        let fit = PhaseShift.fit(x: (0..<25).map(Double.init), y: noisy)
        XCTAssertFalse(fit.isShift, "\(fit)")
        XCTAssertLessThan(fit.improvement, fit.threshold)
        XCTAssertGreaterThan(fit.threshold, 0.2)   // the null quantile at 25 points (≈ 0.29), above the 10 % floor

        let short = PhaseShift.fit(x: [1, 2, 3], y: [0, 1, 1])
        XCTAssertFalse(short.isShift)
        XCTAssertEqual(short.reasonNone, "fewer than 4 points (3)")
        // NaN points are dropped before counting.
        XCTAssertEqual(PhaseShift.fit(x: [1, 2, 3, 4], y: [0, .nan, 1, 1]).n, 3)
    }

    // MARK: - Ticks

    func testNiceTicks() {
        XCTAssertEqual(NiceScale(min: 0, max: 1).ticks, [0, 0.2, 0.4, 0.6, 0.8, 1])
        let steps = NiceScale(min: 100, max: 2500, maxTicks: 7, integer: true)
        XCTAssertEqual(steps.ticks, [0, 500, 1000, 1500, 2000, 2500])
        XCTAssertEqual(steps.label(1500), "1500")
        let one = NiceScale(min: 300, max: 300, integer: true)
        XCTAssertTrue(one.ticks.contains(300) && one.lower < 300 && one.upper > 300)
        XCTAssertTrue(one.ticks.allSatisfy { $0 == $0.rounded() })
        let small = NiceScale(min: -0.013, max: 0.021, maxTicks: 5)
        XCTAssertEqual(small.step, 0.01)
        XCTAssertEqual(small.label(-0.01), "-0.01")
        XCTAssertEqual(small.label(0), "0.00")
        XCTAssertEqual(NiceScale(min: 0, max: 1).label(0.5, percent: true), "50 %")
        let inside = NiceScale(min: 0.03, max: 0.97, maxTicks: 5, expand: false)
        XCTAssertTrue(inside.ticks.allSatisfy { $0 >= 0.03 && $0 <= 0.97 })
    }

    // MARK: - The whole analysis on a synthetic sweep

    /// Edges of the city/new/high circuit at steps 100, 200, 300 = 400.
    private let newHigh: [[String]] = [
        ["input->a0.h0<q>", "input->m0", "a0.h0->m0", "m0->logits", "a1.h0->logits"],
        ["input->m0", "a0.h0->m0", "m0->logits", "a1.h0->logits", "m1->logits"],
        ["input->m0", "m0->logits", "a1.h0->logits", "m1->logits", "a1.h1->m1"],
        ["input->m0", "m0->logits", "a1.h0->logits", "m1->logits", "a1.h1->m1"],
    ]
    private let newHighScores: [String: Float] = ["input->a0.h0<q>": 0.5, "input->m0": 1, "a0.h0->m0": -1, "m0->logits": -2,
                                                  "a1.h0->logits": 0.5, "m1->logits": 0.25, "a1.h1->m1": 0.25]

    /// Writes the sweep: 4 checkpoints (a fifth, step 500, only in acquisition.nc), task city,
    /// types new/revised, buckets high/low, top-n 3 and 5; city/revised/low missing at step 300.
    private func writeSweep(permuted: Bool = false) throws -> AnalysisInputPaths {
        let fx = SweepFixture(steps: [100, 200, 300, 400], tasks: ["city"], types: ["new", "revised"], frequencies: ["high", "low"])
        var sweep = fx
        sweep.topn = [3, 5]
        let missing = { (c: Int, y: Int, f: Int) in c == 2 && y == 1 && f == 1 }
        try sweep.writeCircuits(path("circuits.nc")) { c, _, y, f, k in
            if missing(c, y, f) { return nil }
            let edges = (y, f) == (0, 0) ? self.newHigh[c] : ["input->m0", "m0->logits"]
            var cell = SweepFixture.CircuitCell(mask: fx.mask(k == 1 ? edges : Array(edges.prefix(3))))
            cell.faithfulness = 0.5 + 0.1 * Double(c)
            cell.entropy = (y, f) == (0, 0) ? .nan : 0.5
            cell.hits = { ty, tf in (ty, tf) == (y, f) ? 0.2 + 0.2 * Double(c) : 0.9 }
            return cell
        }
        try fx.writeScores(path("scores.nc")) { c, _, y, f in
            if missing(c, y, f) { return nil }
            return (y, f) == (0, 0) ? fx.scoreMatrix(self.newHighScores, rest: 0.01)
                : fx.scoreMatrix(["input->m0": 1, "m0->logits": 1], rest: 0.01)
        }
        var acquisition = fx
        acquisition.steps = [100, 200, 300, 400, 500]
        let hits: [[[Double]]] = [[[0.2, 0.6, 0.8, 0.9, 0.95], [0.0, 0.5, 0.6, 0.7, 0.95]],
                                  [[0.1, 0.2, 0.4, 0.7, 0.95], [0.0, 0.2, .nan, 0.5, 0.95]]]
        try acquisition.writeAcquisition(path("acquisition.nc"), permuted: permuted) { name, c, a, y, f in
            if missing(c, y, f) { return .nan }
            switch name {
            case "hits_at_10": return hits[y][f][c]
            case "exact_match":
                if (y, f) == (0, 0) { return a == 0 ? [0.1, 0.3, 0.6, 0.8, 0.9][c] : [0.1, 0.5, 0.6, 0.9, 0.9][c] }
                return 0.2
            default: return 0.1
            }
        }
        return AnalysisInputPaths(scores: path("scores.nc"), circuits: path("circuits.nc"), acquisition: path("acquisition.nc"))
    }

    private func assertEqual(_ a: [Double], _ b: [Double], accuracy: Double = 1e-12, _ message: String = "",
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where !(x.isNaN && y.isNaN) {
            XCTAssertEqual(x, y, accuracy: accuracy, "\(message) [\(i)]: \(a) vs \(b)", file: file, line: line)
        }
    }

    func testAnalysisOfSyntheticSweep() throws {
        let r = try Analysis.run(inputs: try writeSweep(), options: AnalysisOptions(phaseSimulations: 500))
        XCTAssertEqual(r.steps, [100, 200, 300, 400, 500])
        XCTAssertEqual(r.types, ["new", "revised"])
        XCTAssertEqual(r.frequencies, ["high", "low"])
        XCTAssertEqual(r.topn, 5)
        XCTAssertEqual(r.graph, GraphNames.standard(layers: 2, heads: 2))

        // Performance: means over the two attributes; circuit hits@10 of the cell's own target.
        assertEqual(r.fullExactMatch!.series(0, 0), [0.1, 0.4, 0.6, 0.85, 0.9])
        assertEqual(r.fullHitsAt10!.series(1, 1), [0.0, 0.2, .nan, 0.5, 0.95])
        XCTAssertEqual(r.firstStep(r.meanOverBuckets(r.fullHitsAt10!, type: 0)), 200)
        XCTAssertEqual(r.firstStep(r.meanOverBuckets(r.fullHitsAt10!, type: 1)), 400)
        XCTAssertNil(r.firstStep(r.meanOverBuckets(r.fullExactMatch!, type: 1)))
        assertEqual(r.circuitHitsAt10!.values.enumerated().filter { $0.offset % 4 == 0 }.map(\.element).prefix(4).map { $0 },
                    [0.2, 0.4, 0.6, 0.8])
        for y in 0..<2 { for f in 0..<2 {
            assertEqual(r.steps.indices.map { r.circuitHitsAt10![$0, 0, y, f] },
                        (y, f) == (1, 1) ? [0.2, 0.4, .nan, 0.8, .nan] : [0.2, 0.4, 0.6, 0.8, .nan], "circuit hits \(y) \(f)")
        } }

        // Topology of city/new/high, by hand.
        assertEqual(r.jaccardFinal!.series(0, 0, 0), [3.0 / 7, 4.0 / 6, 1, 1, .nan])
        assertEqual(r.jaccardPrevious!.series(0, 0, 0), [.nan, 4.0 / 6, 4.0 / 6, 1, .nan])
        assertEqual(r.faithfulness!.series(0, 0, 0), [0.5, 0.6, 0.7, 0.8, .nan])
        assertEqual(r.nEdges!.series(0, 0, 0), [5, 5, 5, 5, .nan])
        // Entropy: computed from scores.nc (circuits.nc holds NaN) for new/high; stored value elsewhere.
        let p: [Double] = [1, 2, 0.5, 0.25, 0.25].map { $0 / 4 }
        XCTAssertEqual(r.edgeEntropy![3, 0, 0, 0], -p.map { $0 * log($0) }.reduce(0, +), accuracy: 1e-7)
        XCTAssertEqual(r.edgeEntropy![3, 0, 1, 0], 0.5)
        // The missing cell: skipped; its next checkpoint compares with the one before the gap.
        assertEqual(r.jaccardFinal!.series(0, 1, 1), [1, 1, .nan, 1, .nan])
        assertEqual(r.jaccardPrevious!.series(0, 1, 1), [.nan, 1, .nan, 1, .nan])
        XCTAssertEqual(r.finalStep[CellIndex(task: 0, type: 0, frequency: 0)], 400)
        XCTAssertEqual(r.phaseShift[CellIndex(task: 0, type: 0, frequency: 0)]?.n, 4)
        XCTAssertEqual(r.phaseShift[CellIndex(task: 0, type: 1, frequency: 1)]?.n, 3)

        // Components of city/new/high: upstream layers embed, 0, 1.
        assertEqual((0..<3).map { r.edgeShare![3, 0, 0, 0, $0] }, [0.2, 0.2, 0.6])
        assertEqual((0..<3).map { r.scoreShare![3, 0, 0, 0, $0] }, [0.25, 0.5, 0.25])
        XCTAssertEqual(r.meanLayer![3, 0, 0, 0], 0, accuracy: 1e-12)
        // Step 100: edges input (0.5, 1), a0.h0 (1), m0 (2), a1.h0 (0.5) → mass [1.5, 3, 0.5] / 5.
        assertEqual((0..<3).map { r.edgeShare![0, 0, 0, 0, $0] }, [0.4, 0.4, 0.2])
        XCTAssertEqual(r.meanLayer![0, 0, 0, 0], (-1.5 + 0.5) / 5, accuracy: 1e-12)
        // All circuits at step 400: new/high [1, 1, 3] edges and [1, 2, 1] mass + 3 cells of [1, 1, 0].
        assertEqual((0..<3).map { r.edgeShareAll![3, $0] }, [4.0 / 11, 4.0 / 11, 3.0 / 11])
        assertEqual((0..<3).map { r.scoreShareAll![3, $0] }, [0.4, 0.5, 0.1])
        XCTAssertEqual(r.meanLayerAll![3], (-4.0 + 1) / 10, accuracy: 1e-12)
        // Step 300 lacks city/revised/low.
        assertEqual((0..<3).map { r.edgeShareAll![2, $0] }, [1.0 / 3, 1.0 / 3, 1.0 / 3])
        XCTAssertTrue(r.meanLayerAll![4].isNaN)

        // Node presence in city/new/high (4 checkpoints): a0.h0 at 100, 200; m1 at 200–400; a1.h0 always.
        let node = { (name: String) in r.nodePresence![0, 0, 0, r.graph!.upstream.firstIndex(of: name)!] }
        XCTAssertEqual(node("a0.h0"), 0.5)
        XCTAssertEqual(node("m1"), 0.75)
        XCTAssertEqual(node("a1.h0"), 1)
        XCTAssertEqual(node("a0.h1"), 0)
        XCTAssertEqual(r.headsByPresence().first?.name, "a1.h0")

        // Missing cells, per file.
        let missing = r.missing.map { "\(URL(fileURLWithPath: $0.file).lastPathComponent) \($0.step) \($0.cell)" }
        XCTAssertTrue(missing.contains("acquisition.nc 300 revised/low"))
        XCTAssertTrue(missing.contains("circuits.nc 300 city/revised/low"))
        XCTAssertTrue(missing.contains("scores.nc 300 city/revised/low"))
        XCTAssertTrue(missing.contains("circuits.nc 500 city/new/high"))
        XCTAssertEqual(missing.filter { $0.hasPrefix("circuits.nc") }.count, 1 + 4)
        XCTAssertEqual(missing.filter { $0.hasPrefix("acquisition.nc") }.count, 1)

        // Final-circuit heat maps: city/high for each type, only circuit edges carry a score.
        XCTAssertEqual(r.finalMaps.map(\.type), ["new", "revised"])
        XCTAssertEqual(r.finalMaps[0].scores.filter { !$0.isNaN }.count, 5)
        XCTAssertEqual(r.finalMaps[0].step, 400)

        // The summary dkc analyze prints: one row per type × bucket, first → last checkpoint.
        let table = r.summaryTable().split(separator: "\n").map(String.init)
        XCTAssertEqual(table[0], "checkpoint 100 → 500; circuits of the top 5 edges, mean over tasks")
        XCTAssertTrue(table[1].hasPrefix("type") && table[1].contains("first-token acc.") && table[1].contains("faithfulness"), table[1])
        XCTAssertEqual(table.count, 3 + 4)
        let newHigh = table[3].components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        XCTAssertEqual(newHigh[0], "new")
        XCTAssertEqual(newHigh[1], "high")
        XCTAssertEqual(newHigh[4], "0.50 → –", "faithfulness at 100 and (missing) at 500")
        XCTAssertEqual(newHigh[5], "0.20 → –", "circuit hits@10")
        XCTAssertTrue(table[6].hasPrefix("revised  low"), table[6])

        // A smaller circuit size selects the other top-n slice.
        let small = try Analysis.run(inputs: try writeSweep(), options: AnalysisOptions(topn: 3, phaseSimulations: 200))
        XCTAssertEqual(small.topn, 3)
        assertEqual(small.nEdges!.series(0, 0, 0), [3, 3, 3, 3, .nan])
    }

    func testReaderGoesByDimensionName() throws {
        let plain = try Analysis.run(inputs: try writeSweep(), options: AnalysisOptions(phaseSimulations: 100))
        let permuted = try Analysis.run(inputs: try writeSweep(permuted: true), options: AnalysisOptions(phaseSimulations: 100))
        XCTAssertEqual(plain.fullHitsAt10!.values.map { $0.isNaN ? -1 : $0 }, permuted.fullHitsAt10!.values.map { $0.isNaN ? -1 : $0 })
    }

    func testNamesDerivedWhenAbsent() throws {
        let fx = SweepFixture(steps: [1, 2], tasks: ["city"], types: ["new"], frequencies: ["all"], layers: 3, heads: 2)
        try fx.writeCircuits(path("c.nc"), withNames: false) { _, _, _, _, _ in SweepFixture.CircuitCell(mask: fx.mask(["a2.h1->logits"])) }
        let r = try Analysis.run(inputs: AnalysisInputPaths(circuits: path("c.nc")), options: AnalysisOptions(phaseSimulations: 50))
        XCTAssertEqual(r.graph, GraphNames.standard(layers: 3, heads: 2))
        XCTAssertEqual(r.edgeShare![0, 0, 0, 0, 3], 1)   // layer 2 = slot 3
        XCTAssertNil(r.meanLayer)                         // no scores.nc
        XCTAssertEqual(r.meanLayerByCount![1, 0, 0, 0], 2)
    }

    // MARK: - Outputs

    func testOutputsOfSyntheticSweep() throws {
        let r = try Analysis.run(inputs: try writeSweep(), options: AnalysisOptions(phaseSimulations: 200))
        let out = folder.appendingPathComponent("analysis")
        let written = try AnalysisOutput.write(r, to: out, commandLine: "dkc analyze --run test")
        for name in ["analysis.nc", "report.md", "acquisition_full_hits_at_10.svg", "acquisition_full_exact_match.svg",
                     "acquisition_circuit_hits_at_10.svg", "faithfulness.svg", "topology_jaccard_final.svg",
                     "topology_jaccard_previous.svg", "topology_edge_entropy.svg", "phase_shift.svg", "components_mean_layer.svg",
                     "components_edge_share.svg", "components_score_share.svg", "final_circuit_city_new_high.svg",
                     "final_circuit_city_revised_high.svg"] {
            XCTAssertTrue(written.contains(name), "\(name) not written: \(written)")
        }

        // Every SVG is well-formed XML.
        for name in written where name.hasSuffix(".svg") {
            let svg = try SVGSummary(url: out.appendingPathComponent(name))
            XCTAssertEqual(svg.root, "svg", name)
        }
        // One path per type × bucket series, each named in the legend.
        let hits = try SVGSummary(url: out.appendingPathComponent("acquisition_full_hits_at_10.svg"))
        XCTAssertEqual(hits.seriesPaths, 4)
        XCTAssertEqual(hits.legendTexts, ["new · high", "new · low", "revised · high", "revised · low"])
        XCTAssertTrue(hits.texts.contains("50 %"))
        let heat = try SVGSummary(url: out.appendingPathComponent("final_circuit_city_new_high.svg"))
        XCTAssertEqual(heat.cellRects, 5)
        XCTAssertTrue(heat.hasColorBar)

        // analysis.nc, read back by name.
        let nc = try NetCDFFile.open(path: out.appendingPathComponent("analysis.nc").path)
        XCTAssertEqual(try nc.read("checkpoint", as: Int64.self), [100, 200, 300, 400, 500])
        XCTAssertEqual(try nc.readStrings("type"), ["new", "revised"])
        XCTAssertEqual(try nc.variable("jaccard_final").dimensions, ["checkpoint", "task", "type", "frequency"])
        let j = try nc.read("jaccard_final", as: Double.self, start: [0, 0, 0, 0], count: [5, 1, 1, 1])
        assertEqual(j, [3.0 / 7, 4.0 / 6, 1, 1, .nan])
        XCTAssertEqual(try nc.variable("edge_share").dimensions, ["checkpoint", "task", "type", "frequency", "layer"])
        XCTAssertEqual(try nc.read("layer", as: Int64.self), [-1, 0, 1])
        XCTAssertEqual(try nc.readStrings("layer_name"), ["embed", "0", "1"])
        XCTAssertEqual(try nc.read("first_step_full_hits_at_10_by_type", as: Double.self), [200, 400])
        for attribute in ["title", "source", "history", "config", "created"] {
            XCTAssertFalse(try nc.textAttribute(attribute).isEmpty, attribute)
        }
        XCTAssertTrue(try nc.textAttribute("history").hasSuffix("dkc analyze --run test"))
        XCTAssertEqual(try nc.textAttribute("units", of: "edge_entropy"), "nat")

        // The report: one sentence per finding with its numbers; missing cells listed; figures embedded.
        let report = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("New knowledge reaches 50 % full-model hits@10 (mean over buckets and attributes) at checkpoint step 200, revised knowledge at step 400."), report)
        // Four checkpoints: too few for the null quantile to let a break through; revised circuits never change.
        XCTAssertTrue(report.contains("**Topology.** No phase shift from circuit formation to optimisation is found"), report)
        XCTAssertTrue(report.contains("; revised knowledge: one straight line fits exactly."), report)
        XCTAssertTrue(report.contains("**Components.** The |score|-weighted mean layer of circuit edges"))
        XCTAssertTrue(report.contains("  - step 300: city/revised/low"))
        XCTAssertTrue(report.contains("![") && report.contains("(acquisition_full_hits_at_10.svg)"))
        // a1.h0: in every circuit of city/new/high, in none of the other three cells' circuits.
        XCTAssertTrue(report.contains("| a1.h0 | 25 % | 1 of 4 |"), report)
    }

    func testSingleCheckpoint() throws {
        let fx = SweepFixture(steps: [42], tasks: ["city", "major"], types: ["new"], frequencies: ["high"])
        try fx.writeCircuits(path("c.nc")) { _, t, _, _, _ in
            var cell = SweepFixture.CircuitCell(mask: fx.mask(t == 0 ? ["input->m0", "m0->logits"] : ["a0.h1->logits"]))
            cell.hits = { _, _ in 0.7 }
            return cell
        }
        try fx.writeScores(path("s.nc")) { _, _, _, _ in fx.scoreMatrix(["input->m0": 1, "m0->logits": 3, "a0.h1->logits": 2]) }
        try fx.writeAcquisition(path("a.nc")) { _, _, _, _, _ in 0.3 }
        let inputs = AnalysisInputPaths(scores: path("s.nc"), circuits: path("c.nc"), acquisition: path("a.nc"))
        let r = try Analysis.run(inputs: inputs, options: AnalysisOptions(phaseSimulations: 50))
        XCTAssertEqual(r.steps, [42])
        XCTAssertEqual(r.jaccardFinal![0, 1, 0, 0], 1)
        XCTAssertTrue(r.jaccardPrevious![0, 0, 0, 0].isNaN)
        XCTAssertEqual(r.phaseShiftByType["new"]?.isShift, false)
        XCTAssertEqual(r.phaseShiftByType["new"]?.reasonNone, "fewer than 4 points (1)")
        // Two circuits: input→m0 (1), m0→logits (3), a0.h1→logits (2): mass [1, 5, 0] / 6.
        assertEqual((0..<3).map { r.scoreShareAll![0, $0] }, [1.0 / 6, 5.0 / 6, 0])
        XCTAssertTrue(r.missing.isEmpty)

        let out = folder.appendingPathComponent("one")
        let written = try AnalysisOutput.write(r, to: out, commandLine: "dkc analyze")
        for name in written where name.hasSuffix(".svg") {
            let svg = try SVGSummary(url: out.appendingPathComponent(name))
            XCTAssertGreaterThan(svg.circles + svg.cellRects, 0, "\(name) shows nothing")
        }
        let report = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("New knowledge never reaches 50 % full-model hits@10 (mean over buckets and attributes) (best 30 % at step 42)."), report)
        XCTAssertTrue(report.contains("No phase shift from circuit formation to optimisation is found (two-segment fit of the similarity " +
                                        "to the final circuit, mean over tasks and buckets): new knowledge: fewer than 4 points (1)."))
        XCTAssertTrue(report.contains("at the only checkpoint (step 42)"))
        XCTAssertTrue(report.contains("None: every input holds every cell"))
    }

    /// A circuit that grows edge by edge until step 500 and then stays: similarity to the final
    /// circuit 0.2, 0.4, …, 1 and flat, so the phase shift is at 500 (an exact hinge).
    func testPhaseShiftReported() throws {
        let fx = SweepFixture(steps: (1...10).map { Int64(100 * $0) }, tasks: ["city"], types: ["new"], frequencies: ["all"])
        let g = GraphNames.standard(layers: 2, heads: 2)
        var final: [Int8] = []
        var kept = 0
        for u in g.upstream.indices { for d in g.downstream.indices {
            let take = g.isEdge(upstream: u, downstream: d) && kept < 10
            if take { kept += 1 }
            final.append(take ? 1 : 0)
        } }
        let order = final.indices.filter { final[$0] == 1 }
        try fx.writeCircuits(path("c.nc")) { c, _, _, _, _ in
            var mask = [Int8](repeating: 0, count: final.count)
            for i in order.prefix(min(2 + 2 * c, 10)) { mask[i] = 1 }
            return SweepFixture.CircuitCell(mask: mask)
        }
        let r = try Analysis.run(inputs: AnalysisInputPaths(circuits: path("c.nc")), options: AnalysisOptions(phaseSimulations: 500))
        assertEqual(r.jaccardFinal!.series(0, 0, 0), [0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1, 1, 1])
        let fit = try XCTUnwrap(r.phaseShiftByType["new"])
        XCTAssertTrue(fit.isShift)
        XCTAssertEqual(fit.breakX, 500)
        XCTAssertEqual(fit.slopeBefore, 0.2 / 100, accuracy: 1e-12)
        XCTAssertEqual(fit.slopeAfter, 0, accuracy: 1e-12)
        let out = folder.appendingPathComponent("shift")
        try AnalysisOutput.write(r, to: out, commandLine: "dkc analyze")
        let report = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("comes at checkpoint step 500 for new knowledge (similarity to the final circuit rises " +
                                      "0.200 per checkpoint before and 0.000 after; two segments lower the error by 100 %)."), report)
        XCTAssertTrue(report.contains("No acquisition data: acquisition.nc was not given."))
        let nc = try NetCDFFile.open(path: out.appendingPathComponent("analysis.nc").path)
        XCTAssertEqual(try nc.read("phase_shift_step_by_type", as: Double.self), [500])
        XCTAssertEqual(try nc.read("phase_shift_step", as: Double.self), [500])
        XCTAssertFalse(nc.hasVariable("full_hits_at_10"))
        let svg = try SVGSummary(url: out.appendingPathComponent("phase_shift.svg"))
        XCTAssertEqual(svg.legendTexts, ["new: similarity to final", "new: two-segment fit"])
        XCTAssertTrue(svg.texts.contains("new: phase shift at 500"))
    }

    // MARK: - Errors

    func testErrorsNameFileAndFix() throws {
        XCTAssertThrowsError(try AnalysisInputPaths.resolve(run: nil, scores: path("nope.nc"), circuits: nil, acquisition: nil)) { e in
            XCTAssertTrue("\(e)".contains("--scores \(path("nope.nc")): no such file"), "\(e)")
        }
        XCTAssertThrowsError(try AnalysisInputPaths.resolve(run: folder.path, scores: nil, circuits: nil, acquisition: nil)) { e in
            XCTAssertTrue("\(e)".contains("circuits/circuits.nc"), "\(e)")
            XCTAssertEqual((e as? AnalysisError)?.exitCode, 65)
        }
        let inputs = try writeSweep()
        XCTAssertThrowsError(try Analysis.run(inputs: inputs, options: AnalysisOptions(topn: 7))) { e in
            XCTAssertTrue("\(e)".contains("--topn 7") && "\(e)".contains("3, 5"), "\(e)")
            XCTAssertEqual((e as? AnalysisError)?.exitCode, 64)
        }
        XCTAssertThrowsError(try Analysis.run(inputs: inputs, options: AnalysisOptions(attributes: ["birthday"]))) { e in
            XCTAssertTrue("\(e)".contains("city, company"), "\(e)")
        }
        // A circuits file without in_circuit.
        let f = try NetCDFFile.create(path: path("bad.nc"))
        try f.addDimension("checkpoint", length: 1)
        try f.addVariable("checkpoint", type: .int64, dimensions: ["checkpoint"])
        for d in ["task", "type", "frequency"] {
            try f.addDimension(d, length: 1)
            try f.addVariable(d, type: .string, dimensions: [d])
        }
        try f.addDimension("topn", length: 1)
        try f.write([Int64(1)], to: "checkpoint")
        for d in ["task", "type", "frequency"] { try f.write(["x"], to: d) }
        try f.close()
        XCTAssertThrowsError(try Analysis.run(inputs: AnalysisInputPaths(circuits: path("bad.nc")))) { e in
            XCTAssertTrue("\(e)".contains("bad.nc") && "\(e)".contains("'in_circuit'") && "\(e)".contains("outputs.md"), "\(e)")
        }
        // Steps repeated in one file (two stages in one sweep).
        let fx = SweepFixture(steps: [5, 5], tasks: ["city"], types: ["new"], frequencies: ["high"])
        try fx.writeAcquisition(path("dup.nc")) { _, _, _, _, _ in 0.5 }
        XCTAssertThrowsError(try Analysis.run(inputs: AnalysisInputPaths(acquisition: path("dup.nc")))) { e in
            XCTAssertTrue("\(e)".contains("step 5 appears twice"), "\(e)")
        }
    }
}

/// What the tests check in an SVG file, collected with Foundation's XMLParser (so the file must
/// be well-formed XML).
final class SVGSummary: NSObject, XMLParserDelegate {
    private(set) var root = ""
    private(set) var seriesPaths = 0
    private(set) var circles = 0
    private(set) var cellRects = 0
    private(set) var hasColorBar = false
    private(set) var legendTexts: [String] = []
    private(set) var texts: [String] = []
    private var groups: [String] = []
    private var inText = false
    private var text = ""

    init(url: URL) throws {
        super.init()
        let parser = XMLParser(data: try Data(contentsOf: url))
        parser.delegate = self
        guard parser.parse() else {
            throw NSError(domain: "SVGSummary", code: 1,
                          userInfo: [NSLocalizedDescriptionKey: "\(url.lastPathComponent): \(parser.parserError.map { "\($0)" } ?? "not XML")"])
        }
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if root.isEmpty { root = name }
        switch name {
        case "g":
            groups.append(attributes["class"] ?? "")
            if attributes["class"] == "colorbar" { hasColorBar = true }
        case "path" where groups.last == "series": seriesPaths += 1
        case "circle" where groups.last == "series": circles += 1
        case "rect" where groups.last == "cells": cellRects += 1
        case "text": inText = true; text = ""
        default: break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { if inText { text += string } }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "g" { groups.removeLast() }
        if name == "text" {
            inText = false
            texts.append(text)
            if groups.last == "legend" { legendTexts.append(text) }
        }
    }
}

/// The statistics added for issue 14 (docs/analysis.md): edge activation ratio, node-set Jaccard,
/// cross-frequency circuit tests, first-token accuracy from metrics.jsonl.
final class AnalysisStudyStatisticsTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-analysis-study-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// The closed forms of analysis.md against the graph's own count of edges by parent layer, and the
    /// parallel-block graph (Phi) by hand.
    func testPossibleEdgesClosedFormsMatchTheGraph() {
        // Sequential blocks, L layers of H heads: a head of ℓ feeds 3H(L−1−ℓ) head inputs, L−ℓ MLPs and
        // logits; the MLP of ℓ feeds (3H+1)(L−1−ℓ) inputs and logits; input feeds 3HL + L + 1.
        func closedForm(_ layers: Int, _ heads: Int) -> [Double] {
            (0..<layers).map { l in
                let head = 3 * heads * (layers - 1 - l) + (layers - l) + 1
                let mlp = (3 * heads + 1) * (layers - 1 - l) + 1
                let input = l == 0 ? 3 * heads * layers + layers + 1 : 0
                return Double(heads * head + mlp + input)
            }
        }
        for (l, h) in [(1, 1), (2, 2), (2, 4), (3, 5), (12, 12), (24, 16)] {
            let g = GraphNames.standard(layers: l, heads: h)
            XCTAssertEqual(g.nHeads, h)
            var counted = [Double](repeating: 0, count: l)
            for u in g.upstream.indices {
                for d in g.downstream.indices where g.isEdge(upstream: u, downstream: d) { counted[max(0, g.upstreamLayer[u])] += 1 }
            }
            XCTAssertEqual(closedForm(l, h), counted, "\(l) × \(h)")
            XCTAssertEqual(g.edgesByParentLayer, counted, "\(l) × \(h)")
        }
        // By hand, L = 2, H = 2: layer 0 = heads 2·(6 + 2 + 1) + MLP (7 + 1) + input (12 + 2 + 1) = 41; layer 1 = 2·2 + 1 = 5.
        XCTAssertEqual(GraphNames.standard(layers: 2, heads: 2).edgesByParentLayer, [41, 5])
        // Parallel blocks: no head feeds its own layer's MLP, H edges fewer per layer: [39, 3]; the Phi
        // fixture's shape (L = 2, H = 4) has 110 − 8 = 102 edges, [97, 5].
        XCTAssertEqual(GraphNames.standard(layers: 2, heads: 2, parallel: true).edgesByParentLayer, [39, 3])
        XCTAssertEqual(GraphNames.standard(layers: 2, heads: 4, parallel: true).edgesByParentLayer, [97, 5])
        let seq = GraphNames.standard(layers: 2, heads: 2)
        let m0 = seq.downstream.firstIndex(of: "m0")!, head = seq.upstream.firstIndex(of: "a0.h1")!
        XCTAssertTrue(seq.isEdge(upstream: head, downstream: m0))
        XCTAssertFalse(GraphNames.standard(layers: 2, heads: 2, parallel: true).isEdge(upstream: head, downstream: m0))
    }

    /// The analysis takes sequential or parallel blocks from circuits.nc's is_edge, and refuses a mask
    /// that is neither.
    func testGraphKindFromIsEdge() {
        let seq = GraphNames.standard(layers: 2, heads: 2), par = GraphNames.standard(layers: 2, heads: 2, parallel: true)
        func mask(_ g: GraphNames) -> [Int8] {
            var m: [Int8] = []
            for u in g.upstream.indices { for d in g.downstream.indices { m.append(g.isEdge(upstream: u, downstream: d) ? 1 : 0) } }
            return m
        }
        XCTAssertEqual(seq.matching(isEdge: mask(par))?.parallel, true)
        XCTAssertEqual(par.matching(isEdge: mask(seq))?.parallel, false)
        var broken = mask(seq)
        broken[0] = 0
        XCTAssertNil(seq.matching(isEdge: broken))
    }

    func testActivationRatioAndNodeSetByHand() {
        let fx = SweepFixture(steps: [1], tasks: ["city"], types: ["new"], frequencies: ["high"])
        let g = GraphNames.standard(layers: 2, heads: 2)
        let circuit = CircuitEdges(mask: fx.mask(["input->m0", "m0->logits", "a1.h0->logits", "m1->logits", "a1.h1->m1"]))
        let p = CircuitMetrics.layerProfile(circuit, graph: g)
        XCTAssertEqual(CircuitMetrics.keptEdgesByParentLayer(p), [2, 3])
        XCTAssertEqual(CircuitMetrics.edgeActivationRatio(p, graph: g), [2.0 / 41, 3.0 / 5])
        // Nodes: input 0, m0 3, a1.h0 4, a1.h1 5, m1 6, logits 7.
        XCTAssertEqual(CircuitMetrics.nodeSet(circuit, graph: g), [0, 3, 4, 5, 6, 7])
        XCTAssertEqual(CircuitMetrics.ratioCentre([2.0 / 41, 3.0 / 5]), (3.0 / 5) / (2.0 / 41 + 3.0 / 5), accuracy: 1e-15)

        // Node vs edge Jaccard: {input→m0, m0→logits} vs {input→a1.h0<q>, a1.h0→logits}: no common edge,
        // nodes {input, m0, logits} vs {input, a1.h0, logits} → 2 / 4.
        let a = CircuitEdges(mask: fx.mask(["input->m0", "m0->logits"]))
        let b = CircuitEdges(mask: fx.mask(["input->a1.h0<q>", "a1.h0->logits"]))
        XCTAssertEqual(CircuitMetrics.jaccard(a.edges, b.edges), 0)
        XCTAssertEqual(CircuitMetrics.jaccard(CircuitMetrics.nodeSet(a, graph: g), CircuitMetrics.nodeSet(b, graph: g)), 0.5)
        // An empty circuit still has the logits node (as the notebook counts it).
        XCTAssertEqual(CircuitMetrics.nodeSet(CircuitEdges(edges: []), graph: g), [7])
    }

    /// reference/components.json `circuits[n]` and `jaccard`: the study's own numbers for the top-10/50/200
    /// circuits of reference/eap/graph_EAP-IG.json, reproduced exactly from dkc's circuits.
    func testActivationRatioAndNodeJaccardMatchTheStudy() throws {
        let root = try AttributionFixtures.requireFixtures()
        // The project's JSON reader: it reads numbers exactly (Foundation's parser on Linux can be one ulp off).
        let reference = try JSONValue(parsing: Data(contentsOf: root.appendingPathComponent("reference/components.json")))
        func doubles(_ v: JSONValue?) -> [Double] { v?.arrayValue?.compactMap(\.doubleValue) ?? [] }
        let g = AttributionGraph(nLayers: 2, nHeads: 4)
        let names = GraphNames.standard(layers: 2, heads: 4)
        XCTAssertEqual(g.forwardNames, names.upstream)
        var edgeSets: [Int: [Int32]] = [:], nodeSets: [Int: [Int32]] = [:]
        for n in [10, 50, 200] {
            let ref = try XCTUnwrap(reference["circuits"]?[String(n)])
            var c = try Circuit(jsonFile: root.appendingPathComponent("reference/eap/graph_EAP-IG.json"))
            c.reset()
            c.applyTopN(n, absolute: true)
            c.pruneDeadNodes()
            let circuit = CircuitEdges(mask: c.inGraphMask.map { $0 ? 1 : 0 })
            XCTAssertEqual(circuit.edges.count, ref["n_edges"]?.intValue, "top-\(n) edges")
            let profile = CircuitMetrics.layerProfile(circuit, graph: names)
            XCTAssertEqual(CircuitMetrics.keptEdgesByParentLayer(profile), doubles(ref["edges_in_circuit_by_parent_layer"]), "top-\(n)")
            XCTAssertEqual(GraphNames.standard(layers: 2, heads: 4).edgesByParentLayer, doubles(ref["edges_by_parent_layer"]))
            XCTAssertEqual(CircuitMetrics.edgeActivationRatio(profile, graph: names), doubles(ref["edge_activation_ratio"]),
                           "top-\(n) edge activation ratio")
            let nodes = CircuitMetrics.nodeSet(circuit, graph: names)
            let nodeNames = nodes.map { Int($0) < names.upstream.count ? names.upstream[Int($0)] : "logits" }
            XCTAssertEqual(Set(nodeNames), Set(ref["nodes_in_graph"]?.arrayValue?.compactMap(\.stringValue) ?? []), "top-\(n) nodes")
            XCTAssertEqual(nodes.count, ref["count_included_nodes"]?.intValue)
            edgeSets[n] = circuit.edges
            nodeSets[n] = nodes
        }
        for (a, b) in [(10, 50), (10, 200), (50, 200)] {
            let ref = try XCTUnwrap(reference["jaccard"]?["\(a)_vs_\(b)"])
            XCTAssertEqual(CircuitMetrics.jaccard(nodeSets[a]!, nodeSets[b]!), ref["nodes"]?.doubleValue, "\(a) vs \(b) nodes")
            XCTAssertEqual(CircuitMetrics.jaccard(edgeSets[a]!, edgeSets[b]!), ref["edges"]?.doubleValue, "\(a) vs \(b) edges")
        }
    }

    /// A sweep of 3 checkpoints, top-n 2 and 4, buckets high/low, types new/revised; every circuit
    /// hits@10 is 0.1·(checkpoint+1) + 0.2·(source bucket) + 0.4·(target bucket) + 0.05·(target type).
    private func writeSmallSweep() throws -> SweepFixture {
        var fx = SweepFixture(steps: [10, 20, 30], tasks: ["city"], types: ["new", "revised"], frequencies: ["high", "low"])
        fx.topn = [2, 4]
        // new/high, top-4: step 10 {input→m0, m0→logits, a0.h0→m0, a0.h0→logits}; step 20, 30 {input→m0, m0→logits, a1.h0→logits, m1→logits};
        // top-2: the first two edges of each list.
        let lists: [[String]] = [["input->m0", "m0->logits", "a0.h0->m0", "a0.h0->logits"],
                                 ["input->m0", "m0->logits", "a1.h0->logits", "m1->logits"],
                                 ["input->m0", "m0->logits", "a1.h0->logits", "m1->logits"]]
        try fx.writeCircuits(path("circuits.nc")) { c, _, y, f, k in
            let edges = (y, f) == (0, 0) ? lists[c] : ["input->m0", "m0->logits", "a1.h1->logits", "m1->logits"]
            var cell = SweepFixture.CircuitCell(mask: fx.mask(k == 1 ? edges : Array(edges.prefix(2))))
            cell.hits = { ty, tf in 0.1 * Double(c + 1) + 0.2 * Double(f) + 0.4 * Double(tf) + 0.05 * Double(ty) }
            return cell
        }
        return fx
    }

    func testActivationRatioNodeJaccardAndCrossFrequencyInTheAnalysis() throws {
        _ = try writeSmallSweep()
        let r = try Analysis.run(inputs: AnalysisInputPaths(circuits: path("circuits.nc")), options: AnalysisOptions(phaseSimulations: 50))
        XCTAssertEqual(r.topnAxis, [2, 4])
        XCTAssertEqual(r.edgesByParentLayer, [41, 5])
        let ratio = r.edgeActivationRatio!
        XCTAssertEqual(ratio.dimensions, ["checkpoint", "task", "type", "frequency", "topn", "parent_layer"])
        // new/high at step 10: top-4 all in layer 0 (input, m0, a0.h0 ×2) → [4/41, 0]; top-2 → [2/41, 0].
        XCTAssertEqual([ratio[0, 0, 0, 0, 1, 0], ratio[0, 0, 0, 0, 1, 1]], [4.0 / 41, 0])
        XCTAssertEqual([ratio[0, 0, 0, 0, 0, 0], ratio[0, 0, 0, 0, 0, 1]], [2.0 / 41, 0])
        // Step 20: input→m0, m0→logits in layer 0; a1.h0→logits, m1→logits in layer 1 → [2/41, 2/5].
        XCTAssertEqual([ratio[1, 0, 0, 0, 1, 0], ratio[1, 0, 0, 0, 1, 1]], [2.0 / 41, 2.0 / 5])
        XCTAssertEqual(r.edgesInCircuitByParentLayer![1, 0, 0, 0, 1, 1], 2)
        // Mean over the 4 cells at the analysed top-n (4): step 10 layer 1 = (0 + 3 · 2/5) / 4.
        XCTAssertEqual(r.edgeActivationRatioAll![0, 1], 3.0 * 0.4 / 4, accuracy: 1e-15)

        // Node sets of new/high: step 10 {input, a0.h0, m0, logits}; 20 = 30 {input, m0, a1.h0, m1, logits}.
        // Against final: 3 common of 6 → 0.5, edges 2 common of 6 → 1/3.
        XCTAssertEqual(r.jaccardNodesFinal!.series(0, 0, 0), [0.5, 1, 1])
        XCTAssertEqual(r.jaccardFinal!.series(0, 0, 0)[0], 2.0 / 6)
        let previous = r.jaccardNodesPrevious!.series(0, 0, 0)
        XCTAssertTrue(previous[0].isNaN)
        XCTAssertEqual(Array(previous[1...]), [0.5, 1])

        // Cross-frequency: target type = source type; source low (f = 1) on target high at step 20, revised:
        // 0.2 + 0.2 + 0 + 0.05.
        let cross = r.crossFrequencyHitsAt10!
        XCTAssertEqual(cross.dimensions, ["checkpoint", "task", "type", "frequency", "target_frequency"])
        XCTAssertEqual(cross[1, 0, 1, 1, 0], 0.45, accuracy: 1e-12)
        XCTAssertEqual(cross[2, 0, 0, 0, 1], 0.3 + 0.4, accuracy: 1e-12)
        // The study's figure: mean over the two types (0 and 0.05) → + 0.025.
        XCTAssertEqual(r.crossFrequencyBySource![0, 1, 1], 0.1 + 0.2 + 0.4 + 0.025, accuracy: 1e-12)
        // The circuit's own hits@10 stays the diagonal.
        XCTAssertEqual(r.circuitHitsAt10![2, 0, 1, 1], cross[2, 0, 1, 1, 1])

        // analysis.nc: named dimensions and coordinates.
        try AnalysisOutput.write(r, to: folder.appendingPathComponent("out"), commandLine: "test")
        let nc = try AnalysisInputFile(path: path("out/analysis.nc"))
        XCTAssertEqual(try nc.integers("topn"), [2, 4])
        XCTAssertEqual(try nc.integers("parent_layer"), [0, 1])
        XCTAssertEqual(try nc.labels("target_frequency"), ["high", "low"])
        let stored = try nc.array("edge_activation_ratio", order: ratio.dimensions)
        XCTAssertEqual(stored.values.map { $0.isNaN ? -1 : $0 }, ratio.values.map { $0.isNaN ? -1 : $0 })
        XCTAssertEqual(try nc.array("jaccard_nodes_final", order: ["checkpoint", "task", "type", "frequency"]).series(0, 0, 0), [0.5, 1, 1])
        XCTAssertEqual(try nc.array("cross_frequency_hits_at_10_by_source", order: ["checkpoint", "frequency", "target_frequency"])[0, 1, 1],
                       0.725, accuracy: 1e-12)
        let files = try FileManager.default.contentsOfDirectory(atPath: path("out"))
        for name in ["components_edge_activation_ratio.svg", "components_edge_activation_ratio_city_new_high.svg",
                     "acquisition_cross_frequency_high.svg", "acquisition_cross_frequency_low.svg",
                     "acquisition_cross_frequency_map_new.svg", "topology_jaccard_nodes_final.svg", "topology_jaccard_nodes_previous.svg"] {
            XCTAssertTrue(files.contains(name), "\(name) missing: \(files.sorted())")
        }
        let report = try String(contentsOfFile: path("out/report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("Edge activation ratio by parent layer 0…1"), report)
        XCTAssertTrue(report.contains("Cross-frequency circuit hits@10 at step 30"), report)
        // Step 30, circuit of low: new 0.3 + 0.2 + 0.4·q, revised + 0.05 → mean + 0.025.
        XCTAssertTrue(report.contains("| low | 52.5 % | 92.5 % |"), report)
    }

    /// metrics.jsonl written by hand: training lines skipped, evaluation lines by step, a type
    /// missing from one evaluation NaN there.
    func testFirstTokenAccuracyFromMetrics() throws {
        let stage = folder.appendingPathComponent("run/train/continual")
        try FileManager.default.createDirectory(at: stage, withIntermediateDirectories: true)
        let lines = [
            #"{"loss": 3.2, "grad_norm": 1.5, "learning_rate": 0.0001, "epoch": 0.5, "step": 10}"#,
            #"{"eval_loss": 3.0, "eval_accuracy": 0.2, "eval_first_token_accuracy_new": 0.1, "eval_first_token_accuracy_revised": 0.3, "eval_first_token_accuracy_new_city": 0.0, "eval_first_token_accuracy_new_major": 0.2, "eval_first_token_accuracy_revised_city": 0.5, "epoch": 1.0, "step": 50}"#,
            "",
            #"{"eval_loss": 2.0, "eval_first_token_accuracy_new": 0.4, "eval_first_token_accuracy_new_city": 0.25, "eval_first_token_accuracy_new_major": 0.55, "epoch": 2.0, "step": 100}"#,
        ]
        try (lines.joined(separator: "\n") + "\n").write(to: stage.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        let log = try FirstTokenLog.read(path: stage.appendingPathComponent("metrics.jsonl").path, stage: "continual")
        XCTAssertEqual(log.steps, [50, 100])
        XCTAssertEqual(log.types, ["new", "revised"])
        XCTAssertEqual(log.attributes, ["city", "major"])
        XCTAssertEqual(log.overall["new"], [0.1, 0.4])
        XCTAssertEqual(log.overall["revised"]![0], 0.3)
        XCTAssertTrue(log.overall["revised"]![1].isNaN)
        XCTAssertEqual(log.byAttribute["new"]!["major"], [0.2, 0.55])
        XCTAssertTrue(log.byAttribute["revised"]!["major"]![0].isNaN)

        // Through `dkc analyze --run`: found under train/, stored along `evaluation`, drawn by step.
        let inputs = try AnalysisInputPaths.resolve(run: path("run"), scores: nil, circuits: nil, acquisition: nil)
        XCTAssertEqual(inputs.metrics, [stage.appendingPathComponent("metrics.jsonl").path])
        let r = try Analysis.run(inputs: inputs, options: AnalysisOptions(phaseSimulations: 50))
        XCTAssertEqual(r.firstToken.map(\.stage), ["continual"])
        try AnalysisOutput.write(r, to: folder.appendingPathComponent("out"), commandLine: "test")
        let nc = try AnalysisInputFile(path: path("out/analysis.nc"))
        let raw = try NetCDFFile.open(path: path("out/analysis.nc"))
        XCTAssertEqual(try raw.read("evaluation_step", as: Int64.self), [50, 100])
        XCTAssertEqual(try raw.readStrings("evaluation_stage"), ["continual", "continual"])
        let overall = try nc.array("first_token_accuracy", order: ["evaluation", "type"])
        XCTAssertEqual(overall[1, 0], 0.4)
        XCTAssertTrue(overall[1, 1].isNaN)
        XCTAssertEqual(try nc.array("first_token_accuracy_by_attribute", order: ["evaluation", "type", "attribute"])[1, 0, 1], 0.55)
        let files = try FileManager.default.contentsOfDirectory(atPath: path("out"))
        XCTAssertTrue(files.contains("acquisition_first_token_continual.svg"), "\(files)")
        XCTAssertTrue(files.contains("acquisition_first_token_by_attribute_continual.svg"), "\(files)")
        let report = try String(contentsOfFile: path("out/report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("| continual | new | major | 20.0 % (50) | 55.0 % (100) | 55.0 % |"), report)

        // A bad line is a named error with the line number.
        try "{\"step\": 5}\n{\"eval_first_token_accuracy_new\": 1.5, \"step\": 7}\n".write(toFile: path("bad.jsonl"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FirstTokenLog.read(path: path("bad.jsonl"), stage: "x")) { e in
            XCTAssertTrue("\(e)".contains("line 2") && "\(e)".contains("[0, 1]"), "\(e)")
        }
        try "{\"eval_first_token_accuracy_new\": 0.5}\n".write(toFile: path("nostep.jsonl"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FirstTokenLog.read(path: path("nostep.jsonl"), stage: "x")) { e in
            XCTAssertTrue("\(e)".contains("'step'"), "\(e)")
        }
    }
}

/// Query accuracy, per-attribute tables and the per-entity heat map (issue 14, item 4), and dkc's
/// phase-shift estimate (item 5).
final class AnalysisQueryAndPhaseTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-analysis-query-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    func testEntityHeatmapCellsByHand() {
        // N < 1000: every result once, groups of 5, the last partial; −1 makes its group NaN.
        XCTAssertEqual(EntityResults.heatmapCells([1, 0, 0, 1, 1, 1]), [3, 1])
        let withMissing = EntityResults.heatmapCells([1, 0, 0, 1, 1, 1, -1])
        XCTAssertEqual(withMissing[0], 3)
        XCTAssertTrue(withMissing[1].isNaN)
        XCTAssertEqual(EntityResults.heatmapCells([]), [])
        // N = 2000, results 1 at even positions: items ⌊j·2000/1000⌋ = 2j are all 1 → 200 cells of 5.
        let even = (0..<2000).map { Int8($0 % 2 == 0 ? 1 : 0) }
        XCTAssertEqual(EntityResults.heatmapCells(even), [Double](repeating: 5, count: 200))
        // N = 1500, results 1 where i % 3 == 0: items ⌊1.5 j⌋ = 0, 1, 3, 4, 6 | 7, 9, 10, 12, 13 → 1,0,1,0,1 | 0,1,0,1,0.
        let third = (0..<1500).map { Int8($0 % 3 == 0 ? 1 : 0) }
        let cells = EntityResults.heatmapCells(third)
        XCTAssertEqual(cells.count, 200)
        XCTAssertEqual(Array(cells.prefix(2)), [3, 2])
        // Every pair of cells covers 10 items = 15 results holding 5 ones: 1000 items hold 500 → sum 500.
        XCTAssertEqual(cells.reduce(0, +), 500)
    }

    func testQueryAccuracyAndEntityHeatmapInTheAnalysis() throws {
        var fx = SweepFixture(steps: [1, 2], tasks: ["city"], types: ["new", "revised"], frequencies: ["high", "low"])
        fx.attributes = ["city", "company"]
        // Entities in file order: e0 new/high, e1 revised/high, e2 new/low, e3 new/high, e4 revised/low.
        let table: [[[Int8]]] = [
            [[1, 0], [1, 1], [0, 1], [1, 1], [0, 0]],
            [[1, 0], [1, 1], [0, 1], [1, -1], [0, 0]],
        ]
        let rows = SweepFixture.EntityRows(names: ["A", "B", "C", "D", "E"], types: ["new", "revised", "new", "new", "revised"],
                                           frequencies: ["high", "high", "low", "high", "low"], correct: { c, e, a in table[c][e][a] })
        try fx.writeAcquisitionWithEntities(path("acquisition.nc"), entities: rows, testSet: "circuit") { name, c, a, y, f in
            name == "query_accuracy" ? 0.1 * Double(c + 1) + 0.01 * Double(a) + 0.2 * Double(y) + 0.4 * Double(f) : 0.5
        }
        let r = try Analysis.run(inputs: AnalysisInputPaths(acquisition: path("acquisition.nc")), options: AnalysisOptions(phaseSimulations: 50))
        XCTAssertEqual(r.testSet, "circuit")
        // Mean over the two attributes: 0.1 (c + 1) + 0.005 + 0.2 y + 0.4 f.
        XCTAssertEqual(r.fullQueryAccuracy![1, 1, 0], 0.2 + 0.005 + 0.2, accuracy: 1e-12)
        XCTAssertEqual(r.queryAccuracyByAttribute![0, 1, 0, 1], 0.1 + 0.01 + 0.4, accuracy: 1e-12)
        XCTAssertEqual(r.exactMatchByAttribute![1, 0, 1, 1], 0.5)
        // New rows e0, e2, e3: checkpoint 0 [1,0, 0,1, 1,1] → [3, 1]; checkpoint 1 has −1 → [3, NaN].
        // Revised rows e1, e4: [1,1, 0,0] → [2] (padded with NaN to the width 2).
        let map = r.entityHeatmap!
        XCTAssertEqual(map.dimensions, ["checkpoint", "type", "entity_cell"])
        XCTAssertEqual([map[0, 0, 0], map[0, 0, 1]], [3, 1])
        XCTAssertEqual(map[1, 0, 0], 3)
        XCTAssertTrue(map[1, 0, 1].isNaN)
        XCTAssertEqual(map[0, 1, 0], 2)
        XCTAssertTrue(map[0, 1, 1].isNaN)

        try AnalysisOutput.write(r, to: folder.appendingPathComponent("out"), commandLine: "test")
        let nc = try AnalysisInputFile(path: path("out/analysis.nc"))
        XCTAssertEqual(nc.globalText("test_set"), "circuit")
        XCTAssertEqual(try nc.array("entity_heatmap", order: ["checkpoint", "type", "entity_cell"])[0, 0, 0], 3)
        XCTAssertEqual(try nc.array("full_query_accuracy", order: ["checkpoint", "type", "frequency"])[1, 1, 0], 0.405, accuracy: 1e-12)
        let files = try FileManager.default.contentsOfDirectory(atPath: path("out"))
        for name in ["acquisition_query_accuracy.svg", "acquisition_entities_new.svg", "acquisition_entities_revised.svg"] {
            XCTAssertTrue(files.contains(name), "\(name): \(files.sorted())")
        }
        let report = try String(contentsOfFile: path("out/report.md"), encoding: .utf8)
        // Step 2: new high 0.205, low 0.605; revised 0.405, 0.805 → revised ahead by 20 %.
        XCTAssertTrue(report.contains("Query accuracy at step 2: new high 20.5 %, low 60.5 %; revised high 40.5 %, low 80.5 % " +
                                      "(revised ahead of new by 20.0 % on average over buckets); test people: the circuit people."), report)

        // An older acquisition.nc (no query_accuracy, no per-entity rows): skipped and said so.
        try fx.writeAcquisition(path("old.nc")) { _, _, _, _, _ in 0.5 }
        let old = try Analysis.run(inputs: AnalysisInputPaths(acquisition: path("old.nc")), options: AnalysisOptions(phaseSimulations: 50))
        XCTAssertNil(old.fullQueryAccuracy)
        XCTAssertNil(old.entityHeatmap)
        XCTAssertTrue(old.notes.contains { $0.contains("no query_accuracy") }, "\(old.notes)")
    }

    // MARK: - Phase-shift estimate

    private let x = (0..<12).map { Double(100 * ($0 + 1)) }

    /// Cells rising to a kink at index 5 and flat after, with different small wiggles.
    private func kinkedCells() -> [[Double]] {
        (0..<6).map { (cell: Int) -> [Double] in
            (0..<12).map { (i: Int) -> Double in
                let rise: Double = 0.6 * Double(min(i, 5)) / 5
                let wiggle: Double = 0.01 * sin(Double(i * (cell + 2)) * 1.3)
                return 0.2 + rise + wiggle
            }
        }
    }

    func testEstimateFindsAKink() {
        let e = PhaseShiftEstimator.estimate(x: x, cells: kinkedCells(), curve: "previous", resamples: 100, simulations: 500)
        XCTAssertTrue(e.supported, "\(e)")
        XCTAssertNil(e.reasonNone)
        XCTAssertEqual(e.step, 600)
        XCTAssertGreaterThanOrEqual(e.bootstrapShare, 0.9)
        XCTAssertLessThanOrEqual(e.low, 600)
        XCTAssertGreaterThanOrEqual(e.high, 600)
        XCTAssertLessThanOrEqual(e.high - e.low, 200)
        // Deterministic: the same seed gives the same interval.
        XCTAssertEqual(e, PhaseShiftEstimator.estimate(x: x, cells: kinkedCells(), curve: "previous", resamples: 100, simulations: 500))
    }

    func testEstimateNotSupportedWithoutAKink() {
        // Straight lines with noise: no break.
        let cells: [[Double]] = (0..<6).map { (cell: Int) -> [Double] in
            (0..<12).map { (i: Int) -> Double in
                let wiggle: Double = 0.02 * sin(Double(i * (cell + 3)) * 2.1)
                return 0.2 + 0.05 * Double(i) + wiggle
            }
        }
        let e = PhaseShiftEstimator.estimate(x: x, cells: cells, curve: "previous", resamples: 100, simulations: 500)
        XCTAssertFalse(e.supported)
        XCTAssertTrue(e.step.isNaN)
        XCTAssertNotNil(e.reasonNone)
    }

    /// Similarity to the final circuit that rises linearly and jumps to 1 at the final checkpoint
    /// (the reference itself): the plain fit calls that a phase shift; without the reference point
    /// the estimate finds none.
    func testReferencePointAloneIsNoShift() throws {
        let cells: [[Double]] = (0..<4).map { (cell: Int) -> [Double] in
            (0..<12).map { (i: Int) -> Double in
                if i == 11 { return 1 }
                let wiggle: Double = 0.002 * sin(Double(i * (cell + 2)) * 1.7)
                return 0.1 + 0.03 * Double(i) + wiggle
            }
        }
        let mean: [Double] = x.indices.map { (i: Int) -> Double in cells.map { $0[i] }.reduce(0, +) / 4 }
        let plain = PhaseShift.fit(x: x, y: mean, simulations: 500)
        XCTAssertTrue(plain.isShift, "the artefact the estimate removes: \(plain)")
        XCTAssertGreaterThanOrEqual(plain.breakX!, 1000)
        let withoutReference: [[Double]] = cells.map { (c: [Double]) -> [Double] in c.indices.map { $0 == 11 ? Double.nan : c[$0] } }
        let e = PhaseShiftEstimator.estimate(x: x, cells: withoutReference, curve: "final_without_reference", resamples: 100, simulations: 500)
        XCTAssertFalse(e.supported, "\(e)")

        // Through the analysis: a sweep whose circuits grow by one edge per checkpoint with no kink.
        var fx = SweepFixture(steps: (1...8).map { Int64(10 * $0) }, tasks: ["city"], types: ["new"], frequencies: ["high", "low"])
        fx.topn = [20]
        let g = GraphNames.standard(layers: 2, heads: 2)
        var all: [String] = []
        for u in g.upstream.indices { for d in g.downstream.indices where g.isEdge(upstream: u, downstream: d) {
            all.append("\(g.upstream[u])->\(g.downstream[d])")
        } }
        try fx.writeCircuits(path("c.nc")) { c, _, _, f, _ in SweepFixture.CircuitCell(mask: fx.mask(Array(all.prefix(8 + 2 * c + f)))) }
        let r = try Analysis.run(inputs: AnalysisInputPaths(circuits: path("c.nc")), options: AnalysisOptions(phaseSimulations: 300))
        let estimates = try XCTUnwrap(r.phaseShiftEstimates["new"])
        XCTAssertEqual(estimates.map(\.curve), PhaseShiftEstimator.curves)
        XCTAssertEqual(estimates[0].fit.n, 7, "the reference checkpoint is left out")
        XCTAssertEqual(estimates[1].fit.n, 7, "the first checkpoint has no previous one")
        try AnalysisOutput.write(r, to: folder.appendingPathComponent("out"), commandLine: "test")
        let nc = try AnalysisInputFile(path: path("out/analysis.nc"))
        XCTAssertEqual(try nc.labels("similarity_curve"), PhaseShiftEstimator.curves)
        XCTAssertEqual(try nc.array("phase_estimate_supported", order: ["type", "similarity_curve"]).values.count, 2)
        let report = try String(contentsOfFile: path("out/report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("dkc's own break estimate"), report)
    }
}
