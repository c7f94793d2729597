import Foundation
import Numerics
import Models

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
/// - `backward` (InstrumentedGPT2+Backward.swift) takes ∂metric/∂logits at the read-out positions and
///   accumulates the gradient with respect to every downstream input (before LN1 per head and q/k/v, before
///   LN2, before LN_f) into `[nBackward, B·T·C]`. No parameter gradients are formed.
///
/// Value biases: b_O' = b_O + Σ_h b_V,h W_O,h and v carries no bias, so `hook_result` has no bias term.
/// Only the logits at each sample's position length − 1 are computed. Positions run 0 … T−1; padded keys
/// (past a sample's length) are masked.
public final class InstrumentedGPT2: InstrumentedEngine, @unchecked Sendable {
    public let parameters: ParameterArena
    public let config: GPT2Config

    public init(parameters: ParameterArena, threads: Int = max(1, BLAS.threads)) {
        self.parameters = parameters
        config = parameters.config
        super.init(graph: AttributionGraph(nLayers: config.nLayer, nHeads: config.nHead), threads: threads, layers: config.nLayer,
                   heads: config.nHead, width: config.nEmbd, headSize: config.headSize, vocab: config.vocabSize, mlpWidth: config.mlpSize,
                   eps: Float(config.layerNormEpsilon), keepsResidMid: true)
        refreshFoldedBiases()
    }

    /// Recomputes b_O' = b_O + b_V · W_O from the arena; call after loading another checkpoint into it.
    public func refreshFoldedBiases() {
        let p = parameters.views
        for l in 0..<L {
            let bv = p.layers[l].attnBias + 2 * C, wo = p.layers[l].attnProjWeight, bo = p.layers[l].attnProjBias
            let out = foldedBias.base + l * C
            out.update(from: bo, count: C)
            Matmul.sgemm(false, false, M: 1, N: C, K: C, alpha: 1, A: bv, lda: C, B: wo, ldb: C, beta: 1, C: out, ldc: C)
        }
    }

    /// How `forward` writes node outputs into a record buffer `[nForward, B·T·C]`: copied (`set`), subtracted from
    /// what is there (`subtract`), or negated (`negate`: what `subtract` gives on a zeroed buffer, without zeroing it);
    /// or, for a batch of `copies` stacked copies (`PromptBatch.repeated`), only the last copy subtracted into a
    /// buffer of one copy (`subtractLastCopy`: EAP-IG's last integration step, whose run is the clean run).
    public enum RecordMode: Sendable, Equatable {
        case set, subtract, negate, subtractLastCopy(of: Int)

        /// Which of `rows` rows (or floats) this mode records: all, or the last copy's.
        func recordedRows(_ rows: Int) -> Range<Int> {
            guard case .subtractLastCopy(let copies) = self else { return 0..<rows }
            return (rows - rows / copies)..<rows
        }

        /// Writes `count` floats of a node's output `src` into its record `dst` as this mode says.
        @inline(__always)
        func write(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count n: Int) {
            switch self {
            case .set: dst.update(from: src, count: n)
            case .subtract, .subtractLastCopy: for i in 0..<n { dst[i] -= src[i] }
            case .negate: for i in 0..<n { dst[i] = -src[i] }
            }
        }
    }

    /// Patching of downstream inputs for circuit evaluation: with `differences` = the record buffer of this
    /// same run in `.subtract` mode (it holds corrupted − current) or `.negate` mode (0 − current, zero ablation), each
    /// rebuilt input of column b becomes residual + Σ_{f < prev(b)} absent[f, b] · differences[f]
    /// (inputs whose column has no absent edge are left as they are: their update is exactly 0).
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

    /// Runs the model on `clean ? batch.cleanTokens : batch.corruptedTokens` with the batch's lengths.
    ///
    /// - `record`: buffer `[nForward, B·T·C]` receiving node outputs (`recordMode`).
    /// - `replace`: forward index → output `(B, T, C)` used instead of the node's own (index 0: the token
    ///   embedding; the positional embedding is still added). Replaced nodes pass no gradient in `backward`.
    /// - `patch`: rebuild downstream inputs from `record` (which must be given, in `.subtract` or `.negate` mode).
    /// - `computeLogits`: false skips the unembedding (when only the gradient of a logit difference is needed).
    /// - `readOutOnly`: only the read-out logits are read: the last MLP runs on the read-out rows alone (unless its
    ///   output is replaced), so the final residual and that MLP's recorded output hold only those rows (`.set`
    ///   zeroes the MLP's other rows). Its output reaches nothing but the logits, and its gradient comes from them
    ///   alone, so `backward` still gives every gradient (it takes that MLP on the same rows).
    /// Returns a pointer to the logits at the read-out positions `(B, V)`, valid until the next call.
    @discardableResult
    public func forward(_ batch: PromptBatch, clean: Bool = true,
                        record: UnsafeMutablePointer<Float>? = nil, recordMode: RecordMode = .set,
                        replace: [Int: UnsafePointer<Float>] = [:], patch: Patch? = nil,
                        computeLogits: Bool = true, readOutOnly: Bool = false) -> UnsafeMutablePointer<Float> {
        let B = batch.batch, T = batch.seqLen, BT = B * T, BTC = BT * C
        beginForward(batch, maxPositions: config.nPositions, record: record, recordMode: recordMode, replace: replace, patch: patch,
                     readOutOnly: readOutOnly)
        let p = parameters.views, g = graph
        func recordOutput(_ f: Int, _ out: UnsafePointer<Float>) { self.record(f, out, into: record, mode: recordMode, count: BTC) }

        // Embedding: x0 = W_E[token] (hook_embed, or its replacement) + W_pos[t] (hook_pos_embed).
        let x0 = resid.base
        let emb = scratchC.base + 2 * capacity * C
        if let r = replace[0] {
            emb.update(from: r, count: BTC)
        } else {
            tokenEmbedding(batch, clean: clean, into: emb)
        }
        recordOutput(0, emb)
        for row in 0..<BT {
            let e = emb + row * C, pe = p.wpe + (row % T) * C, x = x0 + row * C
            for i in 0..<C { x[i] = e[i] + pe[i] }
        }

        lastLengths.withUnsafeBufferPointer { lengthsBuf in
            let lengths = lengthsBuf.baseAddress!
            for l in 0..<L {
                let w = p.layers[l]
                let x = layerSlice(resid, l, width: C), mid = layerSlice(residMid, l, width: C), q = layerSlice(qkv, l, width: 3 * C)
                let ln = scratchC.base, z = scratchC.base + capacity * C
                let head = scratchC.base + 2 * capacity * C, attnOut = scratchC.base + 3 * capacity * C
                let stats1 = layerSlice(norm1Stats, l, width: 2)

                // q, k, v of every head from LN1 of the residual (value bias folded away) ...
                LayerNorm.forward(out: ln, mean: stats1, rstd: stats1 + capacity, inp: x, weight: w.ln1Weight, bias: w.ln1Bias,
                                  N: BT, C: C, eps: eps, threads: threads)
                // (A patch that rebuilds every q/k/v input of the layer overwrites all of them: then the shared product is skipped.)
                let rebuildsAll = patch.map { p in p.rebuildHeads[l] && (0..<(3 * H)).allSatisfy { p.hasAbsent[g.headBackward(layer: l, head: 0, qkv: .q) + $0] } } ?? false
                if !rebuildsAll {
                    for row in 0..<BT {
                        let dst = q + row * 3 * C
                        dst.update(from: w.attnBias, count: 2 * C)
                        (dst + 2 * C).update(repeating: 0, count: C)
                    }
                    Matmul.sgemm(false, false, M: BT, N: 3 * C, K: C, alpha: 1, A: ln, lda: C, B: w.attnWeight, ldb: 3 * C,
                                 beta: 1, C: q, ldc: 3 * C)
                }
                // ... except the inputs a patch rebuilds: head h's input j becomes x + Σ_f absent[f, b] · record[f].
                // Inputs without absent edges are left alone (their update is exactly 0), so a circuit holding every
                // edge reproduces the clean run bit for bit.
                if let patch, patch.rebuildHeads[l] {
                    let U = patchInputs.base
                    forEachRebuiltColumn(rebuildHeadInputs(layer: l, x: x, patch: patch, record: record!, count: BTC)) { c, norm, stats, threads in
                        let j = c / H, h = c % H
                        LayerNorm.forward(out: norm, mean: stats, rstd: stats + capacity, inp: U + c * BTC,
                                          weight: w.ln1Weight, bias: w.ln1Bias, N: BT, C: C, eps: eps, threads: threads)
                        let col = j * C + h * dh
                        for row in 0..<BT {
                            let dst = q + row * 3 * C + col
                            if j < 2 { dst.update(from: w.attnBias + col, count: dh) } else { dst.update(repeating: 0, count: dh) }
                        }
                        Matmul.sgemm(false, false, M: BT, N: dh, K: C, alpha: 1, A: norm, lda: C, B: w.attnWeight + col, ldb: 3 * C,
                                     beta: 1, C: q + col, ldc: 3 * C)
                    }
                }
                Attention.forward(out: z, att: patternSlice(layer: l), qkv: q, lengths: lengths, B: B, T: T, C: C, NH: H, threads: threads)

                // Attention output (z·W_O + b_O', each head's result recorded or replaced: InstrumentedEngine).
                // (ln is free once q, k and v are formed: the heads' outputs may use it.)
                attentionOutput(layer: l, z: z, wo: w.attnProjWeight, transposed: false, head: head, spare: ln, attnOut: attnOut, rows: BT,
                                replace: replace, record: record, mode: recordMode)
                for i in 0..<BTC { mid[i] = x[i] + attnOut[i] }

                // MLP on its own input (hook_mlp_in: the residual, or its rebuilt copy).
                var mlpIn = UnsafePointer(mid)
                if let patch, patch.rebuildMLP[l], patch.hasAbsent[g.mlpBackward(layer: l)] {
                    rebuildMLPInput(layer: l, base: mid, added: attnOut, into: head, patch: patch, record: record!, count: BTC)
                    mlpIn = UnsafePointer(head)
                }
                let stats2 = layerSlice(norm2Stats, l, width: 2)
                let pre = layerSlice(mlpPre, l, width: F), act = scratchF.base
                let xNext = layerSlice(resid, l + 1, width: C)
                if l == L - 1 && lastMLPReadOutOnly {
                    // The last MLP at the read-out rows only: gathered to (B, C) in z (free once the attention
                    // output is formed), its output in attnOut (free once mid holds x + attnOut).
                    let rows = batch.readRows
                    for (b, r) in rows.enumerated() { (z + b * C).update(from: mlpIn + r * C, count: C) }
                    LayerNorm.forward(out: ln, mean: stats2, rstd: stats2 + capacity, inp: z, weight: w.ln2Weight, bias: w.ln2Bias,
                                      N: B, C: C, eps: eps, threads: threads)
                    Matmul.forward(out: pre, inp: ln, weight: w.fcWeight, bias: w.fcBias, N: B, IC: C, OC: F, threads: threads)
                    GELU.forward(out: act, inp: pre, count: B * F, threads: threads)
                    Matmul.forward(out: attnOut, inp: act, weight: w.fcProjWeight, bias: w.fcProjBias, N: B, IC: F, OC: C, threads: threads)
                    recordReadOutRows(g.mlpForward(layer: l), attnOut, rows: rows, into: record, mode: recordMode, count: BTC)
                    for (b, r) in rows.enumerated() {
                        let dst = xNext + r * C, m = mid + r * C, o = attnOut + b * C
                        for i in 0..<C { dst[i] = m[i] + o[i] }
                    }
                    continue
                }
                LayerNorm.forward(out: ln, mean: stats2, rstd: stats2 + capacity, inp: mlpIn, weight: w.ln2Weight, bias: w.ln2Bias,
                                  N: BT, C: C, eps: eps, threads: threads)
                Matmul.forward(out: pre, inp: ln, weight: w.fcWeight, bias: w.fcBias, N: BT, IC: C, OC: F, threads: threads)
                GELU.forward(out: act, inp: pre, count: BT * F, threads: threads)
                let mlpOut = head
                mlpOutput(layer: l, into: mlpOut, rows: BT, replace: replace, record: record, mode: recordMode) {
                    Matmul.forward(out: mlpOut, inp: act, weight: w.fcProjWeight, bias: w.fcProjBias, N: BT, IC: F, OC: C, threads: threads)
                }
                for i in 0..<BTC { xNext[i] = mid[i] + mlpOut[i] }
            }
        }

        // Final LayerNorm and unembedding at the read-out rows only.
        gatherReadOut(batch, patch: patch, record: record)
        LayerNorm.forward(out: lnfOut.base, mean: lnfStats.base, rstd: lnfStats.base + batchCapacity, inp: lnfIn.base,
                          weight: p.lnfWeight, bias: p.lnfBias, N: B, C: C, eps: eps, threads: threads)
        if computeLogits {
            Matmul.sgemm(false, true, M: B, N: V, K: C, alpha: 1, A: lnfOut.base, lda: C, B: p.wte, ldb: C, beta: 0, C: logits.base, ldc: V)
        }
        return logits.base
    }
}
