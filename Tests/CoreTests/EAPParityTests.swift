import Foundation
import XCTest
@testable import Core

/// The instrumented model and the attribution scores against the study's numbers (fixtures README,
/// "reference/forward.*" and "reference/eap/"). Tolerances are the README's.
final class EAPParityTests: XCTestCase {
    static let template = "{subject} lives in the city of"

    static func model() throws -> InstrumentedGPT2 {
        let root = try AttributionFixtures.requireFixtures()
        return InstrumentedGPT2(parameters: try HFCheckpoint.load(folder: root.appendingPathComponent("model")))
    }

    static func tokenizer() throws -> GPT2Tokenizer {
        try GPT2Tokenizer(directory: try AttributionFixtures.requireFixtures().appendingPathComponent("tokenizer"))
    }

    /// The 24 circuit samples of city.jsonl as prompt pairs.
    static func cityPairs() throws -> [PromptPair] {
        let tok = try tokenizer()
        return try AttributionFixtures.jsonLines("reference/eap/city.jsonl").map { r in
            PromptPair(template: template, cleanSubject: r["clean_subject"] as! String, corruptedSubject: r["corrupted_subject"] as! String,
                       cleanLabel: (r["clean_label_idx"] as! NSNumber).intValue, corruptedLabel: (r["corrupted_label_idx"] as! NSNumber).intValue,
                       encoder: tok)
        }
    }

    /// Logits at every valid position of the six forward.* prompts (each prefix run as its own prompt, so the
    /// read-out position walks over all positions) against TransformerLens's `logits_tl`: max abs ≤ 1e-4.
    func testInstrumentedForwardMatchesTransformerLens() throws {
        let model = try Self.model()
        let file = try SafetensorsFile(url: try AttributionFixtures.requireFixtures().appendingPathComponent("reference/forward.safetensors"))
        let tokens = try file.ints("tokens"), lengths = try file.ints("input_lengths")
        // Every vocabulary column, or the kept ones of the compact set (ReferenceTensor).
        let ref = try ReferenceTensor(file, "logits_tl")
        let T = try file.info("tokens").shape[1], V = model.config.vocabSize
        let columns = ref.kept(along: 2), cols = columns.count
        XCTAssertEqual(ref.shape, [lengths.count, T, V])
        var worst = 0.0
        for b in 0..<lengths.count {
            // Prefixes 1 … length−1 tokens after BOS: read position = prefix length.
            let row = Array(tokens[(b * T + 1)..<(b * T + lengths[b])])
            let prompts = (1...row.count).map { Array(row[0..<$0]) }
            let batch = try PromptBatch(prompts: prompts, labels: prompts.map { _ in 0 }, vocabSize: V, maxPositions: model.config.nPositions)
            let logits = model.forward(batch)
            for (i, p) in prompts.enumerated() {
                let pos = p.count
                for (c, v) in columns.enumerated() {
                    worst = max(worst, abs(Double(logits[i * V + v]) - Double(ref.values[(b * T + pos) * cols + c])))
                }
            }
        }
        print("instrumented forward vs logits_tl: max abs \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-4)
    }

    func testEAPScores() throws {
        try checkScores(method: .eap, reference: "eap_scores")
    }

    func testEAPIGScores() throws {
        try checkScores(method: .eapIG, reference: "eap_ig_scores")
    }

    func checkScores(method: AttributionMethod, reference: String) throws {
        let model = try Self.model()
        let pairs = try Self.cityPairs()
        XCTAssertEqual(pairs.count, 24)
        let start = Date()
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 8,
                                                options: AttributionOptions(method: method, igSteps: 5))
        let seconds = Date().timeIntervalSince(start)
        let g = model.graph
        for name in [reference, reference + "_f64"] {
            let ref = try AttributionFixtures.scores(name)
            let rel = ScoreMatrix.relativeFrobenius(scores, ref), mx = ScoreMatrix.maxAbsDifference(scores, ref)
            print("\(method.rawValue) vs \(name): rel Frobenius \(rel), max abs \(mx) (\(String(format: "%.2f", seconds)) s)")
            XCTAssertLessThanOrEqual(rel, 1e-4, "\(method.rawValue) scores vs \(name): rel Frobenius \(rel) > 1e-4, max abs \(mx)")
            for n in [10, 50, 200] {
                var mine = Circuit(graph: g, scores: scores), theirs = Circuit(graph: g, scores: ref)
                mine.applyTopN(n); theirs.applyTopN(n)
                XCTAssertEqual(mine.keptEdgeNames, theirs.keptEdgeNames, "\(method.rawValue) top-\(n) edge set vs \(name)")
            }
        }
        // The exact zeros the README lists stay exact.
        let zeros = AttributionFixtures.strings((try AttributionFixtures.json("reference/eap/eap.json")["checks"] as! [String: Any])[method.rawValue]
            .flatMap { ($0 as! [String: Any])["zero_score_edges"] })
        // The fixture README lists six such edges; a missing key must not make this check vacuous.
        XCTAssertEqual(zeros.count, 6, "eap.json checks.\(method.rawValue).zero_score_edges: expected the six edges the fixture README lists")
        for name in zeros {
            let e = g.edges[try XCTUnwrap(g.edgeIndex(named: name), "\(name) is not an edge of the graph")]
            XCTAssertEqual(scores[e.forward, e.backward], 0, "\(name) should score exactly 0")
        }
    }
}

/// The instrumented model (folded value biases, per-head outputs) against the plain GPT-2 of `Model/`.
final class InstrumentedForwardTests: XCTestCase {
    func check(_ model: InstrumentedGPT2, _ batch: PromptBatch, tolerance: Double, _ label: String) throws {
        let plain = GPT2(params: model.parameters)
        let V = model.config.vocabSize
        let tokens = batch.cleanTokens.map { Int($0) }
        let ref = try plain.forward(tokens: tokens, batch: batch.batch, seqLen: batch.seqLen, lengths: batch.lengths,
                                    positions: batch.lengths.map { $0 - 1 })
        let mine = model.forward(batch)
        var worst = 0.0
        for i in 0..<(batch.batch * V) { worst = max(worst, abs(Double(mine[i]) - Double(ref[i]))) }
        print("\(label): instrumented vs plain forward max |Δ| \(worst)")
        XCTAssertLessThanOrEqual(worst, tolerance, label)
        // Recording, and patching with nothing absent, change nothing.
        let n = model.graph.nForward * batch.batch * batch.seqLen * model.config.nEmbd
        let record = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { record.deallocate() }
        let before = Array(UnsafeBufferPointer(start: model.forward(batch), count: batch.batch * V))
        XCTAssertEqual(Array(UnsafeBufferPointer(start: model.forward(batch, record: record), count: batch.batch * V)), before)
    }

    func testFixtureModel() throws {
        let model = try EAPParityTests.model()
        let batch = try PromptBatch(pairs: try EAPParityTests.cityPairs(), config: model.config)
        try check(model, batch, tolerance: 1e-4, "fixture model, 24 city prompts")
    }

    func testRandomModelWithBiases() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 23, layers: 3, heads: 4, width: 32, vocab: 60)
        let batch = try PromptBatch(pairs: AttributionPropertyTests.randomPairs(5, vocab: 60, seed: 2), config: model.config)
        try check(model, batch, tolerance: 1e-4, "random model")
    }

    /// The node outputs recorded by one run, plus the positional embedding and the folded attention biases,
    /// sum to the final residual stream (the graph covers everything that writes to the residual).
    func testRecordedOutputsSumToResidual() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 29, layers: 2, heads: 3, width: 24, vocab: 50)
        let batch = try PromptBatch(pairs: AttributionPropertyTests.randomPairs(3, vocab: 50, seed: 4), config: model.config)
        let g = model.graph, C = model.config.nEmbd, BT = batch.batch * batch.seqLen, BTC = BT * C
        let record = UnsafeMutablePointer<Float>.allocate(capacity: g.nForward * BTC)
        defer { record.deallocate() }
        // x_L = W_pos + Σ_f output_f + Σ_ℓ b_O' (MLP biases are part of the MLP outputs); check through LN_f and W_E.
        model.forward(batch, record: record, recordMode: .set)
        let p = model.parameters.views
        var worst = 0.0
        let logitsIn = UnsafeMutablePointer<Float>.allocate(capacity: C)
        defer { logitsIn.deallocate() }
        for (b, r) in batch.readRows.enumerated() {
            let t = r % batch.seqLen
            for i in 0..<C {
                var s = Double(p.wpe[t * C + i])
                for f in 0..<g.nForward { s += Double(record[f * BTC + r * C + i]) }
                for l in 0..<g.nLayers { s += Double(model.foldedOutputBias(layer: l)[i]) }
                logitsIn[i] = Float(s)
            }
            // Compare LN_f(logitsIn)·W_E with the logits at this row.
            let V = model.config.vocabSize
            let logits = Array(UnsafeBufferPointer(start: model.forward(batch), count: batch.batch * V))
            var mean = 0.0, varSum = 0.0
            for i in 0..<C { mean += Double(logitsIn[i]) }
            mean /= Double(C)
            for i in 0..<C { varSum += (Double(logitsIn[i]) - mean) * (Double(logitsIn[i]) - mean) }
            let rstd = 1 / (varSum / Double(C) + 1e-5).squareRoot()
            for v in 0..<V {
                var s = 0.0
                for i in 0..<C { s += ((Double(logitsIn[i]) - mean) * rstd * Double(p.lnfWeight[i]) + Double(p.lnfBias[i])) * Double(p.wte[v * C + i]) }
                worst = max(worst, abs(s - Double(logits[b * V + v])))
            }
        }
        XCTAssertLessThan(worst, 1e-4)
    }
}
