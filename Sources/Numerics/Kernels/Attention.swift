import CKernels
import Foundation

/// Causal multi-head self-attention with right padding, on the fused projection `qkv (B, T, 3C)` whose columns
/// are q | k | v with heads contiguous inside each (HF's `c_attn` layout).
///
/// Masking: row b has `lengths[b]` real tokens followed by padding. Query i attends to keys
/// j ≤ min(i, lengths[b] − 1): causal, and padded keys are masked (as HF does with an attention mask).
/// Padded queries still get well-defined outputs (over the real keys); callers ignore them.
///
/// Per (batch row, head) the products are sgemm calls run concurrently over heads with OpenBLAS set to
/// one thread meanwhile (restored afterwards), since each product is small. They are blocked causally: a block
/// of `queryBlock` queries multiplies only with the keys it can see, so the masked upper triangle of q·kᵀ, P·v
/// and their gradients is mostly skipped (docs/performance.md).
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
        let hs = C / NH, scale = 1 / Float(hs).squareRoot(), QB = queryBlock
        perHead(B * NH, threads: threads) { bh in
            let (b, h, L, q, k, v) = head(bh, qkv: qkv, lengths: lengths, T: T, C: C, NH: NH)
            let a = att + bh * T * T
            // Per block of QB queries, scores = scale · q · kᵀ over the keys any of them sees (0 ..< min(i1, L)),
            // then a masked softmax per query row; the rest of each row is set to 0.
            for i0 in stride(from: 0, to: T, by: QB) {
                let i1 = min(i0 + QB, T), kEnd = min(i1, L)
                Matmul.sgemm(false, true, M: i1 - i0, N: kEnd, K: hs, alpha: scale, A: q + i0 * 3 * C, lda: 3 * C,
                             B: k, ldb: 3 * C, beta: 0, C: a + i0 * T, ldc: T)
                for i in i0..<i1 {
                    let row = a + i * T
                    let n = min(i, L - 1) + 1
                    softmaxRow(row, n)
                    (row + n).update(repeating: 0, count: T - n)
                }
            }
            // out_h (T, hs) = P · v  (P dropped, in scratch, when training with dropout), per query block over its keys
            var weights = UnsafePointer(a)
            if dropout > 0, let dropKey, let scratch {
                Dropout.copy(scratch + bh * T * T, a, count: T * T, p: dropout, key: dropKey(bh))
                weights = UnsafePointer(scratch + bh * T * T)
            }
            for i0 in stride(from: 0, to: T, by: QB) {
                let i1 = min(i0 + QB, T), kEnd = min(i1, L)
                Matmul.sgemm(false, false, M: i1 - i0, N: hs, K: kEnd, alpha: 1, A: weights + i0 * T, lda: T, B: v, ldb: 3 * C,
                             beta: 0, C: out + (b * T + i0) * C + h * hs, ldc: C)
            }
        }
    }

    /// Backward of `forward` given `dout (B, T, C)`: overwrites `dqkv (B, T, 3C)`.
    /// `scratch` holds at least `B · NH · T · T` floats (one T × T block per head, so heads run in any order).
    public static func backward(dqkv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                lengths: UnsafePointer<Int32>?, B: Int, T: Int, C: Int, NH: Int, threads: Int,
                                dropout: Float = 0, dropKey: ((Int) -> UInt64)? = nil) {
        precondition(dropout == 0 || dropKey != nil, "attention dropout needs its keys")
        let hs = C / NH, scale = 1 / Float(hs).squareRoot(), QB = queryBlock
        perHead(B * NH, threads: threads) { bh in
            let (b, h, L, q, k, v) = head(bh, qkv: qkv, lengths: lengths, T: T, C: C, NH: NH)
            let dq = dqkv + b * T * 3 * C + h * hs
            let dk = dq + C, dv = dq + 2 * C
            let p = att + bh * T * T
            let dy = dout + b * T * C + h * hs
            let dp = scratch + bh * T * T
            // Blocks of QB queries (rows i0 ..< i1) see keys 0 ..< min(i1, L); a block of keys (j0 ..< j1) is seen by
            // queries j0 ..< T. Only those parts of dP and dS are computed; keys ≥ L get dk = dv = 0.
            var weights = UnsafePointer(p)
            var key: UInt64 = 0
            if dropout > 0, let dropKey {
                // With dropout the values saw P' = P ⊙ mask / (1 − p): dv = P'ᵀ · dy (P' regenerated in dP's buffer),
                // then dP = (dy · vᵀ) ⊙ mask / (1 − p).
                key = dropKey(bh)
                Dropout.copy(dp, p, count: T * T, p: dropout, key: key)
                weights = UnsafePointer(dp)
            }
            // dv (T, hs) = P'ᵀ · dy, per key block
            keyBlocks(T: T, L: L, QB: QB, zero: { j0, j1 in zeroRows(dv + j0 * 3 * C, rows: j1 - j0, width: hs, stride: 3 * C) }) { j0, j1 in
                Matmul.sgemm(true, false, M: j1 - j0, N: hs, K: T - j0, alpha: 1, A: weights + j0 * T + j0, lda: T,
                             B: dy + j0 * C, ldb: C, beta: 0, C: dv + j0 * 3 * C, ldc: 3 * C)
            }
            // dP (T, T) = dy · vᵀ, per query block over its keys
            for i0 in stride(from: 0, to: T, by: QB) {
                let i1 = min(i0 + QB, T), kEnd = min(i1, L)
                Matmul.sgemm(false, true, M: i1 - i0, N: kEnd, K: hs, alpha: 1, A: dy + i0 * C, lda: C, B: v, ldb: 3 * C,
                             beta: 0, C: dp + i0 * T, ldc: T)
                if dropout > 0 {
                    for i in i0..<i1 { Dropout.applyRange(dp + i * T, range: 0..<kEnd, rowStart: i * T, p: dropout, key: key) }
                }
            }
            // dS = scale · P ⊙ (dP − Σⱼ P·dP), in place over dP; masked entries of the computed blocks become 0.
            for i0 in stride(from: 0, to: T, by: QB) {
                let i1 = min(i0 + QB, T), kEnd = min(i1, L)
                for i in i0..<i1 {
                    let pr = p + i * T, dr = dp + i * T
                    let n = min(i, L - 1) + 1
                    var dot: Float = 0
                    for j in 0..<n { dot += pr[j] * dr[j] }
                    for j in 0..<n { dr[j] = scale * pr[j] * (dr[j] - dot) }
                    for j in n..<kEnd { dr[j] = 0 }
                }
                // dq (rows i0 ..< i1) = dS · k over the block's keys
                Matmul.sgemm(false, false, M: i1 - i0, N: hs, K: kEnd, alpha: 1, A: dp + i0 * T, lda: T, B: k, ldb: 3 * C,
                             beta: 0, C: dq + i0 * 3 * C, ldc: 3 * C)
            }
            // dk (T, hs) = dSᵀ · q, per key block over the queries that see it
            keyBlocks(T: T, L: L, QB: QB, zero: { j0, j1 in zeroRows(dk + j0 * 3 * C, rows: j1 - j0, width: hs, stride: 3 * C) }) { j0, j1 in
                Matmul.sgemm(true, false, M: j1 - j0, N: hs, K: T - j0, alpha: 1, A: dp + j0 * T + j0, lda: T,
                             B: q + j0 * 3 * C, ldb: 3 * C, beta: 0, C: dk + j0 * 3 * C, ldc: 3 * C)
            }
        }
    }

    /// Queries per block of the causal blocking: a block of rows i0 ..< i0 + 32 only touches keys below its end,
    /// which skips ~3/8 of the T × T products at T = 128 while each product stays large enough for sgemm.
    static let queryBlock = 32

    /// Calls `body(j0, j1)` for the key blocks j0 ..< j1 (aligned with the query blocks) below the length L, clipped
    /// at L, and `zero(j0, j1)` for the rows L ..< T (keys no query sees).
    @inline(__always)
    static func keyBlocks(T: Int, L: Int, QB: Int, zero: (Int, Int) -> Void, _ body: (Int, Int) -> Void) {
        for j0 in stride(from: 0, to: L, by: QB) { body(j0, min(j0 + QB, L)) }
        if L < T { zero(L, T) }
    }

    /// Sets `rows` rows of `width` floats, `stride` apart, to 0.
    @inline(__always)
    static func zeroRows(_ p: UnsafeMutablePointer<Float>, rows: Int, width: Int, stride: Int) {
        for r in 0..<rows { (p + r * stride).update(repeating: 0, count: width) }
    }

    /// In-place softmax of `row[0 ..< n]` (Float sums; n ≤ T is short; the C kernel).
    @inline(__always)
    static func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ n: Int) { dkc_softmax_row(row, n) }

    /// Head `bh` = b·NH + h of a batch: its sample b, head h, real length L, and its q, k and v columns in `qkv (B, T, 3C)`.
    @inline(__always)
    static func head(_ bh: Int, qkv: UnsafePointer<Float>, lengths: UnsafePointer<Int32>?, T: Int, C: Int, NH: Int)
        -> (Int, Int, Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>) {
        let b = bh / NH, h = bh % NH
        let q = qkv + b * T * 3 * C + h * (C / NH)
        return (b, h, lengths.map { Int($0[b]) } ?? T, q, q + C, q + 2 * C)
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
