/// RMSNorm over the last axis (Llama): y = w ⊙ x · rstd, rstd = 1 / √(mean(x²) + ε).
public enum RMSNorm {
    /// `out (N, C)` and `rstd (N)` from `inp (N, C)` and `weight (C)`; the mean of squares is summed in Double.
    public static func forward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float, threads: Int) {
        Parallel.pieces(N, threads: threads, minPerPiece: max(1, 8192 / max(C, 1))) { rows in
            for n in rows {
                let x = inp + n * C, o = out + n * C
                var acc = FastMath.V8()
                var i = 0
                while i + 8 <= C { let v = FastMath.load(x + i); acc += v * v; i += 8 }
                var s = Double(acc.sum())
                while i < C { s += Double(x[i]) * Double(x[i]); i += 1 }
                let r = Float(1 / (s / Double(C) + Double(eps)).squareRoot())
                for j in 0..<C { o[j] = weight[j] * (x[j] * r) }
                rstd[n] = r
            }
        }
    }

    /// Backward of `forward` given `dout (N, C)`: `dinp (N, C) +=`, `dweight (C) +=`. With x̂ = x · rstd:
    /// dx = rstd · (w ⊙ dy − x̂ · mean(w ⊙ dy ⊙ x̂)), dw = Σₙ dy ⊙ x̂.
    /// `scratch` holds at least `C · threads` floats (per-thread partial sums of dweight).
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, N: Int, C: Int, threads: Int) {
        let used = max(1, min(threads, N / max(1, 4096 / max(C, 1))))
        scratch.update(repeating: 0, count: C * used)
        Parallel.chunks(N, threads: used) { chunk, rows in
            let dw = scratch + C * chunk
            for n in rows {
                let x = inp + n * C, dy = dout + n * C, dx = dinp + n * C
                let r = rstd[n]
                var b: Float = 0
                for j in 0..<C { b += weight[j] * dy[j] * x[j] * r }
                let mb = b / Float(C)
                for j in 0..<C {
                    let xh = x[j] * r
                    dx[j] += (weight[j] * dy[j] - xh * mb) * r
                    dw[j] += dy[j] * xh
                }
            }
        }
        for chunk in 0..<used {
            let dw = scratch + C * chunk
            for j in 0..<C { dweight[j] += dw[j] }
        }
    }
}
