import Foundation

/// Greedy decoding of GPT-2 with a key/value cache, over the parameters of a `ParameterArena` (HF layout,
/// read only), as `model.generate(do_sample=False)` decodes one prompt: the prompt as given (no BOS
/// added), at each step the argmax of the next-token logits appended, until a stop condition or
/// `maxNewTokens`.
///
/// Prompts of one batch have different lengths; each is decoded as if alone: the prefill is one right-padded
/// forward (`GPT2.forward` with the key-padding mask), and each sample's generated tokens continue right
/// after its own prompt (position lengths[b], lengths[b] + 1, …), attending only to its own earlier positions.
/// Rows are computed independently, so a prompt's result does not depend on its batch mates.
public final class GreedyDecoder: @unchecked Sendable {
    public let parameters: ParameterArena
    public let config: GPT2Config
    private let prefill: GPT2
    private let threads: Int
    private var cache = FloatBuffer(count: 0)      // (L, 2, B, Tmax, C)   keys, then values, per layer
    private var x = FloatBuffer(count: 0)          // (B, C)   residual stream of the new token
    private var ln = FloatBuffer(count: 0)         // (B, C)
    private var qkv = FloatBuffer(count: 0)        // (B, 3C)
    private var y = FloatBuffer(count: 0)          // (B, C)   attention output (hook_z, flattened)
    private var hidden = FloatBuffer(count: 0)     // (2, B, 4C) MLP pre / post activation
    private var scores = FloatBuffer(count: 0)     // (Tmax)
    private var stats = FloatBuffer(count: 0)      // (2, B)   LayerNorm mean / rstd
    /// Next-token logits of the last step.   // (B, V)
    public private(set) var logits = FloatBuffer(count: 0)

    public init(parameters: ParameterArena, threads: Int = max(1, BLAS.threads)) {
        self.parameters = parameters
        config = parameters.config
        self.threads = max(1, threads)
        prefill = GPT2(params: parameters, threads: self.threads)
    }

    /// Decodes every prompt (token ids, no BOS added; each non-empty).
    ///
    /// - `firstLogits(b, row)`: called once per prompt with the logits at its last prompt position `(V)`.
    /// - `isDone(b, generated)`: called after each generated token (EOS excluded) with the tokens so far;
    ///   true ends that prompt's decoding. Decoding also ends at EOS (`config.eosTokenId`), after
    ///   `maxNewTokens` tokens, or at the model's last position.
    /// Returns the generated tokens of each prompt, EOS excluded.
    public func decode(prompts: [[Int]], maxNewTokens: Int,
                       firstLogits: (Int, UnsafePointer<Float>) -> Void = { _, _ in },
                       isDone: (Int, [Int]) -> Bool = { _, _ in false }) throws -> [[Int]] {
        let B = prompts.count
        guard B > 0 else { return [] }
        let C = config.nEmbd, V = config.vocabSize, L = config.nLayer, P = config.nPositions
        let lengths = prompts.map(\.count)
        guard let shortest = lengths.min(), shortest > 0 else {
            throw CircuitsError(item: "prompt \(lengths.firstIndex(of: 0)!)", problem: "is empty", fix: "give at least one token")
        }
        let Tp = lengths.max()!
        guard Tp <= P else {
            throw CircuitsError(item: "prompt \(lengths.firstIndex(of: Tp)!)", problem: "has \(Tp) tokens, the model \(P) positions",
                                fix: "shorten the prompt")
        }
        let Tmax = min(P, Tp + max(0, maxNewTokens))
        ensure(B: B, Tmax: Tmax)

        // Prefill: one padded forward; keys and values of every prompt position go to the cache.
        var tokens = [Int](repeating: config.eosTokenId, count: B * Tp)
        for (b, p) in prompts.enumerated() { for (t, id) in p.enumerated() { tokens[b * Tp + t] = id } }
        let first = try prefill.forward(tokens: tokens, batch: B, seqLen: Tp, lengths: lengths, positions: lengths.map { $0 - 1 })
        for l in 0..<L {
            let src = prefill.acts.layers[l].qkv
            for b in 0..<B {
                for t in 0..<lengths[b] {
                    let row = src + (b * Tp + t) * 3 * C
                    key(l, b, t).update(from: row + C, count: C)
                    value(l, b, t).update(from: row + 2 * C, count: C)
                }
            }
        }
        logits.base.update(from: first.baseAddress!, count: B * V)
        for b in 0..<B { firstLogits(b, logits.base + b * V) }

        var generated = [[Int]](repeating: [], count: B)
        var active = [Bool](repeating: maxNewTokens > 0, count: B)
        var position = lengths          // where each prompt's next token goes
        var next = [Int](repeating: 0, count: B)
        while true {
            // Pick each active prompt's next token from the current logits.
            for b in 0..<B where active[b] {
                let id = Self.argmax(logits.base + b * V, V)
                if id == config.eosTokenId { active[b] = false; continue }
                generated[b].append(id)
                next[b] = id
                if generated[b].count >= maxNewTokens || position[b] >= P || isDone(b, generated[b]) { active[b] = false }
            }
            guard active.contains(true) else { break }
            step(tokens: next, positions: position, active: active, B: B)
            for b in 0..<B where active[b] { position[b] += 1 }
        }
        return generated
    }

    /// One decoding step: the tokens `next[b]` at `positions[b]` for the active rows, their keys and values
    /// into the cache, next-token logits into `logits`. Inactive rows are skipped.
    private func step(tokens next: [Int], positions: [Int], active: [Bool], B: Int) {
        let C = config.nEmbd, V = config.vocabSize, F = config.mlpSize, H = config.nHead, dh = config.headSize
        let p = parameters.views
        let eps = Float(config.layerNormEpsilon)
        let rows = (0..<B).filter { active[$0] }
        let n = rows.count
        // Active rows packed at the front of the scratch buffers.
        for (i, b) in rows.enumerated() {
            let e = p.wte + next[b] * C, pe = p.wpe + positions[b] * C, xr = x.base + i * C
            for c in 0..<C { xr[c] = e[c] + pe[c] }
        }
        let scale = 1 / Float(dh).squareRoot()
        for l in 0..<config.nLayer {
            let w = p.layers[l]
            LayerNorm.forward(out: ln.base, mean: stats.base, rstd: stats.base + B, inp: x.base, weight: w.ln1Weight, bias: w.ln1Bias,
                              N: n, C: C, eps: eps, threads: threads)
            Matmul.forward(out: qkv.base, inp: ln.base, weight: w.attnWeight, bias: w.attnBias, N: n, IC: C, OC: 3 * C, threads: threads)
            for (i, b) in rows.enumerated() {
                let t = positions[b]
                key(l, b, t).update(from: qkv.base + i * 3 * C + C, count: C)
                value(l, b, t).update(from: qkv.base + i * 3 * C + 2 * C, count: C)
                for h in 0..<H {
                    let q = qkv.base + i * 3 * C + h * dh
                    let s = scores.base
                    for j in 0...t {
                        let k = key(l, b, j) + h * dh
                        var dot: Float = 0
                        for d in 0..<dh { dot += q[d] * k[d] }
                        s[j] = dot * scale
                    }
                    Attention.softmaxRow(s, t + 1)
                    let out = y.base + i * C + h * dh
                    out.update(repeating: 0, count: dh)
                    for j in 0...t {
                        let v = value(l, b, j) + h * dh, pj = s[j]
                        for d in 0..<dh { out[d] += pj * v[d] }
                    }
                }
            }
            Matmul.forward(out: x.base, inp: y.base, weight: w.attnProjWeight, bias: w.attnProjBias, residual: x.base,
                           N: n, IC: C, OC: C, threads: threads)
            LayerNorm.forward(out: ln.base, mean: stats.base, rstd: stats.base + B, inp: x.base, weight: w.ln2Weight, bias: w.ln2Bias,
                              N: n, C: C, eps: eps, threads: threads)
            let pre = hidden.base, post = hidden.base + B * F
            Matmul.forward(out: pre, inp: ln.base, weight: w.fcWeight, bias: w.fcBias, N: n, IC: C, OC: F, threads: threads)
            GELU.forward(out: post, inp: pre, count: n * F, threads: threads)
            Matmul.forward(out: x.base, inp: post, weight: w.fcProjWeight, bias: w.fcProjBias, residual: x.base,
                           N: n, IC: F, OC: C, threads: threads)
        }
        LayerNorm.forward(out: ln.base, mean: stats.base, rstd: stats.base + B, inp: x.base, weight: p.lnfWeight, bias: p.lnfBias,
                          N: n, C: C, eps: eps, threads: threads)
        let packed = hidden.base   // (n, V) fits: the hidden scratch is sized max(2·B·4C, B·V)
        Matmul.sgemm(false, true, M: n, N: V, K: C, alpha: 1, A: ln.base, lda: C, B: p.wte, ldb: C, beta: 0, C: packed, ldc: V)
        for (i, b) in rows.enumerated() { (logits.base + b * V).update(from: packed + i * V, count: V) }
    }

    private var cacheB = 0, cacheT = 0

    private func ensure(B: Int, Tmax: Int) {
        let C = config.nEmbd, L = config.nLayer, V = config.vocabSize, F = config.mlpSize
        cacheB = B; cacheT = Tmax
        if cache.count < L * 2 * B * Tmax * C { cache = FloatBuffer(count: L * 2 * B * Tmax * C) }
        if x.count < B * C { x = FloatBuffer(count: B * C); ln = FloatBuffer(count: B * C); y = FloatBuffer(count: B * C) }
        if qkv.count < B * 3 * C { qkv = FloatBuffer(count: B * 3 * C) }
        if hidden.count < max(2 * B * F, B * V) { hidden = FloatBuffer(count: max(2 * B * F, B * V)) }
        if scores.count < Tmax { scores = FloatBuffer(count: Tmax) }
        if stats.count < 2 * B { stats = FloatBuffer(count: 2 * B) }
        if logits.count < B * V { logits = FloatBuffer(count: B * V) }
    }

    @inline(__always) private func key(_ l: Int, _ b: Int, _ t: Int) -> UnsafeMutablePointer<Float> {
        cache.base + (((l * 2) * cacheB + b) * cacheT + t) * config.nEmbd
    }

    @inline(__always) private func value(_ l: Int, _ b: Int, _ t: Int) -> UnsafeMutablePointer<Float> {
        cache.base + (((l * 2 + 1) * cacheB + b) * cacheT + t) * config.nEmbd
    }

    /// Index of the largest entry (the first one on ties, as torch.argmax).
    static func argmax(_ row: UnsafePointer<Float>, _ n: Int) -> Int {
        var best = 0
        var value = row[0]
        for i in 1..<n where row[i] > value { value = row[i]; best = i }
        return best
    }
}
