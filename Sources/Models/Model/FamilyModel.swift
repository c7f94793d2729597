import Foundation
import Numerics

/// A Llama (`LlamaForCausalLM`) or Phi (`PhiForCausalLM`) model on CPU, composed from kernels like `GPT2`:
/// parameters in one `FamilyArena`, every activation of a (B, T) batch in one buffer allocated when the batch
/// shape grows, each block a forward/backward pair of kernels, products through OpenBLAS. Eval mode unless
/// `forwardLoss` is given a `DropoutPlan` (below).
///
///     Llama block: h = RMSNorm₁(x); x += Attn(h)·W_oᵀ; h₂ = RMSNorm₂(x); x += W_down(silu(W_gate·h₂) ⊙ W_up·h₂)
///     Phi block:   h = LayerNorm(x); x += Attn(h)·W_denseᵀ + b + fc2(gelu_new(fc1(h)))   (parallel, one norm)
///
/// Attention: q = h·W_qᵀ [+ b], k and v per KV head; rotary (`Rotary`, `rotate_half` layout, the first
/// `rotaryDim` dimensions of each head) on q and k; every query head h reads KV head ⌊h / group⌋, so K and V
/// are expanded into a fused (N, 3C) buffer q | k | v with one slot per query head — the per-head view
/// TransformerLens takes — and `Attention` runs unchanged; the backward sums each group's K/V gradients.
/// Logits = norm_final(x)·W_lmᵀ [+ b_lm]. Positions are 0 ..< T in every row; `lengths` gives right padding.
/// Training dropout (`forwardLoss(dropout:)`) where transformers applies it: the attention probabilities
/// (`attention_dropout`, both families), Phi's token embeddings (`embd_pdrop`) and its attention and MLP
/// outputs before they join the residual (`resid_pdrop`); masks are hashed, not stored (`Dropout`).
/// docs/model-families.md describes the conventions and the parity numbers.
/// Parameters, gradients, threads and `lastLabelCount` come from `ModelParameters`.
public final class FamilyModel: ModelParameters<FamilyArena>, @unchecked Sendable {
    public let config: ModelConfig
    public let rotary: RotaryTable

    // Activations for the current (B, T).
    private var B = 0, T = 0, capacityThreads = 0
    private var storage: FloatBuffer?
    private var resid: [UnsafeMutablePointer<Float>] = []   // L + 1 of (N, C): blocks.l.hook_resid_pre, last = final residual
    private struct LayerActs {
        var h1, mean1, rstd1, qkv, att, attY: UnsafeMutablePointer<Float>
        var mid, h2, rstd2: UnsafeMutablePointer<Float>?         // Llama: resid_mid, second norm
        var gate: UnsafeMutablePointer<Float>?                   // Llama: gate projection (N, F)
        var up, act: UnsafeMutablePointer<Float>                 // Llama: up projection, silu(g)⊙u; Phi: fc1 output, gelu
    }
    private var layers: [LayerActs] = []
    private var hf: UnsafeMutablePointer<Float>!, meanf: UnsafeMutablePointer<Float>!, rstdf: UnsafeMutablePointer<Float>!
    private var logits: UnsafeMutablePointer<Float>!, ceStats: UnsafeMutablePointer<Float>!
    private var dResid: UnsafeMutablePointer<Float>!, dBuf: UnsafeMutablePointer<Float>!, dBuf2: UnsafeMutablePointer<Float>!
    private var dQKV: UnsafeMutablePointer<Float>!, dF1: UnsafeMutablePointer<Float>!, dF2: UnsafeMutablePointer<Float>!
    private var kvScratch: UnsafeMutablePointer<Float>!, normScratch: UnsafeMutablePointer<Float>!, attScratch: UnsafeMutablePointer<Float>!
    private var dBranch: UnsafeMutablePointer<Float>!   // (N, C): a dropped residual branch, forward and backward
    private var tokens: [Int32] = [], targets: [Int32] = [], lengths: [Int32] = [], losses: [Double] = []

    public override init(params: FamilyArena, threads: Int = max(1, BLAS.threads)) {
        precondition(params.config.family != .gpt2, "GPT-2 runs as GPT2")
        config = params.config
        rotary = RotaryTable(rotaryDim: params.config.rotaryDim, base: params.config.ropeTheta, positions: params.config.maxPositions)
        super.init(params: params, threads: threads)
    }

    public var layout: FamilyLayout { params.layout }

    /// The (B·T, V) logits buffer of the last call: the logits after `forward`, exp(logit − row max) after
    /// `forwardLoss` (the same argmax per row). Valid until the next call.
    public var logitsBuffer: UnsafeMutablePointer<Float> { logits }

    /// AdamW over this model's layout with the HF Trainer's decay set (matrices decayed; biases and norms not).
    public func makeAdamW(_ c: AdamWConfig) -> AdamW {
        AdamW(segments: layout.adamWSegments, count: layout.count, config: c, threads: threads)
    }

    /// Layer `l`'s q | k | v rows (B·T, 3C) of the last forward: rotary applied, K and V expanded per query
    /// head (query head h holds KV head ⌊h / group⌋). Read by the greedy decoder to fill its cache.
    package func attentionInputs(layer l: Int) -> UnsafePointer<Float> { UnsafePointer(layers[l].qkv) }

    // MARK: - Entry points

    /// Logits at every position: a (B, T, V) view valid until the next call.
    public func forward(tokens: [Int], batch B: Int, seqLen T: Int, lengths: [Int]? = nil) throws -> UnsafeMutableBufferPointer<Float> {
        try prepare(tokens: tokens, B: B, T: T, lengths: lengths)
        pass.inference()
        runLayers()
        return UnsafeMutableBufferPointer(start: logits, count: B * T * config.vocabSize)
    }

    /// Mean next-token cross-entropy (position t predicts token t + 1 when t + 1 < lengths[b]), as transformers
    /// computes the causal-LM loss; the softmax sums are in Double. Consumes the logits buffer.
    /// `dropout`: train-mode dropout with these probabilities and one mask key per row (nil: eval mode).
    public func forwardLoss(tokens: [Int], batch B: Int, seqLen T: Int, lengths: [Int]? = nil, dropout: DropoutPlan? = nil) throws -> Double {
        if let dropout, config.family == .llama, dropout.embd != 0 || dropout.resid != 0 {
            throw ModelError("dropout: Llama drops the attention probabilities only (embd and resid must be 0)")
        }
        try pass.begin(dropout: dropout, batch: B)
        try prepare(tokens: tokens, B: B, T: T, lengths: lengths)
        for b in 0..<B {
            for t in 0..<T {
                let n = b * T + t
                targets[n] = t + 1 < Int(self.lengths[b]) ? self.tokens[n + 1] : -1
            }
        }
        runLayers()
        let N = B * T
        let (sum, count) = targets.withUnsafeBufferPointer { tg in
            losses.withUnsafeMutableBufferPointer { ls in
                CrossEntropy.forward(losses: ls.baseAddress!, stats: ceStats, logits: logits, targets: tg.baseAddress!,
                                     N: N, V: config.vocabSize, keepExponentials: true, threads: threads)
            }
        }
        guard count > 0 else { throw ModelError("no position has a label to predict (batch \(B) × \(T))") }
        pass.labels(count, backward: true)
        return sum / Double(count)
    }

    // MARK: - Forward

    private func prepare(tokens ids: [Int], B: Int, T: Int, lengths lens: [Int]?) throws {
        try checkBatch(ids, B: B, T: T, lengths: lens, positions: config.maxPositions, positionsKey: "max_position_embeddings", vocabSize: config.vocabSize)
        try reshape(B: B, T: T)
        for (n, id) in ids.enumerated() { tokens[n] = Int32(id) }
        for b in 0..<B { lengths[b] = Int32(lens?[b] ?? T) }
    }

    /// Lays the activation views out for (B, T); reallocates only when the shape needs more floats.
    private func reshape(B: Int, T: Int) throws {
        if B == self.B && T == self.T && capacityThreads >= threads { return }
        let C = config.hiddenSize, F = config.intermediateSize, V = config.vocabSize, NH = config.numHeads
        let KV = config.kvSize, L = config.numLayers, llama = config.family == .llama
        func mul(_ xs: Int...) throws -> Int {
            var r = 1
            for x in xs { let (p, o) = r.multipliedReportingOverflow(by: x); guard !o else { throw ModelError("batch \(B) × \(T) is too large") }; r = p }
            return r
        }
        let N = try mul(B, T)
        let attSize = try mul(B, NH, T, T)
        let perLayer = try mul(N, C) * (llama ? 4 : 2) + N * 3 + (try mul(N, C, 3)) + attSize + (try mul(N, F)) * (llama ? 3 : 2)
        let total = try mul(L + 1, N, C) + (try mul(perLayer, L)) + N * C + 2 * N + (try mul(N, V)) + 2 * N
            + 3 * N * C + 3 * N * C + 2 * N * F + 2 * N * KV + 2 * C * threads + attSize + N * C
        if (storage?.count ?? -1) < total { storage = FloatBuffer(count: total) }
        var p = storage!.base
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { p += n }; return p }
        resid = (0...L).map { _ in take(N * C) }
        layers = (0..<L).map { _ in
            LayerActs(h1: take(N * C), mean1: take(N), rstd1: take(N), qkv: take(3 * N * C), att: take(attSize), attY: take(N * C),
                      mid: llama ? take(N * C) : nil, h2: llama ? take(N * C) : nil, rstd2: llama ? take(N) : nil,
                      gate: llama ? take(N * F) : nil, up: take(N * F), act: take(N * F))
        }
        hf = take(N * C); meanf = take(N); rstdf = take(N); logits = take(N * V); ceStats = take(2 * N)
        dResid = take(N * C); dBuf = take(N * C); dBuf2 = take(N * C); dQKV = take(3 * N * C)
        dF1 = take(N * F); dF2 = take(N * F); kvScratch = take(2 * N * KV); normScratch = take(2 * C * threads); attScratch = take(attSize)
        dBranch = take(N * C)
        tokens = [Int32](repeating: 0, count: N); targets = tokens; lengths = [Int32](repeating: 0, count: B)
        losses = [Double](repeating: 0, count: N)
        self.B = B; self.T = T; capacityThreads = threads
    }

    private var eps: Float { Float(config.normEps) }

    /// Embedding, every block, the final norm and the logits (N, V).
    private func runLayers() {
        let p = params.base, lay = layout
        let N = B * T, C = config.hiddenSize, F = config.intermediateSize, V = config.vocabSize
        let NH = config.numHeads, KVH = config.numKVHeads, hs = config.headSize, KV = config.kvSize
        let llama = config.family == .llama, th = threads
        let padded = lengths.contains { Int($0) < T }
        // Token embedding (no positional embedding: rotary models have none).
        let emb = p + lay.embed, x0 = resid[0]
        tokens.withUnsafeBufferPointer { tk in
            Parallel.pieces(N, threads: th, minPerPiece: 64) { rows in
                for n in rows { (x0 + n * C).update(from: emb + Int(tk[n]) * C, count: C) }
            }
        }
        let d = dropout
        if let d, d.embd > 0 {
            Parallel.pieces(B, threads: th, minPerPiece: 1) { rows in
                for b in rows { Dropout.apply(x0 + b * T * C, count: T * C, p: d.embd, key: d.key(row: b, .embedding)) }
            }
        }
        for l in 0..<config.numLayers {
            let a = layers[l], w = lay.blocks[l], x = resid[l], out = resid[l + 1]
            if llama {
                RMSNorm.forward(out: a.h1, rstd: a.rstd1, inp: x, weight: p + w.norm1, N: N, C: C, eps: eps, threads: th)
            } else {
                LayerNorm.forward(out: a.h1, mean: a.mean1, rstd: a.rstd1, inp: x, weight: p + w.norm1, bias: p + w.norm1Bias!,
                                  N: N, C: C, eps: eps, threads: th)
            }
            attention(a, w, layer: l, N: N, C: C, NH: NH, KVH: KVH, hs: hs, KV: KV, padded: padded)
            if llama {
                a.mid!.update(from: x, count: N * C)
                Linear.forward(y: a.mid!, ldy: C, x: a.attY, ldx: C, weight: p + w.o, bias: nil, N: N, IC: C, OC: C, accumulate: true, threads: th)
                RMSNorm.forward(out: a.h2!, rstd: a.rstd2!, inp: a.mid!, weight: p + w.norm2!, N: N, C: C, eps: eps, threads: th)
                Linear.forward(y: a.gate!, ldy: F, x: a.h2!, ldx: C, weight: p + w.gate!, bias: nil, N: N, IC: C, OC: F, threads: th)
                Linear.forward(y: a.up, ldy: F, x: a.h2!, ldx: C, weight: p + w.up, bias: nil, N: N, IC: C, OC: F, threads: th)
                SwiGLU.forward(out: a.act, gate: a.gate!, up: a.up, count: N * F, threads: th)
                out.update(from: a.mid!, count: N * C)
                Linear.forward(y: out, ldy: C, x: a.act, ldx: F, weight: p + w.down, bias: nil, N: N, IC: F, OC: C, accumulate: true, threads: th)
            } else if let d, d.resid > 0 {
                // Each branch dropped before it joins the residual (transformers' resid_dropout): the attention
                // output is written into `out` and x added to it, the MLP's goes through dBranch.
                Linear.forward(y: out, ldy: C, x: a.attY, ldx: C, weight: p + w.o, bias: p + w.oBias!, N: N, IC: C, OC: C, threads: th)
                addDropped(out, to: x, .attentionOutput, layer: l, d)
                Linear.forward(y: a.up, ldy: F, x: a.h1, ldx: C, weight: p + w.up, bias: p + w.upBias!, N: N, IC: C, OC: F, threads: th)
                GELU.forward(out: a.act, inp: a.up, count: N * F, threads: th)
                Linear.forward(y: dBranch, ldy: C, x: a.act, ldx: F, weight: p + w.down, bias: p + w.downBias!, N: N, IC: F, OC: C, threads: th)
                addDropped(dBranch, to: out, .mlpOutput, layer: l, d)
                out.update(from: dBranch, count: N * C)
            } else {
                out.update(from: x, count: N * C)
                Linear.forward(y: out, ldy: C, x: a.attY, ldx: C, weight: p + w.o, bias: p + w.oBias!, N: N, IC: C, OC: C, accumulate: true, threads: th)
                Linear.forward(y: a.up, ldy: F, x: a.h1, ldx: C, weight: p + w.up, bias: p + w.upBias!, N: N, IC: C, OC: F, threads: th)
                GELU.forward(out: a.act, inp: a.up, count: N * F, threads: th)
                Linear.forward(y: out, ldy: C, x: a.act, ldx: F, weight: p + w.down, bias: p + w.downBias!, N: N, IC: F, OC: C, accumulate: true, threads: th)
            }
        }
        let xL = resid[config.numLayers]
        if llama {
            RMSNorm.forward(out: hf, rstd: rstdf, inp: xL, weight: p + lay.finalNorm, N: N, C: C, eps: eps, threads: th)
        } else {
            LayerNorm.forward(out: hf, mean: meanf, rstd: rstdf, inp: xL, weight: p + lay.finalNorm, bias: p + lay.finalNormBias!,
                              N: N, C: C, eps: eps, threads: th)
        }
        Linear.forward(y: logits, ldy: V, x: hf, ldx: C, weight: p + lay.lmHead, bias: lay.lmHeadBias.map { p + $0 },
                       N: N, IC: C, OC: V, threads: th)
    }

    /// q | k | v into `a.qkv` (K and V expanded per query head), rotary, causal attention into `a.attY`.
    private func attention(_ a: LayerActs, _ w: FamilyLayout.Block, layer layerIndex: Int, N: Int, C: Int, NH: Int, KVH: Int, hs: Int, KV: Int,
                           padded: Bool) {
        let p = params.base, th = threads
        let kS = kvScratch!, vS = kvScratch + N * KV
        Linear.forward(y: a.qkv, ldy: 3 * C, x: a.h1, ldx: C, weight: p + w.q, bias: w.qBias.map { p + $0 }, N: N, IC: C, OC: C, threads: th)
        Linear.forward(y: kS, ldy: KV, x: a.h1, ldx: C, weight: p + w.k, bias: w.kBias.map { p + $0 }, N: N, IC: C, OC: KV, threads: th)
        Linear.forward(y: vS, ldy: KV, x: a.h1, ldx: C, weight: p + w.v, bias: w.vBias.map { p + $0 }, N: N, IC: C, OC: KV, threads: th)
        Rotary.apply(a.qkv, table: rotary, N: N, T: T, heads: NH, headSize: hs, rowStride: 3 * C, threads: th)
        Rotary.apply(kS, table: rotary, N: N, T: T, heads: KVH, headSize: hs, rowStride: KV, threads: th)
        let group = NH / KVH, qkv = a.qkv
        Parallel.pieces(N, threads: th, minPerPiece: 64) { rows in
            for n in rows {
                let row = qkv + n * 3 * C
                for h in 0..<NH {
                    let g = (h / group) * hs
                    (row + C + h * hs).update(from: kS + n * KV + g, count: hs)
                    (row + 2 * C + h * hs).update(from: vS + n * KV + g, count: hs)
                }
            }
        }
        lengths.withUnsafeBufferPointer { lp in
            Attention.forward(out: a.attY, att: a.att, qkv: a.qkv, lengths: padded ? lp.baseAddress : nil,
                              B: B, T: T, C: C, NH: NH, threads: th,
                              dropout: dropout?.attn ?? 0, dropKey: attentionKeys(layer: layerIndex), scratch: attScratch)
        }
    }

    /// The attention-probability mask keys of layer `l` (per b · NH + h), nil without attention dropout.
    private func attentionKeys(layer l: Int) -> ((Int) -> UInt64)? {
        guard let d = dropout, d.attn > 0 else { return nil }
        let NH = config.numHeads
        return { bh in d.key(row: bh / NH, .attention, layer: l, head: bh % NH) }
    }

    /// `branch ← residual + mask ⊙ branch / (1 − p)` row by row with the masks of `place` in layer `l`.
    private func addDropped(_ branch: UnsafeMutablePointer<Float>, to residual: UnsafePointer<Float>, _ place: DropoutPlan.Place, layer l: Int,
                            _ d: DropoutPlan) {
        let TC = T * config.hiddenSize
        Parallel.pieces(B, threads: threads, minPerPiece: 1) { rows in
            for b in rows {
                Dropout.applyAdding(branch + b * TC, residual: residual + b * TC, count: TC, p: d.resid, key: d.key(row: b, place, layer: l))
            }
        }
    }

    /// The gradient reaching a dropped residual branch from `dResid` (its mask applied), in `dBranch`.
    private func droppedGradient(_ place: DropoutPlan.Place, layer l: Int, _ d: DropoutPlan) -> UnsafePointer<Float> {
        let TC = T * config.hiddenSize, dst = dBranch!, src = dResid!
        Parallel.pieces(B, threads: threads, minPerPiece: 1) { rows in
            for b in rows { Dropout.copy(dst + b * TC, src + b * TC, count: TC, p: d.resid, key: d.key(row: b, place, layer: l)) }
        }
        return UnsafePointer(dst)
    }

    // MARK: - Backward

    /// Adds the gradient of the last `forwardLoss`'s mean loss with respect to every parameter into `grads`
    /// (call `zeroGradients()` first unless accumulating). A tied output matrix receives both contributions.
    public func backward() {
        pass.takeForBackward()
        let p = params.base, g = grads.base, lay = layout, th = threads
        let N = B * T, C = config.hiddenSize, F = config.intermediateSize, V = config.vocabSize
        let NH = config.numHeads, KVH = config.numKVHeads, hs = config.headSize, KV = config.kvSize
        let llama = config.family == .llama
        let padded = lengths.contains { Int($0) < T }
        targets.withUnsafeBufferPointer { tg in
            CrossEntropy.backward(dlogits: logits, stats: ceStats, targets: tg.baseAddress!, scale: pass.scale, N: N, V: V,
                                  keepExponentials: true, threads: th)
        }
        Linear.backward(dx: dBuf, lddx: C, dweight: g + lay.lmHead, dbias: lay.lmHeadBias.map { g + $0 }, dy: logits, lddy: V,
                        x: hf, ldx: C, weight: p + lay.lmHead, N: N, IC: C, OC: V, threads: th)
        dResid.update(repeating: 0, count: N * C)
        let xL = resid[config.numLayers]
        if llama {
            RMSNorm.backward(dinp: dResid, dweight: g + lay.finalNorm, scratch: normScratch, dout: dBuf, inp: xL, weight: p + lay.finalNorm,
                             rstd: rstdf, N: N, C: C, threads: th)
        } else {
            LayerNorm.backward(dinp: dResid, dweight: g + lay.finalNorm, dbias: g + lay.finalNormBias!, scratch: normScratch, dout: dBuf,
                               inp: xL, weight: p + lay.finalNorm, mean: meanf, rstd: rstdf, N: N, C: C, threads: th)
        }
        for l in stride(from: config.numLayers - 1, through: 0, by: -1) {
            let a = layers[l], w = lay.blocks[l], x = resid[l]
            // dResid holds the gradient of the block's output.
            if llama {
                Linear.backward(dx: dF1, lddx: F, dweight: g + w.down, dbias: nil, dy: dResid, lddy: C, x: a.act, ldx: F,
                                weight: p + w.down, N: N, IC: F, OC: C, threads: th)
                SwiGLU.backward(dgate: dF2, dup: dF1, dout: dF1, gate: a.gate!, up: a.up, count: N * F, threads: th)
                Linear.backward(dx: dBuf, lddx: C, dweight: g + w.gate!, dbias: nil, dy: dF2, lddy: F, x: a.h2!, ldx: C,
                                weight: p + w.gate!, N: N, IC: C, OC: F, threads: th)
                Linear.backward(dx: dBuf, lddx: C, dweight: g + w.up, dbias: nil, dy: dF1, lddy: F, x: a.h2!, ldx: C,
                                weight: p + w.up, N: N, IC: C, OC: F, accumulateInput: true, threads: th)
                RMSNorm.backward(dinp: dResid, dweight: g + w.norm2!, scratch: normScratch, dout: dBuf, inp: a.mid!, weight: p + w.norm2!,
                                 rstd: a.rstd2!, N: N, C: C, threads: th)
                Linear.backward(dx: dBuf2, lddx: C, dweight: g + w.o, dbias: nil, dy: dResid, lddy: C, x: a.attY, ldx: C,
                                weight: p + w.o, N: N, IC: C, OC: C, threads: th)
            } else {
                // With resid_pdrop each branch sees dResid through its own mask (dBranch holds one at a time).
                let dropped = dropout.map { $0.resid > 0 } ?? false
                let dMLP = dropped ? droppedGradient(.mlpOutput, layer: l, dropout!) : UnsafePointer(dResid!)
                Linear.backward(dx: dF1, lddx: F, dweight: g + w.down, dbias: g + w.downBias!, dy: dMLP, lddy: C, x: a.act, ldx: F,
                                weight: p + w.down, N: N, IC: F, OC: C, threads: th)
                GELU.backward(dinp: dF1, inp: a.up, dout: dF1, count: N * F, threads: th)
                Linear.backward(dx: dBuf, lddx: C, dweight: g + w.up, dbias: g + w.upBias!, dy: dF1, lddy: F, x: a.h1, ldx: C,
                                weight: p + w.up, N: N, IC: C, OC: F, threads: th)
                let dAttn = dropped ? droppedGradient(.attentionOutput, layer: l, dropout!) : UnsafePointer(dResid!)
                Linear.backward(dx: dBuf2, lddx: C, dweight: g + w.o, dbias: g + w.oBias!, dy: dAttn, lddy: C, x: a.attY, ldx: C,
                                weight: p + w.o, N: N, IC: C, OC: C, threads: th)
            }
            // Attention: dBuf2 = d attY; the input gradient of q, k, v goes into dBuf (added to the MLP's for Phi).
            lengths.withUnsafeBufferPointer { lp in
                Attention.backward(dqkv: dQKV, scratch: attScratch, dout: dBuf2, qkv: a.qkv, att: a.att,
                                   lengths: padded ? lp.baseAddress : nil, B: B, T: T, C: C, NH: NH, threads: th,
                                   dropout: dropout?.attn ?? 0, dropKey: attentionKeys(layer: l))
            }
            Rotary.apply(dQKV, table: rotary, N: N, T: T, heads: NH, headSize: hs, rowStride: 3 * C, inverse: true, threads: th)
            Rotary.apply(dQKV + C, table: rotary, N: N, T: T, heads: NH, headSize: hs, rowStride: 3 * C, inverse: true, threads: th)
            let dk = kvScratch!, dv = kvScratch + N * KV, group = NH / KVH, dqkv = dQKV!
            Parallel.pieces(N, threads: th, minPerPiece: 64) { rows in
                for n in rows {
                    let row = dqkv + n * 3 * C, k = dk + n * KV, v = dv + n * KV
                    k.update(repeating: 0, count: KV); v.update(repeating: 0, count: KV)
                    for h in 0..<NH {
                        let o = (h / group) * hs, sk = row + C + h * hs, sv = row + 2 * C + h * hs
                        for i in 0..<hs { k[o + i] += sk[i]; v[o + i] += sv[i] }
                    }
                }
            }
            Linear.backward(dx: dBuf, lddx: C, dweight: g + w.q, dbias: w.qBias.map { g + $0 }, dy: dQKV, lddy: 3 * C, x: a.h1, ldx: C,
                            weight: p + w.q, N: N, IC: C, OC: C, accumulateInput: !llama, threads: th)
            Linear.backward(dx: dBuf, lddx: C, dweight: g + w.k, dbias: w.kBias.map { g + $0 }, dy: dk, lddy: KV, x: a.h1, ldx: C,
                            weight: p + w.k, N: N, IC: C, OC: KV, accumulateInput: true, threads: th)
            Linear.backward(dx: dBuf, lddx: C, dweight: g + w.v, dbias: w.vBias.map { g + $0 }, dy: dv, lddy: KV, x: a.h1, ldx: C,
                            weight: p + w.v, N: N, IC: C, OC: KV, accumulateInput: true, threads: th)
            if llama {
                RMSNorm.backward(dinp: dResid, dweight: g + w.norm1, scratch: normScratch, dout: dBuf, inp: x, weight: p + w.norm1,
                                 rstd: a.rstd1, N: N, C: C, threads: th)
            } else {
                LayerNorm.backward(dinp: dResid, dweight: g + w.norm1, dbias: g + w.norm1Bias!, scratch: normScratch, dout: dBuf,
                                   inp: x, weight: p + w.norm1, mean: a.mean1, rstd: a.rstd1, N: N, C: C, threads: th)
            }
        }
        if let dp = dropout, dp.embd > 0 {
            let TC = T * C, dr = dResid!
            Parallel.pieces(B, threads: th, minPerPiece: 1) { rows in
                for b in rows { Dropout.apply(dr + b * TC, count: TC, p: dp.embd, key: dp.key(row: b, .embedding)) }
            }
        }
        // Token embedding: columns split across threads, so repeated tokens never race.
        let gE = g + lay.embed, d = dResid!
        tokens.withUnsafeBufferPointer { tk in
            Parallel.pieces(C, threads: th, minPerPiece: 64) { cols in
                for n in 0..<N {
                    let e = gE + Int(tk[n]) * C, r = d + n * C
                    for i in cols { e[i] += r[i] }
                }
            }
        }
    }
}
