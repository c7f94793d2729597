import Foundation
import XCTest
@testable import Core
@testable import Circuits

/// The Llama and Phi attribution graphs, EAP / EAP-IG scores and circuit evaluation against the study's numbers
/// (fixtures/llama and fixtures/phi READMEs, "reference/eap/" and "reference/eval.json"). Tolerances are the
/// READMEs'; the checks are shared by both families (`FamilyAttributionChecks`).
final class FamilyEAPParityTests: XCTestCase {
    func testLlamaGraphMatchesReference() throws { try FamilyAttributionChecks.graph("llama", edges: 3526) }
    func testPhiGraphMatchesReference() throws { try FamilyAttributionChecks.graph("phi", edges: 102) }

    func testLlamaInstrumentedForwardMatchesModel() throws { try FamilyAttributionChecks.forward("llama") }
    func testPhiInstrumentedForwardMatchesModel() throws { try FamilyAttributionChecks.forward("phi") }

    func testLlamaEAPScores() throws { try FamilyAttributionChecks.scores("llama", method: .eap, reference: "eap_scores", topN: [10, 100, 1000, 5000]) }
    func testLlamaEAPIGScores() throws { try FamilyAttributionChecks.scores("llama", method: .eapIG, reference: "eap_ig_scores", topN: [10, 100, 1000, 5000]) }
    func testPhiEAPScores() throws { try FamilyAttributionChecks.scores("phi", method: .eap, reference: "eap_scores", topN: [10, 50, 200]) }
    func testPhiEAPIGScores() throws { try FamilyAttributionChecks.scores("phi", method: .eapIG, reference: "eap_ig_scores", topN: [10, 50, 200]) }
}

/// Circuit evaluation (`run_eval`, `run_test`) of both families against reference/eval.json and eval_samples.jsonl.
final class FamilyEvalParityTests: XCTestCase {
    func testLlamaBaselinesCircuitPerformanceAndFaithfulness() throws { try FamilyAttributionChecks.evaluation("llama") }
    func testPhiBaselinesCircuitPerformanceAndFaithfulness() throws { try FamilyAttributionChecks.evaluation("phi") }

    func testLlamaCircuitTokenProbabilityAndRank() throws { try FamilyAttributionChecks.zeroAblationTest("llama", labelWithSpace: false) }
    func testPhiCircuitTokenProbabilityAndRank() throws { try FamilyAttributionChecks.zeroAblationTest("phi", labelWithSpace: true) }

    func testLlamaPatchingEndpoints() throws { try FamilyAttributionChecks.patchingEndpoints("llama") }
    func testPhiPatchingEndpoints() throws { try FamilyAttributionChecks.patchingEndpoints("phi") }
}

enum FamilyAttributionChecks {
    static let template = "{subject} lives in the city of"

    static func model(_ family: String) throws -> InstrumentedFamily {
        InstrumentedFamily(parameters: try FamilyCheckpoint.load(folder: try FamilyFixtures.model(family)))
    }

    static func tokenizer(_ family: String) throws -> any Tokenizer {
        try TokenizerLoader.load(directory: try FamilyFixtures.model(family))
    }

    static func eap(_ family: String, _ name: String) throws -> URL { try FamilyFixtures.reference(family, "eap/\(name)") }

    static func eapJSON(_ family: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: try eap(family, "eap.json"))) as? [String: Any])
    }

    static func jsonLines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// Prompt pairs of a circuit-data file (city.jsonl, eval_samples.jsonl), prompts tokenised without BOS.
    static func pairs(_ family: String, _ rows: [[String: Any]]) throws -> [PromptPair] {
        let tok = try tokenizer(family)
        return rows.map { r in
            PromptPair(template: template, cleanSubject: r["clean_subject"] as! String, corruptedSubject: r["corrupted_subject"] as! String,
                       cleanLabel: (r["clean_label_idx"] as! NSNumber).intValue, corruptedLabel: (r["corrupted_label_idx"] as! NSNumber).intValue,
                       encoder: tok)
        }
    }

    static func cityPairs(_ family: String) throws -> [PromptPair] { try pairs(family, try jsonLines(try eap(family, "city.jsonl"))) }

    static func referenceScores(_ family: String, _ name: String) throws -> ScoreMatrix {
        let f = try SafetensorsFile(url: try eap(family, "scores.safetensors"))
        let shape = try f.info(name).shape
        return ScoreMatrix(nForward: shape[0], nBackward: shape[1], values: try f.floats(name))
    }

    /// Node and input names, the rows feeding each column, and the edge insertion order equal eap.json's.
    static func graph(_ family: String, edges: Int) throws {
        let g = try model(family).graph
        let ref = try eapJSON(family)
        XCTAssertEqual(g.edgeCount, edges, "\(family): edge count")
        XCTAssertEqual(g.edgeCount, (ref["n_edges"] as! NSNumber).intValue)
        XCTAssertEqual(g.nForward, (ref["n_forward"] as! NSNumber).intValue)
        XCTAssertEqual(g.nBackward, (ref["n_backward"] as! NSNumber).intValue)
        XCTAssertEqual(g.parallel, ref["parallel_attn_mlp"] as? Bool)
        XCTAssertEqual(g.forwardNames, AttributionFixtures.strings(ref["forward_names"]))
        XCTAssertEqual(g.backwardNames, AttributionFixtures.strings(ref["backward_names"]))
        XCTAssertEqual(g.backwardPrevIndex, AttributionFixtures.ints(ref["backward_prev_index"]))
        XCTAssertEqual(g.nodes.map(\.name), AttributionFixtures.strings(ref["node_order"]))
        XCTAssertEqual(g.edges.map(\.name), AttributionFixtures.strings(ref["edge_order"]))
    }

    /// The instrumented forward (per-head q/k/v inputs, K/V expanded per query head, folded value biases) gives the
    /// plain `FamilyModel`'s logits at every read-out position of the 24 city prompts, and recording changes nothing.
    static func forward(_ family: String) throws {
        let model = try model(family)
        let plain = FamilyModel(params: model.parameters)
        let batch = try model.promptBatch(pairs: try cityPairs(family), firstIndex: 0)
        let V = model.vocabSize, T = batch.seqLen
        let all = try plain.forward(tokens: batch.cleanTokens.map { Int($0) }, batch: batch.batch, seqLen: T, lengths: batch.lengths)
        let ref = batch.readRows.flatMap { Array(all[($0 * V)..<(($0 + 1) * V)]) }
        let mine = Array(UnsafeBufferPointer(start: model.forward(batch), count: batch.batch * V))
        let cmp = FamilyFixtures.compare(mine, ref)
        print("\(family): instrumented vs FamilyModel logits max |Δ| \(cmp.maxAbs)")
        XCTAssertLessThanOrEqual(cmp.maxAbs, 1e-4, family)
        let n = model.graph.nForward * batch.batch * T * model.dModel
        let record = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { record.deallocate() }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: model.forward(batch, record: record), count: batch.batch * V)), mine)
        // The recorded outputs plus the folded attention biases (and, for Phi, nothing else: every other bias
        // belongs to a node) sum to the final residual stream.
        let C = model.dModel, BTC = batch.batch * T * C, g = model.graph
        let x = FloatBuffer(count: C)
        var worst = 0.0
        for r in batch.readRows {
            for i in 0..<C {
                var s = 0.0
                for f in 0..<g.nForward { s += Double(record[f * BTC + r * C + i]) }
                for l in 0..<g.nLayers { s += Double(model.foldedOutputBias(layer: l)[i]) }
                x.base[i] = Float(s)
            }
            let resid = model.layerSlice(model.resid, g.nLayers, width: C) + r * C
            for i in 0..<C { worst = max(worst, abs(Double(x.base[i]) - Double(resid[i]))) }
        }
        print("\(family): Σ recorded outputs vs final residual max |Δ| \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-4, "\(family): node outputs must sum to the final residual")
    }

    /// EAP / EAP-IG scores with the study's batch size (eap.json) against the float32 and float64 references:
    /// rel Frobenius ≤ 1e-4, identical top-n edge sets, the README's exact zeros exactly 0.
    static func scores(_ family: String, method: AttributionMethod, reference: String, topN: [Int]) throws {
        let model = try model(family)
        let pairs = try cityPairs(family)
        XCTAssertEqual(pairs.count, 24)
        let settings = try eapJSON(family)
        let batchSize = (settings["batch_size"] as! NSNumber).intValue
        let start = Date()
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: batchSize,
                                                options: AttributionOptions(method: method, igSteps: (settings["ig_steps"] as! NSNumber).intValue))
        let seconds = Date().timeIntervalSince(start)
        let g = model.graph
        for name in [reference, reference + "_f64"] {
            let ref = try referenceScores(family, name)
            let rel = ScoreMatrix.relativeFrobenius(scores, ref), mx = ScoreMatrix.maxAbsDifference(scores, ref)
            print("\(family) \(method.rawValue) vs \(name): rel Frobenius \(rel), max abs \(mx) (batch \(batchSize), \(String(format: "%.2f", seconds)) s)")
            XCTAssertLessThanOrEqual(rel, 1e-4, "\(family) \(method.rawValue) scores vs \(name): rel Frobenius \(rel), max abs \(mx)")
            for n in topN {
                var mine = Circuit(graph: g, scores: scores), theirs = Circuit(graph: g, scores: ref)
                mine.applyTopN(n); theirs.applyTopN(n)
                XCTAssertEqual(mine.keptEdgeNames, theirs.keptEdgeNames, "\(family) \(method.rawValue) top-\(n) edge set vs \(name)")
            }
        }
        let checks = try XCTUnwrap((settings["checks"] as? [String: Any])?[method.rawValue] as? [String: Any])
        let zeros = AttributionFixtures.strings(checks["zero_score_edges"])
        // The READMEs list 34 (Llama) and 12 (Phi) exact zeros; a missing key must not make this vacuous.
        XCTAssertEqual(zeros.count, family == "llama" ? 34 : 12, "\(family) eap.json zero_score_edges")
        for name in zeros {
            let e = g.edges[try XCTUnwrap(g.edgeIndex(named: name), "\(name) is not an edge")]
            XCTAssertEqual(scores[e.forward, e.backward], 0, "\(family) \(name) should score exactly 0")
        }
        let nonzero = g.edges.filter { scores[$0.forward, $0.backward] != 0 }.count
        XCTAssertEqual(nonzero, (checks["nonzero_entries"] as! NSNumber).intValue, "\(family) \(method.rawValue) non-zero scores")
    }

    static func evalJSON(_ family: String) throws -> [String: Any] { try FamilyFixtures.json(family, "eval.json") }

    /// `run_eval` per top-n: baselines and circuit performance per sample and in the mean, faithfulness, edge and node
    /// counts, entropy, and the in-graph edge set, with the circuit built from the reference's EAP-IG scores.
    static func evaluation(_ family: String) throws {
        let model = try model(family)
        let eval = try evalJSON(family)
        let samples = try jsonLines(try FamilyFixtures.reference(family, "eval_samples.jsonl"))
        let pairs = try pairs(family, samples)
        let scores = try referenceScores(family, "eap_ig_scores")
        let evaluator = CircuitEvaluator(model: model)
        let batchSize = (eval["batch_size"] as! NSNumber).intValue
        var worstBaseline = 0.0, worstCircuit = 0.0, worstMean = 0.0, worstFaith = 0.0
        let results = eval["results"] as! [[String: Any]]
        XCTAssertFalse(results.isEmpty)
        for r in results {
            let n = (r["topn"] as! NSNumber).intValue
            var circuit = Circuit(graph: model.graph, scores: scores)
            circuit.applyTopN(n)
            circuit.pruneDeadNodes()
            XCTAssertEqual(Set(circuit.keptEdgeNames), Set(AttributionFixtures.strings(r["edges_in_graph"])), "\(family) top-\(n) in-graph edges")
            let result = try evaluator.evaluate(circuit, pairs: pairs, batchSize: batchSize, topN: n)
            for (i, s) in samples.enumerated() {
                let dc = abs(Double(result.perSampleClean[i]) - (s["clean_baseline"] as! NSNumber).doubleValue)
                let dx = abs(Double(result.perSampleCorrupted[i]) - (s["corrupted_baseline"] as! NSNumber).doubleValue)
                let dp = abs(Double(result.perSampleCircuit[i]) - (s["circuit_performance_top\(n)"] as! NSNumber).doubleValue)
                worstBaseline = max(worstBaseline, dc, dx)
                worstCircuit = max(worstCircuit, dp)
                XCTAssertLessThanOrEqual(max(dc, dx), 1e-4, "\(family) sample \(i) baselines")
                XCTAssertLessThanOrEqual(dp, 1e-4, "\(family) sample \(i) top-\(n) circuit performance")
            }
            for (key, mine) in [("clean_baseline", result.cleanBaseline), ("corrupted_baseline", result.corruptedBaseline),
                                ("circuit_performance", result.circuitPerformance)] {
                let d = abs(mine - (r[key] as! NSNumber).doubleValue)
                worstMean = max(worstMean, d)
                XCTAssertLessThanOrEqual(d, 1e-4, "\(family) top-\(n) \(key)")
            }
            let faith = try XCTUnwrap(result.faithfulness())
            let df = abs(faith - (r["faithfulness"] as! NSNumber).doubleValue)
            worstFaith = max(worstFaith, df)
            XCTAssertLessThanOrEqual(df, 1e-4, "\(family) top-\(n) faithfulness")
            XCTAssertEqual(result.edgeCount, (r["edges_num"] as! NSNumber).intValue, "\(family) top-\(n) edges_num")
            XCTAssertEqual(result.nodeCount, (r["nodes_num"] as! NSNumber).intValue, "\(family) top-\(n) nodes_num")
            XCTAssertEqual(Double(try XCTUnwrap(result.edgeEntropy)), (r["edge_entropy"] as! NSNumber).doubleValue, accuracy: 1e-4,
                           "\(family) top-\(n) edge entropy")
            if result.edgeCount == model.graph.edgeCount {
                XCTAssertEqual(result.perSampleCircuit, result.perSampleClean, "\(family) top-\(n) keeps every edge: circuit = clean run")
                XCTAssertEqual(faith, 1, accuracy: 1e-12)
            }
        }
        print("\(family) eval parity: per-sample baselines max |Δ| \(worstBaseline), per-sample circuit \(worstCircuit), means \(worstMean), faithfulness \(worstFaith)")
    }

    /// `run_test`: the zero-ablated probability and rank of each test entity's city token (Llama: the first token of
    /// the city itself, Phi: of " " + city), against eval.json.
    static func zeroAblationTest(_ family: String, labelWithSpace: Bool) throws {
        let model = try model(family)
        let tok = try tokenizer(family)
        let eval = try evalJSON(family)
        let entities = eval["test_entities"] as! [[String: Any]]
        let prompts = entities.map { tok.encode(template.replacingOccurrences(of: "{subject}", with: $0["full_name"] as! String)) }
        let labels = entities.map { tok.encode((labelWithSpace ? " " : "") + ($0["city"] as! String))[0] }
        let scores = try referenceScores(family, "eap_ig_scores")
        let evaluator = CircuitEvaluator(model: model)
        let batchSize = (eval["batch_size"] as! NSNumber).intValue
        var worstProb = 0.0, exactRanks = 0, windowRanks = 0
        for r in eval["results"] as! [[String: Any]] {
            let n = (r["topn"] as! NSNumber).intValue
            var circuit = Circuit(graph: model.graph, scores: scores)
            circuit.applyTopN(n)
            circuit.pruneDeadNodes()
            let out = try evaluator.test(circuit, prompts: prompts, labels: labels, batchSize: batchSize)
            let refProb = AttributionFixtures.doubles(r["test_token_prob"]), refRank = AttributionFixtures.ints(r["test_token_rank"])
            let windows = r["test_rank_windows"] as! [[String: Any]]
            XCTAssertEqual(out.count, refProb.count)
            for i in out.indices {
                XCTAssertEqual(labels[i], (windows[i]["label_idx"] as! NSNumber).intValue, "\(family) entity \(i) label token")
                let dp = abs(out[i].probability - refProb[i])
                worstProb = max(worstProb, dp)
                XCTAssertLessThanOrEqual(dp, 1e-5, "\(family) top-\(n) entity \(i) probability")
                let lo = (windows[i]["rank_lo_logit_tol_1e-4"] as! NSNumber).intValue, hi = (windows[i]["rank_hi_logit_tol_1e-4"] as! NSNumber).intValue
                if out[i].rank == refRank[i] { exactRanks += 1 } else { windowRanks += 1 }
                XCTAssertTrue(out[i].rank == refRank[i] || (lo...hi).contains(out[i].rank),
                              "\(family) top-\(n) entity \(i) rank \(out[i].rank), reference \(refRank[i]) window \(lo)…\(hi)")
            }
        }
        print("\(family) run_test parity: probability max |Δ| \(worstProb); ranks identical \(exactRanks), inside window \(windowRanks)")
    }

    /// Independent of the reference numbers: all edges kept → the clean run (patched and zero-ablated); none kept →
    /// the corrupted run; removing edges into the logits changes the result.
    static func patchingEndpoints(_ family: String) throws {
        let model = try model(family)
        let batch = try model.promptBatch(pairs: Array(try cityPairs(family).prefix(8)), firstIndex: 0)
        let evaluator = CircuitEvaluator(model: model)
        let V = model.vocabSize
        let clean = Array(UnsafeBufferPointer(start: model.forward(batch, clean: true), count: batch.batch * V))
        let corrupted = Array(UnsafeBufferPointer(start: model.forward(batch, clean: false), count: batch.batch * V))
        let full = Circuit(graph: model.graph, edgeScores: [Float](repeating: 1, count: model.graph.edgeCount))
        XCTAssertEqual(evaluator.patchedLogits(full, batch), clean)
        var none = full
        for i in none.edgeInGraph.indices { none.edgeInGraph[i] = false }
        none.pruneDeadNodes()
        XCTAssertTrue(none.isEmpty)
        XCTAssertEqual(evaluator.patchedLogits(none, batch), corrupted)
        var almost = full
        for e in model.graph.parentEdges[model.graph.logitsNode].dropLast() { almost.edgeInGraph[e] = false }
        XCTAssertNotEqual(evaluator.patchedLogits(almost, batch), clean)
        XCTAssertEqual(evaluator.zeroAblatedLogits(full, batch), clean)
    }
}
