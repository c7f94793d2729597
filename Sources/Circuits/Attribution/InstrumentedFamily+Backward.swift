import Foundation
import Numerics

extension InstrumentedFamily {
    /// Backward pass of the last (unpatched) forward, with `InstrumentedGPT2.backward`'s contract: given
    /// `dLogits (B, V)`, adds ∂metric/∂(input of column b) to `grads + b·B/copies·T·C` for every column — the final
    /// residual before the final norm (`logits`), each MLP's input before its norm (`hook_mlp_in`), and each query
    /// head's own q, k and v input before the attention norm (for Llama's grouped K/V the gradient of head h's
    /// k / v input flows only through head h's attention pattern). Replaced nodes pass no gradient; rows past a
    /// sample's length receive nothing. `copies` > 1: the batch was `base.repeated(copies)`, copies are summed.
    public func backward(dLogits: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, copies: Int) {
        let batch = backwardBatch(copies: copies)
        let B = batch.batch, T = batch.seqLen, BT = B * T, BTC = BT * C
        let baseB = B / copies, baseBTC = baseB * T * C
        let p = parameters.base, lay = layout, g = graph
        let rows = batch.readRows

        /// acc1 += ∂/∂inp and acc2 (base rows) += ∂/∂inp of the norm `first` (attention) or of the MLP of layer l.
        /// `workers`: the thread count of the norm's kernel (default: the model's).
        func normInputGrad(first: Bool, layer l: Int, acc1: UnsafeMutablePointer<Float>, acc2: UnsafeMutablePointer<Float>,
                           dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, stats: UnsafePointer<Float>, lengths: UnsafePointer<Int32>,
                           workers: Int? = nil) {
            let w = lay.blocks[l], n = workers ?? threads
            if llama {
                AttributionKernels.rmsNormInputGrad(acc1: acc1, acc2: acc2, dout: dout, inp: inp, weight: p + (first ? w.norm1 : w.norm2!),
                                                    rstd: stats + capacity, lengths: lengths, B: baseB, copies: copies, T: T, C: C, threads: n)
            } else {
                AttributionKernels.layerNormInputGrad(acc1: acc1, acc2: acc2, dout: dout, inp: inp, weight: p + w.norm1,
                                                      mean: stats, rstd: stats + capacity, lengths: lengths, B: baseB, copies: copies,
                                                      T: T, C: C, threads: n)
            }
        }

        lastLengths.withUnsafeBufferPointer { lengthsBuf in
            let lengths = lengthsBuf.baseAddress!
            // Unembedding and final norm: only the read-out rows of the final residual get a gradient.
            AttributionKernels.unembeddingBackward(dlnf: dLnf.base, dlogits: dLogits, wte: p + lay.lmHead, B: B, V: V, C: C)
            let dx = dResid.base
            dx.update(repeating: 0, count: BTC)
            let gLogits = grads + g.logitsBackward * baseBTC
            for b in 0..<B {
                let baseRow = rows[b] - (b / baseB) * baseB * T
                if llama {
                    AttributionKernels.rmsNormInputGradRow(acc1: dx + rows[b] * C, acc2: gLogits + baseRow * C, dout: dLnf.base + b * C,
                                                           inp: lnfIn.base + b * C, weight: p + lay.finalNorm,
                                                           rstd: lnfStats.base[batchCapacity + b], C: C)
                } else {
                    AttributionKernels.layerNormInputGradRow(acc1: dx + rows[b] * C, acc2: gLogits + baseRow * C, dout: dLnf.base + b * C,
                                                             inp: lnfIn.base + b * C, weight: p + lay.finalNorm,
                                                             mean: lnfStats.base[b], rstd: lnfStats.base[batchCapacity + b], C: C)
                }
            }

            for l in stride(from: L - 1, through: 0, by: -1) {
                let w = lay.blocks[l]
                let x = layerSlice(resid, l, width: C)
                // dy: gradient of the block output. Llama: the MLP adds into dy, which becomes the gradient of resid_mid,
                // the attention's output; Phi: attention and MLP both read x and both start from dy.
                let dy = dMid.base, dln = dTmp.base
                dy.update(from: dx, count: BTC)

                if !lastReplaced.contains(g.mlpForward(layer: l)) {
                    let pre = layerSlice(mlpPre, l, width: F), dact = dF.base, dgate = dF.base + capacity * F
                    Linear.backward(dx: dact, lddx: F, dweight: nil, dbias: nil, dy: dy, lddy: C, x: dy, ldx: C, weight: p + w.down,
                                    N: BT, IC: F, OC: C, threads: threads)
                    if llama {
                        SwiGLU.backward(dgate: dgate, dup: dact, dout: dact, gate: pre, up: layerSlice(mlpUp, l, width: F), count: BT * F, threads: threads)
                        Linear.backward(dx: dln, lddx: C, dweight: nil, dbias: nil, dy: dgate, lddy: F, x: dgate, ldx: F, weight: p + w.gate!,
                                        N: BT, IC: C, OC: F, threads: threads)
                        Linear.backward(dx: dln, lddx: C, dweight: nil, dbias: nil, dy: dact, lddy: F, x: dact, ldx: F, weight: p + w.up,
                                        N: BT, IC: C, OC: F, accumulateInput: true, threads: threads)
                        normInputGrad(first: false, layer: l, acc1: dy, acc2: grads + g.mlpBackward(layer: l) * baseBTC, dout: dln,
                                      inp: layerSlice(residMid, l, width: C), stats: layerSlice(norm2Stats, l, width: 2), lengths: lengths)
                    } else {
                        GELU.backward(dinp: dact, inp: pre, dout: dact, count: BT * F, threads: threads)
                        Linear.backward(dx: dln, lddx: C, dweight: nil, dbias: nil, dy: dact, lddy: F, x: dact, ldx: F, weight: p + w.up,
                                        N: BT, IC: C, OC: F, threads: threads)
                        normInputGrad(first: false, layer: l, acc1: dx, acc2: grads + g.mlpBackward(layer: l) * baseBTC, dout: dln,
                                      inp: x, stats: layerSlice(norm2Stats, l, width: 2), lengths: lengths)
                    }
                }

                // Attention ℓ: through W_O, the pattern, rotary, and each head's own q, k and v input (before the norm).
                if llama { dx.update(from: dy, count: BTC) }
                let cut = replacedHeads(layer: l)
                guard cut.contains(false) else { continue }
                let dz = scratchC.base + capacity * C
                Linear.backward(dx: dz, lddx: C, dweight: nil, dbias: nil, dy: dy, lddy: C, x: dy, ldx: C, weight: p + w.o,
                                N: BT, IC: C, OC: C, threads: threads)
                cutReplacedHeads(dz, cut, rows: BT)
                let q = layerSlice(qkv, l, width: 3 * C)
                Attention.backward(dqkv: dQKV.base, scratch: attScratch.base, dout: dz, qkv: q, att: patternSlice(layer: l), lengths: lengths,
                                   B: B, T: T, C: C, NH: H, threads: threads)
                Rotary.apply(dQKV.base, table: rotary, N: BT, T: T, heads: H, headSize: dh, rowStride: 3 * C, inverse: true, threads: threads)
                Rotary.apply(dQKV.base + C, table: rotary, N: BT, T: T, heads: H, headSize: dh, rowStride: 3 * C, inverse: true, threads: threads)
                let stats1 = layerSlice(norm1Stats, l, width: 2)
                // Each input's own gradient, added to the residual's too, in two halves side by side (as GPT-2's): the
                // second half's product goes to the dz slot and its residual gradient to dy, both free once dz is formed.
                forEachHeadInputGradient(cut: cut, scratch: (dln, dz), dx: dx, spare: dy, count: BTC) { c, out, acc, workers in
                    let j = QKV(rawValue: c / H)!, h = c % H
                    let (weight, _) = projection(j, head: h, layer: l)
                    Matmul.sgemm(false, false, M: BT, N: C, K: dh, alpha: 1, A: dQKV.base + j.rawValue * C + h * dh, lda: 3 * C,
                                 B: weight, ldb: C, beta: 0, C: out, ldc: C)
                    normInputGrad(first: true, layer: l, acc1: acc, acc2: grads + g.headBackward(layer: l, head: h, qkv: j) * baseBTC,
                                  dout: out, inp: x, stats: stats1, lengths: lengths, workers: workers)
                }
            }
        }
    }
}
