import Foundation
import Numerics
import Models

/// Greedy decoding with a key/value cache (HF semantics): the prompts run once through the plain model's
/// forward (right-padded, logits at each prompt's last position), their keys and values are kept, and every
/// further token costs one row per sequence. Row b's new token goes to position length_b (over the pad slot),
/// so each row computes exactly what it would alone. `GreedyDecoder` runs GPT-2, `FamilyGreedyDecoder` Llama
/// and Phi; `KnowledgeAcquisition` drives either.
protocol CachedDecoder: AnyObject {
    /// The cache, with the model's vocabulary, positions and pad id.
    var cache: DecoderCache { get }
    /// Runs the prompts (`B` rows, lengths ≥ 1) and keeps room for `capacity` positions per row.
    /// Returns the logits at each prompt's last position `(B, V)`.
    func prefill(_ prompts: [[Int]], capacity: Int) throws -> UnsafePointer<Float>
    /// Appends `tokens[i]` at `positions[i]` (< capacity) to row `rows[i]` and returns the next-token logits
    /// of those rows `(rows.count, V)`.
    func step(rows: [Int], tokens: [Int], positions: [Int]) -> UnsafePointer<Float>
}

/// What both decoders keep: the key/value cache (per layer and row, `capacity` positions of `width` floats;
/// GPT-2: all heads, C; the families: the KV heads, num_key_value_heads · d_head), the attention scores of one
/// row, the logits of the last call `(rows, V)`, and the model's vocabulary, positions and pad id.
final class DecoderCache {
    private(set) var keys = FloatBuffer(count: 0), values = FloatBuffer(count: 0)
    private(set) var scores = FloatBuffer(count: 0), logits = FloatBuffer(count: 0)
    private(set) var B = 0, S = 0
    /// Rows the buffers hold (the decoder's own step scratch is sized to it).
    private(set) var rowCapacity = 0
    private var positionCapacity = 0
    let layers: Int, width: Int, vocabSize: Int, maxPositions: Int
    /// The id written into pad slots of the prefill (masked; any valid id).
    let padTokenId: Int

    init(layers: Int, width: Int, vocabSize: Int, maxPositions: Int, padTokenId: Int) {
        self.layers = layers; self.width = width; self.vocabSize = vocabSize; self.maxPositions = maxPositions; self.padTokenId = padTokenId
    }

    /// Makes room for `B` rows of `S` positions; true when the rows grew (the decoder then sizes its step
    /// scratch to `rowCapacity`).
    func reserve(B: Int, S: Int) -> Bool {
        defer { self.B = B; self.S = S }
        if S > scores.count { scores = FloatBuffer(count: S) }
        guard B > rowCapacity || S > positionCapacity else { return false }
        let grew = B > rowCapacity
        rowCapacity = max(B, rowCapacity); positionCapacity = max(S, positionCapacity)
        keys = FloatBuffer(count: layers * rowCapacity * positionCapacity * width)
        values = FloatBuffer(count: layers * rowCapacity * positionCapacity * width)
        if grew { logits = FloatBuffer(count: rowCapacity * vocabSize) }
        return grew
    }

    /// Pads `prompts` on the right with the pad id into one (B, T) block: the tokens, T and the lengths.
    func padded(_ prompts: [[Int]], capacity S: Int) throws -> (tokens: [Int], T: Int, lengths: [Int]) {
        let B = prompts.count, T = prompts.map(\.count).max()!
        guard T <= S, S <= maxPositions else {
            throw ModelError("a prompt of \(T) tokens and \(S) positions of cache do not fit the model's \(maxPositions) positions")
        }
        var tokens = [Int](repeating: padTokenId, count: B * T)
        for (b, p) in prompts.enumerated() { for (t, id) in p.enumerated() { tokens[b * T + t] = id } }
        return (tokens, T, prompts.map(\.count))
    }

    @inline(__always) func key(_ l: Int, _ b: Int) -> UnsafeMutablePointer<Float> { keys.base + ((l * B + b) * S) * width }
    @inline(__always) func value(_ l: Int, _ b: Int) -> UnsafeMutablePointer<Float> { values.base + ((l * B + b) * S) * width }

    /// Attention of one new query row over positions 0 … `last` of row `b` in layer `l`: for each of `heads`
    /// query heads h (reading cache head ⌊h / group⌋), softmax(q·kⱼ/√d) then Σ pⱼ vⱼ into `out` (heads × d).
    /// `scores` holds at least `last + 1` floats.
    func attend(out: UnsafeMutablePointer<Float>, query q: UnsafePointer<Float>, layer l: Int, row b: Int, last: Int,
                heads: Int, group: Int, headSize dh: Int, scores: UnsafeMutablePointer<Float>) {
        let scale = 1 / Float(dh).squareRoot(), count = last + 1
        let K0 = key(l, b), V0 = value(l, b)
        for h in 0..<heads {
            let qh = q + h * dh, off = (h / group) * dh
            var mx = -Float.infinity
            for j in 0..<count {
                var s: Float = 0
                let kj = K0 + j * width + off
                for d in 0..<dh { s += qh[d] * kj[d] }
                scores[j] = s * scale
                mx = max(mx, scores[j])
            }
            var sum: Float = 0
            for j in 0..<count { scores[j] = expf(scores[j] - mx); sum += scores[j] }
            let o = out + h * dh
            for d in 0..<dh { o[d] = 0 }
            for j in 0..<count {
                let a = scores[j] / sum, vj = V0 + j * width + off
                for d in 0..<dh { o[d] += a * vj[d] }
            }
        }
    }
}

/// The GPT-2 decoder over `GPT2` (learned positions, LayerNorms, fused c_attn).
final class GreedyDecoder: CachedDecoder {
    let model: GPT2
    let L: Int, H: Int, C: Int, dh: Int, V: Int, F: Int
    let eps: Float
    let cache: DecoderCache
    // Step scratch, sized for the cache's rows.
    private var x = FloatBuffer(count: 0), ln = FloatBuffer(count: 0), qkv = FloatBuffer(count: 0), z = FloatBuffer(count: 0)
    private var hidden = FloatBuffer(count: 0), stats = FloatBuffer(count: 0)

    init(model: GPT2) {
        self.model = model
        let cfg = model.config
        L = cfg.nLayer; H = cfg.nHead; C = cfg.nEmbd; dh = cfg.headSize; V = cfg.vocabSize; F = cfg.mlpSize
        eps = Float(cfg.layerNormEpsilon)
        cache = DecoderCache(layers: L, width: C, vocabSize: V, maxPositions: cfg.nPositions, padTokenId: cfg.eosTokenId)
    }

    func prefill(_ prompts: [[Int]], capacity S: Int) throws -> UnsafePointer<Float> {
        let (tokens, T, lengths) = try cache.padded(prompts, capacity: S)
        let B = prompts.count
        let out = try model.forward(tokens: tokens, batch: B, seqLen: T, lengths: lengths, positions: lengths.map { $0 - 1 })
        if cache.reserve(B: B, S: S) {
            let R = cache.rowCapacity
            x = FloatBuffer(count: R * C); ln = FloatBuffer(count: R * C); qkv = FloatBuffer(count: R * 3 * C); z = FloatBuffer(count: R * C)
            hidden = FloatBuffer(count: R * F); stats = FloatBuffer(count: 2 * R)
        }
        let logits = cache.logits
        for l in 0..<L {
            let src = model.acts.layers[l].qkv
            for b in 0..<B {
                for t in 0..<T {
                    let row = src + (b * T + t) * 3 * C
                    (cache.key(l, b) + t * C).update(from: row + C, count: C)
                    (cache.value(l, b) + t * C).update(from: row + 2 * C, count: C)
                }
            }
        }
        logits.base.update(from: out.baseAddress!, count: B * V)
        return UnsafePointer(logits.base)
    }

    func step(rows: [Int], tokens: [Int], positions: [Int]) -> UnsafePointer<Float> {
        let n = rows.count, p = model.params.views, threads = model.threads
        for i in 0..<n {
            precondition(positions[i] < cache.S, "decoding past the cache")
            let dst = x.base + i * C, e = p.wte + tokens[i] * C, pe = p.wpe + positions[i] * C
            for c in 0..<C { dst[c] = e[c] + pe[c] }
        }
        for l in 0..<L {
            let w = p.layers[l]
            LayerNorm.forward(out: ln.base, mean: stats.base, rstd: stats.base + n, inp: x.base, weight: w.ln1Weight, bias: w.ln1Bias,
                              N: n, C: C, eps: eps, threads: 1)
            Matmul.forward(out: qkv.base, inp: ln.base, weight: w.attnWeight, bias: w.attnBias, N: n, IC: C, OC: 3 * C, threads: threads)
            for i in 0..<n {
                let row = qkv.base + i * 3 * C
                (cache.key(l, rows[i]) + positions[i] * C).update(from: row + C, count: C)
                (cache.value(l, rows[i]) + positions[i] * C).update(from: row + 2 * C, count: C)
                cache.attend(out: z.base + i * C, query: row, layer: l, row: rows[i], last: positions[i], heads: H, group: 1,
                             headSize: dh, scores: cache.scores.base)
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
        Matmul.sgemm(false, true, M: n, N: V, K: C, alpha: 1, A: ln.base, lda: C, B: p.wte, ldb: C, beta: 0, C: cache.logits.base, ldc: V)
        return UnsafePointer(cache.logits.base)
    }
}

/// The Llama / Phi decoder over `FamilyModel`: rotary at each new token's position, grouped KV heads cached
/// once per KV head, Llama's sequential RMSNorm blocks with SwiGLU, Phi's parallel LayerNorm blocks, the
/// untied `lm_head` (with Phi's bias). The same kernels as `FamilyModel`'s forward.
final class FamilyGreedyDecoder: CachedDecoder {
    let model: FamilyModel
    let L: Int, NH: Int, KVH: Int, C: Int, KV: Int, hs: Int, V: Int, F: Int
    let eps: Float
    let cache: DecoderCache
    // Step scratch, sized for the cache's rows.
    private var x = FloatBuffer(count: 0), h = FloatBuffer(count: 0), q = FloatBuffer(count: 0), kv = FloatBuffer(count: 0)
    private var z = FloatBuffer(count: 0), gate = FloatBuffer(count: 0), up = FloatBuffer(count: 0), stats = FloatBuffer(count: 0)

    init(model: FamilyModel) {
        self.model = model
        let c = model.config
        L = c.numLayers; NH = c.numHeads; KVH = c.numKVHeads; C = c.hiddenSize; KV = c.kvSize; hs = c.headSize
        V = c.vocabSize; F = c.intermediateSize
        eps = Float(c.normEps)
        cache = DecoderCache(layers: L, width: KV, vocabSize: V, maxPositions: c.maxPositions, padTokenId: c.eosTokenId)
    }

    func prefill(_ prompts: [[Int]], capacity S: Int) throws -> UnsafePointer<Float> {
        let (tokens, T, lengths) = try cache.padded(prompts, capacity: S)
        let B = prompts.count
        let out = try model.forward(tokens: tokens, batch: B, seqLen: T, lengths: lengths)
        if cache.reserve(B: B, S: S) {
            let R = cache.rowCapacity
            x = FloatBuffer(count: R * C); h = FloatBuffer(count: R * C); q = FloatBuffer(count: R * C); kv = FloatBuffer(count: 2 * R * KV)
            z = FloatBuffer(count: R * C); gate = FloatBuffer(count: R * F); up = FloatBuffer(count: R * F); stats = FloatBuffer(count: 2 * R)
        }
        let logits = cache.logits
        // The forward expanded K and V per query head; the first head of each group holds the KV head.
        let group = NH / KVH
        for l in 0..<L {
            let src = model.attentionInputs(layer: l)
            for b in 0..<B {
                for t in 0..<T {
                    let row = src + (b * T + t) * 3 * C
                    for g in 0..<KVH {
                        (cache.key(l, b) + t * KV + g * hs).update(from: row + C + g * group * hs, count: hs)
                        (cache.value(l, b) + t * KV + g * hs).update(from: row + 2 * C + g * group * hs, count: hs)
                    }
                }
            }
        }
        for b in 0..<B {
            (logits.base + b * V).update(from: out.baseAddress! + (b * T + lengths[b] - 1) * V, count: V)
        }
        return UnsafePointer(logits.base)
    }

    func step(rows: [Int], tokens: [Int], positions: [Int]) -> UnsafePointer<Float> {
        let n = rows.count, p = model.params.base, lay = model.layout, th = model.threads
        let llama = model.config.family == .llama, group = NH / KVH
        for i in 0..<n {
            precondition(positions[i] < cache.S, "decoding past the cache")
            (x.base + i * C).update(from: p + lay.embed + tokens[i] * C, count: C)
        }
        let k = kv.base, v = kv.base + n * KV
        for l in 0..<L {
            let w = lay.blocks[l]
            if llama {
                RMSNorm.forward(out: h.base, rstd: stats.base, inp: x.base, weight: p + w.norm1, N: n, C: C, eps: eps, threads: 1)
            } else {
                LayerNorm.forward(out: h.base, mean: stats.base, rstd: stats.base + n, inp: x.base, weight: p + w.norm1,
                                  bias: p + w.norm1Bias!, N: n, C: C, eps: eps, threads: 1)
            }
            Linear.forward(y: q.base, ldy: C, x: h.base, ldx: C, weight: p + w.q, bias: w.qBias.map { p + $0 }, N: n, IC: C, OC: C, threads: th)
            Linear.forward(y: k, ldy: KV, x: h.base, ldx: C, weight: p + w.k, bias: w.kBias.map { p + $0 }, N: n, IC: C, OC: KV, threads: th)
            Linear.forward(y: v, ldy: KV, x: h.base, ldx: C, weight: p + w.v, bias: w.vBias.map { p + $0 }, N: n, IC: C, OC: KV, threads: th)
            for i in 0..<n {
                Rotary.apply(row: q.base + i * C, position: positions[i], table: model.rotary, heads: NH, headSize: hs)
                Rotary.apply(row: k + i * KV, position: positions[i], table: model.rotary, heads: KVH, headSize: hs)
                (cache.key(l, rows[i]) + positions[i] * KV).update(from: k + i * KV, count: KV)
                (cache.value(l, rows[i]) + positions[i] * KV).update(from: v + i * KV, count: KV)
                cache.attend(out: z.base + i * C, query: q.base + i * C, layer: l, row: rows[i], last: positions[i], heads: NH,
                             group: group, headSize: hs, scores: cache.scores.base)
            }
            if llama {
                Linear.forward(y: x.base, ldy: C, x: z.base, ldx: C, weight: p + w.o, bias: nil, N: n, IC: C, OC: C, accumulate: true, threads: th)
                RMSNorm.forward(out: h.base, rstd: stats.base, inp: x.base, weight: p + w.norm2!, N: n, C: C, eps: eps, threads: 1)
                Linear.forward(y: gate.base, ldy: F, x: h.base, ldx: C, weight: p + w.gate!, bias: nil, N: n, IC: C, OC: F, threads: th)
                Linear.forward(y: up.base, ldy: F, x: h.base, ldx: C, weight: p + w.up, bias: nil, N: n, IC: C, OC: F, threads: th)
                SwiGLU.forward(out: up.base, gate: gate.base, up: up.base, count: n * F, threads: th)
                Linear.forward(y: x.base, ldy: C, x: up.base, ldx: F, weight: p + w.down, bias: nil, N: n, IC: F, OC: C, accumulate: true, threads: th)
            } else {
                // Parallel block: attention and MLP both read h = LayerNorm(x) and add to x.
                Linear.forward(y: up.base, ldy: F, x: h.base, ldx: C, weight: p + w.up, bias: p + w.upBias!, N: n, IC: C, OC: F, threads: th)
                GELU.forward(out: up.base, inp: up.base, count: n * F, threads: th)
                Linear.forward(y: x.base, ldy: C, x: z.base, ldx: C, weight: p + w.o, bias: p + w.oBias!, N: n, IC: C, OC: C, accumulate: true, threads: th)
                Linear.forward(y: x.base, ldy: C, x: up.base, ldx: F, weight: p + w.down, bias: p + w.downBias!, N: n, IC: F, OC: C,
                               accumulate: true, threads: th)
            }
        }
        if llama {
            RMSNorm.forward(out: h.base, rstd: stats.base, inp: x.base, weight: p + lay.finalNorm, N: n, C: C, eps: eps, threads: 1)
        } else {
            LayerNorm.forward(out: h.base, mean: stats.base, rstd: stats.base + n, inp: x.base, weight: p + lay.finalNorm,
                              bias: p + lay.finalNormBias!, N: n, C: C, eps: eps, threads: 1)
        }
        Linear.forward(y: cache.logits.base, ldy: V, x: h.base, ldx: C, weight: p + lay.lmHead, bias: lay.lmHeadBias.map { p + $0 },
                       N: n, IC: C, OC: V, threads: th)
        return UnsafePointer(cache.logits.base)
    }
}
