import Foundation
import XCTest
@testable import Core

/// Checks that need no reference numbers: first-order accuracy of EAP against actually patching one edge,
/// completeness of integrated gradients, normalisation, and the other methods' consistency.
final class AttributionPropertyTests: XCTestCase {
    /// A small random GPT-2 with every parameter (LayerNorm gains, all biases, value biases) away from its
    /// default, so folding and every bias path matter.
    static func tinyModel(seed: UInt64 = 7, layers: Int = 2, heads: Int = 2, width: Int = 16, vocab: Int = 40) -> InstrumentedGPT2 {
        var cfg = GPT2Config(nLayer: layers, nHead: heads, nEmbd: width, nPositions: 16, vocabSize: vocab)
        cfg.initializerRange = 0.35
        cfg.bosTokenId = vocab - 1
        cfg.eosTokenId = vocab - 1
        let arena = ParameterArena(config: cfg)
        arena.initializeGPT2(seed: seed)
        var rng = SplitMix64(seed: seed &+ 1)
        for t in arena.layout.tensors where t.name.hasSuffix("bias") || t.name.contains(".ln_") {
            let p = arena.pointer(t)
            for i in 0..<t.count { p[i] += 0.2 * rng.nextGaussian() }
        }
        return InstrumentedGPT2(parameters: arena)
    }

    /// Random prompt pairs of equal token lengths (lengths differ between samples, so padding is exercised).
    static func randomPairs(_ n: Int, vocab: Int, seed: UInt64 = 3) -> [PromptPair] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { i in
            let len = 3 + i % 4
            // Only the second and third token differ between clean and corrupted (like a subject).
            let clean = (0..<len).map { _ in Int(rng.next() % UInt64(vocab - 1)) }
            var corrupted = clean
            corrupted[1] = Int(rng.next() % UInt64(vocab - 1))
            corrupted[2] = Int(rng.next() % UInt64(vocab - 1))
            return PromptPair(clean: clean, corrupted: corrupted, cleanLabel: Int(rng.next() % UInt64(vocab)),
                              corruptedLabel: Int(rng.next() % UInt64(vocab)))
        }
    }

    /// EAP's score of edge u → v is the derivative of the metric when v's input receives ε·(corrupted − clean)
    /// of u: compare with a central difference of actually patched runs. Six layers take the contraction over more
    /// than one block of layers (`EdgeAttribution.contractionLayersPerBlock`), which also forms entries that are not
    /// edges: the scores hold 0 there.
    func testEAPIsFirstOrderEdgePatching() throws {
        XCTAssertLessThan(EdgeAttribution.contractionLayersPerBlock, 6)
        for layers in [2, 6] { try checkEAPIsFirstOrderEdgePatching(layers: layers) }
    }

    func checkEAPIsFirstOrderEdgePatching(layers: Int) throws {
        let model = Self.tinyModel(layers: layers)
        let g = model.graph
        let pairs = Self.randomPairs(4, vocab: model.config.vocabSize)
        let batch = try PromptBatch(pairs: pairs, config: model.config)
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .eap))
        for f in 0..<g.nForward {
            for b in 0..<g.nBackward where !g.isEdge(forward: f, backward: b) {
                XCTAssertEqual(scores.values[f * g.nBackward + b], 0, "\(layers) layers: (\(f), \(b)) is not an edge")
            }
        }
        let metric = AttributionMetric.study
        let V = model.config.vocabSize, BTC = batch.batch * batch.seqLen * model.config.nEmbd
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
        for e in g.edges {
            let eps: Float = 0.02
            let fd = (patchedMetric(edge: e, eps: eps) - patchedMetric(edge: e, eps: -eps)) / Double(2 * eps)
            let eap = Double(scores[e.forward, e.backward]) * Double(pairs.count)   // scores are divided by N
            let err = abs(fd - eap)
            worst = max(worst, err / largest)
            if ProcessInfo.processInfo.environment["DKC_VERBOSE"] != nil { print("  \(e.name): EAP·N \(eap) patched \(fd)") }
            XCTAssertLessThanOrEqual(err, 1e-3 * largest + 1e-3 * abs(eap), "\(layers) layers, \(e.name): EAP \(eap), patched derivative \(fd)")
        }
        print("EAP vs patched derivative, \(layers) layers: worst error / max score \(worst) over \(g.edgeCount) edges (max |score·N| \(largest))")
    }

    /// Integrated gradients on the input: the input node's outgoing scores sum (×N) to
    /// metric(corrupted) − metric(clean), up to the Riemann-sum error, which shrinks as the steps grow.
    func testIGCompleteness() throws {
        let model = Self.tinyModel(seed: 11)
        let g = model.graph
        let pairs = Self.randomPairs(3, vocab: model.config.vocabSize, seed: 5)
        let batch = try PromptBatch(pairs: pairs, config: model.config)
        let V = model.config.vocabSize
        let metric = AttributionMetric.study
        let clean = metric.value(logits: model.forward(batch, clean: true), reference: nil, batch: batch, vocab: V)
        let corrupted = metric.value(logits: model.forward(batch, clean: false), reference: nil, batch: batch, vocab: V)
        let target = corrupted - clean
        var errors: [Double] = []
        for steps in [1, 5, 25, 125] {
            let s = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 3, options: .init(method: .eapIG, igSteps: steps))
            let total = g.childEdges[0].reduce(0.0) { $0 + Double(s[0, g.edges[$1].backward]) } * Double(pairs.count)
            errors.append(abs(total - target))
            print("IG completeness, \(steps) steps: Σ input scores·N \(total), metric(corrupted) − metric(clean) \(target)")
        }
        XCTAssertGreaterThan(abs(target), 1e-3, "the test needs clean and corrupted runs that differ")
        XCTAssertLessThan(errors[3], errors[1])
        XCTAssertLessThan(errors[3], 0.02 * abs(target) + 1e-5)
    }

    /// Scores scale with 1 / batch size under the study's normalisation and not under the per-sample one;
    /// the order of the samples changes only rounding.
    func testNormalisation() throws {
        let model = Self.tinyModel(seed: 13)
        let pairs = Self.randomPairs(6, vocab: model.config.vocabSize, seed: 9)
        for method in [AttributionMethod.eap, .eapIG] {
            let b2 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 2, options: .init(method: method))
            let b6 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 6, options: .init(method: method))
            var scaled = b6
            scaled.scale(by: 3)
            XCTAssertLessThan(ScoreMatrix.relativeFrobenius(b2, scaled), 1e-5, "\(method): batch 2 should be 3× batch 6")
            let p2 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 2, options: .init(method: method, normalisation: .perSample))
            let p6 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 6, options: .init(method: method, normalisation: .perSample))
            XCTAssertLessThan(ScoreMatrix.relativeFrobenius(p2, p6), 1e-5, "\(method): per-sample normalisation is batch independent")
            var b6x2 = b6
            b6x2.scale(by: 6)
            XCTAssertLessThan(ScoreMatrix.relativeFrobenius(p6, b6x2), 1e-6)
            let reversed = try EdgeAttribution.scores(model: model, pairs: pairs.reversed(), batchSize: 6, options: .init(method: method))
            XCTAssertLessThan(ScoreMatrix.relativeFrobenius(reversed, b6), 1e-5)
            let mean = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 6, options: .init(method: method, aggregation: .mean))
            var b6m = b6
            b6m.scale(by: 1 / Float(model.config.nEmbd))
            XCTAssertLessThan(ScoreMatrix.relativeFrobenius(mean, b6m), 1e-6)
        }
    }

    /// With one step, EAP-IG (inputs) is EAP with the gradient taken on the clean run; clean-corrupted and IG on
    /// activations produce finite scores of the same sign structure on edges from the input.
    func testMethodsAgreeWhereTheyMust() throws {
        let model = Self.tinyModel(seed: 17)
        let pairs = Self.randomPairs(4, vocab: model.config.vocabSize, seed: 21)
        let eap = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .eap))
        let ig1 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .eapIG, igSteps: 1))
        XCTAssertLessThan(ScoreMatrix.relativeFrobenius(ig1, eap), 1e-5, "EAP-IG with 1 step is EAP")
        let act1 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .eapIGActivations, igSteps: 1))
        // With one step every group is set to exactly its clean output, so each of the (1 + 2L) passes is the clean
        // run with the gradient cut at that group. The logits column sees the same gradient in every pass, and the
        // sum over passes is divided by their number: it equals EAP's column.
        let g = model.graph
        for f in 0..<g.nForward {
            XCTAssertEqual(act1[f, g.logitsBackward], eap[f, g.logitsBackward], accuracy: 1e-5 * max(1, abs(eap[f, g.logitsBackward])))
        }
        // The last MLP's input gets EAP's gradient in every pass but the one cutting that MLP (what lies after it is
        // never cut).
        let groups = Float(1 + 2 * g.nLayers)
        let col = g.mlpBackward(layer: g.nLayers - 1)
        for f in 0..<g.backwardPrevIndex[col] {
            XCTAssertEqual(act1[f, col] * groups / (groups - 1), eap[f, col], accuracy: 1e-5 * max(1, abs(eap[f, col])))
        }
        let cc = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: .init(method: .cleanCorrupted))
        XCTAssertTrue(cc.values.allSatisfy { $0.isFinite })
        // KL divergence against the reference distribution: zero gradient where the current run is the reference,
        // so EAP-IG with one step (clean run, clean reference) scores every edge 0.
        let kl = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4,
                                            options: .init(method: .eapIG, igSteps: 1, metric: .init(kind: .klDivergence)))
        XCTAssertLessThan(kl.values.map { abs($0) }.max()!, 1e-9)
        let kl5 = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4,
                                             options: .init(method: .eapIG, igSteps: 5, metric: .init(kind: .klDivergence)))
        XCTAssertGreaterThan(kl5.values.map { abs($0) }.max()!, 1e-7)
    }

    /// The metric's gradient against central differences, for every kind.
    func testMetricGradients() throws {
        let V = 7
                var rng = SplitMix64(seed: 1)
        var logits = (0..<(2 * V)).map { _ in Float(rng.nextGaussian()) }
        let reference = (0..<(2 * V)).map { _ in Float(rng.nextGaussian()) }
        // Two labels per sample: use a batch with corrupted labels.
        let pairBatch = try PromptBatch(pairs: [PromptPair(clean: [1, 2], corrupted: [1, 3], cleanLabel: 4, corruptedLabel: 2),
                                                PromptPair(clean: [3], corrupted: [5], cleanLabel: 5, corruptedLabel: 0)],
                                        vocabSize: V, maxPositions: 8, bos: V - 1, pad: V - 1)
        for kind in AttributionMetric.Kind.allCases {
            for reduction in AttributionMetric.Reduction.allCases {
                let m = AttributionMetric(kind: kind, loss: true, reduction: reduction)
                var grad = [Float](repeating: 0, count: 2 * V)
                reference.withUnsafeBufferPointer { r in
                    logits.withUnsafeBufferPointer { l in
                        grad.withUnsafeMutableBufferPointer { m.gradient(logits: l.baseAddress!, reference: r.baseAddress!, batch: pairBatch, vocab: V, into: $0.baseAddress!) }
                    }
                }
                for i in 0..<(2 * V) {
                    let h: Float = 1e-2
                    let x = logits[i]
                    logits[i] = x + h
                    let up = reference.withUnsafeBufferPointer { r in logits.withUnsafeBufferPointer { m.value(logits: $0.baseAddress!, reference: r.baseAddress!, batch: pairBatch, vocab: V) } }
                    logits[i] = x - h
                    let down = reference.withUnsafeBufferPointer { r in logits.withUnsafeBufferPointer { m.value(logits: $0.baseAddress!, reference: r.baseAddress!, batch: pairBatch, vocab: V) } }
                    logits[i] = x
                    XCTAssertEqual(Double(grad[i]), (up - down) / Double(2 * h), accuracy: 1e-4, "\(kind) \(reduction) logit \(i)")
                }
            }
        }
    }
}

final class AttributionInputTests: XCTestCase {
    func testRepeatedRunsAreBitIdentical() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 31)
        let pairs = AttributionPropertyTests.randomPairs(5, vocab: model.config.vocabSize, seed: 12)
        for method in AttributionMethod.allCases {
            let a = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 2, options: .init(method: method, igSteps: 3))
            let b = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 2, options: .init(method: method, igSteps: 3))
            XCTAssertEqual(a, b, "\(method) is not deterministic")
            // Non-edges are exactly 0.
            for f in 0..<model.graph.nForward {
                for c in 0..<model.graph.nBackward where !model.graph.isEdge(forward: f, backward: c) { XCTAssertEqual(a[f, c], 0) }
            }
        }
    }

    /// Stacking integration steps into one pass changes nothing but rounding.
    func testStackedStepsEqualSequentialSteps() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 37)
        let pairs = AttributionPropertyTests.randomPairs(5, vocab: model.config.vocabSize, seed: 14)
        for metric in [AttributionMetric.study, AttributionMetric(kind: .klDivergence), AttributionMetric(kind: .probabilityDifference)] {
            let one = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 3, options: .init(method: .eapIG, igSteps: 5, metric: metric, rowsPerPass: 1))
            let some = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 3, options: .init(method: .eapIG, igSteps: 5, metric: metric, rowsPerPass: 40))
            let all = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 3, options: .init(method: .eapIG, igSteps: 5, metric: metric, rowsPerPass: 10_000))
            XCTAssertLessThan(ScoreMatrix.relativeFrobenius(some, one), 1e-6, "\(metric.kind)")
            XCTAssertLessThan(ScoreMatrix.relativeFrobenius(all, one), 1e-6, "\(metric.kind)")
        }
    }

    /// A batch attributed in parts of whole samples gives the whole batch's scores (every method, both
    /// normalisations), up to rounding.
    func testBatchPartsAddUpToTheWholeBatch() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 41)
        let pairs = AttributionPropertyTests.randomPairs(7, vocab: model.config.vocabSize, seed: 15)
        for method in AttributionMethod.allCases {
            for normalisation in ScoreNormalisation.allCases {
                let whole = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 7,
                                                       options: .init(method: method, igSteps: 3, normalisation: normalisation, rowsPerPass: 10_000))
                let parts = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 7,
                                                       options: .init(method: method, igSteps: 3, normalisation: normalisation, rowsPerPass: 12))
                XCTAssertGreaterThan(whole.values.map(abs).max()!, 0)
                XCTAssertLessThan(ScoreMatrix.relativeFrobenius(parts, whole), 1e-6, "\(method) \(normalisation)")
            }
        }
    }

    /// The Δ and gradient buffers stay within 1 GiB: GPT-2 small and the fixture shapes keep the 512 rows asked
    /// for (their results do not move); TinyLlama's graph (727 forward nodes, 2,135 backward columns, d_model
    /// 2,048: 23.4 MB per row) gets 45 rows per part, GPT-2 medium 165.
    func testRowsPerPartKeepsTheBuffersWithinTheBudget() {
        func rows(_ layers: Int, _ heads: Int, _ C: Int, parallel: Bool = false) -> Int {
            EdgeAttribution.rowsPerPart(graph: AttributionGraph(nLayers: layers, nHeads: heads, parallel: parallel), dModel: C, rowsPerPass: 512)
        }
        XCTAssertEqual(rows(12, 12, 768), 512, "GPT-2 small")
        XCTAssertEqual(rows(2, 32, 128), 512, "the Llama fixture")
        XCTAssertEqual(rows(2, 4, 64, parallel: true), 512, "the Phi fixture")
        XCTAssertEqual(rows(22, 32, 2048), (1 << 30) / ((1 + 22 * 33 + 22 * 97 + 1) * 2048 * 4), "TinyLlama")
        XCTAssertEqual(rows(22, 32, 2048), 45)
        XCTAssertEqual(rows(24, 16, 1024), 165, "GPT-2 medium")
        XCTAssertEqual(EdgeAttribution.rowsPerPart(graph: AttributionGraph(nLayers: 12, nHeads: 12), dModel: 768, rowsPerPass: 64), 64,
                       "a smaller request stands")
    }

    func testPromptBatchPartsKeepWholeSamplesAndCutPadding() throws {
        let pairs = [[5, 6, 7, 8], [5], [5, 6], [5, 6, 7], [9]].enumerated().map { i, p in
            PromptPair(clean: p, corrupted: p.map { $0 + 10 }, cleanLabel: i, corruptedLabel: i + 1)
        }
        let b = try PromptBatch(pairs: pairs, vocabSize: 100, maxPositions: 10, bos: 99, pad: 99)
        XCTAssertEqual(b.seqLen, 5)
        XCTAssertEqual(b.parts(maxRows: 25).count, 1)
        let parts = b.parts(maxRows: 12)   // 25 rows → 3 parts of at most 2 samples
        XCTAssertEqual(parts.map(\.batch), [2, 2, 1])
        XCTAssertEqual(parts.map(\.seqLen), [5, 4, 2])
        XCTAssertEqual(parts[1].cleanTokens, [99, 5, 6, 99, 99, 5, 6, 7])
        XCTAssertEqual(parts[1].corruptedTokens!, [99, 15, 16, 99, 99, 15, 16, 17])
        XCTAssertEqual(parts[1].mask, [1, 1, 1, 0, 1, 1, 1, 1])
        XCTAssertEqual(parts[1].lengths, [3, 4])
        XCTAssertEqual(parts[1].cleanLabels, [2, 3])
        XCTAssertEqual(parts[1].corruptedLabels, [3, 4])
        XCTAssertEqual(parts[2].cleanTokens, [99, 9])
        XCTAssertEqual(b.parts(maxRows: 1).map(\.batch), [1, 1, 1, 1, 1])
    }

    func testPromptBatchLayoutAndErrors() throws {
        // Right padding with the pad token; mask 1 up to the last non-pad token; corrupted shares the mask.
        let b = try PromptBatch(pairs: [PromptPair(clean: [5, 6, 7], corrupted: [8, 9, 7], cleanLabel: 1, corruptedLabel: 2),
                                        PromptPair(clean: [5], corrupted: [4], cleanLabel: 3, corruptedLabel: 4)],
                                vocabSize: 100, maxPositions: 10, bos: 99, pad: 99)
        XCTAssertEqual(b.seqLen, 4)
        XCTAssertEqual(b.cleanTokens, [99, 5, 6, 7, 99, 5, 99, 99])
        XCTAssertEqual(b.corruptedTokens!, [99, 8, 9, 7, 99, 4, 99, 99])
        XCTAssertEqual(b.mask, [1, 1, 1, 1, 1, 1, 0, 0])
        XCTAssertEqual(b.lengths, [4, 2])
        XCTAssertEqual(b.readRows, [3, 5])
        // A prompt ending in the pad token is shortened as TransformerLens's mask does.
        let t = try PromptBatch(prompts: [[5, 99], [5, 6, 7]], labels: [1, 1], vocabSize: 100, maxPositions: 10, bos: 99, pad: 99)
        XCTAssertEqual(t.lengths, [2, 4])
        XCTAssertThrowsError(try PromptBatch(pairs: [PromptPair(clean: [5, 6], corrupted: [5], cleanLabel: 1, corruptedLabel: 2)],
                                             vocabSize: 100, maxPositions: 10, bos: 99, pad: 99, numbers: [7])) { e in
            XCTAssertTrue("\(e)".contains("sample 7"), "\(e)")
        }
        XCTAssertThrowsError(try PromptBatch(prompts: [[500]], labels: [1], vocabSize: 100, maxPositions: 10, bos: 99, pad: 99))
        XCTAssertThrowsError(try PromptBatch(prompts: [[1, 2, 3]], labels: [1], vocabSize: 100, maxPositions: 3, bos: 99, pad: 99))
        XCTAssertThrowsError(try PromptBatch(prompts: [[1]], labels: [100], vocabSize: 100, maxPositions: 3, bos: 99, pad: 99))
    }

    func testCircuitJSONErrors() {
        XCTAssertThrowsError(try Circuit(json: Data("{}".utf8), source: "g.json")) { XCTAssertTrue("\($0)".contains("g.json")) }
        XCTAssertThrowsError(try Circuit(json: Data(#"{"cfg": {"n_layers": 1, "n_heads": 1}, "edges": {"input->m7": {"score": 1, "in_graph": true}}}"#.utf8), source: "g.json")) {
            XCTAssertTrue("\($0)".contains("input->m7"), "\($0)")
        }
        XCTAssertThrowsError(try Circuit(json: Data(#"{"cfg": {"n_layers": 1, "n_heads": 1, "parallel_attn_mlp": true}, "edges": {}}"#.utf8), source: "g.json"))
        XCTAssertThrowsError(try ScoreMatrix(graph: AttributionGraph(nLayers: 1, nHeads: 1), values: [1, 2], source: "scores"))
    }

    func testCircuitSampleReading() throws {
        let o: [String: Any] = ["clean_subject": "A B", "clean_label": " X", "clean_label_idx": 3, "corrupted_subject": "C D",
                                "corrupted_label": " Y", "corrupted_label_idx": "4", "frequency": "6", "type": "new"]
        let s = try CircuitSample(jsonObject: JSONValue(foundation: o), source: "c.jsonl", line: 1)
        XCTAssertEqual(s.corruptedLabelIndex, 4)
        XCTAssertEqual(s.frequency, 6)
        var bad = o
        bad["clean_label_idx"] = nil
        XCTAssertThrowsError(try CircuitSample(jsonObject: JSONValue(foundation: bad), source: "c.jsonl", line: 9)) { XCTAssertTrue("\($0)".contains("c.jsonl:9")) }
        let high = FrequencyBucket(name: "high", min: 6, max: 1_000_000), low = FrequencyBucket(name: "low", min: 1, max: 1)
        XCTAssertEqual(CircuitSample.filter([s], type: "new", bucket: high).count, 1)
        XCTAssertEqual(CircuitSample.filter([s], type: "new", bucket: low).count, 0)
        XCTAssertEqual(CircuitSample.filter([s], type: "revised", bucket: nil).count, 0)
        XCTAssertEqual(CircuitTask.city.prompt(subject: "A B"), "A B lives in the city of")
    }
}
