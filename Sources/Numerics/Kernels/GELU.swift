/// The tanh form of GELU ("gelu_new", identical to "gelu_pytorch_tanh"):
/// gelu(x) = ½·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³).
/// Computed as x·σ(2u) with σ the logistic function (½(1 + tanh u) = σ(2u)), which stays accurate in both tails;
/// gelu'(x) = σ + 2·x·σ·(1 − σ)·√(2/π)·(1 + 3·0.044715·x²).
public enum GELU {
    static let s: Float = 0.797_884_56   // √(2/π)
    static let c: Float = 0.044_715

    /// `out (count) = gelu(inp)`; `out` may alias `inp`.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int, threads: Int) {
        Parallel.pieces(count / 8, threads: threads, minPerPiece: 4096) { blocks in
            for blk in blocks {
                let x = FastMath.load(inp + 8 * blk)
                FastMath.store(x * sigma(x), out + 8 * blk)
            }
        }
        for i in (count / 8 * 8)..<count { out[i] = scalar(inp[i]) }
    }

    /// `pre (N, C) += bias (C)`, then `out (N, C) = gelu(pre)`: a linear layer's bias and its activation in one pass.
    public static func forward(out: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                               N: Int, C: Int, threads: Int) {
        Parallel.pieces(N, threads: threads, minPerPiece: max(1, 32_768 / max(C, 1))) { rows in
            for n in rows {
                let x = pre + n * C, y = out + n * C
                var i = 0
                while i + 8 <= C {
                    let v = FastMath.load(x + i) + FastMath.load(bias + i)
                    FastMath.store(v, x + i)
                    FastMath.store(v * sigma(v), y + i)
                    i += 8
                }
                while i < C { x[i] += bias[i]; y[i] = scalar(x[i]); i += 1 }
            }
        }
    }

    /// `dinp (count) = gelu'(inp) · dout`; `dinp` may alias `dout`.
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, dout: UnsafePointer<Float>, count: Int, threads: Int) {
        Parallel.pieces(count / 8, threads: threads, minPerPiece: 4096) { blocks in
            for blk in blocks {
                let x = FastMath.load(inp + 8 * blk)
                FastMath.store(slope(x) * FastMath.load(dout + 8 * blk), dinp + 8 * blk)
            }
        }
        for i in (count / 8 * 8)..<count { dinp[i] = derivative(inp[i]) * dout[i] }
    }

    /// σ(2u) for 8 lanes.
    @inline(__always)
    @usableFromInline static func sigma(_ x: FastMath.V8) -> FastMath.V8 {
        let u2 = FastMath.V8(repeating: -2 * s) * (x + FastMath.V8(repeating: c) * x * x * x)
        return FastMath.V8(repeating: 1) / (FastMath.V8(repeating: 1) + FastMath.exp(u2))
    }

    /// gelu'(x) for 8 lanes.
    @inline(__always)
    @usableFromInline static func slope(_ x: FastMath.V8) -> FastMath.V8 {
        let sg = sigma(x)
        let one = FastMath.V8(repeating: 1)
        return sg + FastMath.V8(repeating: 2 * s) * x * sg * (one - sg) * (one + FastMath.V8(repeating: 3 * c) * x * x)
    }

    /// gelu(x) for one value.
    @inlinable @inline(__always)
    public static func scalar(_ x: Float) -> Float { (FastMath.V8(repeating: x) * sigma(FastMath.V8(repeating: x)))[0] }

    /// gelu'(x) for one value.
    @inlinable @inline(__always)
    public static func derivative(_ x: Float) -> Float { slope(FastMath.V8(repeating: x))[0] }
}
