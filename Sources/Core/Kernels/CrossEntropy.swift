/// Softmax cross-entropy over the vocabulary, one row per predicted position.
///
/// Contract: loss[n] = log Σᵥ exp(logits[n, v]) − logits[n, target[n]], computed as m + log Σ exp(l − m) with
/// m the row maximum, each exponential in Float and their **sum in Double** (a plain Float sum of ~50k terms
/// drops the small ones and biases the loss by ~1e-5; this keeps it within ~1e-7 of the float64 value).
/// Rows with target < 0 are ignored (HF's label −100).
public enum CrossEntropy {
    /// Computes every row's loss into `losses (N)` (0 for ignored rows) and saves, per row, the maximum and
    /// 1 / Σ exp(l − m) into `stats (2N)` for `backward`. Returns Σ losses (Double) and the number of counted rows.
    public static func forward(losses: UnsafeMutablePointer<Double>, stats: UnsafeMutablePointer<Float>,
                               logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                               N: Int, V: Int, threads: Int) -> (sum: Double, count: Int) {
        Parallel.chunks(N, threads: threads) { _, rows in
            for n in rows {
                let t = Int(targets[n])
                guard t >= 0 else { losses[n] = 0; stats[2 * n] = 0; stats[2 * n + 1] = 0; continue }
                let row = logits + n * V
                let (m, s) = maxAndSumExp(row, V)
                losses[n] = Double(m) + log(s) - Double(row[t])
                stats[2 * n] = m
                stats[2 * n + 1] = Float(1 / s)
            }
        }
        var sum = 0.0, count = 0
        for n in 0..<N where targets[n] >= 0 { sum += losses[n]; count += 1 }
        return (sum, count)
    }

    /// In place over the logits: `dlogits[n, v] = scale · (softmax(logits[n])[v] − [v == target[n]])` for counted
    /// rows, 0 for ignored rows. `scale` is ∂L/∂loss[n], e.g. 1/count for a mean.
    public static func backward(dlogits: UnsafeMutablePointer<Float>, stats: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                                scale: Float, N: Int, V: Int, threads: Int) {
        Parallel.chunks(N, threads: threads) { _, rows in
            for n in rows {
                let row = dlogits + n * V
                let t = Int(targets[n])
                guard t >= 0 else { row.update(repeating: 0, count: V); continue }
                let m = FastMath.V8(repeating: stats[2 * n])
                let k = FastMath.V8(repeating: stats[2 * n + 1] * scale)
                var v = 0
                while v + 8 <= V {
                    FastMath.store(FastMath.exp(FastMath.load(row + v) - m) * k, row + v)
                    v += 8
                }
                while v < V { row[v] = FastMath.exp(row[v] - stats[2 * n]) * stats[2 * n + 1] * scale; v += 1 }
                row[t] -= scale
            }
        }
    }

    /// Row maximum m and Σ exp(row − m) (exponentials in Float, summed in Double).
    @inline(__always)
    public static func maxAndSumExp(_ row: UnsafePointer<Float>, _ V: Int) -> (Float, Double) {
        var mv = FastMath.V8(repeating: -.infinity)
        var v = 0
        while v + 8 <= V { mv = pointwiseMax(mv, FastMath.load(row + v)); v += 8 }
        var m = mv.max()
        while v < V { m = max(m, row[v]); v += 1 }
        let mm = FastMath.V8(repeating: m)
        var acc = SIMD8<Double>()
        v = 0
        while v + 8 <= V { acc += SIMD8<Double>(FastMath.exp(FastMath.load(row + v) - mm)); v += 8 }
        var s = acc.sum()
        while v < V { s += Double(FastMath.exp(row[v] - m)); v += 1 }
        return (m, s)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
