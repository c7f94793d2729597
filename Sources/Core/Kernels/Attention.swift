import Foundation

/// Causal multi-head self-attention with right padding, on the fused projection `qkv (B, T, 3C)` whose columns
/// are q | k | v with heads contiguous inside each (HF's `c_attn` layout).
///
/// Masking: row b has `lengths[b]` real tokens followed by padding. Query i attends to keys
/// j ≤ min(i, lengths[b] − 1): causal, and padded keys are masked (as HF does with an attention mask).
/// Padded queries still get well-defined outputs (over the real keys); callers ignore them.
///
/// Per (batch row, head) the two products are sgemm calls run concurrently over heads with OpenBLAS set to
/// one thread meanwhile (restored afterwards), since each product is small.
public enum Attention {
    /// `out (B, T, C)`: per head h the columns h·hs ..< (h+1)·hs hold softmax(q·kᵀ/√hs + mask)·v
    /// (TransformerLens `hook_z`, flattened). `att (B, NH, T, T)`: the probabilities (`hook_pattern`),
    /// exactly 0 where masked. `lengths`: nil for unpadded rows, else B values in 1...T.
    ///
    /// Training dropout (`dropout` > 0): the values are multiplied by the dropped probabilities P ⊙ mask / (1 − p),
    /// mask `dropKey(b · NH + h)` (see `Dropout`), built in `scratch` (B · NH · T · T floats); `att` keeps P.
    public static func forward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, lengths: UnsafePointer<Int32>?,
                               B: Int, T: Int, C: Int, NH: Int, threads: Int,
                               dropout: Float = 0, dropKey: ((Int) -> UInt64)? = nil, scratch: UnsafeMutablePointer<Float>? = nil) {
        precondition(dropout == 0 || (dropKey != nil && scratch != nil), "attention dropout needs its keys and a scratch buffer")
        let hs = C / NH
        let scale = 1 / Float(hs).squareRoot()
        perHead(B * NH, threads: threads) { bh in
            let b = bh / NH, h = bh % NH
            let L = lengths.map { Int($0[b]) } ?? T
            let q = qkv + b * T * 3 * C + h * hs
            let k = q + C, v = q + 2 * C
            let a = att + bh * T * T
            // Scores (T, T) = scale · q · kᵀ, then a masked softmax per query row.
            Matmul.sgemm(false, true, M: T, N: T, K: hs, alpha: scale, A: q, lda: 3 * C, B: k, ldb: 3 * C, beta: 0, C: a, ldc: T)
            for i in 0..<T {
                let row = a + i * T
                let kmax = min(i, L - 1)
                softmaxRow(row, kmax + 1)
                for j in (kmax + 1)..<T { row[j] = 0 }
            }
            // out_h (T, hs) = P · v  (P dropped, in scratch, when training with dropout)
            var weights = UnsafePointer(a)
            if dropout > 0, let dropKey, let scratch {
                Dropout.copy(scratch + bh * T * T, a, count: T * T, p: dropout, key: dropKey(bh))
                weights = UnsafePointer(scratch + bh * T * T)
            }
            Matmul.sgemm(false, false, M: T, N: hs, K: T, alpha: 1, A: weights, lda: T, B: v, ldb: 3 * C, beta: 0,
                         C: out + b * T * C + h * hs, ldc: C)
        }
    }

    /// Backward of `forward` given `dout (B, T, C)`: overwrites `dqkv (B, T, 3C)`.
    /// `scratch` holds at least `B · NH · T · T` floats (one T × T block per head, so heads run in any order).
    public static func backward(dqkv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                lengths: UnsafePointer<Int32>?, B: Int, T: Int, C: Int, NH: Int, threads: Int,
                                dropout: Float = 0, dropKey: ((Int) -> UInt64)? = nil) {
        precondition(dropout == 0 || dropKey != nil, "attention dropout needs its keys")
        let hs = C / NH
        let scale = 1 / Float(hs).squareRoot()
        perHead(B * NH, threads: threads) { bh in
            let b = bh / NH, h = bh % NH
            let L = lengths.map { Int($0[b]) } ?? T
            let q = qkv + b * T * 3 * C + h * hs
            let k = q + C, v = q + 2 * C
            let dq = dqkv + b * T * 3 * C + h * hs
            let dk = dq + C, dv = dq + 2 * C
            let p = att + bh * T * T
            let dy = dout + b * T * C + h * hs
            let dp = scratch + bh * T * T
            if dropout > 0, let dropKey {
                // With dropout the values saw P' = P ⊙ mask / (1 − p): dv = P'ᵀ · dy (P' regenerated in dP's buffer),
                // then dP = (dy · vᵀ) ⊙ mask / (1 − p).
                let key = dropKey(bh)
                Dropout.copy(dp, p, count: T * T, p: dropout, key: key)
                Matmul.sgemm(true, false, M: T, N: hs, K: T, alpha: 1, A: dp, lda: T, B: dy, ldb: C, beta: 0, C: dv, ldc: 3 * C)
                Matmul.sgemm(false, true, M: T, N: T, K: hs, alpha: 1, A: dy, lda: C, B: v, ldb: 3 * C, beta: 0, C: dp, ldc: T)
                Dropout.apply(dp, count: T * T, p: dropout, key: key)
            } else {
                // dP (T, T) = dy · vᵀ ;  dv (T, hs) = Pᵀ · dy
                Matmul.sgemm(false, true, M: T, N: T, K: hs, alpha: 1, A: dy, lda: C, B: v, ldb: 3 * C, beta: 0, C: dp, ldc: T)
                Matmul.sgemm(true, false, M: T, N: hs, K: T, alpha: 1, A: p, lda: T, B: dy, ldb: C, beta: 0, C: dv, ldc: 3 * C)
            }
            // dS = scale · P ⊙ (dP − Σⱼ P·dP), in place over dP; masked entries become 0.
            for i in 0..<T {
                let pr = p + i * T, dr = dp + i * T
                let n = min(i, L - 1) + 1
                var dot: Float = 0
                for j in 0..<n { dot += pr[j] * dr[j] }
                for j in 0..<n { dr[j] = scale * pr[j] * (dr[j] - dot) }
                for j in n..<T { dr[j] = 0 }
            }
            // dq (T, hs) = dS · k ;  dk (T, hs) = dSᵀ · q
            Matmul.sgemm(false, false, M: T, N: hs, K: T, alpha: 1, A: dp, lda: T, B: k, ldb: 3 * C, beta: 0, C: dq, ldc: 3 * C)
            Matmul.sgemm(true, false, M: T, N: hs, K: T, alpha: 1, A: dp, lda: T, B: q, ldb: 3 * C, beta: 0, C: dk, ldc: 3 * C)
        }
    }

    /// In-place softmax of `row[0 ..< n]` (Float sums; n ≤ T is short).
    @inline(__always)
    static func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
        var m = -Float.infinity
        for j in 0..<n { m = max(m, row[j]) }
        var sum: Float = 0
        var j = 0
        let mv = FastMath.V8(repeating: m)
        while j + 8 <= n {
            let e = FastMath.exp(FastMath.load(row + j) - mv)
            FastMath.store(e, row + j)
            sum += e.sum()
            j += 8
        }
        while j < n { let e = FastMath.exp(row[j] - m); row[j] = e; sum += e; j += 1 }
        let inv = 1 / sum
        for j in 0..<n { row[j] *= inv }
    }

    /// Runs `body(index)` for index in 0..<count, handed out dynamically over `threads` workers with OpenBLAS
    /// single-threaded for the duration (the products inside are small).
    static func perHead(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        if threads <= 1 || count == 1 {
            for i in 0..<count { body(i) }
            return
        }
        let saved = BLAS.threads
        BLAS.setThreads(1)
        defer { BLAS.setThreads(saved) }
        DispatchQueue.concurrentPerform(iterations: count) { body($0) }
    }
}
