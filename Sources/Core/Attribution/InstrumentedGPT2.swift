import Foundation

/// GPT-2 as TransformerLens runs it for EAP-IG (`use_split_qkv_input`, `use_attn_result`, `use_hook_mlp_in`,
/// value biases folded), with the hooks attribution and circuit evaluation need, over the parameters of a
/// `ParameterArena` (HF layout; the arena is read, never written):
///
/// - every node's output can be recorded into a buffer `[nForward, B·T·C]` (set, or subtracted from what
///   is there): `hook_embed` (token embedding only), `blocks.ℓ.attn.hook_result` per head (no bias), and
///   `blocks.ℓ.hook_mlp_out`;
/// - a node's output can be replaced (the input node's for integrated gradients), which also cuts the
///   gradient through that node in `backward`;
/// - each downstream input can be patched (`Patch`): head h's q/k/v input and the MLP input become the
///   residual plus Σ over absent edges of that edge's recorded difference, and likewise the final residual
///   before LN_f;
/// - `backward` takes ∂metric/∂logits at the read-out positions and accumulates the gradient with respect to
///   every downstream input (before LN1 per head and q/k/v, before LN2, before LN_f) into `[nBackward, B·T·C]`.
///   No parameter gradients are formed.
///
/// Value biases: b_O' = b_O + Σ_h b_V,h W_O,h and v carries no bias, so `hook_result` has no bias term.
/// Only the logits at each sample's position length − 1 are computed.
public final class InstrumentedGPT2: @unchecked Sendable {
    public let parameters: ParameterArena
    public let config: GPT2Config
    public let graph: AttributionGraph
    let L: Int, H: Int, C: Int, dh: Int, V: Int, F: Int
    let eps: Float
    /// Folded attention output bias b_O' per layer.   // (L, C)
    private var foldedBias: FloatBuffer

    /// Activations of the last forward pass, sized for `capacity` rows (B·T) and `batchCapacity` samples.
    private var capacity = 0, batchCapacity = 0, seqCapacity = 0
    private var resid = FloatBuffer(count: 0)      // (L+1, BT, C)  x_ℓ, the input of block ℓ; x_L the final residual
    private var residMid = FloatBuffer(count: 0)   // (L, BT, C)    x_ℓ + attn_out
    private var ln1Stats = FloatBuffer(count: 0)   // (L, 2, BT)    mean, rstd
    private var ln2Stats = FloatBuffer(count: 0)   // (L, 2, BT)
    private var qkv = FloatBuffer(count: 0)        // (L, BT, 3C)
    private var pattern = FloatBuffer(count: 0)    // (L, B, H, T, T)
    private var fcPre = FloatBuffer(count: 0)      // (L, BT, 4C)
    private var scratchC = FloatBuffer(count: 0)   // (4, BT, C)    ln / z / head / attn_out
    private var scratchF = FloatBuffer(count: 0)   // (BT, 4C)
    private var patchInputs = FloatBuffer(count: 0) // (3H, BT, C)  rebuilt head inputs (patched runs)
    private var lnfIn = FloatBuffer(count: 0)      // (B, C)        final residual rows read out (patched)
    private var lnfOut = FloatBuffer(count: 0)     // (B, C)
    private var lnfStats = FloatBuffer(count: 0)   // (2, B)
    /// Logits of the last forward pass at the read-out positions.   // (B, V)
    public private(set) var logits = FloatBuffer(count: 0)
    // backward scratch
    private var dResid = FloatBuffer(count: 0)     // (BT, C)
    private var dMid = FloatBuffer(count: 0)       // (BT, C)
    private var dTmp = FloatBuffer(count: 0)       // (BT, C)
    private var dQKV = FloatBuffer(count: 0)       // (BT, 3C)
    private var dLnf = FloatBuffer(count: 0)       // (B, C)

    private var lastBatch: PromptBatch?
    private var lastWasPatched = false
    private var lastReplaced: Set<Int> = []

    public init(parameters: ParameterArena) {
        self.parameters = parameters
        config = parameters.config
        L = config.nLayer; H = config.nHead; C = config.nEmbd; dh = config.headSize; V = config.vocabSize; F = config.mlpSize
        eps = Float(config.layerNormEpsilon)
        graph = AttributionGraph(nLayers: L, nHeads: H)
        foldedBias = FloatBuffer(count: L * C)
        refreshFoldedBiases()
    }

    /// Recomputes b_O' from the arena; call after loading another checkpoint into it.
    public func refreshFoldedBiases() {
        let fb = foldedBias.base
        let p = parameters.views
        for l in 0..<L {
            let bv = p.layers[l].attnBias + 2 * C, wo = p.layers[l].attnProjWeight, bo = p.layers[l].attnProjBias
            for j in 0..<C {
                var s: Float = 0
                for i in 0..<C { s += bv[i] * wo[i * C + j] }
                fb[l * C + j] = bo[j] + s
            }
        }
    }

    /// The folded output bias b_O' of layer `l`.
    public func foldedOutputBias(layer l: Int) -> [Float] { Array(UnsafeBufferPointer(start: foldedBias.base + l * C, count: C)) }

    private func ensureCapacity(B: Int, T: Int) {
        let BT = B * T
        guard BT > capacity || B > batchCapacity || T > seqCapacity else { return }
        let nB = max(B, batchCapacity), nT = max(T, seqCapacity), nBT = max(BT, capacity)
        capacity = nBT; batchCapacity = nB; seqCapacity = nT
        resid = FloatBuffer(count: (L + 1) * nBT * C)
        residMid = FloatBuffer(count: L * nBT * C)
        ln1Stats = FloatBuffer(count: L * 2 * nBT)
        ln2Stats = FloatBuffer(count: L * 2 * nBT)
        qkv = FloatBuffer(count: L * nBT * 3 * C)
        pattern = FloatBuffer(count: L * nB * H * nT * nT)
        fcPre = FloatBuffer(count: L * nBT * F)
        scratchC = FloatBuffer(count: 4 * nBT * C)
        scratchF = FloatBuffer(count: nBT * F)
        patchInputs = FloatBuffer(count: 0)
        lnfIn = FloatBuffer(count: nB * C)
        lnfOut = FloatBuffer(count: nB * C)
        lnfStats = FloatBuffer(count: 2 * nB)
        logits = FloatBuffer(count: nB * V)
        dResid = FloatBuffer(count: nBT * C)
        dMid = FloatBuffer(count: nBT * C)
        dTmp = FloatBuffer(count: nBT * C)
        dQKV = FloatBuffer(count: nBT * 3 * C)
        dLnf = FloatBuffer(count: nB * C)
    }

    /// How `forward` writes node outputs into a record buffer `[nForward, B·T·C]`.
    public enum RecordMode: Sendable { case set, subtract }

    /// Patching of downstream inputs for circuit evaluation: with `differences` = the record buffer of this
    /// same run in `.subtract` mode (it holds corrupted − current, or 0 − current for zero ablation), each
    /// rebuilt input of column b becomes residual + Σ_{f < prev(b)} absent[f, b] · differences[f].
    public struct Patch {
        /// 1 where the edge (f, b) is NOT in the circuit, row-major.   // (nForward, nBackward)
        public var absent: [Float]
        /// Rebuild the q/k/v inputs of every head of layer ℓ (the reference does when any head of ℓ is in the circuit).
        public var rebuildHeads: [Bool]
        /// Rebuild the input of MLP ℓ (when m ℓ is in the circuit).
        public var rebuildMLP: [Bool]
        /// Rebuild the final residual (when `logits` is in the circuit).
        public var rebuildLogits: Bool
        /// Per column: whether any valid row has a nonzero `absent` entry (else the update is exactly 0).
        public let hasAbsent: [Bool]

        public init(absent: [Float], rebuildHeads: [Bool], rebuildMLP: [Bool], rebuildLogits: Bool, graph: AttributionGraph) {
            precondition(absent.count == graph.nForward * graph.nBackward, "absent must be [nForward, nBackward]")
            self.absent = absent
            self.rebuildHeads = rebuildHeads
            self.rebuildMLP = rebuildMLP
            self.rebuildLogits = rebuildLogits
            hasAbsent = (0..<graph.nBackward).map { b in (0..<graph.backwardPrevIndex[b]).contains { absent[$0 * graph.nBackward + b] != 0 } }
        }

        /// The reference's patch for `circuit`: absent edges are those not in it; inputs of nodes in it are rebuilt.
        public init(circuit: Circuit) {
            let g = circuit.graph
            var absent = [Float](repeating: 1, count: g.nForward * g.nBackward)
            for (e, edge) in g.edges.enumerated() where circuit.edgeInGraph[e] { absent[edge.forward * g.nBackward + edge.backward] = 0 }
            self.init(absent: absent,
                      rebuildHeads: (0..<g.nLayers).map { l in (0..<g.nHeads).contains { circuit.nodeInGraph[g.headForward(layer: l, head: $0)] } },
                      rebuildMLP: (0..<g.nLayers).map { circuit.nodeInGraph[g.mlpForward(layer: $0)] },
                      rebuildLogits: circuit.nodeInGraph[g.logitsNode], graph: g)
        }
    }

    /// Runs the model on `clean ? batch.cleanTokens : batch.corruptedTokens` with `batch.mask`.
    ///
    /// - `record`: buffer `[nForward, B·T·C]` receiving node outputs (`recordMode`).
    /// - `replace`: forward index → output `(B, T, C)` used instead of the node's own (index 0: the token
    ///   embedding; the positional embedding is still added). Replaced nodes pass no gradient in `backward`.
    /// - `patch`: rebuild downstream inputs from `record` (which must be given, in `.subtract` mode).
    /// Returns a pointer to the logits at the read-out positions `(B, V)`, valid until the next call.
    @discardableResult
    public func forward(_ batch: PromptBatch, clean: Bool = true,
                        record: UnsafeMutablePointer<Float>? = nil, recordMode: RecordMode = .set,
                        replace: [Int: UnsafePointer<Float>] = [:], patch: Patch? = nil) -> UnsafeMutablePointer<Float> {
        let B = batch.batch, T = batch.seqLen, BT = B * T, BTC = BT * C
        precondition(T <= config.nPositions, "sequence longer than the model's positions")
        precondition(patch == nil || (record != nil && recordMode == .subtract), "patching reads the record buffer of the same run")
        let tokens = clean ? batch.cleanTokens : batch.corruptedTokens!
        ensureCapacity(B: B, T: T)
        if patch != nil && patchInputs.count < 3 * H * BTC { patchInputs = FloatBuffer(count: 3 * H * capacity * C) }
        lastBatch = batch
        lastWasPatched = patch != nil
        lastReplaced = Set(replace.keys)
        let p = parameters.views
        let g = graph
        let nB = g.nBackward

        func recordOutput(_ f: Int, _ out: UnsafePointer<Float>) {
            guard let record else { return }
            let dst = record + f * BTC
            switch recordMode {
            case .set: dst.update(from: out, count: BTC)
            case .subtract: for i in 0..<BTC { dst[i] -= out[i] }
            }
        }

        // Embedding: x0 = W_E[token] (or its replacement) + W_pos[t].
        let x0 = resid.base
        let emb = scratchC.base + 2 * capacity * C
        if let r = replace[0] {
            emb.update(from: r, count: BTC)
        } else {
            for row in 0..<BT { (emb + row * C).update(from: p.wte + Int(tokens[row]) * C, count: C) }
        }
        recordOutput(0, emb)
        for row in 0..<BT {
            let t = row % T, e = emb + row * C, pe = p.wpe + t * C, x = x0 + row * C
            for i in 0..<C { x[i] = e[i] + pe[i] }
        }

        let mask = batch.mask
        for l in 0..<L {
            let w = p.layers[l]
            let x = resid.base + l * capacity * C
            let mid = residMid.base + l * capacity * C
            let q = qkv.base + l * capacity * 3 * C
            let ln = scratchC.base, z = scratchC.base + capacity * C
            let head = scratchC.base + 2 * capacity * C, attnOut = scratchC.base + 3 * capacity * C
            let stats1 = ln1Stats.base + l * 2 * capacity

            // q, k, v of every head from LN1 of the residual (value bias folded away) ...
            AttributionKernels.layerNormForward(out: ln, mean: stats1, rstd: stats1 + capacity, inp: x,
                                                weight: w.ln1Weight, bias: w.ln1Bias, N: BT, C: C, eps: eps)
            for row in 0..<BT {
                let dst = q + row * 3 * C
                dst.update(from: w.attnBias, count: 2 * C)
                (dst + 2 * C).update(repeating: 0, count: C)
            }
            AttributionKernels.sgemm(false, false, M: BT, N: 3 * C, K: C, A: ln, lda: C, B: w.attnWeight, ldb: 3 * C,
                                     beta: 1, C: q, ldc: 3 * C)
            // ... except the inputs a patch rebuilds: head h's input j becomes x + Σ_f absent[f, b] · record[f].
            // Inputs without absent edges are left alone (their update is exactly 0), so a circuit holding every
            // edge reproduces the clean run bit for bit.
            if let patch, patch.rebuildHeads[l] {
                let col0 = g.headBackward(layer: l, head: 0, qkv: .q), prev = g.backwardPrevIndex[col0]
                let columns = (0..<(3 * H)).filter { patch.hasAbsent[col0 + $0] }
                if !columns.isEmpty {
                    let U = patchInputs.base
                    patch.absent.withUnsafeBufferPointer { a in
                        AttributionKernels.sgemm(true, false, M: 3 * H, N: BTC, K: prev, A: a.baseAddress! + col0, lda: nB,
                                                 B: record!, ldb: BTC, beta: 0, C: U, ldc: BTC)
                    }
                    for c in columns {
                        let j = c / H, h = c % H
                        let u = U + c * BTC
                        for i in 0..<BTC { u[i] += x[i] }
                        AttributionKernels.layerNormForward(out: ln, mean: nil, rstd: nil, inp: u, weight: w.ln1Weight, bias: w.ln1Bias,
                                                            N: BT, C: C, eps: eps)
                        let col = j * C + h * dh
                        for row in 0..<BT {
                            let dst = q + row * 3 * C + col
                            if j < 2 { dst.update(from: w.attnBias + col, count: dh) } else { dst.update(repeating: 0, count: dh) }
                        }
                        AttributionKernels.sgemm(false, false, M: BT, N: dh, K: C, A: ln, lda: C, B: w.attnWeight + col, ldb: 3 * C,
                                                 beta: 1, C: q + col, ldc: 3 * C)
                    }
                }
            }
            let pat = pattern.base + l * batchCapacity * H * seqCapacity * seqCapacity
            mask.withUnsafeBufferPointer { m in
                AttributionKernels.attentionForward(z: z, pattern: pat, qkv: q, mask: m.baseAddress!, B: B, T: T, C: C, H: H)
            }

            // Attention output: one product z·W_O + b_O' unless a head output is replaced (then Σ_h result_h + b_O');
            // each head's own output result_h = z_h W_O,h is formed only when it is recorded or replaced.
            let anyReplaced = (0..<H).contains { replace[g.headForward(layer: l, head: $0)] != nil }
            for row in 0..<BT { (attnOut + row * C).update(from: foldedBias.base + l * C, count: C) }
            if !anyReplaced {
                AttributionKernels.sgemm(false, false, M: BT, N: C, K: C, A: z, lda: C, B: w.attnProjWeight, ldb: C,
                                         beta: 1, C: attnOut, ldc: C)
            }
            if record != nil || anyReplaced {
                for h in 0..<H {
                    let f = g.headForward(layer: l, head: h)
                    if let r = replace[f] {
                        head.update(from: r, count: BTC)
                    } else {
                        AttributionKernels.sgemm(false, false, M: BT, N: C, K: dh, A: z + h * dh, lda: C,
                                                 B: w.attnProjWeight + h * dh * C, ldb: C, beta: 0, C: head, ldc: C)
                    }
                    recordOutput(f, head)
                    if anyReplaced { for i in 0..<BTC { attnOut[i] += head[i] } }
                }
            }
            for i in 0..<BTC { mid[i] = x[i] + attnOut[i] }

            // MLP.
            var mlpIn = UnsafePointer(mid)
            if let patch, patch.rebuildMLP[l], patch.hasAbsent[g.mlpBackward(layer: l)] {
                let col = g.mlpBackward(layer: l), prev = g.backwardPrevIndex[col]
                let u = head
                u.update(from: mid, count: BTC)
                patch.absent.withUnsafeBufferPointer { a in
                    AttributionKernels.sgemm(true, false, M: 1, N: BTC, K: prev, A: a.baseAddress! + col, lda: nB,
                                             B: record!, ldb: BTC, beta: 1, C: u, ldc: BTC)
                }
                mlpIn = UnsafePointer(u)
            }
            let stats2 = ln2Stats.base + l * 2 * capacity
            AttributionKernels.layerNormForward(out: ln, mean: stats2, rstd: stats2 + capacity, inp: mlpIn,
                                                weight: w.ln2Weight, bias: w.ln2Bias, N: BT, C: C, eps: eps)
            let pre = fcPre.base + l * capacity * F
            for row in 0..<BT { (pre + row * F).update(from: w.fcBias, count: F) }
            AttributionKernels.sgemm(false, false, M: BT, N: F, K: C, A: ln, lda: C, B: w.fcWeight, ldb: F, beta: 1, C: pre, ldc: F)
            let act = scratchF.base
            AttributionKernels.geluForward(out: act, inp: pre, count: BT * F)
            let mlpOut = head
            let fm = g.mlpForward(layer: l)
            if let r = replace[fm] {
                mlpOut.update(from: r, count: BTC)
            } else {
                for row in 0..<BT { (mlpOut + row * C).update(from: w.fcProjBias, count: C) }
                AttributionKernels.sgemm(false, false, M: BT, N: C, K: F, A: act, lda: F, B: w.fcProjWeight, ldb: C, beta: 1, C: mlpOut, ldc: C)
            }
            recordOutput(fm, mlpOut)
            let xNext = resid.base + (l + 1) * capacity * C
            for i in 0..<BTC { xNext[i] = mid[i] + mlpOut[i] }
        }

        // Final LayerNorm and unembedding at the read-out rows only.
        let xL = resid.base + L * capacity * C
        let rows = batch.readRows
        for b in 0..<B { (lnfIn.base + b * C).update(from: xL + rows[b] * C, count: C) }
        if let patch, patch.rebuildLogits, patch.hasAbsent[g.logitsBackward] {
            let col = g.logitsBackward
            for f in 0..<g.nForward where patch.absent[f * nB + col] != 0 {
                let d = record! + f * BTC
                for b in 0..<B {
                    let dst = lnfIn.base + b * C, src = d + rows[b] * C
                    for i in 0..<C { dst[i] += patch.absent[f * nB + col] * src[i] }
                }
            }
        }
        AttributionKernels.layerNormForward(out: lnfOut.base, mean: lnfStats.base, rstd: lnfStats.base + batchCapacity,
                                            inp: lnfIn.base, weight: p.lnfWeight, bias: p.lnfBias, N: B, C: C, eps: eps)
        AttributionKernels.sgemm(false, true, M: B, N: V, K: C, A: lnfOut.base, lda: C, B: p.wte, ldb: C, beta: 0, C: logits.base, ldc: V)
        return logits.base
    }

    /// Backward pass of the last (unpatched) `forward`: given `dLogits (B, V)` = ∂metric/∂logits at the
    /// read-out positions, adds ∂metric/∂(input of column b) to `grads + b·B·T·C` for every column b
    /// (`[nBackward, B·T·C]`). Gradients do not pass through nodes whose output was replaced.
    public func backward(dLogits: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        guard let batch = lastBatch else { preconditionFailure("backward needs a forward pass first") }
        precondition(!lastWasPatched, "backward through a patched forward pass is not supported")
        let B = batch.batch, T = batch.seqLen, BT = B * T, BTC = BT * C
        let p = parameters.views, g = graph
        let rows = batch.readRows
        // Positions after a sample's read-out position get no gradient (causal attention).
        let rowLimit = batch.lengths

        // Unembedding and LN_f: only the read-out rows of the final residual get a gradient.
        AttributionKernels.sgemm(false, false, M: B, N: C, K: V, A: dLogits, lda: V, B: p.wte, ldb: C, beta: 0, C: dLnf.base, ldc: C)
        let dx = dResid.base
        dx.update(repeating: 0, count: BTC)
        let gLogits = grads + g.logitsBackward * BTC
        for b in 0..<B {
            AttributionKernels.layerNormInputGradRow(acc1: dx + rows[b] * C, acc2: gLogits + rows[b] * C, dout: dLnf.base + b * C,
                                                     inp: lnfIn.base + b * C, weight: p.lnfWeight,
                                                     mean: lnfStats.base[b], rstd: lnfStats.base[batchCapacity + b], C: C)
        }

        func activeRows(_ body: (Int) -> Void) {
            for b in 0..<B { for t in 0..<rowLimit[b] { body(b * T + t) } }
        }

        for l in stride(from: L - 1, through: 0, by: -1) {
            let w = p.layers[l]
            let x = resid.base + l * capacity * C
            let mid = residMid.base + l * capacity * C
            let dmid = dMid.base
            dmid.update(from: dx, count: BTC)

            // MLP ℓ: gradient at its input (before LN2), then into the residual.
            if !lastReplaced.contains(g.mlpForward(layer: l)) {
                let pre = fcPre.base + l * capacity * F
                let dact = scratchF.base
                AttributionKernels.sgemm(false, true, M: BT, N: F, K: C, A: dx, lda: C, B: w.fcProjWeight, ldb: C, beta: 0, C: dact, ldc: F)
                AttributionKernels.geluBackwardInPlace(d: dact, inp: pre, count: BT * F)
                let dln = dTmp.base
                AttributionKernels.sgemm(false, true, M: BT, N: C, K: F, A: dact, lda: F, B: w.fcWeight, ldb: F, beta: 0, C: dln, ldc: C)
                let stats2 = ln2Stats.base + l * 2 * capacity
                let gm = grads + g.mlpBackward(layer: l) * BTC
                activeRows { r in
                    AttributionKernels.layerNormInputGradRow(acc1: dmid + r * C, acc2: gm + r * C, dout: dln + r * C, inp: mid + r * C,
                                                             weight: w.ln2Weight, mean: stats2[r], rstd: stats2[capacity + r], C: C)
                }
            }

            // Attention ℓ: through W_O, the attention pattern, and each head's own q/k/v input.
            dx.update(from: dmid, count: BTC)
            let cut = (0..<H).map { lastReplaced.contains(g.headForward(layer: l, head: $0)) }
            if cut.contains(false) {
                let dz = scratchC.base + capacity * C
                AttributionKernels.sgemm(false, true, M: BT, N: C, K: C, A: dmid, lda: C, B: w.attnProjWeight, ldb: C, beta: 0, C: dz, ldc: C)
                for h in 0..<H where cut[h] {
                    for row in 0..<BT { (dz + row * C + h * dh).update(repeating: 0, count: dh) }
                }
                let q = qkv.base + l * capacity * 3 * C
                let pat = pattern.base + l * batchCapacity * H * seqCapacity * seqCapacity
                AttributionKernels.attentionBackward(dqkv: dQKV.base, dz: dz, qkv: q, pattern: pat, rowLimit: rowLimit,
                                                     B: B, T: T, C: C, H: H)
                let stats1 = ln1Stats.base + l * 2 * capacity
                let dln = dTmp.base
                for j in QKV.allCases {
                    for h in 0..<H where !cut[h] {
                        let col = j.rawValue * C + h * dh
                        AttributionKernels.sgemm(false, true, M: BT, N: C, K: dh, A: dQKV.base + col, lda: 3 * C,
                                                 B: w.attnWeight + col, ldb: 3 * C, beta: 0, C: dln, ldc: C)
                        let gh = grads + g.headBackward(layer: l, head: h, qkv: j) * BTC
                        activeRows { r in
                            AttributionKernels.layerNormInputGradRow(acc1: dx + r * C, acc2: gh + r * C, dout: dln + r * C, inp: x + r * C,
                                                                     weight: w.ln1Weight, mean: stats1[r], rstd: stats1[capacity + r], C: C)
                        }
                    }
                }
            }
        }
    }
}
