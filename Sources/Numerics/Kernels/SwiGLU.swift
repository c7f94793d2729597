/// The gated MLP activation of Llama: out = silu(gate) ⊙ up, silu(g) = g · σ(g).
/// silu'(g) = σ(g) · (1 + g · (1 − σ(g))).
public enum SwiGLU {
    /// `out (count) = silu(gate) ⊙ up`.
    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int, threads: Int) {
        Parallel.pieces(count / 8, threads: threads, minPerPiece: 4096) { blocks in
            for blk in blocks {
                let g = FastMath.load(gate + 8 * blk)
                FastMath.store(g * sigmoid(g) * FastMath.load(up + 8 * blk), out + 8 * blk)
            }
        }
        for i in (count / 8 * 8)..<count { out[i] = gate[i] * sigmoid(gate[i]) * up[i] }
    }

    /// `dgate = dout ⊙ up ⊙ silu'(gate)`, `dup = dout ⊙ silu(gate)` (both overwritten; `dup` may alias `dout`, `dgate` may not).
    public static func backward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int, threads: Int) {
        Parallel.pieces(count / 8, threads: threads, minPerPiece: 4096) { blocks in
            let one = FastMath.V8(repeating: 1)
            for blk in blocks {
                let i = 8 * blk
                let g = FastMath.load(gate + i), s = sigmoid(g), d = FastMath.load(dout + i)
                FastMath.store(d * FastMath.load(up + i) * s * (one + g * (one - s)), dgate + i)
                FastMath.store(d * g * s, dup + i)
            }
        }
        for i in (count / 8 * 8)..<count {
            let g = gate[i], s = sigmoid(g)
            dgate[i] = dout[i] * up[i] * s * (1 + g * (1 - s))
            dup[i] = dout[i] * g * s
        }
    }

    @inline(__always)
    static func sigmoid(_ x: FastMath.V8) -> FastMath.V8 {
        FastMath.V8(repeating: 1) / (FastMath.V8(repeating: 1) + FastMath.exp(-x))
    }

    @inline(__always)
    static func sigmoid(_ x: Float) -> Float { 1 / (1 + FastMath.exp(-x)) }
}
