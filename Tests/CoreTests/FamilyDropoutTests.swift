import Foundation
import XCTest
@testable import Core

/// Training dropout of Llama (attention probabilities) and Phi (also the embeddings and the two residual
/// branches), with the hashed masks of `Dropout`: the gradient is the derivative of the loss with those masks
/// (central differences along each tensor's gradient and along a random direction), p = 0 is eval mode bit for
/// bit, the masks follow the row keys, and config.json carries the rates.
final class FamilyDropoutTests: XCTestCase {
    /// Step sizes: where float32 rounding of the loss and the O(ε⁴) remainder balance for each model (the same
    /// check in eval mode shows errors of the same size); a wrong mask gives errors of order |g|.
    func testLlamaAttentionDropoutGradient() throws {
        try checkGradient(.llama, DropoutPlan(embd: 0, attn: 0.3, resid: 0, seed: 5, rowKeys: [1, 2, 3]), eps: 4e-3)
    }
    func testPhiDropoutGradient() throws {
        try checkGradient(.phi, DropoutPlan(embd: 0.3, attn: 0.3, resid: 0.3, seed: 5, rowKeys: [1, 2, 3]), eps: 8e-3)
    }

    /// The attribution property tests' small random model (2 layers, 4 heads, vocabulary 40) as a `FamilyModel`,
    /// and a batch of 3 rows of 8 tokens with lengths 8, 6, 7.
    static func tinyModel(_ family: ModelFamily) throws -> (FamilyModel, [Int], [Int]) {
        let params = try FamilyAttributionPropertyTests.tinyModel(family, seed: 3).parameters
        var rng = SplitMix64(seed: 9)
        let tokens = (0..<(3 * 8)).map { _ in Int(rng.next() % UInt64(params.config.vocabSize)) }
        return (FamilyModel(params: params, threads: 2), tokens, [8, 6, 7])
    }

    private func checkGradient(_ family: ModelFamily, _ plan: DropoutPlan, eps: Float) throws {
        let (model, tokens, lengths) = try Self.tinyModel(family)
        let B = 3, T = 8
        func loss(_ dropout: DropoutPlan?) throws -> Double {
            try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, lengths: lengths, dropout: dropout)
        }
        model.zeroGradients()
        let dropped = try loss(plan)
        model.backward()
        let grads = Array(UnsafeBufferPointer(start: model.grads.base, count: model.params.count))
        let eval = try loss(nil)
        XCTAssertGreaterThan(abs(dropped - eval), 1e-3, "\(family): dropout changes the loss")
        XCTAssertEqual(try loss(plan), dropped, "\(family): the same masks again")

        // Central differences of the loss with the same masks (Richardson-extrapolated over ε and ε/2), along each
        // tensor's own gradient (checks its size) and along a random direction inside the tensor (its orientation).
        let p = model.params.base
        var rng = SplitMix64(seed: 17)
        var worst = 0.0
        for t in model.layout.tensors {
            let g = Array(grads[t.range])
            let norm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            guard norm > 1e-4 else { continue }
            let random = (0..<t.count).map { _ in Float(rng.nextGaussian()) }
            let rnorm = random.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            for direction in [g.map { Float(Double($0) / norm) }, random.map { Float(Double($0) / rnorm) }] {
                let saved = Array(UnsafeBufferPointer(start: p + t.offset, count: t.count))
                func central(_ e: Float) throws -> Double {
                    for i in 0..<t.count { p[t.offset + i] = saved[i] + e * direction[i] }
                    let up = try loss(plan)
                    for i in 0..<t.count { p[t.offset + i] = saved[i] - e * direction[i] }
                    let down = try loss(plan)
                    (p + t.offset).update(from: saved, count: t.count)
                    return (up - down) / (2 * Double(e))
                }
                // Richardson: the O(ε²) terms of two step sizes cancel.
                let numeric = (4 * (try central(eps / 2)) - (try central(eps))) / 3
                let analytic = zip(g, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let err = abs(numeric - analytic) / max(norm, 1e-3)
                worst = max(worst, err)
                XCTAssertLessThanOrEqual(err, 2e-3, "\(family) \(t.name): numeric \(numeric), analytic \(analytic), |g| \(norm)")
            }
        }
        print("\(family) dropout gradient vs central differences: worst error / |g| \(worst)")

        // Masks follow the row keys; p = 0 is eval mode exactly.
        let rekeyed = try loss(DropoutPlan(embd: plan.embd, attn: plan.attn, resid: plan.resid, seed: plan.seed, rowKeys: [7, 8, 9]))
        XCTAssertGreaterThan(abs(rekeyed - dropped), 1e-5, "\(family): other keys, other masks")
        model.zeroGradients()
        XCTAssertEqual(try loss(DropoutPlan(embd: 0, attn: 0, resid: 0, seed: 5, rowKeys: [1, 2, 3])), eval)
        model.backward()
        let zeroGrads = Array(UnsafeBufferPointer(start: model.grads.base, count: model.params.count))
        model.zeroGradients()
        _ = try loss(nil)
        model.backward()
        XCTAssertEqual(zeroGrads, Array(UnsafeBufferPointer(start: model.grads.base, count: model.params.count)), "\(family): p = 0 gradients are eval mode's")
    }

    func testLlamaRefusesEmbeddingAndResidualDropout() throws {
        let (model, tokens, _) = try Self.tinyModel(.llama)
        XCTAssertThrowsError(try model.forwardLoss(tokens: tokens, batch: 3, seqLen: 8, dropout: DropoutPlan(embd: 0, attn: 0, resid: 0.1, seed: 1, rowKeys: [1, 2, 3])))
        XCTAssertThrowsError(try model.forwardLoss(tokens: tokens, batch: 3, seqLen: 8, dropout: DropoutPlan(embd: 0, attn: 1, resid: 0, seed: 1, rowKeys: [1, 2, 3])))
    }

    /// config.json: Phi's three rates and Llama's attention_dropout are read, validated and written back.
    func testConfigCarriesTheRates() throws {
        var phi = try ModelConfig.load(from: try FamilyFixtures.model("phi").appendingPathComponent("config.json"))
        XCTAssertEqual([phi.attentionDropout, phi.embdPdrop, phi.residPdrop], [0, 0, 0], "phi-1_5 ships without dropout")
        phi.attentionDropout = 0.1; phi.embdPdrop = 0.05; phi.residPdrop = 0.2
        let back = try ModelConfig(json: phi.jsonData(), source: "phi")
        XCTAssertEqual([back.attentionDropout, back.embdPdrop, back.residPdrop], [0.1, 0.05, 0.2])
        XCTAssertEqual(back, phi)
        var llama = try ModelConfig.load(from: try FamilyFixtures.model("llama").appendingPathComponent("config.json"))
        llama.attentionDropout = 0.1
        XCTAssertEqual(try ModelConfig(json: llama.jsonData(), source: "llama").attentionDropout, 0.1)
        llama.residPdrop = 0.1
        XCTAssertThrowsError(try llama.validate()) { XCTAssertTrue("\($0)".contains("resid_pdrop"), "\($0)") }
        var text = String(decoding: phi.jsonData(), as: UTF8.self)
        text = text.replacingOccurrences(of: "\"resid_pdrop\": 0.2", with: "\"resid_pdrop\": 1.0")
        XCTAssertThrowsError(try ModelConfig(json: Data(text.utf8), source: "phi")) { XCTAssertTrue("\($0)".contains("resid_pdrop"), "\($0)") }
    }
}
