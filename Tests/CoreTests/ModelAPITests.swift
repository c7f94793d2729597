import Foundation
import XCTest
@testable import Core
@testable import Benchmarks

/// The model's API contracts: arena reuse, optimizer state on disk, traces.
final class ModelAPITests: XCTestCase {
    let cfg = GPT2Config(nLayer: 2, nHead: 2, nEmbd: 16, nPositions: 16, vocabSize: 40)

    func tokens(_ n: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Int(rng.next() % 40) }
    }

    func testActivationArenaIsReusedAcrossSteps() throws {
        let model = GPT2(config: cfg, seed: 1, threads: 2)
        _ = try model.forwardLoss(tokens: tokens(4 * 8, seed: 2), batch: 4, seqLen: 8)
        model.backward()
        let capacity = model.acts.capacity
        let logits = model.acts.logits
        for s in 0..<3 {
            _ = try model.forwardLoss(tokens: tokens(4 * 8, seed: UInt64(3 + s)), batch: 4, seqLen: 8)
            model.backward()
        }
        XCTAssertEqual(model.acts.capacity, capacity)
        XCTAssertEqual(model.acts.logits, logits, "same shape, same buffers")
        _ = try model.forward(tokens: tokens(2 * 5, seed: 9), batch: 2, seqLen: 5)
        XCTAssertEqual(model.acts.capacity, capacity, "a smaller batch fits the existing arena")
        _ = try model.forward(tokens: tokens(8 * 16, seed: 9), batch: 8, seqLen: 16)
        XCTAssertGreaterThan(model.acts.capacity, capacity, "a larger batch grows it")
    }

    /// Six steps straight equal three steps, a save and reload of parameters and optimizer state, three more.
    func testOptimizerStateRoundTripResumesExactly() throws {
        let dir = try ModelFixtures.tempDir(self)
        let opts = AdamWConfig(lr: 1e-2, maxGradNorm: 1.0, schedule: .cosine, warmupSteps: 2, totalSteps: 6)
        func run(_ model: GPT2, _ opt: AdamW, steps: Range<Int>) throws {
            for s in steps {
                model.zeroGradients()
                _ = try model.forwardLoss(tokens: tokens(2 * 8, seed: UInt64(100 + s)), batch: 2, seqLen: 8)
                model.backward()
                opt.step(params: model.params, grads: model.grads)
            }
        }
        let a = GPT2(config: cfg, seed: 7, threads: 1)
        let oa = AdamW(layout: a.layout, config: opts)
        try run(a, oa, steps: 0..<6)

        let b = GPT2(config: cfg, seed: 7, threads: 1)
        let ob = AdamW(layout: b.layout, config: opts)
        try run(b, ob, steps: 0..<3)
        try HFCheckpoint.save(b.params, to: dir.appendingPathComponent("ckpt"))
        try ob.saveState(to: dir.appendingPathComponent("ckpt/optimizer.safetensors"))

        let c = GPT2(params: try HFCheckpoint.load(folder: dir.appendingPathComponent("ckpt")), threads: 1)
        let oc = AdamW(layout: c.layout, config: opts)
        try oc.loadState(from: dir.appendingPathComponent("ckpt/optimizer.safetensors"))
        XCTAssertEqual(oc.stepCount, 3)
        try run(c, oc, steps: 3..<6)
        XCTAssertEqual(Array(c.params.buffer), Array(a.params.buffer), "resumed training is bit-identical")

        let wrong = AdamW(segments: [.init(range: 0..<10, decay: false)], count: 10, config: opts)
        XCTAssertThrowsError(try wrong.loadState(from: dir.appendingPathComponent("ckpt/optimizer.safetensors"))) {
            XCTAssertTrue("\($0)".contains("exp_avg"))
        }
    }

    func testTraceNamesEveryHookAndSkipsPadding() throws {
        let model = GPT2(config: cfg, seed: 3, threads: 2)
        let toks = tokens(2 * 6, seed: 4)
        _ = try model.forward(tokens: toks, batch: 2, seqLen: 6, lengths: [6, 3])
        let trace = model.acts.trace()
        XCTAssertEqual(trace.count, 1 + cfg.nLayer * 11 + 1)
        XCTAssertEqual(trace.first?.hook, "blocks.0.hook_resid_pre")
        XCTAssertTrue(trace.contains { $0.hook == "blocks.1.attn.hook_pattern" && $0.shape == [2, 2, 6, 6] })
        // Each real query's pattern row sums to 1: 2 heads × (6 + 3) real positions.
        let pattern = try XCTUnwrap(trace.first { $0.hook == "blocks.0.attn.hook_pattern" })
        XCTAssertEqual(pattern.sum, 18, accuracy: 1e-4)
        // Changing a padded token changes no trace line.
        var other = toks
        other[5 + 6] = (other[5 + 6] + 1) % 40
        _ = try model.forward(tokens: other, batch: 2, seqLen: 6, lengths: [6, 3])
        for (x, y) in zip(trace, model.acts.trace()) { XCTAssertEqual(x.sum, y.sum, x.hook) }
    }

    /// The benchmark engine runs and reports consistent numbers (not a timing test).
    func testModelBenchReportsConsistentFigures() throws {
        let small = GPT2Config(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 16, vocabSize: 50)
        XCTAssertEqual(ModelBench.flopsPerStep(small, batch: 2, seqLen: 8),
                       6 * Double(small.parameterCount) * 16 + 12 * 1 * 2 * 64 * 16)
        let r = try ModelBench.run(name: "small", config: small, batch: 2, seqLen: 8, threads: 1, repeats: 3, warmup: 1,
                                   roof: 1, profile: true)
        XCTAssertEqual(r.stepSeconds.count, 3)
        XCTAssertLessThanOrEqual(r.minTokensPerS, r.tokensPerS)
        XCTAssertLessThanOrEqual(r.tokensPerS, r.maxTokensPerS)
        XCTAssertEqual(r.gflops, r.flopsPerStep * r.tokensPerS / 16 / 1e9, accuracy: 1e-9 * r.gflops)
        XCTAssertTrue(r.phases.contains { $0.name == "bwd.attention" } && r.phases.contains { $0.name == "adamw" })
        XCTAssertGreaterThan(r.peakRSSMiB, 0)
    }

    /// FLOPs of a Llama and a Phi step, counted by hand: C 8, 4 heads of 2 sharing 2 K/V heads (K/V width 4),
    /// d_mlp 16, V 10, 2 layers, B 2, T 3. Per token and layer: q 2·8·8, k and v 2·8·4 each, output 2·8·8,
    /// MLP 3 (Llama) or 2 (Phi) products of 2·8·16; the unembedding 2·10·8 per token; 6× for forward and
    /// backward; attention 12·L·B·T²·C.
    func testFamilyBenchFlopsAndRun() throws {
        func shape(_ f: ModelFamily) -> ModelConfig {
            ModelConfig(family: f, numLayers: 2, numHeads: 4, numKVHeads: 2, hiddenSize: 8, intermediateSize: 16, vocabSize: 10,
                        maxPositions: 16, partialRotaryFactor: f == .phi ? 0.5 : 1)
        }
        let attention: Double = 128 + 2 * 64 + 128            // q, k and v, output
        let llamaBlock: Double = attention + 3 * 256, phiBlock: Double = attention + 2 * 256
        let llamaPerToken: Double = 2 * llamaBlock / 2 + 80, phiPerToken: Double = 2 * phiBlock / 2 + 80
        let scores: Double = 12 * 2 * 2 * 9 * 8
        XCTAssertEqual(ModelBench.flopsPerStep(shape(.llama), batch: 2, seqLen: 3), 36 * llamaPerToken + scores)
        XCTAssertEqual(ModelBench.flopsPerStep(shape(.phi), batch: 2, seqLen: 3), 36 * phiPerToken + scores)
        XCTAssertEqual(ModelBench.flopsPerStep(shape(.llama), batch: 2, seqLen: 3), 47_808)
        for name in ["tiny-llama", "tiny-phi", "tinyllama-4l", "phi-1_5-4l"] {
            let c = try XCTUnwrap(ModelBench.familyConfig(named: name))
            XCTAssertNoThrow(try c.validate(source: name))
        }
        let r = try ModelBench.run(name: "small-llama", family: shape(.llama), batch: 2, seqLen: 3, threads: 1, repeats: 2, warmup: 1)
        XCTAssertEqual(r.stepSeconds.count, 2)
        XCTAssertEqual(r.parameters, FamilyLayout(config: shape(.llama)).count)
        XCTAssertEqual(r.gflops, r.flopsPerStep * r.tokensPerS / 6 / 1e9, accuracy: 1e-9 * r.gflops)
    }
}
