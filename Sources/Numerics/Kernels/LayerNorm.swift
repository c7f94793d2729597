/// LayerNorm over the last axis: y = (x − mean) · rstd · w + b, rstd = 1 / √(var + ε), var the biased variance.
public enum LayerNorm {
    /// `out (N, C)`, `mean (N)`, `rstd (N)` from `inp (N, C)`, `weight (C)`, `bias (C)`.
    /// Mean and variance are two-pass sums in 8 Float lanes, then combined in Double.
    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               N: Int, C: Int, eps: Float, threads: Int) {
        Parallel.pieces(N, threads: threads, minPerPiece: max(1, 8192 / max(C, 1))) { rows in
            for n in rows {
                let x = inp + n * C
                let m = rowMean(x, C)
                let v = rowVariance(x, C, mean: m)
                let s = Float(1.0 / (Double(v) + Double(eps)).squareRoot())
                let o = out + n * C
                for i in 0..<C { o[i] = (x[i] - m) * s * weight[i] + bias[i] }
                mean[n] = m
                rstd[n] = s
            }
        }
    }

    /// Backward of `forward` given `dout (N, C)`: `dinp (N, C) +=`, `dweight (C) +=`, `dbias (C) +=`.
    /// `scratch` holds at least `2 · C · threads` floats (per-thread partial sums of dweight and dbias).
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>,
                                scratch: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int, threads: Int) {
        let used = max(1, min(threads, N / max(1, 4096 / max(C, 1))))
        let partial = scratch
        partial.update(repeating: 0, count: 2 * C * used)
        Parallel.chunks(N, threads: used) { chunk, rows in
            let dw = partial + 2 * C * chunk
            let db = dw + C
            for n in rows {
                let x = inp + n * C, dy = dout + n * C, dx = dinp + n * C
                let m = mean[n], s = rstd[n]
                // Two reductions: mean of w·dy and mean of w·dy·x̂.
                var a = FastMath.V8(), b = FastMath.V8()
                var i = 0
                while i + 8 <= C {
                    let xh = (FastMath.load(x + i) - FastMath.V8(repeating: m)) * FastMath.V8(repeating: s)
                    let g = FastMath.load(weight + i) * FastMath.load(dy + i)
                    a += g
                    b += g * xh
                    i += 8
                }
                var sa = a.sum(), sb = b.sum()
                while i < C {
                    let xh = (x[i] - m) * s
                    let g = weight[i] * dy[i]
                    sa += g; sb += g * xh
                    i += 1
                }
                let ma = sa / Float(C), mb = sb / Float(C)
                for j in 0..<C {
                    let xh = (x[j] - m) * s
                    dx[j] += (weight[j] * dy[j] - ma - xh * mb) * s
                    dw[j] += dy[j] * xh
                    db[j] += dy[j]
                }
            }
        }
        for chunk in 0..<used {
            let dw = partial + 2 * C * chunk, db = dw + C
            for j in 0..<C { dweight[j] += dw[j]; dbias[j] += db[j] }
        }
    }

    @inline(__always)
    static func rowMean(_ x: UnsafePointer<Float>, _ C: Int) -> Float {
        var acc = FastMath.V8()
        var i = 0
        while i + 8 <= C { acc += FastMath.load(x + i); i += 8 }
        var s = Double(acc.sum())
        while i < C { s += Double(x[i]); i += 1 }
        return Float(s / Double(C))
    }

    @inline(__always)
    static func rowVariance(_ x: UnsafePointer<Float>, _ C: Int, mean m: Float) -> Float {
        var acc = FastMath.V8()
        let mv = FastMath.V8(repeating: m)
        var i = 0
        while i + 8 <= C { let d = FastMath.load(x + i) - mv; acc += d * d; i += 8 }
        var s = Double(acc.sum())
        while i < C { let d = Double(x[i] - m); s += d * d; i += 1 }
        return Float(s / Double(C))
    }
}
