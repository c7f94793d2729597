import Foundation
import Numerics

// The dropout probabilities of the model configurations, and the check a model's forward pass makes of a plan.
extension DropoutPlan {
    /// The probabilities of `config`.
    public init(config: GPT2Config, seed: UInt64, rowKeys: [UInt64]) {
        self.init(embd: Float(config.embdPdrop), attn: Float(config.attnPdrop), resid: Float(config.residPdrop), seed: seed, rowKeys: rowKeys)
    }

    /// The probabilities of a Llama or Phi `config` (`attention_dropout`, `embd_pdrop`, `resid_pdrop`).
    public init(family config: ModelConfig, seed: UInt64, rowKeys: [UInt64]) {
        self.init(embd: Float(config.embdPdrop), attn: Float(config.attentionDropout), resid: Float(config.residPdrop), seed: seed,
                  rowKeys: rowKeys)
    }

    /// The plan a model's `forwardLoss` takes for a batch of `batch` rows: one key per row, every probability
    /// in [0, 1). Returns the plan when it drops anything, nil when every probability is 0 (eval mode).
    /// - Throws: `ModelError` naming the field.
    func checked(batch B: Int) throws -> DropoutPlan? {
        guard rowKeys.count == B else { throw ModelError("dropout: \(rowKeys.count) row keys for batch size \(B)") }
        for (name, p) in [("embd", embd), ("attn", attn), ("resid", resid)] where !(p >= 0 && p < 1) {
            throw ModelError("dropout: \(name) probability \(p) is outside [0, 1)")
        }
        return isActive ? self : nil
    }
}
