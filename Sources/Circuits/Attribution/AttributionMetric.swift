import Foundation

/// The quantity whose change attribution estimates, read at each sample's last real position (length − 1),
/// as the study's `eap.metrics` defines it.
///
/// - `logitDifference`: r_b = logit_b[clean label] − logit_b[corrupted label]; with `probability`, the same
///   on softmax probabilities. As a loss (the study's attribution metric) the sign is flipped.
/// - `klDivergence`: per sample Σ_t q_t (ln q_t − ln p_t) / V, q the reference run's distribution, p the
///   current one, V the vocabulary size (the reference averages over the vocabulary instead of summing).
///   Which run is the reference follows the study: the corrupted run for EAP, the clean run for the
///   integrated-gradient methods and clean-corrupted.
///
/// The batch reduction is the mean (the study's: scores then scale with 1 / batch size) or the sum
/// (batch-size independent, once the scores are divided by the number of samples).
public struct AttributionMetric: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case logitDifference = "logit_diff"
        case probabilityDifference = "prob_diff"
        case klDivergence = "kl"
    }

    public enum Reduction: String, Sendable, CaseIterable {
        case mean, sum
    }

    public var kind: Kind
    /// Flip the sign (the study attributes `logit_diff(loss=True)`). KL is a loss as it stands.
    public var loss: Bool
    public var reduction: Reduction

    public init(kind: Kind = .logitDifference, loss: Bool = true, reduction: Reduction = .mean) {
        self.kind = kind
        self.loss = loss
        self.reduction = reduction
    }

    /// The study's attribution metric: `logit_diff(loss=True, mean=True, prob=False)`.
    public static let study = AttributionMetric()

    /// Per-sample values r_b (before the sign flip of `loss` and the batch reduction).
    /// `logits` and `reference` are (B, V) rows at the read-out positions.
    public func perSample(logits: UnsafePointer<Float>, reference: UnsafePointer<Float>?, batch: PromptBatch, vocab V: Int) -> [Double] {
        (0..<batch.batch).map { b in
            let row = logits + b * V
            switch kind {
            case .logitDifference:
                return Double(row[batch.cleanLabels[b]]) - Double(row[batch.corruptedLabels[b]])
            case .probabilityDifference:
                let (m, lse) = Self.logSumExp(row, V)
                return exp(Double(row[batch.cleanLabels[b]]) - m - lse) - exp(Double(row[batch.corruptedLabels[b]]) - m - lse)
            case .klDivergence:
                precondition(reference != nil, "KL divergence needs reference logits")
                let q = reference! + b * V
                let (mp, lp) = Self.logSumExp(row, V), (mq, lq) = Self.logSumExp(q, V)
                var s = 0.0
                for t in 0..<V {
                    let lqt = Double(q[t]) - mq - lq, lpt = Double(row[t]) - mp - lp
                    s += exp(lqt) * (lqt - lpt)
                }
                return s / Double(V)
            }
        }
    }

    /// The metric of the batch: sign · reduce_b r_b.
    public func value(logits: UnsafePointer<Float>, reference: UnsafePointer<Float>?, batch: PromptBatch, vocab V: Int) -> Double {
        let r = perSample(logits: logits, reference: reference, batch: batch, vocab: V)
        let total = r.reduce(0, +)
        let reduced = reduction == .mean ? total / Double(batch.batch) : total
        return sign * reduced
    }

    var sign: Double { (loss && kind != .klDivergence) ? -1 : 1 }

    /// ∂metric/∂logits at the read-out positions into `grad` (B, V), overwritten. `meanOver` is the sample
    /// count the `.mean` reduction divides by (default `batch.batch`; a part of a larger batch passes the
    /// whole batch's size, so its gradients are exactly those of the whole batch's metric).
    public func gradient(logits: UnsafePointer<Float>, reference: UnsafePointer<Float>?, batch: PromptBatch, vocab V: Int,
                         meanOver: Int? = nil, into grad: UnsafeMutablePointer<Float>) {
        let scale = sign * (reduction == .mean ? 1 / Double(meanOver ?? batch.batch) : 1)
        grad.update(repeating: 0, count: batch.batch * V)
        for b in 0..<batch.batch {
            let row = logits + b * V, g = grad + b * V
            let c = batch.cleanLabels[b], w = batch.corruptedLabels[b]
            switch kind {
            case .logitDifference:
                g[c] += Float(scale)
                g[w] -= Float(scale)
            case .probabilityDifference:
                // d p_i / d l = p_i (e_i − p)
                let (m, lse) = Self.logSumExp(row, V)
                let pc = exp(Double(row[c]) - m - lse), pw = exp(Double(row[w]) - m - lse)
                for t in 0..<V {
                    let pt = exp(Double(row[t]) - m - lse)
                    g[t] = Float(scale * (-pc * pt + pw * pt))
                }
                g[c] += Float(scale * pc)
                g[w] -= Float(scale * pw)
            case .klDivergence:
                // d/dl Σ_t q_t (ln q_t − ln p_t) / V = (p · Σq − q) / V
                precondition(reference != nil, "KL divergence needs reference logits")
                let q = reference! + b * V
                let (mp, lp) = Self.logSumExp(row, V), (mq, lq) = Self.logSumExp(q, V)
                var sumQ = 0.0
                for t in 0..<V { sumQ += exp(Double(q[t]) - mq - lq) }
                for t in 0..<V {
                    let pt = exp(Double(row[t]) - mp - lp), qt = exp(Double(q[t]) - mq - lq)
                    g[t] = Float(scale * (pt * sumQ - qt) / Double(V))
                }
            }
        }
    }

    /// (max, ln Σ exp(x − max)) of a row, summed in double.
    static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> (Double, Double) {
        var m = -Double.infinity
        for i in 0..<n { m = max(m, Double(x[i])) }
        var s = 0.0
        for i in 0..<n { s += exp(Double(x[i]) - m) }
        return (m, log(s))
    }
}
