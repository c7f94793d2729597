import Foundation
import XCTest
@testable import Core

/// `GPT2.trace(rows:)`, the engine of `dkc trace`, on the fixture model.
final class ModelTraceTests: XCTestCase {
    /// Hooks of one block, in the order `GPT2Activations.trace()` prints them.
    static let blockHooks = ["ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z",
                             "hook_resid_mid", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_resid_post"]

    func testTraceOfTheFixtureModelNamesEveryHookAndSumsTheLogitsOfRealPositions() throws {
        let model = GPT2(params: try HFCheckpoint.load(folder: try ModelFixtures.model()), threads: 2)
        let c = model.config
        // The six prompts of forward.safetensors (BOS first), without their padding.
        let f = try SafetensorsFile(url: try ModelFixtures.reference("forward.safetensors"))
        let shape = try f.info("tokens").shape
        let B = shape[0], T = shape[1], V = c.vocabSize
        let tokens = try f.ints("tokens"), lengths = try f.ints("input_lengths")
        let rows = (0..<B).map { b in Array(tokens[(b * T)..<(b * T + lengths[b])]) }
        let lines = try model.trace(rows: rows)

        var expected = ["blocks.0.hook_resid_pre"]
        for l in 0..<c.nLayer { expected += Self.blockHooks.map { "blocks.\(l)." + $0 } }
        expected += ["ln_final.hook_normalized", "logits"]
        XCTAssertEqual(lines.map(\.hook), expected)
        let H = c.nHead, C = c.nEmbd
        for line in lines {
            XCTAssertTrue(line.sum.isFinite, "\(line.hook): sum \(line.sum)")
            let want: [Int]
            switch line.hook {
            case let h where h.hasSuffix("hook_pattern"): want = [B, H, T, T]
            case let h where h.hasSuffix("hook_q") || h.hasSuffix("hook_k") || h.hasSuffix("hook_v") || h.hasSuffix("hook_z"): want = [B, T, H, C / H]
            case let h where h.contains("mlp."): want = [B, T, 4 * C]
            case "logits": want = [B, T, V]
            default: want = [B, T, C]
            }
            XCTAssertEqual(line.shape, want, line.hook)
            XCTAssertTrue(line.text.hasPrefix("\(line.hook) \(want) "), line.text)
        }
        // Every real query's pattern row sums to 1.
        for l in 0..<c.nLayer {
            let p = try XCTUnwrap(lines.first { $0.hook == "blocks.\(l).attn.hook_pattern" })
            XCTAssertEqual(p.sum, Double(H * lengths.reduce(0, +)), accuracy: 1e-4, p.hook)
        }
        // The logits line is the sum of the reference logits over real positions, within the README's per-logit
        // tolerance (1e-4 max abs, ModelParityTests) times the number of logits summed.
        // The compact set stores this sum (made from the full tensor) as logits_hf.valid_sum.
        let reference = try ReferenceTensor(f, "logits_hf")
        var want = 0.0
        if reference.isReduced {
            want = try XCTUnwrap(f.doubles("logits_hf.valid_sum").first)
        } else {
            for b in 0..<B { for i in 0..<(lengths[b] * V) { want += Double(reference.values[b * T * V + i]) } }
        }
        let logits = try XCTUnwrap(lines.last)
        let bound = Double(lengths.reduce(0, +) * V) * ModelParityTests.logitsTolerance
        print("trace logits sum \(logits.sum) vs logits_hf \(want): abs \(abs(logits.sum - want)), bound \(bound)")
        XCTAssertEqual(logits.sum, want, accuracy: bound)
    }

    func testTraceRejectsRowsTheModelCannotRun() throws {
        let model = GPT2(config: GPT2Config(nLayer: 1, nHead: 2, nEmbd: 8, nPositions: 4, vocabSize: 20, bosTokenId: 19, eosTokenId: 19), seed: 1, threads: 1)
        XCTAssertThrowsError(try model.trace(rows: [])) { XCTAssertTrue("\($0)".contains("no rows"), "\($0)") }
        XCTAssertThrowsError(try model.trace(rows: [[1], []])) { XCTAssertTrue("\($0)".contains("row 1"), "\($0)") }
        XCTAssertThrowsError(try model.trace(rows: [[1, 2, 3, 4, 5]])) { XCTAssertTrue("\($0)".contains("n_positions"), "\($0)") }
        XCTAssertThrowsError(try model.trace(rows: [[1, 25]])) { XCTAssertTrue("\($0)".contains("25"), "\($0)") }
        // Padding changes nothing: the trace of a row is the same alone and beside a longer one, hook by hook.
        let alone = try model.trace(rows: [[3, 4]])
        let beside = try model.trace(rows: [[3, 4], [5, 6, 7, 8]])
        let second = try model.trace(rows: [[5, 6, 7, 8]])
        for (a, (b, s)) in zip(alone, zip(beside, second)) {
            XCTAssertEqual(a.sum + s.sum, b.sum, accuracy: 1e-4 * max(1, abs(b.sum)), a.hook)
        }
    }
}
