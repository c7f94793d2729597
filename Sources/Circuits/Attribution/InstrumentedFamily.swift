import Foundation
import Numerics
import Models

/// A Llama or Phi model as the study's TransformerLens runs it for EAP-IG (`use_split_qkv_input`,
/// `use_attn_result`, `use_hook_mlp_in`, value biases folded), over the parameters of a `FamilyArena` (HF layout;
/// read, never written), with the hooks of `InstrumentedModel` — the conventions of `InstrumentedGPT2`:
///
/// - node outputs: `input` = `hook_embed` (the token embedding: rotary models have no positional embedding),
///   `a{l}.h{h}` = `blocks.l.attn.hook_result` per head (z_h·W_O,h, no bias), `m{l}` = `blocks.l.hook_mlp_out`;
/// - downstream inputs: each of the H query heads has its own q, k and v input (`hook_q_input[h]` …), also for
///   Llama's grouped K/V: TransformerLens expands the 4 KV heads to one copy per query head (head h reads KV head
///   ⌊h / group⌋), so the graph has H `<k>` and H `<v>` columns per layer; the MLP input `hook_mlp_in` is the
///   residual after attention (Llama) or the block's input (Phi's parallel block, one LayerNorm); the logits
///   read the final residual before the final norm.
///
///     Llama: mid = x + Σ_h result_h;  x' = mid + W_down(silu(W_gate·n₂) ⊙ W_up·n₂),  n₂ = RMSNorm₂(mlp_in = mid)
///     Phi:   x' = x + Σ_h result_h + b_O' + fc2(gelu_new(fc1(LN(mlp_in = x))))      (LN shared with attention)
///
/// q and k are rotated (`Rotary`, the first `rotaryDim` dimensions of each head) after their projection, per
/// head input. Value biases: b_O' = b_O + Σ_h b_V,h·W_O,h and v carries none (Llama has no biases at all), so a
/// zero-ablated head leaves b_V,h·W_O,h behind, as in the reference. Only the logits at each sample's position
/// length − 1 are computed. docs/model-families.md describes the graph; docs/eap.md the attribution.
public final class InstrumentedFamily: InstrumentedEngine, InstrumentedModel, @unchecked Sendable {
    public let parameters: FamilyArena
    public let config: ModelConfig
    public let rotary: RotaryTable
    let KV: Int, group: Int
    let llama: Bool

    // Buffers of this architecture only (the shared ones are InstrumentedEngine's).
    var mlpUp = FloatBuffer(count: 0)      // (L, BT, F)    Llama: up projection (mlpPre holds the gate projection)
    var kvScratch = FloatBuffer(count: 0)  // (2, BT, KV)
    var dF = FloatBuffer(count: 0)         // (2, BT, F)

    public init(parameters: FamilyArena, threads: Int = max(1, BLAS.threads)) {
        precondition(parameters.config.family != .gpt2, "GPT-2 runs as InstrumentedGPT2")
        self.parameters = parameters
        let c = parameters.config
        config = c
        KV = c.kvSize; group = c.numHeads / c.numKVHeads
        llama = c.family == .llama
        rotary = RotaryTable(rotaryDim: c.rotaryDim, base: c.ropeTheta, positions: c.maxPositions)
        super.init(graph: AttributionGraph(nLayers: c.numLayers, nHeads: c.numHeads, parallel: c.family != .llama), threads: threads,
                   layers: c.numLayers, heads: c.numHeads, width: c.hiddenSize, headSize: c.headSize, vocab: c.vocabSize,
                   mlpWidth: c.intermediateSize, eps: Float(c.normEps), keepsResidMid: c.family == .llama)
        refreshFoldedBiases()
    }

    var layout: FamilyLayout { parameters.layout }

    /// Recomputes b_O' = b_O + Σ_h b_V,⌊h/group⌋ · W_O[:, head h] from the arena (0 for Llama); call after loading
    /// another checkpoint into it.
    public func refreshFoldedBiases() {
        let p = parameters.base
        for l in 0..<L {
            let w = layout.blocks[l], out = foldedBias.base + l * C
            if let ob = w.oBias { out.update(from: p + ob, count: C) } else { out.update(repeating: 0, count: C) }
            guard let vb = w.vBias else { continue }
            var expanded = [Float](repeating: 0, count: C)
            for h in 0..<H { for i in 0..<dh { expanded[h * dh + i] = p[vb + (h / group) * dh + i] } }
            let wo = p + w.o
            for c in 0..<C {
                var s = Float(0)
                for i in 0..<C { s += wo[c * C + i] * expanded[i] }
                out[c] += s
            }
        }
    }

    public func promptBatch(pairs: [PromptPair], numbers: [Int]) throws -> PromptBatch {
        try PromptBatch(pairs: pairs, vocabSize: V, maxPositions: config.maxPositions, bos: config.bosTokenId,
                        pad: config.eosTokenId, numbers: numbers)
    }

    public func promptBatch(prompts: [[Int]], labels: [Int], firstIndex: Int) throws -> PromptBatch {
        try PromptBatch(prompts: prompts, labels: labels, vocabSize: V, maxPositions: config.maxPositions, bos: config.bosTokenId,
                        pad: config.eosTokenId, firstIndex: firstIndex)
    }

    override func allocateModelBuffers(rows nBT: Int, batch nB: Int) {
        mlpUp = FloatBuffer(count: llama ? L * nBT * F : 0)
        kvScratch = FloatBuffer(count: 2 * nBT * KV)
        dF = FloatBuffer(count: 2 * nBT * F)
    }

    /// The norm in front of attention (`first`) or the MLP: RMSNorm (Llama; `mean` untouched) or LayerNorm (Phi,
    /// whose MLP reuses the attention LayerNorm's weights).
    func norm(first: Bool, layer l: Int, out: UnsafeMutablePointer<Float>, stats: UnsafeMutablePointer<Float>, statStride: Int,
              inp: UnsafePointer<Float>, N: Int, threads: Int? = nil) {
        let threads = threads ?? self.threads
        let p = parameters.base, w = layout.blocks[l]
        if llama {
            RMSNorm.forward(out: out, rstd: stats + statStride, inp: inp, weight: p + (first ? w.norm1 : w.norm2!), N: N, C: C, eps: eps, threads: threads)
        } else {
            LayerNorm.forward(out: out, mean: stats, rstd: stats + statStride, inp: inp, weight: p + w.norm1, bias: p + w.norm1Bias!,
                              N: N, C: C, eps: eps, threads: threads)
        }
    }

    /// Rows and bias of head `h`'s projection `j` (q: its own rows; k, v: its KV head's rows; v without bias).
    func projection(_ j: QKV, head h: Int, layer l: Int) -> (weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?) {
        let p = UnsafePointer(parameters.base), w = layout.blocks[l]
        let kvRow: Int = (h / group) * dh
        switch j {
        case .q:
            let bias: UnsafePointer<Float>? = w.qBias.map { p + $0 + h * dh }
            return (p + w.q + h * dh * C, bias)
        case .k:
            let bias: UnsafePointer<Float>? = w.kBias.map { p + $0 + kvRow }
            return (p + w.k + kvRow * C, bias)
        case .v:
            return (p + w.v + kvRow * C, nil)
        }
    }

    public func tokenEmbedding(_ batch: PromptBatch, clean: Bool, into out: UnsafeMutablePointer<Float>) {
        let tokens = clean ? batch.cleanTokens : batch.corruptedTokens!, embed = parameters.base + layout.embed
        for row in 0..<(batch.batch * batch.seqLen) { (out + row * C).update(from: embed + Int(tokens[row]) * C, count: C) }
    }

    @discardableResult
    public func run(_ batch: PromptBatch, clean: Bool, record: UnsafeMutablePointer<Float>?, recordMode: InstrumentedGPT2.RecordMode,
                    replace: [Int: UnsafePointer<Float>], patch: InstrumentedGPT2.Patch?, computeLogits: Bool,
                    readOutOnly: Bool = false) -> UnsafeMutablePointer<Float> {
        // `readOutOnly` allows, but does not require, a shorter last layer: this family always runs every row.
        let B = batch.batch, T = batch.seqLen, BT = B * T, BTC = BT * C
        beginForward(batch, maxPositions: config.maxPositions, record: record, recordMode: recordMode, replace: replace, patch: patch)
        let p = parameters.base, lay = layout, g = graph
        func recordOutput(_ f: Int, _ out: UnsafePointer<Float>) { self.record(f, out, into: record, mode: recordMode, count: BTC) }

        // Embedding: x0 = E[token] (hook_embed, or its replacement); no positional embedding.
        let x0 = resid.base
        if let r = replace[0] {
            x0.update(from: r, count: BTC)
        } else {
            tokenEmbedding(batch, clean: clean, into: x0)
        }
        recordOutput(0, x0)

        lastLengths.withUnsafeBufferPointer { lengthsBuf in
            let lengths = lengthsBuf.baseAddress!
            for l in 0..<L {
                let w = lay.blocks[l]
                let x = layerSlice(resid, l, width: C), q = layerSlice(qkv, l, width: 3 * C)
                let ln = scratchC.base, z = scratchC.base + capacity * C
                let head = scratchC.base + 2 * capacity * C, attnOut = scratchC.base + 3 * capacity * C
                let stats1 = layerSlice(norm1Stats, l, width: 2)
                let kS = kvScratch.base, vS = kvScratch.base + capacity * KV

                // q of every head, k and v of every KV head from the norm of the block input, K/V expanded per query head ...
                norm(first: true, layer: l, out: ln, stats: stats1, statStride: capacity, inp: x, N: BT)
                Linear.forward(y: q, ldy: 3 * C, x: ln, ldx: C, weight: p + w.q, bias: w.qBias.map { p + $0 }, N: BT, IC: C, OC: C, threads: threads)
                Linear.forward(y: kS, ldy: KV, x: ln, ldx: C, weight: p + w.k, bias: w.kBias.map { p + $0 }, N: BT, IC: C, OC: KV, threads: threads)
                Linear.forward(y: vS, ldy: KV, x: ln, ldx: C, weight: p + w.v, bias: nil, N: BT, IC: C, OC: KV, threads: threads)
                for row in 0..<BT {
                    let dst = q + row * 3 * C
                    for h in 0..<H {
                        let o = (h / group) * dh
                        (dst + C + h * dh).update(from: kS + row * KV + o, count: dh)
                        (dst + 2 * C + h * dh).update(from: vS + row * KV + o, count: dh)
                    }
                }
                // ... except the inputs a patch rebuilds: head h's input j becomes x + Σ_f absent[f, b] · record[f]
                // (inputs without absent edges are left alone, so a circuit holding every edge is the clean run).
                if let patch, patch.rebuildHeads[l] {
                    let U = patchInputs.base
                    forEachRebuiltColumn(rebuildHeadInputs(layer: l, x: x, patch: patch, record: record!, count: BTC)) { c, out, stats, threads in
                        let j = QKV(rawValue: c / H)!, h = c % H
                        norm(first: true, layer: l, out: out, stats: stats, statStride: capacity, inp: U + c * BTC, N: BT, threads: threads)
                        let (weight, bias) = projection(j, head: h, layer: l)
                        Linear.forward(y: q + j.rawValue * C + h * dh, ldy: 3 * C, x: out, ldx: C, weight: weight, bias: bias,
                                       N: BT, IC: C, OC: dh, threads: threads)
                    }
                }
                Rotary.apply(q, table: rotary, N: BT, T: T, heads: H, headSize: dh, rowStride: 3 * C, threads: threads)
                Rotary.apply(q + C, table: rotary, N: BT, T: T, heads: H, headSize: dh, rowStride: 3 * C, threads: threads)
                Attention.forward(out: z, att: patternSlice(layer: l), qkv: q, lengths: lengths, B: B, T: T, C: C, NH: H, threads: threads)

                // Attention output (z·W_O + b_O', each head's result recorded or replaced: InstrumentedEngine).
                attentionOutput(layer: l, z: z, wo: p + w.o, transposed: true, head: head, attnOut: attnOut, rows: BT, replace: replace,
                                record: record, mode: recordMode)

                // MLP on its own input: hook_mlp_in = resid_mid (Llama) or the block input (Phi), or its rebuilt copy.
                let xNext = layerSlice(resid, l + 1, width: C)
                var mlpIn = UnsafePointer(x)
                if llama {
                    let mid = layerSlice(residMid, l, width: C)
                    for i in 0..<BTC { mid[i] = x[i] + attnOut[i] }
                    mlpIn = UnsafePointer(mid)
                }
                if let patch, patch.rebuildMLP[l], patch.hasAbsent[g.mlpBackward(layer: l)] {
                    rebuildMLPInput(layer: l, base: mlpIn, added: llama ? attnOut : nil, into: head, patch: patch, record: record!, count: BTC)
                    mlpIn = UnsafePointer(head)
                }
                let stats2 = layerSlice(norm2Stats, l, width: 2)
                norm(first: false, layer: l, out: ln, stats: stats2, statStride: capacity, inp: mlpIn, N: BT)
                let pre = layerSlice(mlpPre, l, width: F), act = scratchF.base
                if llama {
                    let up = layerSlice(mlpUp, l, width: F)
                    Linear.forward(y: pre, ldy: F, x: ln, ldx: C, weight: p + w.gate!, bias: nil, N: BT, IC: C, OC: F, threads: threads)
                    Linear.forward(y: up, ldy: F, x: ln, ldx: C, weight: p + w.up, bias: nil, N: BT, IC: C, OC: F, threads: threads)
                    SwiGLU.forward(out: act, gate: pre, up: up, count: BT * F, threads: threads)
                } else {
                    Linear.forward(y: pre, ldy: F, x: ln, ldx: C, weight: p + w.up, bias: p + w.upBias!, N: BT, IC: C, OC: F, threads: threads)
                    GELU.forward(out: act, inp: pre, count: BT * F, threads: threads)
                }
                let mlpOut = head
                mlpOutput(layer: l, into: mlpOut, rows: BT, replace: replace, record: record, mode: recordMode) {
                    Linear.forward(y: mlpOut, ldy: C, x: act, ldx: F, weight: p + w.down, bias: w.downBias.map { p + $0 },
                                   N: BT, IC: F, OC: C, threads: threads)
                }
                if llama {
                    let mid = layerSlice(residMid, l, width: C)
                    for i in 0..<BTC { xNext[i] = mid[i] + mlpOut[i] }
                } else {
                    for i in 0..<BTC { xNext[i] = x[i] + attnOut[i] + mlpOut[i] }
                }
            }
        }

        // Final norm and unembedding at the read-out rows only.
        gatherReadOut(batch, patch: patch, record: record)
        if llama {
            RMSNorm.forward(out: lnfOut.base, rstd: lnfStats.base + batchCapacity, inp: lnfIn.base, weight: p + lay.finalNorm,
                            N: B, C: C, eps: eps, threads: threads)
        } else {
            LayerNorm.forward(out: lnfOut.base, mean: lnfStats.base, rstd: lnfStats.base + batchCapacity, inp: lnfIn.base,
                              weight: p + lay.finalNorm, bias: p + lay.finalNormBias!, N: B, C: C, eps: eps, threads: threads)
        }
        if computeLogits {
            Linear.forward(y: logits.base, ldy: V, x: lnfOut.base, ldx: C, weight: p + lay.lmHead, bias: lay.lmHeadBias.map { p + $0 },
                           N: B, IC: C, OC: V, threads: threads)
        }
        return logits.base
    }
}
