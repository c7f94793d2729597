import COpenBLAS
import Foundation

/// The small kernels of the instrumented forward/backward that the training kernels do not cover in the
/// shape needed here: LayerNorm without parameter gradients (the input gradient is accumulated into two
/// places at once), causal attention over short prompts with a key-padding mask, and the tanh GELU.
/// Matrix products go through `AttributionKernels.sgemm` (cblas_sgemm, row-major).
enum AttributionKernels {
    /// Row-major `C = alpha · op(A) · op(B) + beta · C` with op(A) (M, K), op(B) (K, N), C (M, N).
    @inline(__always)
    static func sgemm(_ transA: Bool, _ transB: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
                      A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                      beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
        guard M > 0, N > 0 else { return }
        if K == 0 {
            if beta != 1 { for i in 0..<M { for j in 0..<N { C[i * ldc + j] *= beta } } }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(M), blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc))
    }

    /// `out (N, C) = LN(inp)`, with `mean (N)`, `rstd (N)` when given; mean and variance summed in double.
    static func layerNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>?,
                                 inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                 N: Int, C: Int, eps: Float) {
        for n in 0..<N {
            let x = inp + n * C, o = out + n * C
            var s = 0.0
            for i in 0..<C { s += Double(x[i]) }
            let m = Float(s / Double(C))
            var v = 0.0
            for i in 0..<C { let d = Double(x[i] - m); v += d * d }
            let r = Float(1 / (v / Double(C) + Double(eps)).squareRoot())
            for i in 0..<C { o[i] = (x[i] - m) * r * weight[i] + bias[i] }
            mean?[n] = m
            rstd?[n] = r
        }
    }

    /// Input gradient of LayerNorm for one row: g = rstd · (w⊙d − mean(w⊙d) − x̂ · mean(w⊙d⊙x̂)), added to
    /// `acc1` and, when given, to `acc2`.
    @inline(__always)
    static func layerNormInputGradRow(acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>?,
                                      dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                      mean m: Float, rstd s: Float, C: Int) {
        var sa: Float = 0, sb: Float = 0
        for i in 0..<C {
            let g = weight[i] * dout[i]
            sa += g
            sb += g * (inp[i] - m) * s
        }
        let ma = sa / Float(C), mb = sb / Float(C)
        if let acc2 {
            for i in 0..<C {
                let g = (weight[i] * dout[i] - ma - (inp[i] - m) * s * mb) * s
                acc1[i] += g
                acc2[i] += g
            }
        } else {
            for i in 0..<C { acc1[i] += (weight[i] * dout[i] - ma - (inp[i] - m) * s * mb) * s }
        }
    }

    static let geluS: Float = 0.797_884_56   // √(2/π)
    static let geluC: Float = 0.044_715

    /// `out (n) = gelu(inp)`, tanh form.
    static func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + tanhf(geluS * (x + geluC * x * x * x)))
        }
    }

    /// `d (n) *= gelu'(inp)` in place.
    static func geluBackwardInPlace(d: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let x = inp[i]
            let t = tanhf(geluS * (x + geluC * x * x * x))
            d[i] *= 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * geluS * (1 + 3 * geluC * x * x)
        }
    }

    /// Causal self-attention of every head over `qkv (B, T, 3C)` (q | k | v, heads contiguous in each):
    /// `pattern (B, H, T, T)` (0 at masked keys) and `z (B, T, C)` (heads concatenated). Keys whose `mask`
    /// is 0 are excluded; position 0 is never masked, so no row is empty.
    static func attentionForward(z: UnsafeMutablePointer<Float>, pattern: UnsafeMutablePointer<Float>,
                                 qkv: UnsafePointer<Float>, mask: UnsafePointer<UInt8>, B: Int, T: Int, C: Int, H: Int) {
        let dh = C / H, C3 = 3 * C
        let scale = 1 / Float(dh).squareRoot()
        parallelFor(B * H) { bh in
            let b = bh / H, h = bh % H
            for i in 0..<T {
                let q = qkv + (b * T + i) * C3 + h * dh
                let p = pattern + ((b * H + h) * T + i) * T
                var mx = -Float.infinity
                for j in 0...i where mask[b * T + j] != 0 {
                    let k = qkv + (b * T + j) * C3 + C + h * dh
                    var s: Float = 0
                    for d in 0..<dh { s += q[d] * k[d] }
                    s *= scale
                    p[j] = s
                    mx = max(mx, s)
                }
                var sum: Float = 0
                for j in 0..<T {
                    if j <= i && mask[b * T + j] != 0 {
                        let e = expf(p[j] - mx)
                        p[j] = e
                        sum += e
                    } else {
                        p[j] = 0
                    }
                }
                let inv = 1 / sum
                let zi = z + (b * T + i) * C + h * dh
                for d in 0..<dh { zi[d] = 0 }
                for j in 0...i where p[j] != 0 {
                    p[j] *= inv
                    let v = qkv + (b * T + j) * C3 + 2 * C + h * dh
                    let w = p[j]
                    for d in 0..<dh { zi[d] += w * v[d] }
                }
            }
        }
    }

    /// Backward of `attentionForward`: `dqkv (B, T, 3C)` (overwritten) from `dz (B, T, C)`.
    /// Rows of `dz` at positions `≥ rowLimit[b]` are taken as zero (they are, for a metric read at
    /// length − 1), which skips their work.
    static func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dz: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                                  pattern: UnsafePointer<Float>, rowLimit: [Int], B: Int, T: Int, C: Int, H: Int) {
        let dh = C / H, C3 = 3 * C
        let scale = 1 / Float(dh).squareRoot()
        dqkv.update(repeating: 0, count: B * T * C3)
        rowLimit.withUnsafeBufferPointer { limit in
            parallelFor(B * H) { bh in
                let b = bh / H, h = bh % H
                let dp = UnsafeMutablePointer<Float>.allocate(capacity: T)
                defer { dp.deallocate() }
                for i in 0..<min(T, limit[b]) {
                    let dzi = dz + (b * T + i) * C + h * dh
                    let p = pattern + ((b * H + h) * T + i) * T
                    var dot: Float = 0
                    for j in 0...i {
                        guard p[j] != 0 else { dp[j] = 0; continue }
                        let v = qkv + (b * T + j) * C3 + 2 * C + h * dh
                        let dv = dqkv + (b * T + j) * C3 + 2 * C + h * dh
                        var s: Float = 0
                        for d in 0..<dh {
                            s += dzi[d] * v[d]
                            dv[d] += p[j] * dzi[d]
                        }
                        dp[j] = s
                        dot += p[j] * s
                    }
                    let q = qkv + (b * T + i) * C3 + h * dh
                    let dq = dqkv + (b * T + i) * C3 + h * dh
                    for j in 0...i where p[j] != 0 {
                        let ds = p[j] * (dp[j] - dot) * scale
                        let k = qkv + (b * T + j) * C3 + C + h * dh
                        let dk = dqkv + (b * T + j) * C3 + C + h * dh
                        for d in 0..<dh {
                            dq[d] += ds * k[d]
                            dk[d] += ds * q[d]
                        }
                    }
                }
            }
        }
    }

    /// Runs `body(i)` for i in 0..<n on up to `BLAS.threads` threads (contiguous chunks).
    static func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        let k = max(1, min(BLAS.threads, n))
        if k == 1 {
            for i in 0..<n { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: k) { c in
            for i in (n * c / k)..<(n * (c + 1) / k) { body(i) }
        }
    }
}
