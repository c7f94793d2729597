import Foundation
import XCTest
@testable import Core

/// Properties of Llama / Phi attribution that hold for any model, independent of the fixtures: on small random
/// models with shapes the fixtures do not have (Llama with 2 query heads per KV head and d_head 8, Phi with a
/// half of each head rotated), with random biases and norm weights, EAP equals the derivative of actually patched runs
/// for every edge, EAP-IG is complete, and stacked integration steps equal sequential ones.
final class FamilyAttributionPropertyTests: XCTestCase {
    static func tinyModel(_ family: ModelFamily, seed: UInt64) throws -> InstrumentedFamily {
        let vocab = 40
        let config = ModelConfig(family: family, numLayers: 2, numHeads: 4, numKVHeads: family == .llama ? 2 : 4, hiddenSize: 32,
                                 intermediateSize: 40, vocabSize: vocab, maxPositions: 16, partialRotaryFactor: family == .phi ? 0.5 : 1,
                                 bosTokenId: vocab - 1, eosTokenId: vocab - 1, initializerRange: 0.3)
        try config.validate()
        let arena = FamilyArena(layout: FamilyLayout(config: config))
        arena.initialize(seed: seed)
        var rng = SplitMix64(seed: seed &+ 1)
        for t in arena.layout.tensors where t.shape.count == 1 {
            let p = arena.pointer(t)
            for i in 0..<t.count { p[i] += 0.2 * rng.nextGaussian() }
        }
        return InstrumentedFamily(parameters: arena)
    }

    func testLlamaEAPIsFirstOrderEdgePatching() throws { try checkFirstOrder(.llama) }
    func testPhiEAPIsFirstOrderEdgePatching() throws { try checkFirstOrder(.phi) }
    func testLlamaIGCompletenessAndStackedSteps() throws { try checkIG(.llama) }
    func testPhiIGCompletenessAndStackedSteps() throws { try checkIG(.phi) }

    func testLlamaMethodsAgreeWhereTheyMust() throws { try checkMethods(.llama) }
    func testPhiMethodsAgreeWhereTheyMust() throws { try checkMethods(.phi) }

    /// With one step, EAP-IG is EAP; IG on activations with one step sets each group (input; a layer's heads; an MLP)
    /// to exactly its clean output, so each of its 1 + 2L passes is the clean run with the gradient cut at that group
    /// (the replace-and-cut path of the instrumented model): the logits column equals EAP's, the last MLP's column
    /// is EAP's times (passes − 1) / passes, and for Phi's parallel blocks, where the last MLP does not read the
    /// last heads, so are the last layer's head columns.
    func checkMethods(_ family: ModelFamily) throws {
        let model = try Self.tinyModel(family, seed: 23)
        let pairs = AttributionPropertyTests.randomPairs(4, vocab: model.vocabSize, seed: 21)
        let eap = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .eap))
        let ig1 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .eapIG, igSteps: 1))
        XCTAssertLessThan(ScoreMatrix.relativeFrobenius(ig1, eap), 1e-5, "\(family): EAP-IG with 1 step is EAP")
        let act1 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .eapIGActivations, igSteps: 1))
        let g = model.graph
        func same(_ a: Float, _ b: Float, _ what: String) {
            XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "\(family) \(what)")
        }
        for f in 0..<g.nForward { same(act1[f, g.logitsBackward], eap[f, g.logitsBackward], "logits column, row \(f)") }
        let passes = Float(1 + 2 * g.nLayers), last = g.nLayers - 1
        var columns = [g.mlpBackward(layer: last)]
        if g.parallel {
            for h in 0..<g.nHeads { for j in QKV.allCases { columns.append(g.headBackward(layer: last, head: h, qkv: j)) } }
        }
        for col in columns {
            for f in 0..<g.backwardPrevIndex[col] { same(act1[f, col] * passes / (passes - 1), eap[f, col], g.backwardNames[col]) }
        }
        XCTAssertGreaterThan(columns.map { c in (0..<g.backwardPrevIndex[c]).map { abs(eap[$0, c]) }.max()! }.max()!, 1e-4)
        let cc = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .cleanCorrupted))
        XCTAssertTrue(cc.values.allSatisfy { $0.isFinite })
    }

    /// EAP's score of edge u → v is the derivative of the metric when v's input receives ε·(corrupted − clean) of u
    /// (central differences with ε = 0.005: with 0.02 the random Llama's curvature alone gives 0.2 % of the largest score).
    func checkFirstOrder(_ family: ModelFamily) throws {
        let model = try Self.tinyModel(family, seed: 17)
        let g = model.graph
        let pairs = AttributionPropertyTests.randomPairs(4, vocab: model.vocabSize)
        let batch = try model.promptBatch(pairs: pairs, firstIndex: 0)
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .eap))
        let metric = AttributionMetric.study
        let V = model.vocabSize, BTC = batch.batch * batch.seqLen * model.dModel
        let record = UnsafeMutablePointer<Float>.allocate(capacity: g.nForward * BTC)
        defer { record.deallocate() }
        func patchedMetric(edge: GraphEdge, eps: Float) -> Double {
            model.forward(batch, clean: false, record: record, recordMode: .set)
            var absent = [Float](repeating: 0, count: g.nForward * g.nBackward)
            absent[edge.forward * g.nBackward + edge.backward] = eps
            let patch = InstrumentedGPT2.Patch(absent: absent, rebuildHeads: [Bool](repeating: true, count: g.nLayers),
                                               rebuildMLP: [Bool](repeating: true, count: g.nLayers), rebuildLogits: true, graph: g)
            let logits = model.forward(batch, clean: true, record: record, recordMode: .subtract, patch: patch)
            return metric.value(logits: logits, reference: nil, batch: batch, vocab: V)
        }
        var worst = 0.0, largest = 0.0
        for e in g.edges { largest = max(largest, abs(Double(scores[e.forward, e.backward])) * Double(pairs.count)) }
        XCTAssertGreaterThan(largest, 1e-3, "the test needs non-trivial scores")
        for e in g.edges {
            let eps: Float = 0.005
            let fd = (patchedMetric(edge: e, eps: eps) - patchedMetric(edge: e, eps: -eps)) / Double(2 * eps)
            let eap = Double(scores[e.forward, e.backward]) * Double(pairs.count)   // scores are divided by N
            let err = abs(fd - eap)
            worst = max(worst, err / largest)
            XCTAssertLessThanOrEqual(err, 1e-3 * largest + 1e-3 * abs(eap), "\(family) \(e.name): EAP \(eap), patched derivative \(fd)")
        }
        print("\(family) EAP vs patched derivative: worst error / max score \(worst) over \(g.edgeCount) edges (max |score·N| \(largest))")
    }

    /// The input node's EAP-IG scores sum (×N) to metric(corrupted) − metric(clean) up to the Riemann-sum error;
    /// integration steps stacked into one pass (`copies` in the backward) give the sequential steps' scores.
    func checkIG(_ family: ModelFamily) throws {
        let model = try Self.tinyModel(family, seed: 19)
        let g = model.graph
        let pairs = AttributionPropertyTests.randomPairs(3, vocab: model.vocabSize, seed: 5)
        let batch = try model.promptBatch(pairs: pairs, firstIndex: 0)
        let V = model.vocabSize
        let metric = AttributionMetric.study
        let clean = metric.value(logits: model.forward(batch, clean: true), reference: nil, batch: batch, vocab: V)
        let corrupted = metric.value(logits: model.forward(batch, clean: false), reference: nil, batch: batch, vocab: V)
        let target = corrupted - clean
        var errors: [Double] = []
        for steps in [1, 5, 25, 125, 625] {
            let s = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 3, options: .init(method: .eapIG, igSteps: steps))
            let total = g.childEdges[0].reduce(0.0) { $0 + Double(s[0, g.edges[$1].backward]) } * Double(pairs.count)
            errors.append(abs(total - target))
        }
        print("\(family) IG completeness: target \(target), errors at 1, 5, 25, 125, 625 steps \(errors)")
        XCTAssertGreaterThan(abs(target), 1e-3, "the test needs clean and corrupted runs that differ")
        // The Riemann-sum error shrinks like 1 / steps (the random Llama is strongly curved: 125 steps are not enough).
        XCTAssertLessThan(errors[4], errors[2])
        XCTAssertLessThan(errors[4], errors[3])
        XCTAssertLessThan(errors[4], 0.02 * abs(target) + 1e-5)

        let one = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 3, options: .init(method: .eapIG, igSteps: 5, rowsPerPass: 1))
        let all = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 3, options: .init(method: .eapIG, igSteps: 5, rowsPerPass: 10_000))
        let rel = ScoreMatrix.relativeFrobenius(all, one)
        print("\(family) stacked vs sequential IG steps: rel Frobenius \(rel)")
        XCTAssertLessThan(rel, 1e-5)
        XCTAssertGreaterThan(one.values.map { abs($0) }.max() ?? 0, 0)
    }
}
