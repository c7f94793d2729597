import Foundation
import XCTest
@testable import Core
@testable import DistCircuits

/// The code path of `dkc discover` / `evaluate` / `sweep` (file readers, cell filter, CellRunner) against the
/// study's numbers (fixtures README: reference/eap/, eval.json, test_predictions.jsonl). Tolerances are the
/// README's.
final class CellRunnerParityTests: XCTestCase {
    /// The study's cell: city, type new, frequency all, batch 8, EAP-IG; records read from city.jsonl.
    private func studyPairs(_ tok: GPT2Tokenizer) throws -> [PromptPair] {
        let file = try AttributionFixtures.requireFixtures().appendingPathComponent("reference/eap/city.jsonl")
        let buckets = try FrequencyBuckets.forData(at: file)
        let filter = try CellFilter(type: "new", frequency: OutputLabels.all, buckets: buckets)
        return try CircuitSample.pairs(try CircuitSample.read(file), filter: filter, task: .city, encoder: tok, source: file.path)
    }

    func testDiscoveryMatchesTheStudy() throws {
        let model = try EAPParityTests.model()
        let tok = try EAPParityTests.tokenizer()
        let pairs = try studyPairs(tok)
        XCTAssertEqual(pairs, try EAPParityTests.cityPairs(), "records read through CircuitSample give the study's prompts and labels")
        let runner = CellRunner(model: model)
        var seen: [Int] = []
        let result = try runner.discover(pairs, options: CellOptions(batchSize: 8, topn: [10])) { seen.append($0.done) }
        XCTAssertEqual(seen, [8, 16, 24])
        XCTAssertEqual(result.nSamples, 24)
        for (name, method) in [("eap_ig_scores", AttributionMethod.eapIG), ("eap_scores", .eap)] {
            let mine = method == .eapIG ? result.scores
                : try runner.discover(pairs, options: CellOptions(attribution: AttributionOptions(method: .eap), batchSize: 8, topn: [10])).scores
            let ref = try AttributionFixtures.scores(name)
            let rel = ScoreMatrix.relativeFrobenius(mine, ref)
            print("CellRunner \(method.rawValue) vs \(name): rel Frobenius \(rel)")
            XCTAssertLessThanOrEqual(rel, 1e-4, name)
            for n in [10, 50, 200] {
                var a = Circuit(graph: model.graph, scores: mine), b = Circuit(graph: model.graph, scores: ref)
                a.applyTopN(n); b.applyTopN(n)
                XCTAssertEqual(a.edgeInGraph, b.edgeInGraph, "\(name) top-\(n) edge set")
            }
        }
    }

    /// run_eval and run_test for every top-n of eval.json, baselines once, and the prediction rows of
    /// test_predictions.jsonl (matched by top-n and full_name).
    func testEvaluationAndPredictionsMatchTheStudy() throws {
        let model = try EAPParityTests.model()
        let tok = try EAPParityTests.tokenizer()
        let eval = try AttributionFixtures.json("reference/eval.json")
        let entities = try (eval["test_entities"] as! [[String: Any]]).map { try XCTUnwrap(Entity(jsonObject: JSONValue(foundation: $0))) }
        let targets = TestTarget.all(entities, buckets: FrequencyBuckets(buckets: FrequencyBuckets.defaultBuckets, manifest: nil))
        XCTAssertEqual(targets.map { "\($0.type)/\($0.frequency)/\($0.entities.count)" }, ["new/high/4", "new/medium/4", "new/low/4"])
        let runner = CellRunner(model: model)
        let result = try runner.evaluate(scores: try AttributionFixtures.scores("eap_ig_scores"), pairs: try studyPairs(tok), targets: targets,
                                         task: .city, encoder: tok, options: CellOptions(batchSize: 8, topn: [10, 50, 200]),
                                         keepPredictions: true)
        var worstMean = 0.0, worstProb = 0.0, windowRanks = 0
        for r in eval["results"] as! [[String: Any]] {
            let n = (r["topn"] as! NSNumber).intValue
            let c = try XCTUnwrap(result.cell.circuits[n])
            worstMean = max(worstMean, try Self.checkRunEval(result, r, label: "gpt2"))
            XCTAssertEqual(Double(c.edgeEntropy), (r["edge_entropy"] as! NSNumber).doubleValue, accuracy: 1e-4, "top-\(n) entropy")
            XCTAssertEqual(c.inCircuit.reduce(0) { $0 + Int($1) }, c.nEdges)
            // Summaries per target agree with the per-entity rows.
            for t in targets {
                let rows = result.predictions.filter { $0.topn == n && $0.targetFrequency == t.frequency }
                let summary = try XCTUnwrap(c.targets[CircuitsTable.Target(type: t.type, frequency: t.frequency)])
                XCTAssertEqual(summary.nTest, rows.count)
                XCTAssertEqual(summary.hitsAt10, Double(rows.filter { $0.rank < 10 }.count) / Double(rows.count))
                XCTAssertEqual(summary.labelProb, rows.reduce(0.0) { $0 + $1.probability } / Double(rows.count), accuracy: 1e-15)
            }
        }
        let reference = try AttributionFixtures.jsonLines("reference/test_predictions.jsonl")
        XCTAssertEqual(result.predictions.count, reference.count)
        let windows = Dictionary(uniqueKeysWithValues: (eval["results"] as! [[String: Any]]).map {
            (($0["topn"] as! NSNumber).intValue, $0["test_rank_windows"] as! [[String: Any]])
        })
        let names = entities.map(\.fullName)
        for ref in reference {
            let (dp, exact) = try Self.checkPrediction(result, ref, windows: windows, names: names, labelSpace: " ", label: "gpt2")
            worstProb = max(worstProb, dp)
            if !exact { windowRanks += 1 }
            let mine = result.predictions.first { $0.topn == (ref["topn"] as! NSNumber).intValue && $0.entity.fullName == ref["full_name"] as? String }!
            XCTAssertEqual(mine.entity.fields.map(\.1), mine.entity.fields.map { ref[$0.0] as? String ?? "?" }, "entity fields of \(mine.entity.fullName)")
        }
        print("CellRunner evaluation: means max |Δ| \(worstMean); prediction probability max |Δ| \(worstProb); ranks outside exact \(windowRanks)")
    }

    /// One row of test_predictions.jsonl against the cell runner's prediction for the same top-n and entity: ground
    /// truth, the label text (`labelSpace` + value), the probability within 1e-5 (returned), the rank equal or inside
    /// eval.json's near-tie window (returned: whether equal).
    static func checkPrediction(_ result: CellEvaluation, _ ref: [String: Any], windows: [Int: [[String: Any]]], names: [String],
                                labelSpace: String, label: String) throws -> (probability: Double, exactRank: Bool) {
        let n = (ref["topn"] as! NSNumber).intValue, name = ref["full_name"] as! String
        let mine = try XCTUnwrap(result.predictions.first { $0.topn == n && $0.entity.fullName == name }, "\(label) top-\(n) \(name)")
        XCTAssertEqual(mine.groundTruth, ref["ground_truth"] as? String)
        XCTAssertEqual(labelSpace + mine.groundTruth, ref["clean_label"] as? String, "\(label): the label's leading space follows the family")
        let dp = abs(mine.probability - AttributionFixtures.doubles(ref["token_prob"])[0])
        XCTAssertLessThanOrEqual(dp, 1e-5, "\(label) top-\(n) \(name) probability")
        let refRank = (ref["token_rank"] as! NSNumber).intValue
        let w = windows[n]![names.firstIndex(of: name)!]
        let lo = (w["rank_lo_logit_tol_1e-4"] as! NSNumber).intValue, hi = (w["rank_hi_logit_tol_1e-4"] as! NSNumber).intValue
        XCTAssertTrue(mine.rank == refRank || (lo...hi).contains(mine.rank), "\(label) top-\(n) \(name) rank \(mine.rank), reference \(refRank) window \(lo)…\(hi)")
        return (dp, mine.rank == refRank)
    }

    /// One result row of eval.json (`run_eval` at one top-n) against the cell runner's: baselines and circuit
    /// performance within 1e-4 (returned: the largest difference), faithfulness within 1e-4, edge and node counts
    /// identical (fixture READMEs' tolerances).
    static func checkRunEval(_ result: CellEvaluation, _ r: [String: Any], label: String) throws -> Double {
        let n = (r["topn"] as! NSNumber).intValue
        let c = try XCTUnwrap(result.cell.circuits[n], "\(label) top-\(n)")
        var worst = 0.0
        for (key, mine) in [("clean_baseline", result.cell.cleanBaseline), ("corrupted_baseline", result.cell.corruptedBaseline),
                            ("circuit_performance", c.performance)] {
            let d = abs(mine - (r[key] as! NSNumber).doubleValue)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-4, "\(label) top-\(n) \(key)")
        }
        let faith = (c.performance - result.cell.corruptedBaseline) / (result.cell.cleanBaseline - result.cell.corruptedBaseline)
        XCTAssertEqual(faith, (r["faithfulness"] as! NSNumber).doubleValue, accuracy: 1e-4, "\(label) top-\(n) faithfulness")
        XCTAssertEqual(c.nEdges, (r["edges_num"] as! NSNumber).intValue, "\(label) top-\(n) edges")
        XCTAssertEqual(c.nNodes, (r["nodes_num"] as! NSNumber).intValue, "\(label) top-\(n) nodes")
        return worst
    }

    /// An empty circuit (after pruning) keeps its performance (the corrupted run) and gets no tests.
    func testEmptyCircuitHasNoTests() throws {
        let model = try EAPParityTests.model()
        let tok = try EAPParityTests.tokenizer()
        // Only the edges into a0.h0's query score: top-3 keeps edges whose child never reaches the logits.
        var matrix = ScoreMatrix(graph: model.graph)
        for f in 0..<1 { matrix[f, model.graph.headBackward(layer: 0, head: 0, qkv: .q)] = 1 }
        let e = Entity(fullName: "Ann Lee", birthDate: "1", birthMonth: "May", birthYear: "1990", city: "Boston, MA", major: "Law",
                       university: "Yale University", company: "IBM", frequency: 7, type: .new)
        let result = try CellRunner(model: model).evaluate(scores: matrix, pairs: Array(try studyPairs(tok).prefix(4)),
                                                           targets: [TestTarget(type: "new", frequency: "high", entities: [e])],
                                                           task: .city, encoder: tok, options: CellOptions(batchSize: 4, topn: [1]))
        let c = try XCTUnwrap(result.cell.circuits[1])
        XCTAssertEqual(c.nEdges, 0)
        XCTAssertTrue(c.targets.isEmpty)
        XCTAssertTrue(c.edgeEntropy.isNaN)
        XCTAssertEqual(c.performance, result.cell.corruptedBaseline, "an empty circuit is the corrupted run")
    }
}
