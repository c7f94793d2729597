import Foundation
import XCTest
@testable import Core
@testable import Benchmarks

/// The engine of `dkc bench discover`: prompts, FLOP count, peak-memory scope and the reported fields
/// (not a timing test).
final class DiscoverBenchTests: XCTestCase {
    func tokenizer() throws -> GPT2Tokenizer {
        let dir = Paths.fixtures.appendingPathComponent("tokenizer")
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("vocab.json").path) else {
            throw missingFixtures(Paths.fixtures.path)
        }
        return try GPT2Tokenizer(directory: dir)
    }

    func pools() throws -> DataPools { try DataPools.load(from: Paths.sourceRoot.appendingPathComponent("data/pools")) }

    func testBenchConfigsAreTheDocumentedShapes() {
        XCTAssertEqual([GPT2Config.tiny.nLayer, GPT2Config.tiny.nHead, GPT2Config.tiny.nEmbd, GPT2Config.tiny.vocabSize], [4, 4, 128, 50257])
        XCTAssertEqual([GPT2Config.gpt2Small.nLayer, GPT2Config.gpt2Small.nHead, GPT2Config.gpt2Small.nEmbd], [12, 12, 768])
        XCTAssertEqual(ModelBench.config(named: "tiny"), .tiny)
        XCTAssertEqual(ModelBench.config(named: "gpt2"), .gpt2Small)
    }

    func testPromptsHaveTheStudysFormAndEqualLengthCorruptions() throws {
        let tok = try tokenizer(), p = try pools()
        let pairs = try DiscoverBench.prompts(count: 12, pools: p, encoder: tok, seed: 7)
        XCTAssertEqual(pairs.count, 12)
        XCTAssertEqual(pairs, try DiscoverBench.prompts(count: 12, pools: p, encoder: tok, seed: 7), "deterministic in the seed")
        XCTAssertNotEqual(pairs, try DiscoverBench.prompts(count: 12, pools: p, encoder: tok, seed: 8))
        let suffix = tok.encode(" lives in the city of")
        var cleanPrompts = Set<[Int]>()
        for (i, pair) in pairs.enumerated() {
            XCTAssertEqual(pair.clean.count, pair.corrupted.count, "pair \(i)")
            XCTAssertNotEqual(pair.clean, pair.corrupted, "pair \(i)")
            XCTAssertEqual(Array(pair.clean.suffix(suffix.count)), suffix, "pair \(i): the city template")
            XCTAssertEqual(Array(pair.corrupted.suffix(suffix.count)), suffix, "pair \(i)")
            XCTAssertNotEqual(pair.cleanLabel, pair.corruptedLabel, "pair \(i)")
            // The label is the first token of " " + a city of the pools.
            XCTAssertTrue(p.cities.contains { tok.encode(" " + $0).first == pair.cleanLabel }, "pair \(i)")
            // The subject is three pool names.
            let name = tok.decode(Array(pair.clean.dropLast(suffix.count))).split(separator: " ").map(String.init)
            XCTAssertEqual(name.count, 3, "pair \(i): \(name)")
            XCTAssertTrue(p.firstNames.contains(name[0]) && p.middleNames.contains(name[1]) && p.lastNames.contains(name[2]), "\(name)")
            cleanPrompts.insert(pair.clean)
        }
        XCTAssertEqual(cleanPrompts.count, 12, "distinct clean names")
    }

    /// A hand count: 1 layer, 2 heads, C 16, B 2, T 3 (N 6), logit difference (no unembedding).
    /// Forward body 6·24·16² = 36864 less the last (only) MLP's 16·16² at the 4 rows that are not read out,
    /// 36864 − 16384 = 20480 (forward and backward alike); per-head outputs 6·2·16² = 3072, attention
    /// 4·2·9·16 = 1152 forward and 2304 backward; graph: 4 forward nodes (input, 2 heads, MLP), 7 backward columns
    /// (2 heads × q/k/v, MLP, logits); the layer's block is 3 rows × 7 columns and the logits column reads 4 rows:
    /// 25 pairs, contraction 2·6·16·25 = 4800. EAP = 2·(20480 + 3072 + 1152) + (20480 + 2304) + 4800 = 76992.
    func testFlopCountMatchesAHandCount() {
        let c = GPT2Config(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 8, vocabSize: 50)
        let eap = DiscoverBench.flops(config: c, batch: 2, seqLen: 3, options: AttributionOptions(method: .eap))
        XCTAssertEqual(eap, 76_992)
        // Each integration step adds one forward (20480 + 1152) and one backward (20480 + 2304); with the logit
        // difference the last step's run is the clean run, recorded: one recorded forward and the per-head outputs
        // (3072) of that step.
        let plainForward = 20480.0 + 1152, backward = 20480.0 + 2304
        for m in 1...5 {
            let ig = DiscoverBench.flops(config: c, batch: 2, seqLen: 3, options: AttributionOptions(method: .eapIG, igSteps: m))
            XCTAssertEqual(ig, (20480 + 3072 + 1152) + 3072 + Double(m) * (plainForward + backward) + 4800, "m = \(m)")
        }
        // A metric that reads the logits runs the clean forward of its own (20480 + 1152, its per-head outputs already
        // counted) and adds 2·B·C·V per unembedding: the clean run, and each step's forward and backward.
        var probability = AttributionOptions(method: .eapIG, igSteps: 2)
        probability.metric = AttributionMetric(kind: .probabilityDifference)
        let withLogits = DiscoverBench.flops(config: c, batch: 2, seqLen: 3, options: probability)
        let without = DiscoverBench.flops(config: c, batch: 2, seqLen: 3, options: AttributionOptions(method: .eapIG, igSteps: 2))
        XCTAssertEqual(withLogits - without, plainForward + 5 * 2 * 2 * 16 * 50)
    }

    /// The families by hand: 1 layer, 2 heads of 4, C 8, d_mlp 16, B 2, T 3 (N 6), EAP, logit difference.
    /// Llama (2 query heads sharing 1 K/V head): block products per token q 128 + k 64 + v 64 + o 128 + 3 MLP
    /// products 768 = 1152, so forward body 6912, per-head outputs 6·2·64 = 768, attention 576 forward and
    /// 1152 backward; sequential graph: the MLP reads input and both heads (3 rows × 7 columns) + the logits
    /// column's 4 rows = 25 pairs, contraction 2·6·8·25 = 2400; EAP = 2·(6912 + 768 + 576) + (6912 + 1152) + 2400.
    /// Phi (2 K/V heads, parallel block): 128·4 + 2 MLP products 512 = 1024 per token, body 6144; its layer's
    /// heads and MLP read only the input (1 row × 7 columns) + 4 = 11 pairs, contraction 1056.
    func testFamilyFlopCountMatchesAHandCount() {
        func shape(_ f: ModelFamily) -> ModelConfig {
            ModelConfig(family: f, numLayers: 1, numHeads: 2, numKVHeads: f == .llama ? 1 : 2, hiddenSize: 8, intermediateSize: 16,
                        vocabSize: 10, maxPositions: 8, partialRotaryFactor: f == .phi ? 0.5 : 1)
        }
        let eap = AttributionOptions(method: .eap)
        XCTAssertEqual(DiscoverBench.flops(model: shape(.llama), batch: 2, seqLen: 3, options: eap), 2 * (6912 + 768 + 576) + (6912 + 1152) + 2400)
        XCTAssertEqual(DiscoverBench.flops(model: shape(.phi), batch: 2, seqLen: 3, options: eap), 2 * (6144 + 768 + 576) + (6144 + 1152) + 1056)
        // GPT-2 through the general count is the GPT-2 count (its last MLP at the read-out rows; the families run
        // every row).
        let g = GPT2Config(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 8, vocabSize: 50)
        XCTAssertEqual(DiscoverBench.flops(model: ModelConfig(gpt2: g), batch: 2, seqLen: 3, options: eap), 76_992)
    }

    func testPeakResetCoversOnlyWhatFollows() throws {
        do {
            let big = FloatBuffer(count: 48 * 1_048_576 / 4)   // 48 MiB, touched by its zero fill
            big.base[big.count - 1] = 1
        }
        let before = ProcessMemory.peakRSSMiB()
        guard ProcessMemory.resetPeak() else { throw XCTSkip("this kernel does not allow resetting the peak (/proc/self/clear_refs)") }
        let after = ProcessMemory.peakRSSMiB(), current = ProcessMemory.currentRSSMiB()
        XCTAssertGreaterThan(current, 0)
        XCTAssertLessThan(after, before - 40, "the 48 MiB freed before the reset no longer count")
        XCTAssertLessThanOrEqual(after, current + 8)
    }

    func testEngineReportsSaneFields() throws {
        let tok = try tokenizer()
        let pairs = try DiscoverBench.prompts(count: 5, pools: try pools(), encoder: tok)
        let options = AttributionOptions(method: .eapIG, igSteps: 5)
        let r = try DiscoverBench.run(name: "tiny", config: ModelConfig(gpt2: .tiny), pairs: pairs, batchSize: 4, options: options, threads: 1,
                                      repeats: 1, warmup: 0, roof: 100)
        XCTAssertEqual(r.config, "tiny")
        XCTAssertEqual(r.method, .eapIG)
        XCTAssertEqual(r.igSteps, 5)
        XCTAssertEqual(r.batchSize, 4)
        XCTAssertEqual(r.samples, 5)
        XCTAssertEqual(r.threads, 1)
        XCTAssertEqual(r.repeats, 1)
        XCTAssertEqual(r.callSeconds.count, 1)
        XCTAssertEqual(r.seqLen, 1 + pairs.map(\.clean.count).max()!)
        XCTAssertEqual(r.parameters, GPT2Config.tiny.parameterCount)
        XCTAssertGreaterThan(r.callSeconds[0], 0)
        XCTAssertEqual(r.samplesPerS, 5 / r.callSeconds[0], accuracy: 1e-9 * r.samplesPerS)
        XCTAssertEqual(r.minSamplesPerS, r.samplesPerS)
        XCTAssertEqual(r.maxSamplesPerS, r.samplesPerS)
        // Two batches, of 4 and 1 prompts, each padded to its own longest prompt.
        let shapes = DiscoverBench.batchShapes(lengths: pairs.map(\.clean.count), batchSize: 4, weightedByBatch: true)
        XCTAssertEqual(shapes.map(\.batch), [4, 1])
        XCTAssertEqual(shapes[1].seqLen, 1 + pairs[4].clean.count)
        let flops = shapes.reduce(0.0) { $0 + DiscoverBench.flops(config: .tiny, batch: $1.batch, seqLen: $1.seqLen, options: options) }
        XCTAssertEqual(r.flopsPerCall, flops)
        XCTAssertEqual(r.gflops, flops / r.callSeconds[0] / 1e9, accuracy: 1e-9 * r.gflops)
        XCTAssertEqual(r.roofGflops, 100)
        XCTAssertEqual(r.mfu, r.gflops / 100, accuracy: 1e-12)
        XCTAssertGreaterThan(r.baseRSSMiB, 0)
        // The model's parameters alone are 25 MiB.
        XCTAssertGreaterThan(r.peakRSSMiB, r.baseRSSMiB + 20)
        XCTAssertTrue(r.scoreAbsSum.isFinite && r.scoreAbsSum > 0, "scores: Σ|s| = \(r.scoreAbsSum)")
        XCTAssertFalse(r.blasCore.isEmpty)
        // Not a run like the study's: no figure to compare with.
        XCTAssertNil(DiscoverBench.reference(for: r))
    }

    /// `--gemm-profile`: the products of the timed calls alone, by shape; their FLOPs are the call's as
    /// `DiscoverBench.flops` counts them (within what the count leaves out or rounds), and on one thread their time
    /// fits inside the call's.
    func testGemmProfileCoversTheTimedCallsOnly() throws {
        let tok = try tokenizer()
        let pairs = try DiscoverBench.prompts(count: 5, pools: try pools(), encoder: tok)
        let options = AttributionOptions(method: .eapIG, igSteps: 5)
        let plain = try DiscoverBench.run(name: "tiny", config: ModelConfig(gpt2: .tiny), pairs: pairs, batchSize: 4, options: options,
                                          threads: 1, repeats: 1, warmup: 0, roof: 100)
        XCTAssertTrue(plain.gemmProfile.isEmpty)
        let r = try DiscoverBench.run(name: "tiny", config: ModelConfig(gpt2: .tiny), pairs: pairs, batchSize: 4, options: options,
                                      threads: 1, repeats: 1, warmup: 2, roof: 100, gemmProfile: true)
        XCTAssertFalse(GemmProfile.isOn, "the profile stays on after the run")
        XCTAssertFalse(r.gemmProfile.isEmpty)
        XCTAssertTrue(r.gemmProfile.allSatisfy { $0.shape.blasThreads == 1 && $0.calls > 0 && $0.seconds >= 0 })
        let core = r.gemmProfile.reduce(0) { $0 + $1.coreSeconds }, flops = r.gemmProfile.reduce(0) { $0 + $1.flops }
        XCTAssertLessThanOrEqual(core, r.callSeconds[0])
        // The two warm-up calls would triple the FLOPs.
        XCTAssertEqual(flops / r.flopsPerCall, 1, accuracy: 0.25, "profiled \(flops) FLOPs against \(r.flopsPerCall) counted per call")
        let report = GemmProfile.report(r.gemmProfile, wallSeconds: r.callSeconds[0], threads: 1, roofGflops: 100, top: 3)
        let groups = GemmProfile.groups(r.gemmProfile)
        XCTAssertEqual(groups.reduce(0) { $0 + $1.calls }, r.gemmProfile.reduce(0) { $0 + $1.calls })
        XCTAssertEqual(groups.reduce(0) { $0 + $1.flops }, flops, accuracy: 1e-9 * flops)
        XCTAssertEqual(report.count, 2 + min(3, groups.count) + (groups.count > 3 ? 1 : 0))
        XCTAssertTrue(report[0].hasPrefix("sgemm: "), report[0])
        if groups.count > 3 { XCTAssertTrue(report.last!.hasSuffix("\(groups.count - 3) other groups"), report.last!) }
    }

    func testStudyFiguresApplyOnlyToRunsLikeTheStudys() throws {
        let tok = try tokenizer()
        let pairs = try DiscoverBench.prompts(count: 2, pools: try pools(), encoder: tok)
        let small = GPT2Config(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 50257)
        let r = try DiscoverBench.run(name: "tiny", config: ModelConfig(gpt2: small), pairs: pairs, batchSize: 2, options: AttributionOptions(),
                                      threads: 2, repeats: 1, warmup: 0, roof: 1)
        XCTAssertNil(DiscoverBench.reference(for: r), "2 prompts, not 64")
        let tinyIG = DiscoverBench.references.filter { $0.config == "tiny" && $0.method == .eapIG }
        XCTAssertEqual(tinyIG.map(\.studySamplesPerS), [10.4, 10.0])
        // The targets of docs/performance.md: EAP-IG ≥ 10× the study on tiny, ≥ 8× on GPT-2 small at batch 16.
        XCTAssertEqual(tinyIG.map(\.targetRatio), [10, 10])
        XCTAssertEqual(tinyIG.map(\.targetSamplesPerS), [104, 100])
        let gpt2IG = DiscoverBench.references.filter { $0.config == "gpt2" && $0.method == .eapIG }
        XCTAssertEqual(gpt2IG.map(\.targetRatio), [8, nil])
        XCTAssertEqual(gpt2IG[0].targetSamplesPerS ?? 0, 5.36, accuracy: 1e-12)
        XCTAssertEqual(gpt2IG.last?.targetPeakRSSMiB ?? 0, 3814.7, accuracy: 0.1)
    }
}
