import CKernels

/// The tanh form of GELU ("gelu_new", identical to "gelu_pytorch_tanh"):
/// gelu(x) = ½·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³).
/// Computed as x·σ(2u) with σ the logistic function (½(1 + tanh u) = σ(2u)), which stays accurate in both tails;
/// gelu'(x) = σ + 2·x·σ·(1 − σ)·√(2/π)·(1 + 3·0.044715·x²). The loops are C (`CKernels`, compiled per x86-64 level);
/// a loop's tail goes through the same vector arithmetic as its body.
public enum GELU {
    /// `out (count) = gelu(inp)`; `out` may alias `inp`.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int, threads: Int) {
        Parallel.spans(count, granule: Parallel.vectorSpan, threads: threads) { i, n in dkc_gelu_forward(out + i, inp + i, n) }
    }

    /// `pre (N, C) += bias (C)`, then `out (N, C) = gelu(pre)`: a linear layer's bias and its activation in one pass.
    public static func forward(out: UnsafeMutablePointer<Float>, pre: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                               N: Int, C: Int, threads: Int) {
        Parallel.pieces(N, threads: threads, minPerPiece: max(1, 32_768 / max(C, 1))) { rows in
            for n in rows { dkc_gelu_bias_forward(out + n * C, pre + n * C, bias, C) }
        }
    }

    /// `dinp (count) = gelu'(inp) · dout`; `dinp` may alias `dout`.
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, dout: UnsafePointer<Float>, count: Int, threads: Int) {
        Parallel.spans(count, granule: Parallel.vectorSpan, threads: threads) { i, n in dkc_gelu_backward(dinp + i, inp + i, dout + i, n) }
    }

    /// gelu(x) for one value.
    public static func scalar(_ x: Float) -> Float {
        var y: Float = 0
        dkc_gelu_forward(&y, [x], 1)
        return y
    }

    /// gelu'(x) for one value.
    public static func derivative(_ x: Float) -> Float {
        var d: Float = 0
        dkc_gelu_backward(&d, [x], [1], 1)
        return d
    }
}
