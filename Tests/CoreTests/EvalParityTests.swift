import Foundation
import XCTest
@testable import Core

/// Circuit evaluation against the study's `circuit_eval` numbers (fixtures README, "reference/eval.json,
/// eval_samples.jsonl, test_predictions.jsonl"). Tolerances are the README's.
final class EvalParityTests: XCTestCase {
    func testBaselinesCircuitPerformanceAndFaithfulness() throws {
        let model = try EAPParityTests.model()
        let pairs = try EAPParityTests.cityPairs()
        let eval = try AttributionFixtures.json("reference/eval.json")
        let samples = try AttributionFixtures.jsonLines("reference/eval_samples.jsonl")
        XCTAssertEqual(samples.count, pairs.count)
        let scores = try AttributionFixtures.scores("eap_ig_scores")
        let evaluator = CircuitEvaluator(model: model)
        var worstBaseline = 0.0, worstCircuit = 0.0, worstMean = 0.0, worstFaith = 0.0, worstEntropy = 0.0
        for r in eval["results"] as! [[String: Any]] {
            let n = (r["topn"] as! NSNumber).intValue
            var circuit = Circuit(graph: model.graph, scores: scores)
            circuit.applyTopN(n)
            circuit.pruneDeadNodes()
            let result = try evaluator.evaluate(circuit, pairs: pairs, batchSize: 8, topN: n)
            for (i, s) in samples.enumerated() {
                let dc = abs(Double(result.perSampleClean[i]) - (s["clean_baseline"] as! NSNumber).doubleValue)
                let dx = abs(Double(result.perSampleCorrupted[i]) - (s["corrupted_baseline"] as! NSNumber).doubleValue)
                let dp = abs(Double(result.perSampleCircuit[i]) - (s["circuit_performance_top\(n)"] as! NSNumber).doubleValue)
                worstBaseline = max(worstBaseline, dc, dx)
                worstCircuit = max(worstCircuit, dp)
                XCTAssertLessThanOrEqual(max(dc, dx), 1e-4, "sample \(i) baselines")
                XCTAssertLessThanOrEqual(dp, 1e-4, "sample \(i) top-\(n) circuit performance")
            }
            for (key, mine) in [("clean_baseline", result.cleanBaseline), ("corrupted_baseline", result.corruptedBaseline),
                                ("circuit_performance", result.circuitPerformance)] {
                let d = abs(mine - (r[key] as! NSNumber).doubleValue)
                worstMean = max(worstMean, d)
                XCTAssertLessThanOrEqual(d, 1e-4, "top-\(n) \(key)")
            }
            let faith = try XCTUnwrap(result.faithfulness())
            let df = abs(faith - (r["faithfulness"] as! NSNumber).doubleValue)
            worstFaith = max(worstFaith, df)
            XCTAssertLessThanOrEqual(df, 1e-4, "top-\(n) faithfulness")
            XCTAssertEqual(result.edgeCount, (r["edges_num"] as! NSNumber).intValue, "top-\(n) edges_num")
            XCTAssertEqual(result.nodeCount, (r["nodes_num"] as! NSNumber).intValue, "top-\(n) nodes_num")
            let de = abs(Double(try XCTUnwrap(result.edgeEntropy)) - (r["edge_entropy"] as! NSNumber).doubleValue)
            worstEntropy = max(worstEntropy, de)
            XCTAssertLessThanOrEqual(de, 1e-4, "top-\(n) edge entropy")
            if n == 200 {
                // Every edge kept: the circuit is the whole model.
                XCTAssertEqual(result.perSampleCircuit, result.perSampleClean, "top-200 keeps every edge: circuit = clean run")
                XCTAssertEqual(faith, 1, accuracy: 1e-12)
            }
        }
        print("eval parity: per-sample baselines max |Δ| \(worstBaseline), per-sample circuit \(worstCircuit), means \(worstMean), faithfulness \(worstFaith), entropy \(worstEntropy)")
    }

    /// `run_test`: zero-ablated probability and rank of each test entity's city token.
    func testCircuitTokenProbabilityAndRank() throws {
        let model = try EAPParityTests.model()
        let tok = try EAPParityTests.tokenizer()
        let eval = try AttributionFixtures.json("reference/eval.json")
        let entities = eval["test_entities"] as! [[String: Any]]
        let prompts = entities.map { tok.encode(EAPParityTests.template.replacingOccurrences(of: "{subject}", with: $0["full_name"] as! String)) }
        let labels = entities.map { tok.encode(" " + ($0["city"] as! String))[0] }
        let scores = try AttributionFixtures.scores("eap_ig_scores")
        let evaluator = CircuitEvaluator(model: model)
        var worstProb = 0.0, exactRanks = 0, windowRanks = 0
        for r in eval["results"] as! [[String: Any]] {
            let n = (r["topn"] as! NSNumber).intValue
            var circuit = Circuit(graph: model.graph, scores: scores)
            circuit.applyTopN(n)
            circuit.pruneDeadNodes()
            let out = try evaluator.test(circuit, prompts: prompts, labels: labels, batchSize: 8)
            let refProb = AttributionFixtures.doubles(r["test_token_prob"]), refRank = AttributionFixtures.ints(r["test_token_rank"])
            let windows = r["test_rank_windows"] as! [[String: Any]]
            for i in out.indices {
                let dp = abs(out[i].probability - refProb[i])
                worstProb = max(worstProb, dp)
                XCTAssertLessThanOrEqual(dp, 1e-5, "top-\(n) entity \(i) probability")
                let lo = (windows[i]["rank_lo_logit_tol_1e-4"] as! NSNumber).intValue, hi = (windows[i]["rank_hi_logit_tol_1e-4"] as! NSNumber).intValue
                if out[i].rank == refRank[i] { exactRanks += 1 } else { windowRanks += 1 }
                XCTAssertTrue(out[i].rank == refRank[i] || (lo...hi).contains(out[i].rank),
                              "top-\(n) entity \(i) rank \(out[i].rank), reference \(refRank[i]) window \(lo)…\(hi)")
            }
        }
        print("run_test parity: probability max |Δ| \(worstProb); ranks identical \(exactRanks), inside window \(windowRanks)")
    }

    /// Independent of the fixtures' numbers: all edges kept → the clean run; none kept → the corrupted run.
    func testPatchingEndpoints() throws {
        let model = try EAPParityTests.model()
        let pairs = Array(try EAPParityTests.cityPairs().prefix(8))
        let batch = try PromptBatch(pairs: pairs, vocabSize: model.config.vocabSize, maxPositions: model.config.nPositions)
        let evaluator = CircuitEvaluator(model: model)
        let V = model.config.vocabSize
        let clean = Array(UnsafeBufferPointer(start: model.forward(batch, clean: true), count: batch.batch * V))
        let corrupted = Array(UnsafeBufferPointer(start: model.forward(batch, clean: false), count: batch.batch * V))
        let full = Circuit(graph: model.graph, edgeScores: [Float](repeating: 1, count: model.graph.edgeCount))
        XCTAssertEqual(evaluator.patchedLogits(full, batch), clean)
        var none = full
        for i in none.edgeInGraph.indices { none.edgeInGraph[i] = false }
        none.pruneDeadNodes()
        XCTAssertTrue(none.isEmpty)
        XCTAssertEqual(evaluator.patchedLogits(none, batch), corrupted)
        // Keeping every edge but rebuilding every input (nothing absent) must still give the clean run up to rounding;
        // and removing only edges into logits except from the last MLP changes the result.
        var almost = full
        for e in model.graph.parentEdges[model.graph.logitsNode].dropLast() { almost.edgeInGraph[e] = false }
        let patched = evaluator.patchedLogits(almost, batch)
        XCTAssertNotEqual(patched, clean)
        // Zero ablation of the full circuit is the clean run.
        XCTAssertEqual(evaluator.zeroAblatedLogits(full, batch), clean)
    }
}
