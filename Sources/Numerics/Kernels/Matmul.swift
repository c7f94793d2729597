import Foundation
import COpenBLAS

/// Linear layers with weights in the Hugging Face Conv1D layout W [in, out]: y = x·W + b, everything row-major.
/// All products go through `cblas_sgemm` (threaded by OpenBLAS, see `BLAS.setThreads`); bias and residual
/// passes are split over rows or columns with `Parallel.pieces`.
public enum Matmul {
    /// `out (N, OC) = [residual (N, OC) +] inp (N, IC) · weight (IC, OC) [+ bias (OC)]`.
    /// `residual` may alias `out` (then the product is added in place).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               residual: UnsafePointer<Float>? = nil,
                               N: Int, IC: Int, OC: Int, threads: Int) {
        // Pre-fill the output with residual + bias, then accumulate the product with beta = 1.
        var beta: Float = 0
        if residual != nil || bias != nil {
            beta = 1
            Parallel.pieces(N, threads: threads, minPerPiece: max(1, 16_384 / max(OC, 1))) { rows in
                for n in rows {
                    let o = out + n * OC
                    if let r = residual {
                        let rr = r + n * OC
                        if let b = bias {
                            for i in 0..<OC { o[i] = rr[i] + b[i] }
                        } else if UnsafePointer(o) != rr {
                            for i in 0..<OC { o[i] = rr[i] }
                        }
                    } else if let b = bias {
                        for i in 0..<OC { o[i] = b[i] }
                    }
                }
            }
        }
        sgemm(false, false, M: N, N: OC, K: IC, alpha: 1, A: inp, lda: IC, B: weight, ldb: OC, beta: beta, C: out, ldc: OC)
    }

    /// Backward of `forward`, given `dout (N, OC)`:
    /// `dinp (N, IC) = dout · weightᵀ` (added to dinp when `accumulateInput`), `dweight (IC, OC) += inpᵀ · dout`,
    /// `dbias (OC) += Σₙ dout[n]`. Any of the three outputs may be nil to skip it.
    /// The two products (same FLOPs) run side by side as in `pair`.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                N: Int, IC: Int, OC: Int, accumulateInput: Bool = false, threads: Int) {
        pair(threads: threads, {
            if let dinp {
                sgemm(false, true, M: N, N: IC, K: OC, alpha: 1, A: dout, lda: OC, B: weight, ldb: OC,
                      beta: accumulateInput ? 1 : 0, C: dinp, ldc: IC)
            }
        }, {
            if let dweight {
                sgemm(true, false, M: IC, N: OC, K: N, alpha: 1, A: inp, lda: IC, B: dout, ldb: OC, beta: 1, C: dweight, ldc: OC)
            }
        })
        if let dbias { biasBackward(dbias: dbias, dout: dout, N: N, OC: OC, threads: threads) }
    }

    /// Runs two independent pieces of work (each typically one sgemm of similar size) side by side, each with
    /// OpenBLAS at one thread, when `threads` and OpenBLAS's setting are both 2: two single-threaded products
    /// share no packed panels and never wait for each other inside a call, which on two cores beats one product
    /// after the other split over both (docs/performance.md). Otherwise, or with other thread counts, `first`
    /// then `second` at the current setting. Each product's result does not depend on which way it ran.
    public static func pair(threads: Int, _ first: () -> Void, _ second: () -> Void) {
        guard threads == 2, BLAS.threads == 2 else { first(); second(); return }
        BLAS.setThreads(1)
        defer { BLAS.setThreads(2) }
        DispatchQueue.concurrentPerform(iterations: 2) { i in if i == 0 { first() } else { second() } }
    }

    /// `dbias (OC) += Σₙ dout[n, :]` for `dout (N, OC)`; columns are split across threads.
    public static func biasBackward(dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, N: Int, OC: Int, threads: Int) {
        Parallel.pieces(OC, threads: threads, minPerPiece: 256) { cols in
            let c0 = cols.lowerBound, w = cols.count
            let d = dbias + c0
            for n in 0..<N {
                let row = dout + n * OC + c0
                for i in 0..<w { d[i] += row[i] }
            }
        }
    }

    /// Row-major `C = alpha · op(A) · op(B) + beta · C` with op(A) (M, K), op(B) (K, N), C (M, N).
    @inlinable @inline(__always)
    public static func sgemm(_ transA: Bool, _ transB: Bool, M: Int, N: Int, K: Int, alpha: Float,
                             A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                             beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
        guard M > 0, N > 0 else { return }
        let t0 = GemmProfile.isOn ? DispatchTime.now().uptimeNanoseconds : 0
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(M), blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc))
        if t0 != 0 {
            GemmProfile.add(GemmProfile.Shape(transA: transA, transB: transB, M: M, N: N, K: K, blasThreads: BLAS.threads),
                            nanoseconds: DispatchTime.now().uptimeNanoseconds - t0)
        }
    }
}
