import CKernels

/// The gated MLP activation of Llama: out = silu(gate) ⊙ up, silu(g) = g · σ(g).
/// silu'(g) = σ(g) · (1 + g · (1 − σ(g))). The loops are C (`CKernels`, compiled per x86-64 level).
public enum SwiGLU {
    /// `out (count) = silu(gate) ⊙ up`.
    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int, threads: Int) {
        Parallel.spans(count, granule: Parallel.vectorSpan, threads: threads) { i, n in dkc_swiglu_forward(out + i, gate + i, up + i, n) }
    }

    /// `dgate = dout ⊙ up ⊙ silu'(gate)`, `dup = dout ⊙ silu(gate)` (both overwritten; `dup` may alias `dout`, `dgate` may not).
    public static func backward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int, threads: Int) {
        Parallel.spans(count, granule: Parallel.vectorSpan, threads: threads) { i, n in dkc_swiglu_backward(dgate + i, dup + i, dout + i, gate + i, up + i, n) }
    }
}
