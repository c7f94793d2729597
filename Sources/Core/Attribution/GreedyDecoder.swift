import Foundation

/// Greedy decoding with a key/value cache on the plain GPT-2 (HF semantics): the prompts run once through
/// `GPT2.forward` (right-padded, logits at each prompt's last position), their keys and values are kept,
/// and every further token costs one row per sequence. Row b's new token goes to position length_b (over
/// the pad slot), so each row computes exactly what it would alone.
final class GreedyDecoder {
    let model: GPT2
    let L: Int, H: Int, C: Int, dh: Int, V: Int, F: Int
    let eps: Float
    /// Keys and values per layer.   // (L, B, S, C) each
    private var keys = FloatBuffer(count: 0), values = FloatBuffer(count: 0)
    private var B = 0, S = 0, allocatedB = 0, allocatedS = 0
    // Step scratch, sized for B rows.
    private var x = FloatBuffer(count: 0), ln = FloatBuffer(count: 0), qkv = FloatBuffer(count: 0), z = FloatBuffer(count: 0)
    private var hidden = FloatBuffer(count: 0), stats = FloatBuffer(count: 0), scores = FloatBuffer(count: 0)
    /// Logits of the last call.   // (rows, V)
    private(set) var logits = FloatBuffer(count: 0)

    init(model: GPT2) {
        self.model = model
        let cfg = model.config
        L = cfg.nLayer; H = cfg.nHead; C = cfg.nEmbd; dh = cfg.headSize; V = cfg.vocabSize; F = cfg.mlpSize
        eps = Float(cfg.layerNormEpsilon)
    }

    /// Runs the prompts (`B` rows, lengths ≥ 1) and keeps room for `S` positions per row.
    /// Returns the logits at each prompt's last position `(B, V)`.
    func prefill(_ prompts: [[Int]], capacity S: Int) throws -> UnsafePointer<Float> {
        let B = prompts.count, T = prompts.map(\.count).max()!
        guard T <= S, S <= model.config.nPositions else {
            throw ModelError("a prompt of \(T) tokens and \(S) positions of cache do not fit the model's n_positions \(model.config.nPositions)")
        }
        var tokens = [Int](repeating: model.config.eosTokenId, count: B * T)
        for (b, p) in prompts.enumerated() { for (t, id) in p.enumerated() { tokens[b * T + t] = id } }
        let lengths = prompts.map(\.count)
        let out = try model.forward(tokens: tokens, batch: B, seqLen: T, lengths: lengths, positions: lengths.map { $0 - 1 })
        if B > allocatedB || S > allocatedS {
            allocatedB = max(B, allocatedB); allocatedS = max(S, allocatedS)
            let B = allocatedB, S = allocatedS
            keys = FloatBuffer(count: L * B * S * C)
            values = FloatBuffer(count: L * B * S * C)
            x = FloatBuffer(count: B * C); ln = FloatBuffer(count: B * C); qkv = FloatBuffer(count: B * 3 * C); z = FloatBuffer(count: B * C)
            hidden = FloatBuffer(count: B * F); stats = FloatBuffer(count: 2 * B); scores = FloatBuffer(count: S)
            logits = FloatBuffer(count: B * V)
        }
        self.B = B
        self.S = S
        for l in 0..<L {
            let src = model.acts.layers[l].qkv
            for b in 0..<B {
                for t in 0..<T {
                    let row = src + (b * T + t) * 3 * C
                    (cache(keys, l, b) + t * C).update(from: row + C, count: C)
                    (cache(values, l, b) + t * C).update(from: row + 2 * C, count: C)
                }
            }
        }
        logits.base.update(from: out.baseAddress!, count: B * V)
        return UnsafePointer(logits.base)
    }

    @inline(__always)
    private func cache(_ buffer: FloatBuffer, _ l: Int, _ b: Int) -> UnsafeMutablePointer<Float> {
        buffer.base + ((l * B + b) * S) * C
    }

    /// Appends `tokens[i]` at `positions[i]` (< capacity) to row `rows[i]` and returns the next-token logits
    /// of those rows `(rows.count, V)`.
    func step(rows: [Int], tokens: [Int], positions: [Int]) -> UnsafePointer<Float> {
        let n = rows.count, p = model.params.views, threads = model.threads
        let scale = 1 / Float(dh).squareRoot()
        for i in 0..<n {
            precondition(positions[i] < S, "decoding past the cache")
            let dst = x.base + i * C, e = p.wte + tokens[i] * C, pe = p.wpe + positions[i] * C
            for c in 0..<C { dst[c] = e[c] + pe[c] }
        }
        for l in 0..<L {
            let w = p.layers[l]
            LayerNorm.forward(out: ln.base, mean: stats.base, rstd: stats.base + n, inp: x.base, weight: w.ln1Weight, bias: w.ln1Bias,
                              N: n, C: C, eps: eps, threads: 1)
            Matmul.forward(out: qkv.base, inp: ln.base, weight: w.attnWeight, bias: w.attnBias, N: n, IC: C, OC: 3 * C, threads: threads)
            for i in 0..<n {
                let k = cache(keys, l, rows[i]) + positions[i] * C, v = cache(values, l, rows[i]) + positions[i] * C
                k.update(from: qkv.base + i * 3 * C + C, count: C)
                v.update(from: qkv.base + i * 3 * C + 2 * C, count: C)
                for h in 0..<H {
                    // softmax(q · kⱼ / √dh) over the row's positions 0 … pᵢ, then Σ pⱼ vⱼ.
                    let q = qkv.base + i * 3 * C + h * dh
                    let K = cache(keys, l, rows[i]) + h * dh, Vc = cache(values, l, rows[i]) + h * dh
                    let count = positions[i] + 1
                    var mx = -Float.infinity
                    for j in 0..<count {
                        var s: Float = 0
                        let kj = K + j * C
                        for d in 0..<dh { s += q[d] * kj[d] }
                        scores.base[j] = s * scale
                        mx = max(mx, scores.base[j])
                    }
                    var sum: Float = 0
                    for j in 0..<count { scores.base[j] = expf(scores.base[j] - mx); sum += scores.base[j] }
                    let out = z.base + i * C + h * dh
                    for d in 0..<dh { out[d] = 0 }
                    for j in 0..<count {
                        let a = scores.base[j] / sum, vj = Vc + j * C
                        for d in 0..<dh { out[d] += a * vj[d] }
                    }
                }
            }
            Matmul.forward(out: x.base, inp: z.base, weight: w.attnProjWeight, bias: w.attnProjBias, residual: x.base,
                           N: n, IC: C, OC: C, threads: threads)
            LayerNorm.forward(out: ln.base, mean: stats.base, rstd: stats.base + n, inp: x.base, weight: w.ln2Weight, bias: w.ln2Bias,
                              N: n, C: C, eps: eps, threads: 1)
            Matmul.forward(out: hidden.base, inp: ln.base, weight: w.fcWeight, bias: w.fcBias, N: n, IC: C, OC: F, threads: threads)
            GELU.forward(out: hidden.base, inp: hidden.base, count: n * F, threads: threads)
            Matmul.forward(out: x.base, inp: hidden.base, weight: w.fcProjWeight, bias: w.fcProjBias, residual: x.base,
                           N: n, IC: F, OC: C, threads: threads)
        }
        LayerNorm.forward(out: ln.base, mean: stats.base, rstd: stats.base + n, inp: x.base, weight: p.lnfWeight, bias: p.lnfBias,
                          N: n, C: C, eps: eps, threads: 1)
        Matmul.sgemm(false, true, M: n, N: V, K: C, alpha: 1, A: ln.base, lda: C, B: p.wte, ldb: C, beta: 0, C: logits.base, ldc: V)
        return UnsafePointer(logits.base)
    }
}
