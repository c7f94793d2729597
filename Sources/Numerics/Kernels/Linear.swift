/// Linear layers with weights in `nn.Linear`'s [out, in] layout (Llama, Phi): y = x·Wᵀ + b, row-major, products
/// through `Matmul.sgemm` (OpenBLAS). Inputs and outputs may be column blocks of wider rows (leading dimensions
/// `ldx` / `ldy`), so q, k and v can be written straight into a fused buffer. GPT-2's Conv1D [in, out] layout
/// stays in `Matmul`.
public enum Linear {
    /// `y (N, OC; row stride ldy) = x (N, IC; stride ldx) · Wᵀ [+ b]` with W (OC, IC); with `accumulate`,
    /// the result is added to y instead of replacing it.
    public static func forward(y: UnsafeMutablePointer<Float>, ldy: Int, x: UnsafePointer<Float>, ldx: Int,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               N: Int, IC: Int, OC: Int, accumulate: Bool = false, threads: Int) {
        if let bias {
            Parallel.pieces(N, threads: threads, minPerPiece: max(1, 16_384 / max(OC, 1))) { rows in
                for n in rows {
                    let o = y + n * ldy
                    if accumulate { for i in 0..<OC { o[i] += bias[i] } } else { for i in 0..<OC { o[i] = bias[i] } }
                }
            }
        }
        Matmul.sgemm(false, true, M: N, N: OC, K: IC, alpha: 1, A: x, lda: ldx, B: weight, ldb: IC,
                     beta: (bias != nil || accumulate) ? 1 : 0, C: y, ldc: ldy)
    }

    /// Backward of `forward` given `dy (N, OC; stride lddy)`: `dx (N, IC; stride lddx) = dy · W` (added when
    /// `accumulateInput`), `dweight (OC, IC) += dyᵀ · x`, `dbias (OC) += Σₙ dy[n]`; nil outputs are skipped.
    /// The two products run side by side as in `Matmul.pair`.
    public static func backward(dx: UnsafeMutablePointer<Float>?, lddx: Int, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, lddy: Int,
                                x: UnsafePointer<Float>, ldx: Int, weight: UnsafePointer<Float>,
                                N: Int, IC: Int, OC: Int, accumulateInput: Bool = false, threads: Int) {
        Matmul.pair(threads: threads, {
            if let dx {
                Matmul.sgemm(false, false, M: N, N: IC, K: OC, alpha: 1, A: dy, lda: lddy, B: weight, ldb: IC,
                             beta: accumulateInput ? 1 : 0, C: dx, ldc: lddx)
            }
        }, {
            if let dweight {
                Matmul.sgemm(true, false, M: OC, N: IC, K: N, alpha: 1, A: dy, lda: lddy, B: x, ldb: ldx, beta: 1, C: dweight, ldc: IC)
            }
        })
        if let dbias {
            Parallel.pieces(OC, threads: threads, minPerPiece: 256) { cols in
                let c0 = cols.lowerBound, w = cols.count
                for n in 0..<N {
                    let row = dy + n * lddy + c0
                    for i in 0..<w { dbias[c0 + i] += row[i] }
                }
            }
        }
    }
}
