import Foundation
import Support
import Numerics

/// Bad input to the model: token ids, batch shapes, lengths, positions, labels.
public struct ModelError: UserFacingError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// GPT-2 (HF `GPT2LMHeadModel`; eval mode unless `forwardLoss` is given a `DropoutPlan`) on CPU, llm.c style: parameters in one arena, every
/// activation of a (B, T) batch in another, each layer a forward/backward pair of kernels.
///
/// Usage, training:
///
///     let model = GPT2(params: try HFCheckpoint.load(folder: url), threads: 2)
///     model.zeroGradients()
///     let loss = try model.forwardLoss(tokens: ids, batch: B, seqLen: T)   // mean next-token cross-entropy
///     model.backward()                                                     // adds ∂loss/∂θ into model.grads
///     adamw.step(params: model.params, grads: model.grads)
///
/// inference: `forward(tokens:batch:seqLen:lengths:)` (logits at every position) or
/// `forward(tokens:batch:seqLen:lengths:positions:)` (logits at one position per row, one GEMM of B rows).
///
/// Conventions: tokens are row-major (B, T); right padding is given by `lengths` (row b has lengths[b] real
/// tokens; padded keys are masked, padded positions produce outputs nobody should read); positions are
/// 0 ..< T for every row. Returned buffers point into the activation arena and are valid until the next call.
/// Threads: kernels split rows over `threads` workers; OpenBLAS uses its own setting (`BLAS.setThreads`).
///
/// The parameters (HF layout; replace their values with `HFCheckpoint.load(folder:into:)`), gradients, threads and
/// `lastLabelCount` (per-row losses are in `acts.losses`) come from `ModelParameters`.
public final class GPT2: ModelParameters<ParameterArena>, @unchecked Sendable {
    public let config: GPT2Config
    /// Every intermediate value of the last forward pass.
    public let acts: GPT2Activations
    /// When set, accumulates the wall time of every kernel (names like "fwd.matmul", "bwd.attention").
    public var phaseTimer: PhaseTimer?

    public override init(params: ParameterArena, threads: Int = max(1, BLAS.threads)) {
        config = params.config
        acts = GPT2Activations(config: params.config)
        super.init(params: params, threads: threads)
    }

    /// A randomly initialised model (see `ParameterArena.initializeGPT2`).
    public convenience init(config: GPT2Config, seed: UInt64, threads: Int = max(1, BLAS.threads)) {
        let p = ParameterArena(config: config)
        p.initializeGPT2(seed: seed)
        self.init(params: p, threads: threads)
    }

    public var layout: ParameterLayout { params.layout }

    // MARK: - Public forward entry points

    /// Logits at every position: returns a (B, T, V) view into the activation arena.
    public func forward(tokens: [Int], batch B: Int, seqLen T: Int, lengths: [Int]? = nil) throws -> UnsafeMutableBufferPointer<Float> {
        try prepare(tokens: tokens, B: B, T: T, lengths: lengths, fullLogits: true)
        pass.inference()
        runLayers()
        finalFull()
        return UnsafeMutableBufferPointer(start: acts.logits, count: B * T * config.vocabSize)
    }

    /// Logits at one position per row (`positions[b]` in 0 ..< T, e.g. lengths[b] − 1): returns a (B, V) view.
    /// The final LayerNorm and the unembedding run only on those B rows.
    public func forward(tokens: [Int], batch B: Int, seqLen T: Int, lengths: [Int]? = nil, positions: [Int]) throws -> UnsafeMutableBufferPointer<Float> {
        guard positions.count == B else { throw ModelError("positions: \(positions.count) values for batch size \(B)") }
        for (b, p) in positions.enumerated() where p < 0 || p >= T {
            throw ModelError("positions[\(b)] = \(p) is outside 0..<\(T)")
        }
        try prepare(tokens: tokens, B: B, T: T, lengths: lengths, fullLogits: false)
        pass.inference()
        runLayers()
        let C = config.nEmbd, V = config.vocabSize
        let resid = acts.residFinal
        for b in 0..<B { (acts.gathered + b * C).update(from: resid + (b * T + positions[b]) * C, count: C) }
        LayerNorm.forward(out: acts.lnf, mean: acts.lnfMean, rstd: acts.lnfRstd, inp: acts.gathered,
                          weight: params.views.lnfWeight, bias: params.views.lnfBias, N: B, C: C, eps: eps, threads: threads)
        Matmul.sgemm(false, true, M: B, N: V, K: C, alpha: 1, A: acts.lnf, lda: C, B: params.views.wte, ldb: C, beta: 0, C: acts.logits, ldc: V)
        return UnsafeMutableBufferPointer(start: acts.logits, count: B * V)
    }

    /// Training forward: logits at every position and the mean next-token cross-entropy, with labels shifted as
    /// transformers shifts them (position t predicts token t+1; the last position predicts nothing).
    /// Token t counts as a label when `labelMask[b·T + t]` (default all true; HF's −100 is false) and
    /// t < lengths[b]. Returns the mean over counted labels, exact to ~1e-7 (the softmax sum is in Double).
    /// The logits buffer is consumed (it is left holding dloss/dlogits for `backward`) unless `keepLogits`: then
    /// `acts.logits` still holds the logits (an evaluation reads its predictions there) and `backward` is refused.
    /// `dropout`: train-mode dropout with these probabilities and one mask key per row (nil: eval mode).
    public func forwardLoss(tokens: [Int], batch B: Int, seqLen T: Int, lengths: [Int]? = nil, labelMask: [Bool]? = nil,
                            dropout: DropoutPlan? = nil, keepLogits: Bool = false) throws -> Double {
        if let labelMask, labelMask.count != B * T {
            throw ModelError("labelMask: \(labelMask.count) values for batch \(B) × \(T)")
        }
        try pass.begin(dropout: dropout, batch: B)
        try prepare(tokens: tokens, B: B, T: T, lengths: lengths, fullLogits: true)
        for b in 0..<B {
            let L = Int(acts.lengths[b])
            for t in 0..<T {
                let n = b * T + t
                let ok = t + 1 < L && (labelMask?[n + 1] ?? true)
                acts.targets[n] = ok ? acts.tokens[n + 1] : -1
            }
        }
        var labels = 0
        for n in 0..<(B * T) where acts.targets[n] >= 0 { labels += 1 }
        guard labels > 0 else { throw ModelError("no position has a label to predict (batch \(B) × \(T))") }
        pass.labels(labels, backward: !keepLogits)
        runLayers()
        finalFull()
        // The loss, and dloss/dlogits for `backward` written over the logits while each row is in cache.
        let (sum, count) = phase("fwd.crossentropy") {
            CrossEntropy.forward(losses: acts.losses, stats: acts.ceStats, logits: acts.logits, targets: acts.targets,
                                 N: B * T, V: config.vocabSize, gradientScale: keepLogits ? nil : pass.scale, threads: threads)
        }
        return sum / Double(count)
    }

    // MARK: - Backward

    /// Adds the gradient of the last `forwardLoss`'s mean loss with respect to every parameter into `grads`
    /// (call `zeroGradients()` first unless accumulating). The tied `wte` receives both the unembedding and the
    /// embedding contributions. Reads dloss/dlogits, which `forwardLoss` left in the logits buffer.
    public func backward() {
        pass.takeForBackward()
        let a = acts, p = params.views, g = grads.views
        let B = a.B, T = a.T, N = B * T, C = config.nEmbd, V = config.vocabSize, NH = config.nHead
        let lengths: UnsafePointer<Int32>? = UnsafePointer(a.lengths)

        // Unembedding: dlogits (N, V) is in the logits buffer (`forwardLoss`); dlnf = dlogits · wte; dwte += dlogitsᵀ · lnf.
        phase("bwd.unembed") {
            Matmul.pair(threads: threads, {
                Matmul.sgemm(false, false, M: N, N: C, K: V, alpha: 1, A: a.logits, lda: V, B: p.wte, ldb: C, beta: 0, C: a.dBuf, ldc: C)
            }, {
                Matmul.sgemm(true, false, M: V, N: C, K: N, alpha: 1, A: a.logits, lda: V, B: a.lnf, ldb: C, beta: 1, C: g.wte, ldc: C)
            })
        }
        a.dResid.update(repeating: 0, count: N * C)
        phase("bwd.layernorm") {
            LayerNorm.backward(dinp: a.dResid, dweight: g.lnfWeight, dbias: g.lnfBias, scratch: a.lnScratch, dout: a.dBuf,
                               inp: a.residFinal, weight: p.lnfWeight, mean: a.lnfMean, rstd: a.lnfRstd, N: N, C: C, threads: threads)
        }

        for l in stride(from: config.nLayer - 1, through: 0, by: -1) {
            let la = a.layers[l], lp = p.layers[l], lg = g.layers[l]
            // MLP: residPost = residMid + drop(gelu(ln2 · Wfc + bfc) · Wproj + bproj).  dResid holds d residPost.
            let dMLPOut = residualBranchGradient(into: a.dBuf, .mlpOutput, layer: l)
            phase("bwd.matmul") {
                Matmul.backward(dinp: a.dMLP, dweight: lg.fcProjWeight, dbias: lg.fcProjBias, dout: dMLPOut, inp: la.mlpPost,
                                weight: lp.fcProjWeight, N: N, IC: 4 * C, OC: C, threads: threads)
            }
            phase("bwd.gelu") { GELU.backward(dinp: a.dMLP, inp: la.mlpPre, dout: a.dMLP, count: N * 4 * C, threads: threads) }
            phase("bwd.matmul") {
                Matmul.backward(dinp: a.dBuf, dweight: lg.fcWeight, dbias: lg.fcBias, dout: a.dMLP, inp: la.ln2,
                                weight: lp.fcWeight, N: N, IC: C, OC: 4 * C, threads: threads)
            }
            phase("bwd.layernorm") {
                LayerNorm.backward(dinp: a.dResid, dweight: lg.ln2Weight, dbias: lg.ln2Bias, scratch: a.lnScratch, dout: a.dBuf,
                                   inp: la.residMid, weight: lp.ln2Weight, mean: la.ln2Mean, rstd: la.ln2Rstd, N: N, C: C, threads: threads)
            }
            // Attention: residMid = residPre + drop(attn(ln1) · Wo + bo).  dResid now holds d residMid.
            let dAttOut = residualBranchGradient(into: a.dMLP, .attentionOutput, layer: l)
            phase("bwd.matmul") {
                Matmul.backward(dinp: a.dBuf, dweight: lg.attnProjWeight, dbias: lg.attnProjBias, dout: dAttOut, inp: la.attY,
                                weight: lp.attnProjWeight, N: N, IC: C, OC: C, threads: threads)
            }
            phase("bwd.attention") {
                Attention.backward(dqkv: a.dQKV, scratch: a.attScratch, dout: a.dBuf, qkv: la.qkv, att: la.att, lengths: lengths,
                                   B: B, T: T, C: C, NH: NH, threads: threads,
                                   dropout: dropout?.attn ?? 0, dropKey: attentionKeys(layer: l))
            }
            phase("bwd.matmul") {
                Matmul.backward(dinp: a.dBuf, dweight: lg.attnWeight, dbias: lg.attnBias, dout: a.dQKV, inp: la.ln1,
                                weight: lp.attnWeight, N: N, IC: C, OC: 3 * C, threads: threads)
            }
            phase("bwd.layernorm") {
                LayerNorm.backward(dinp: a.dResid, dweight: lg.ln1Weight, dbias: lg.ln1Bias, scratch: a.lnScratch, dout: a.dBuf,
                                   inp: a.residPre(l), weight: lp.ln1Weight, mean: la.ln1Mean, rstd: la.ln1Rstd, N: N, C: C, threads: threads)
            }
        }
        if let d = dropout, d.embd > 0 {
            phase("bwd.dropout") {
                Parallel.chunks(B, threads: threads) { _, rows in
                    for b in rows { Dropout.apply(a.dResid + b * T * C, count: T * C, p: d.embd, key: d.key(row: b, .embedding)) }
                }
            }
        }
        phase("bwd.embedding") {
            Embedding.backward(dwte: g.wte, dwpe: g.wpe, dout: a.dResid, tokens: a.tokens, B: B, T: T, C: C, threads: threads)
        }
    }

    /// The gradient reaching a residual branch's output from `acts.dResid`: dResid itself without dropout, else
    /// dResid ⊙ mask / (1 − p) written into `buffer` (N × C floats).
    private func residualBranchGradient(into buffer: UnsafeMutablePointer<Float>, _ place: DropoutPlan.Place, layer l: Int) -> UnsafePointer<Float> {
        guard let d = dropout, d.resid > 0 else { return UnsafePointer(acts.dResid) }
        let T = acts.T, C = config.nEmbd, dResid = acts.dResid!
        phase("bwd.dropout") {
            Parallel.chunks(acts.B, threads: threads) { _, rows in
                for b in rows {
                    Dropout.copy(buffer + b * T * C, dResid + b * T * C, count: T * C, p: d.resid, key: d.key(row: b, place, layer: l))
                }
            }
        }
        return UnsafePointer(buffer)
    }

    /// The attention-probability mask keys of layer `l` (per b · NH + h), nil without attention dropout.
    private func attentionKeys(layer l: Int) -> ((Int) -> UInt64)? {
        guard let d = dropout, d.attn > 0 else { return nil }
        let NH = config.nHead
        return { bh in d.key(row: bh / NH, .attention, layer: l, head: bh % NH) }
    }

    // MARK: - Internals

    private var eps: Float { Float(config.layerNormEpsilon) }

    /// Validates the inputs and copies them into the activation arena (Int32 ids, lengths).
    private func prepare(tokens: [Int], B: Int, T: Int, lengths: [Int]?, fullLogits: Bool) throws {
        try checkBatch(tokens, B: B, T: T, lengths: lengths, positions: config.nPositions, positionsKey: "n_positions", vocabSize: config.vocabSize)
        acts.reshape(B: B, T: T, fullLogits: fullLogits, threads: threads)
        for (n, id) in tokens.enumerated() { acts.tokens[n] = Int32(id) }
        for b in 0..<B { acts.lengths[b] = Int32(lengths?[b] ?? T) }
    }

    /// Embedding and every block, from `acts.tokens` to `acts.residFinal`.
    private func runLayers() {
        let a = acts, p = params.views
        let B = a.B, T = a.T, N = B * T, C = config.nEmbd, NH = config.nHead
        let padded = (0..<B).contains { Int(a.lengths[$0]) < T }
        let lengths: UnsafePointer<Int32>? = padded ? UnsafePointer(a.lengths) : nil
        let d = dropout
        phase("fwd.embedding") {
            Embedding.forward(out: a.embedded, tokens: a.tokens, wte: p.wte, wpe: p.wpe, B: B, T: T, C: C, threads: threads)
        }
        if let d, d.embd > 0 {
            phase("fwd.dropout") {
                Parallel.chunks(B, threads: threads) { _, rows in
                    for b in rows { Dropout.apply(a.embedded + b * T * C, count: T * C, p: d.embd, key: d.key(row: b, .embedding)) }
                }
            }
        }
        for l in 0..<config.nLayer {
            let la = a.layers[l], lp = p.layers[l]
            let residPre = a.residPre(l)
            phase("fwd.layernorm") {
                LayerNorm.forward(out: la.ln1, mean: la.ln1Mean, rstd: la.ln1Rstd, inp: residPre, weight: lp.ln1Weight,
                                  bias: lp.ln1Bias, N: N, C: C, eps: eps, threads: threads)
            }
            phase("fwd.matmul") {
                Matmul.forward(out: la.qkv, inp: la.ln1, weight: lp.attnWeight, bias: lp.attnBias, N: N, IC: C, OC: 3 * C, threads: threads)
            }
            phase("fwd.attention") {
                Attention.forward(out: la.attY, att: la.att, qkv: la.qkv, lengths: lengths, B: B, T: T, C: C, NH: NH, threads: threads,
                                  dropout: d?.attn ?? 0, dropKey: attentionKeys(layer: l), scratch: a.attScratch)
            }
            phase("fwd.matmul") {
                Matmul.forward(out: la.residMid, inp: la.attY, weight: lp.attnProjWeight, bias: lp.attnProjBias,
                               residual: residualDropped ? nil : residPre, N: N, IC: C, OC: C, threads: threads)
            }
            if residualDropped { addDroppedBranch(la.residMid, residual: residPre, .attentionOutput, layer: l) }
            phase("fwd.layernorm") {
                LayerNorm.forward(out: la.ln2, mean: la.ln2Mean, rstd: la.ln2Rstd, inp: la.residMid, weight: lp.ln2Weight,
                                  bias: lp.ln2Bias, N: N, C: C, eps: eps, threads: threads)
            }
            // The fc bias is added in GELU's pass (mlpPre = ln2 · Wfc + bfc, mlpPost = gelu(mlpPre)), not by a prefill.
            phase("fwd.matmul") {
                Matmul.forward(out: la.mlpPre, inp: la.ln2, weight: lp.fcWeight, bias: nil, N: N, IC: C, OC: 4 * C, threads: threads)
            }
            phase("fwd.gelu") { GELU.forward(out: la.mlpPost, pre: la.mlpPre, bias: lp.fcBias, N: N, C: 4 * C, threads: threads) }
            phase("fwd.matmul") {
                Matmul.forward(out: la.residPost, inp: la.mlpPost, weight: lp.fcProjWeight, bias: lp.fcProjBias,
                               residual: residualDropped ? nil : la.residMid, N: N, IC: 4 * C, OC: C, threads: threads)
            }
            if residualDropped { addDroppedBranch(la.residPost, residual: la.residMid, .mlpOutput, layer: l) }
        }
    }

    /// Whether the residual branches' outputs are dropped (training with resid_pdrop > 0).
    private var residualDropped: Bool { (dropout?.resid ?? 0) > 0 }

    /// `out = residual + drop(out)` over (B, T, C), with the mask of `place` in layer `l`.
    private func addDroppedBranch(_ out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>, _ place: DropoutPlan.Place, layer l: Int) {
        guard let d = dropout else { return }
        let T = acts.T, C = config.nEmbd
        phase("fwd.dropout") {
            Parallel.chunks(acts.B, threads: threads) { _, rows in
                for b in rows {
                    Dropout.applyAdding(out + b * T * C, residual: residual + b * T * C, count: T * C, p: d.resid, key: d.key(row: b, place, layer: l))
                }
            }
        }
    }

    /// ln_f and the unembedding at every position: logits (N, V) = ln_f(resid) · wteᵀ, one GEMM.
    private func finalFull() {
        let a = acts, p = params.views
        let N = a.B * a.T, C = config.nEmbd, V = config.vocabSize
        phase("fwd.layernorm") {
            LayerNorm.forward(out: a.lnf, mean: a.lnfMean, rstd: a.lnfRstd, inp: a.residFinal, weight: p.lnfWeight, bias: p.lnfBias,
                              N: N, C: C, eps: eps, threads: threads)
        }
        phase("fwd.unembed") {
            Matmul.sgemm(false, true, M: N, N: V, K: C, alpha: 1, A: a.lnf, lda: C, B: p.wte, ldb: C, beta: 0, C: a.logits, ldc: V)
        }
    }

    @inline(__always)
    private func phase<R>(_ name: String, _ body: () -> R) -> R {
        if let t = phaseTimer { return t.measure(name, body) }
        return body()
    }
}
