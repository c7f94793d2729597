import Foundation
import Numerics

extension InstrumentedGPT2 {
    /// Backward pass of the last (unpatched) `forward`: given `dLogits (B, V)` = ∂metric/∂logits at the
    /// read-out positions, adds ∂metric/∂(input of column b) to `grads + b·B·T·C` for every column b
    /// (`[nBackward, B·T·C]`): for `logits` the final residual before LN_f (`blocks.{L−1}.hook_resid_post`),
    /// for MLP ℓ its input before LN2 (`hook_mlp_in`), for head h of layer ℓ each of its own q, k and v inputs
    /// before LN1 (`hook_q_input[h]` …). Gradients do not pass through nodes whose output was replaced.
    /// Rows past a sample's length receive nothing (they cannot reach the metric).
    ///
    /// `copies` > 1: the forward batch was `base.repeated(copies)`; the gradients of all copies of a sample are
    /// summed (in copy order) into `grads` laid out for the base batch `[nBackward, B/copies·T·C]`.
    public func backward(dLogits: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, copies: Int = 1) {
        let batch = backwardBatch(copies: copies)
        let B = batch.batch, T = batch.seqLen, BT = B * T, BTC = BT * C
        let baseB = B / copies, baseBTC = baseB * T * C
        let p = parameters.views, g = graph
        let rows = batch.readRows

        lastLengths.withUnsafeBufferPointer { lengthsBuf in
            let lengths = lengthsBuf.baseAddress!
            // Unembedding and LN_f: only the read-out rows of the final residual get a gradient.
            AttributionKernels.unembeddingBackward(dlnf: dLnf.base, dlogits: dLogits, wte: p.wte, B: B, V: V, C: C)
            let dx = dResid.base
            dx.update(repeating: 0, count: BTC)
            let gLogits = grads + g.logitsBackward * baseBTC
            for b in 0..<B {
                let baseRow = rows[b] - (b / baseB) * baseB * T
                AttributionKernels.layerNormInputGradRow(acc1: dx + rows[b] * C, acc2: gLogits + baseRow * C, dout: dLnf.base + b * C,
                                                         inp: lnfIn.base + b * C, weight: p.lnfWeight,
                                                         mean: lnfStats.base[b], rstd: lnfStats.base[batchCapacity + b], C: C)
            }

            for l in stride(from: L - 1, through: 0, by: -1) {
                let w = p.layers[l]
                let x = layerSlice(resid, l, width: C), mid = layerSlice(residMid, l, width: C)
                let dmid = dMid.base, dln = dTmp.base
                dmid.update(from: dx, count: BTC)

                // MLP ℓ: gradient at its input (before LN2), added to the residual gradient.
                if l == L - 1 && lastMLPReadOutOnly {
                    lastMLPBackwardAtReadOutRows(dx: dx, dmid: dmid, mid: mid, grads: grads + g.mlpBackward(layer: l) * baseBTC,
                                                 rows: rows, baseB: baseB, T: T)
                } else if !lastReplaced.contains(g.mlpForward(layer: l)) {
                    let pre = layerSlice(mlpPre, l, width: F), dact = scratchF.base
                    Matmul.sgemm(false, true, M: BT, N: F, K: C, alpha: 1, A: dx, lda: C, B: w.fcProjWeight, ldb: C, beta: 0, C: dact, ldc: F)
                    GELU.backward(dinp: dact, inp: pre, dout: dact, count: BT * F, threads: threads)
                    Matmul.sgemm(false, true, M: BT, N: C, K: F, alpha: 1, A: dact, lda: F, B: w.fcWeight, ldb: F, beta: 0, C: dln, ldc: C)
                    let stats2 = layerSlice(norm2Stats, l, width: 2)
                    AttributionKernels.layerNormInputGrad(acc1: dmid, acc2: grads + g.mlpBackward(layer: l) * baseBTC, dout: dln, inp: mid,
                                                          weight: w.ln2Weight, mean: stats2, rstd: stats2 + capacity,
                                                          lengths: lengths, B: baseB, copies: copies, T: T, C: C, threads: threads)
                }

                // Attention ℓ: through W_O, the pattern, and each head's own q, k and v input (before LN1).
                dx.update(from: dmid, count: BTC)
                let cut = replacedHeads(layer: l)
                guard cut.contains(false) else { continue }
                let dz = scratchC.base + capacity * C
                Matmul.sgemm(false, true, M: BT, N: C, K: C, alpha: 1, A: dmid, lda: C, B: w.attnProjWeight, ldb: C, beta: 0, C: dz, ldc: C)
                cutReplacedHeads(dz, cut, rows: BT)
                let q = layerSlice(qkv, l, width: 3 * C)
                Attention.backward(dqkv: dQKV.base, scratch: attScratch.base, dout: dz, qkv: q, att: patternSlice(layer: l), lengths: lengths,
                                   B: B, T: T, C: C, NH: H, threads: threads)
                let stats1 = layerSlice(norm1Stats, l, width: 2)
                // Each input's own gradient, added to the residual's too, in two halves side by side: the second half's
                // product goes to the dz slot (free once Attention.backward has read it), its residual gradient to dMid
                // (free once dz is formed).
                forEachHeadInputGradient(cut: cut, scratch: (dln, dz), dx: dx, spare: dmid, count: BTC) { c, out, acc, threads in
                    let j = QKV(rawValue: c / H)!, h = c % H, col = j.rawValue * C + h * dh
                    Matmul.sgemm(false, true, M: BT, N: C, K: dh, alpha: 1, A: dQKV.base + col, lda: 3 * C,
                                 B: w.attnWeight + col, ldb: 3 * C, beta: 0, C: out, ldc: C)
                    AttributionKernels.layerNormInputGrad(acc1: acc, acc2: grads + g.headBackward(layer: l, head: h, qkv: j) * baseBTC,
                                                          dout: out, inp: x, weight: w.ln1Weight, mean: stats1, rstd: stats1 + capacity,
                                                          lengths: lengths, B: baseB, copies: copies, T: T, C: C, threads: threads)
                }
            }
        }
    }

    /// The last MLP's backward after a forward that ran it at the read-out rows alone: the residual gradient `dx`
    /// is nonzero only there (it comes from the logits), so the MLP's products take those B rows, gathered, with
    /// the activations the forward kept for them in gathered order (pre-activations and LN2 statistics at b). Each
    /// row's input gradient goes to `dmid` and to the MLP's gradient column `grads` (at the base sample's row).
    private func lastMLPBackwardAtReadOutRows(dx: UnsafePointer<Float>, dmid: UnsafeMutablePointer<Float>, mid: UnsafePointer<Float>,
                                              grads: UnsafeMutablePointer<Float>, rows: [Int], baseB: Int, T: Int) {
        let B = rows.count, w = parameters.views.layers[L - 1]
        let gathered = scratchC.base, dln = scratchC.base + 2 * capacity * C
        let pre = layerSlice(mlpPre, L - 1, width: F), dact = scratchF.base, stats2 = layerSlice(norm2Stats, L - 1, width: 2)
        for (b, r) in rows.enumerated() { (gathered + b * C).update(from: dx + r * C, count: C) }
        Matmul.sgemm(false, true, M: B, N: F, K: C, alpha: 1, A: gathered, lda: C, B: w.fcProjWeight, ldb: C, beta: 0, C: dact, ldc: F)
        GELU.backward(dinp: dact, inp: pre, dout: dact, count: B * F, threads: threads)
        Matmul.sgemm(false, true, M: B, N: C, K: F, alpha: 1, A: dact, lda: F, B: w.fcWeight, ldb: F, beta: 0, C: dln, ldc: C)
        for (b, r) in rows.enumerated() {
            let baseRow = r - (b / baseB) * baseB * T
            AttributionKernels.layerNormInputGradRow(acc1: dmid + r * C, acc2: grads + baseRow * C, dout: dln + b * C, inp: mid + r * C,
                                                     weight: w.ln2Weight, mean: stats2[b], rstd: stats2[capacity + b], C: C)
        }
    }
}
