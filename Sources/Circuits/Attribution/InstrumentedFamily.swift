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
public final class InstrumentedFamily: InstrumentedModel, @unchecked Sendable {
    public let parameters: FamilyArena
    public let config: ModelConfig
    public let graph: AttributionGraph
    public let rotary: RotaryTable
    /// Workers for the non-GEMM kernels (OpenBLAS uses its own setting).
    public var threads: Int
    let L: Int, H: Int, C: Int, dh: Int, V: Int, F: Int, KV: Int, group: Int
    let eps: Float
    let llama: Bool
    /// Folded attention output bias b_O' per layer.   // (L, C)
    let foldedBias: FloatBuffer

    // Activations of the last forward pass; row strides use `capacity` (≥ B·T).
    var capacity = 0, batchCapacity = 0, seqCapacity = 0
    var resid = FloatBuffer(count: 0)      // (L+1, BT, C)  x_ℓ (blocks.ℓ.hook_resid_pre); x_L the final residual
    var residMid = FloatBuffer(count: 0)   // (L, BT, C)    Llama: x_ℓ + attention (hook_resid_mid)
    var norm1Stats = FloatBuffer(count: 0) // (L, 2, BT)    mean (Phi), rstd of the block input
    var norm2Stats = FloatBuffer(count: 0) // (L, 2, BT)    mean (Phi), rstd of the MLP input
    var qkv = FloatBuffer(count: 0)        // (L, BT, 3C)   q | k | v per query head, rotated
    var pattern = FloatBuffer(count: 0)    // (L, B, H, T, T)
    var mlpPre = FloatBuffer(count: 0)     // (L, BT, F)    Llama: gate projection; Phi: fc1 output
    var mlpUp = FloatBuffer(count: 0)      // (L, BT, F)    Llama: up projection
    var scratchC = FloatBuffer(count: 0)   // (4, BT, C)    norm / z / head or MLP output / attention output
    var scratchF = FloatBuffer(count: 0)   // (BT, F)
    var kvScratch = FloatBuffer(count: 0)  // (2, BT, KV)
    var statScratch = FloatBuffer(count: 0) // (2, BT)      norm stats of rebuilt inputs
    var patchInputs = FloatBuffer(count: 0) // (3H, BT, C)  rebuilt head inputs (patched runs)
    var lnfIn = FloatBuffer(count: 0)      // (B, C)
    var lnfOut = FloatBuffer(count: 0)     // (B, C)
    var lnfStats = FloatBuffer(count: 0)   // (2, B)
    /// Logits of the last forward pass at the read-out positions.   // (B, V)
    public private(set) var logits = FloatBuffer(count: 0)
    // Backward scratch.
    var dResid = FloatBuffer(count: 0)     // (BT, C)
    var dMid = FloatBuffer(count: 0)       // (BT, C)
    var dTmp = FloatBuffer(count: 0)       // (BT, C)
    var dQKV = FloatBuffer(count: 0)       // (BT, 3C)
    var dF = FloatBuffer(count: 0)         // (2, BT, F)
    var dLnf = FloatBuffer(count: 0)       // (B, C)
    var attScratch = FloatBuffer(count: 0) // (B, H, T, T)

    var lastBatch: PromptBatch?
    var lastLengths: [Int32] = []
    var lastWasPatched = false
    var lastReplaced: Set<Int> = []

    public init(parameters: FamilyArena, threads: Int = max(1, BLAS.threads)) {
        precondition(parameters.config.family != .gpt2, "GPT-2 runs as InstrumentedGPT2")
        self.parameters = parameters
        config = parameters.config
        self.threads = max(1, threads)
        L = config.numLayers; H = config.numHeads; C = config.hiddenSize; dh = config.headSize; V = config.vocabSize
        F = config.intermediateSize; KV = config.kvSize; group = config.numHeads / config.numKVHeads
        eps = Float(config.normEps)
        llama = config.family == .llama
        graph = AttributionGraph(nLayers: L, nHeads: H, parallel: !llama)
        rotary = RotaryTable(rotaryDim: config.rotaryDim, base: config.ropeTheta, positions: config.maxPositions)
        foldedBias = FloatBuffer(count: L * C)
        refreshFoldedBiases()
    }

    public var dModel: Int { C }
    public var vocabSize: Int { V }
    public var readOutLogits: UnsafeMutablePointer<Float> { logits.base }
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

    /// The folded output bias b_O' of layer `l`.
    public func foldedOutputBias(layer l: Int) -> [Float] { Array(UnsafeBufferPointer(start: foldedBias.base + l * C, count: C)) }

    public func promptBatch(pairs: [PromptPair], firstIndex: Int) throws -> PromptBatch {
        try PromptBatch(pairs: pairs, vocabSize: V, maxPositions: config.maxPositions, bos: config.bosTokenId,
                        pad: config.eosTokenId, firstIndex: firstIndex)
    }

    public func promptBatch(prompts: [[Int]], labels: [Int], firstIndex: Int) throws -> PromptBatch {
        try PromptBatch(prompts: prompts, labels: labels, vocabSize: V, maxPositions: config.maxPositions, bos: config.bosTokenId,
                        pad: config.eosTokenId, firstIndex: firstIndex)
    }

    func ensureCapacity(B: Int, T: Int) {
        if B * H * T * T > attScratch.count { attScratch = FloatBuffer(count: B * H * T * T) }
        guard B * T > capacity || B > batchCapacity || T > seqCapacity else { return }
        let nB = max(B, batchCapacity), nT = max(T, seqCapacity), nBT = max(B * T, capacity)
        capacity = nBT; batchCapacity = nB; seqCapacity = nT
        resid = FloatBuffer(count: (L + 1) * nBT * C)
        residMid = FloatBuffer(count: llama ? L * nBT * C : 0)
        norm1Stats = FloatBuffer(count: L * 2 * nBT)
        norm2Stats = FloatBuffer(count: L * 2 * nBT)
        qkv = FloatBuffer(count: L * nBT * 3 * C)
        pattern = FloatBuffer(count: L * nB * H * nT * nT)
        mlpPre = FloatBuffer(count: L * nBT * F)
        mlpUp = FloatBuffer(count: llama ? L * nBT * F : 0)
        scratchC = FloatBuffer(count: 4 * nBT * C)
        scratchF = FloatBuffer(count: nBT * F)
        kvScratch = FloatBuffer(count: 2 * nBT * KV)
        statScratch = FloatBuffer(count: 2 * nBT)
        patchInputs = FloatBuffer(count: 0)
        lnfIn = FloatBuffer(count: nB * C)
        lnfOut = FloatBuffer(count: nB * C)
        lnfStats = FloatBuffer(count: 2 * nB)
        logits = FloatBuffer(count: nB * V)
        dResid = FloatBuffer(count: nBT * C)
        dMid = FloatBuffer(count: nBT * C)
        dTmp = FloatBuffer(count: nBT * C)
        dQKV = FloatBuffer(count: nBT * 3 * C)
        dF = FloatBuffer(count: 2 * nBT * F)
        dLnf = FloatBuffer(count: nB * C)
    }

    /// Pointer to layer ℓ's slice of a per-layer activation buffer with `width` floats per row.
    @inline(__always)
    func layerSlice(_ buffer: FloatBuffer, _ l: Int, width: Int) -> UnsafeMutablePointer<Float> {
        buffer.base + l * capacity * width
    }

    /// The norm in front of attention (`first`) or the MLP: RMSNorm (Llama; `mean` untouched) or LayerNorm (Phi,
    /// whose MLP reuses the attention LayerNorm's weights).
    func norm(first: Bool, layer l: Int, out: UnsafeMutablePointer<Float>, stats: UnsafeMutablePointer<Float>, statStride: Int,
              inp: UnsafePointer<Float>, N: Int) {
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

    @discardableResult
    public func run(_ batch: PromptBatch, clean: Bool, record: UnsafeMutablePointer<Float>?, recordMode: InstrumentedGPT2.RecordMode,
                    replace: [Int: UnsafePointer<Float>], patch: InstrumentedGPT2.Patch?, computeLogits: Bool) -> UnsafeMutablePointer<Float> {
        let B = batch.batch, T = batch.seqLen, BT = B * T, BTC = BT * C
        precondition(T <= config.maxPositions, "sequence longer than the model's positions")
        precondition(patch == nil || (record != nil && recordMode != .set), "patching reads the record buffer of the same run")
        let tokens = clean ? batch.cleanTokens : batch.corruptedTokens!
        ensureCapacity(B: B, T: T)
        if let patch, patch.rebuildHeads.contains(true), patchInputs.count < 3 * H * BTC { patchInputs = FloatBuffer(count: 3 * H * capacity * C) }
        lastBatch = batch
        lastLengths = batch.lengths.map { Int32($0) }
        lastWasPatched = patch != nil
        lastReplaced = Set(replace.keys)
        let p = parameters.base, lay = layout, g = graph, nB = g.nBackward

        func recordOutput(_ f: Int, _ out: UnsafePointer<Float>) {
            guard let record else { return }
            let dst = record + f * BTC
            switch recordMode {
            case .set: dst.update(from: out, count: BTC)
            case .subtract: for i in 0..<BTC { dst[i] -= out[i] }
            case .negate: for i in 0..<BTC { dst[i] = -out[i] }
            }
        }
        /// dst = base + Σ_{f < prev(col)} absent[f, col] · record[f]  (one column).
        func rebuild(column col: Int, base: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, patch: InstrumentedGPT2.Patch) {
            dst.update(from: base, count: BTC)
            patch.absent.withUnsafeBufferPointer { a in
                Matmul.sgemm(true, false, M: 1, N: BTC, K: g.backwardPrevIndex[col], alpha: 1, A: a.baseAddress! + col, lda: nB,
                             B: record!, ldb: BTC, beta: 1, C: dst, ldc: BTC)
            }
        }

        // Embedding: x0 = E[token] (hook_embed, or its replacement); no positional embedding.
        let x0 = resid.base
        if let r = replace[0] {
            x0.update(from: r, count: BTC)
        } else {
            for row in 0..<BT { (x0 + row * C).update(from: p + lay.embed + Int(tokens[row]) * C, count: C) }
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
                    let col0 = g.headBackward(layer: l, head: 0, qkv: .q), prev = g.backwardPrevIndex[col0]
                    let columns = (0..<(3 * H)).filter { patch.hasAbsent[col0 + $0] }
                    if !columns.isEmpty {
                        let U = patchInputs.base
                        patch.absent.withUnsafeBufferPointer { a in
                            Matmul.sgemm(true, false, M: 3 * H, N: BTC, K: prev, alpha: 1, A: a.baseAddress! + col0, lda: nB,
                                         B: record!, ldb: BTC, beta: 0, C: U, ldc: BTC)
                        }
                        for c in columns {
                            let j = QKV(rawValue: c / H)!, h = c % H
                            let u = U + c * BTC
                            for i in 0..<BTC { u[i] += x[i] }
                            norm(first: true, layer: l, out: ln, stats: statScratch.base, statStride: capacity, inp: u, N: BT)
                            let (weight, bias) = projection(j, head: h, layer: l)
                            Linear.forward(y: q + j.rawValue * C + h * dh, ldy: 3 * C, x: ln, ldx: C, weight: weight, bias: bias,
                                           N: BT, IC: C, OC: dh, threads: threads)
                        }
                    }
                }
                Rotary.apply(q, table: rotary, N: BT, T: T, heads: H, headSize: dh, rowStride: 3 * C, threads: threads)
                Rotary.apply(q + C, table: rotary, N: BT, T: T, heads: H, headSize: dh, rowStride: 3 * C, threads: threads)
                let pat = pattern.base + l * batchCapacity * H * seqCapacity * seqCapacity
                Attention.forward(out: z, att: pat, qkv: q, lengths: lengths, B: B, T: T, C: C, NH: H, threads: threads)

                // Attention output: z·W_Oᵀ + b_O' unless a head output is replaced (then Σ_h result_h + b_O'); each
                // head's own result_h = z_h·W_O,hᵀ only when it is recorded or replaced.
                let anyReplaced = (0..<H).contains { replace[g.headForward(layer: l, head: $0)] != nil }
                for row in 0..<BT { (attnOut + row * C).update(from: foldedBias.base + l * C, count: C) }
                if !anyReplaced {
                    Linear.forward(y: attnOut, ldy: C, x: z, ldx: C, weight: p + w.o, bias: nil, N: BT, IC: C, OC: C, accumulate: true, threads: threads)
                }
                if record != nil || anyReplaced {
                    for h in 0..<H {
                        let f = g.headForward(layer: l, head: h)
                        if let r = replace[f] {
                            head.update(from: r, count: BTC)
                        } else {
                            Matmul.sgemm(false, true, M: BT, N: C, K: dh, alpha: 1, A: z + h * dh, lda: C,
                                         B: p + w.o + h * dh, ldb: C, beta: 0, C: head, ldc: C)
                        }
                        recordOutput(f, head)
                        if anyReplaced { for i in 0..<BTC { attnOut[i] += head[i] } }
                    }
                }

                // MLP on its own input: hook_mlp_in = resid_mid (Llama) or the block input (Phi), or its rebuilt copy.
                let xNext = layerSlice(resid, l + 1, width: C)
                var mlpIn = UnsafePointer(x)
                if llama {
                    let mid = layerSlice(residMid, l, width: C)
                    for i in 0..<BTC { mid[i] = x[i] + attnOut[i] }
                    mlpIn = UnsafePointer(mid)
                }
                if let patch, patch.rebuildMLP[l], patch.hasAbsent[g.mlpBackward(layer: l)] {
                    rebuild(column: g.mlpBackward(layer: l), base: mlpIn, into: head, patch: patch)
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
                let fm = g.mlpForward(layer: l)
                if let r = replace[fm] {
                    mlpOut.update(from: r, count: BTC)
                } else {
                    Linear.forward(y: mlpOut, ldy: C, x: act, ldx: F, weight: p + w.down, bias: w.downBias.map { p + $0 },
                                   N: BT, IC: F, OC: C, threads: threads)
                }
                recordOutput(fm, mlpOut)
                if llama {
                    let mid = layerSlice(residMid, l, width: C)
                    for i in 0..<BTC { xNext[i] = mid[i] + mlpOut[i] }
                } else {
                    for i in 0..<BTC { xNext[i] = x[i] + attnOut[i] + mlpOut[i] }
                }
            }
        }

        // Final norm and unembedding at the read-out rows only.
        let xL = layerSlice(resid, L, width: C)
        let rows = batch.readRows
        for b in 0..<B { (lnfIn.base + b * C).update(from: xL + rows[b] * C, count: C) }
        if let patch, patch.rebuildLogits, patch.hasAbsent[g.logitsBackward] {
            let col = g.logitsBackward
            for f in 0..<g.nForward where patch.absent[f * nB + col] != 0 {
                let d = record! + f * BTC, a = patch.absent[f * nB + col]
                for b in 0..<B {
                    let dst = lnfIn.base + b * C, src = d + rows[b] * C
                    for i in 0..<C { dst[i] += a * src[i] }
                }
            }
        }
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
