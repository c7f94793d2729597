import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax cross-entropy over the vocabulary, one row per predicted position.
///
/// Contract: loss[n] = log Σᵥ exp(logits[n, v]) − logits[n, target[n]], computed as m + log Σ exp(l − m) with
/// m the row maximum, each exponential in Float and their **sum in Double** (a plain Float sum of ~50k terms
/// drops the small ones and biases the loss by ~1e-5; this keeps it within ~1e-7 of the float64 value).
/// Rows with target < 0 are ignored (HF's label −100).
public enum CrossEntropy {
    /// Computes every row's loss into `losses (N)` (0 for ignored rows) and saves, per row, the maximum and
    /// 1 / Σ exp(l − m) into `stats (2N)` for `backward`. Returns Σ losses (Double) and the number of counted rows.
    /// With `keepExponentials`, counted rows of `logits` are overwritten with exp(l − m), which lets `backward`
    /// skip recomputing them (pass the same flag there).
    ///
    /// With `gradientScale` (implies keeping the exponentials), every row of `logits` is instead left holding
    /// `backward`'s result for that scale, scale · (softmax − onehot(target)) (0 for ignored rows), written while
    /// the row is still in cache: one pass over the (N, V) logits fewer than `forward` then `backward`, same bits.
    public static func forward(losses: UnsafeMutablePointer<Double>, stats: UnsafeMutablePointer<Float>,
                               logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>,
                               N: Int, V: Int, keepExponentials: Bool = false, gradientScale: Float? = nil,
                               threads: Int) -> (sum: Double, count: Int) {
        precondition(V > 0, "an empty vocabulary")
        let keep = keepExponentials || gradientScale != nil
        Parallel.pieces(N, threads: threads) { rows in
            for n in rows {
                let t = Int(targets[n])
                let row = logits + n * V
                guard t >= 0 else {
                    losses[n] = 0; stats[2 * n] = 0; stats[2 * n + 1] = 0
                    if gradientScale != nil { row.update(repeating: 0, count: V) }
                    continue
                }
                let target = row[t]
                let (m, s) = keep ? maxAndSumExp(overwriting: row, V) : maxAndSumExp(row, V)
                losses[n] = Double(m) + log(s) - Double(target)
                stats[2 * n] = m
                stats[2 * n + 1] = Float(1 / s)
                if let scale = gradientScale { scaleExponentials(row, V: V, k: stats[2 * n + 1] * scale, target: t, scale: scale) }
            }
        }
        var sum = 0.0, count = 0
        for n in 0..<N where targets[n] >= 0 { sum += losses[n]; count += 1 }
        return (sum, count)
    }

    /// In place over the logits: `dlogits[n, v] = scale · (softmax(logits[n])[v] − [v == target[n]])` for counted
    /// rows, 0 for ignored rows. `scale` is ∂L/∂loss[n], e.g. 1/count for a mean. `keepExponentials` must match
    /// the `forward` call (then the buffer holds exp(l − m) instead of the logits).
    public static func backward(dlogits: UnsafeMutablePointer<Float>, stats: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                                scale: Float, N: Int, V: Int, keepExponentials: Bool = false, threads: Int) {
        Parallel.pieces(N, threads: threads) { rows in
            for n in rows {
                let row = dlogits + n * V
                let t = Int(targets[n])
                guard t >= 0 else { row.update(repeating: 0, count: V); continue }
                let mx = stats[2 * n], k = stats[2 * n + 1] * scale
                if keepExponentials {
                    scaleExponentials(row, V: V, k: k, target: t, scale: scale)
                    continue
                }
                dkc_exp_scale(row, row, V, mx, k)
                row[t] -= scale
            }
        }
    }

    /// `row[v] = row[v] · k − [v == target] · scale`: exponentials to the gradient of the scaled loss.
    @inline(__always)
    static func scaleExponentials(_ row: UnsafeMutablePointer<Float>, V: Int, k: Float, target t: Int, scale: Float) {
        dkc_scale(row, V, k)
        row[t] -= scale
    }

    // The passes over a row of the vocabulary are C (`CKernels`): compiled per x86-64 level, they use the CPU's full
    // vector width for the exponentials, which dominate a small model's step.

    /// Row maximum m and Σ exp(row − m) (exponentials in Float, summed in Double).
    public static func maxAndSumExp(_ row: UnsafePointer<Float>, _ V: Int) -> (Float, Double) {
        let m = dkc_row_max(row, V)
        return (m, dkc_exp_sum(nil, row, V, m))
    }

    /// As `maxAndSumExp`, also storing exp(row − m) over the row.
    @inline(__always)
    static func maxAndSumExp(overwriting row: UnsafeMutablePointer<Float>, _ V: Int) -> (Float, Double) {
        let m = dkc_row_max(row, V)
        return (m, dkc_exp_sum(row, row, V, m))
    }
}
