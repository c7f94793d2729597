import Foundation
import Numerics

extension AttributionKernels {
    /// `layerNormInputGrad` for RMSNorm (Llama): for every real row (b, t < lengths[b]) of `(copies·B, T, C)`
    /// activations, g = rstd · (w⊙d − x̂ · mean(w⊙d⊙x̂)) with x̂ = x · rstd, added to `acc1` (same row) and to `acc2`
    /// at the row of the base sample (c·B + b → b), copies in order. Work is split over base samples.
    static func rmsNormInputGrad(acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>?,
                                 dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                 rstd: UnsafePointer<Float>, lengths: UnsafePointer<Int32>, B: Int, copies: Int = 1, T: Int, C: Int,
                                 threads: Int) {
        Parallel.pieces(B, threads: threads, minPerPiece: max(1, 4096 / max(1, C * T * copies))) { samples in
            for b in samples {
                for c in 0..<copies {
                    for t in 0..<Int(lengths[b]) {
                        let r = (c * B + b) * T + t, base = b * T + t
                        rmsNormInputGradRow(acc1: acc1 + r * C, acc2: acc2.map { $0 + base * C }, dout: dout + r * C, inp: inp + r * C,
                                            weight: weight, rstd: rstd[r], C: C)
                    }
                }
            }
        }
    }

    /// One row of `rmsNormInputGrad`.
    @inline(__always)
    static func rmsNormInputGradRow(acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>?,
                                    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                    rstd s: Float, C: Int) {
        typealias V8 = FastMath.V8
        let vs = V8(repeating: s)
        var bsum = V8()
        var i = 0
        while i + 8 <= C {
            bsum += FastMath.load(weight + i) * FastMath.load(dout + i) * FastMath.load(inp + i) * vs
            i += 8
        }
        var sb = bsum.sum()
        while i < C {
            sb += weight[i] * dout[i] * inp[i] * s
            i += 1
        }
        let vmb = V8(repeating: sb / Float(C))
        i = 0
        while i + 8 <= C {
            let xh = FastMath.load(inp + i) * vs
            let g = (FastMath.load(weight + i) * FastMath.load(dout + i) - xh * vmb) * vs
            FastMath.store(FastMath.load(acc1 + i) + g, acc1 + i)
            if let acc2 { FastMath.store(FastMath.load(acc2 + i) + g, acc2 + i) }
            i += 8
        }
        let mb = sb / Float(C)
        while i < C {
            let g = (weight[i] * dout[i] - inp[i] * s * mb) * s
            acc1[i] += g
            acc2?[i] += g
            i += 1
        }
    }
}
