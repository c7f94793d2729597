import Foundation
import Numerics

/// The two kernels of the instrumented backward pass that training does not need: the LayerNorm input
/// gradient without parameter gradients, accumulated into two places at once (the residual gradient and the
/// attribution gradient of that input), and the unembedding backward for a sparse ∂metric/∂logits.
/// Everything else uses the model's kernels (`Matmul`, `LayerNorm`, `GELU`, `Attention`).
enum AttributionKernels {
    /// For every real row (b, t < lengths[b]) of `(copies·B, T, C)` activations:
    /// g = rstd · (w⊙d − mean(w⊙d) − x̂ · mean(w⊙d⊙x̂)) with x̂ = (x − mean) · rstd, added to `acc1` (same row)
    /// and, when given, to `acc2` at the row of the base sample (c·B + b → b; `(B, T, C)`), copies in order.
    /// Rows past a sample's length carry no gradient (the metric reads length − 1 and attention is causal)
    /// and are skipped. Work is split over base samples, so no two workers write the same `acc2` row.
    /// `mean` nil: RMSNorm (`rmsNormInputGradRow`, no centring).
    static func layerNormInputGrad(acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>?,
                                   dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                   mean: UnsafePointer<Float>?, rstd: UnsafePointer<Float>,
                                   lengths: UnsafePointer<Int32>, B: Int, copies: Int = 1, T: Int, C: Int, threads: Int) {
        Parallel.pieces(B, threads: threads, minPerPiece: max(1, 4096 / max(1, C * T * copies))) { samples in
            for b in samples {
                for c in 0..<copies {
                    for t in 0..<Int(lengths[b]) {
                        let r = (c * B + b) * T + t, base = b * T + t
                        if let mean {
                            layerNormInputGradRow(acc1: acc1 + r * C, acc2: acc2.map { $0 + base * C }, dout: dout + r * C, inp: inp + r * C,
                                                  weight: weight, mean: mean[r], rstd: rstd[r], C: C)
                        } else {
                            rmsNormInputGradRow(acc1: acc1 + r * C, acc2: acc2.map { $0 + base * C }, dout: dout + r * C, inp: inp + r * C,
                                                weight: weight, rstd: rstd[r], C: C)
                        }
                    }
                }
            }
        }
    }

    /// One row of `layerNormInputGrad`.
    @inline(__always)
    static func layerNormInputGradRow(acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>?,
                                      dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                      mean m: Float, rstd s: Float, C: Int) {
        typealias V8 = FastMath.V8
        let vm = V8(repeating: m), vs = V8(repeating: s)
        var a = V8(), bsum = V8()
        var i = 0
        while i + 8 <= C {
            let g = FastMath.load(weight + i) * FastMath.load(dout + i)
            a += g
            bsum += g * (FastMath.load(inp + i) - vm) * vs
            i += 8
        }
        var sa = a.sum(), sb = bsum.sum()
        while i < C {
            let g = weight[i] * dout[i]
            sa += g
            sb += g * (inp[i] - m) * s
            i += 1
        }
        let ma = sa / Float(C), mb = sb / Float(C)
        let vma = V8(repeating: ma), vmb = V8(repeating: mb)
        i = 0
        while i + 8 <= C {
            let xh = (FastMath.load(inp + i) - vm) * vs
            let g = (FastMath.load(weight + i) * FastMath.load(dout + i) - vma - xh * vmb) * vs
            FastMath.store(FastMath.load(acc1 + i) + g, acc1 + i)
            if let acc2 { FastMath.store(FastMath.load(acc2 + i) + g, acc2 + i) }
            i += 8
        }
        while i < C {
            let g = (weight[i] * dout[i] - ma - (inp[i] - m) * s * mb) * s
            acc1[i] += g
            acc2?[i] += g
            i += 1
        }
    }

    /// `dlnf (B, C) = dlogits (B, V) · wte (V, C)`; when few entries of `dlogits` are nonzero (the logit
    /// difference has two per row) only their rows of `wte` are summed, else one GEMM.
    static func unembeddingBackward(dlnf: UnsafeMutablePointer<Float>, dlogits: UnsafePointer<Float>, wte: UnsafePointer<Float>,
                                    B: Int, V: Int, C: Int) {
        var nonzero: [(Int, Int)] = []
        var dense = false
        scan: for b in 0..<B {
            let row = dlogits + b * V
            for t in 0..<V where row[t] != 0 {
                nonzero.append((b, t))
                if nonzero.count > 64 * B { dense = true; break scan }
            }
        }
        if dense {
            Matmul.sgemm(false, false, M: B, N: C, K: V, alpha: 1, A: dlogits, lda: V, B: wte, ldb: C, beta: 0, C: dlnf, ldc: C)
            return
        }
        dlnf.update(repeating: 0, count: B * C)
        for (b, t) in nonzero {
            let w = dlogits[b * V + t], src = wte + t * C, dst = dlnf + b * C
            for i in 0..<C { dst[i] += w * src[i] }
        }
    }
}
