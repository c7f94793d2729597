import Foundation
import Numerics

/// The attribution methods of the study's `eap.attribute` (names as its `method` argument spells them).
public enum AttributionMethod: String, CaseIterable, Sendable {
    /// One backward pass on the clean prompt.
    case eap = "EAP"
    /// Integrated gradients on the input node (the study's method): the token embedding interpolated from
    /// corrupted to clean, k = 1 … m.
    case eapIG = "EAP-IG"
    /// Gradients on the clean run and on the corrupted run, averaged.
    case cleanCorrupted = "clean-corrupted"
    /// Integrated gradients on activations: for each group of nodes (input; the heads of a layer; an MLP)
    /// in turn, their outputs interpolated from corrupted to clean, k = 1 … m.
    case eapIGActivations = "EAP-IG-activations"

    /// Whether the method integrates over `igSteps` steps.
    public var usesSteps: Bool { self == .eapIG || self == .eapIGActivations }
}

/// How summed scores are normalised.
public enum ScoreNormalisation: String, CaseIterable, Sendable {
    /// The study's: the metric is the mean over the (actual) batch, the sums are divided by the number of
    /// samples (and steps), so scores scale with 1 / batch size.
    case study = "batch-mean"
    /// Batch-size independent: the metric is the sum over the batch, the sums are divided by the number of
    /// samples (and steps) once, so every sample weighs 1 / N.
    case perSample = "per-sample"
}

/// Aggregation over the hidden dimension, as the study's `aggregation` argument ("l2" is not offered:
/// it does not produce edge scores).
public enum ScoreAggregation: String, CaseIterable, Sendable {
    /// The study's default: Σ over hidden dimensions.
    case sum
    /// Σ / d_model.
    case mean
}

/// Settings of one attribution run.
public struct AttributionOptions: Sendable, Equatable {
    public var method: AttributionMethod
    /// Integration steps m for the IG methods (the study: 5).
    public var igSteps: Int
    public var metric: AttributionMetric
    public var normalisation: ScoreNormalisation
    public var aggregation: ScoreAggregation
    /// Rows (samples × padded length) one pass holds: a batch with more is attributed in parts of whole
    /// samples (`PromptBatch.parts`; the metric still averages over the whole batch), which bounds the
    /// Δ and gradient buffers, and EAP-IG stacks integration steps up to this many rows in one pass
    /// (bigger matrix products, more activation memory). Changes only rounding. A model whose Δ and gradient
    /// buffers would pass `EdgeAttribution.bufferBudgetBytes` at this many rows gets fewer (`rowsPerPart`).
    public var rowsPerPass: Int

    public init(method: AttributionMethod = .eapIG, igSteps: Int = 5, metric: AttributionMetric = .study,
                normalisation: ScoreNormalisation = .study, aggregation: ScoreAggregation = .sum, rowsPerPass: Int = 512) {
        self.method = method
        self.igSteps = igSteps
        self.metric = metric
        self.normalisation = normalisation
        self.aggregation = aggregation
        self.rowsPerPass = rowsPerPass
    }

    /// The metric as evaluated on a batch (reduction set by the normalisation).
    var batchMetric: AttributionMetric {
        var m = metric
        m.reduction = normalisation == .study ? .mean : .sum
        return m
    }

    /// Checks the settings; `source` names where they came from.
    public func validate(source: String = "attribution options") throws {
        if method.usesSteps && igSteps < 1 {
            throw AttributionError(item: "\(source): ig_steps", problem: "is \(igSteps)", fix: "use at least 1 step (the study uses 5)")
        }
        if rowsPerPass < 1 {
            throw AttributionError(item: "\(source): rows per pass", problem: "is \(rowsPerPass)", fix: "use at least 1 (default 512)")
        }
    }
}

/// Edge attribution: for every edge u → v, Σ over samples, positions and hidden dimensions of
/// Δ_u · ∂metric/∂(input of v), with Δ_u = output of u on the corrupted prompt − on the clean prompt, the
/// gradient taken where the method says. Batches are added with `accumulate`; `scores()` normalises.
///
/// Per batch the gradients of all passes are summed first (Σ_k Δ·g_k = Δ·Σ_k g_k), then contracted with Δ
/// in one product per layer: S[:, cols ℓ] += Δ[rows < prev, B·T·C] · G[cols ℓ, B·T·C]ᵀ.
public final class EdgeAttribution: @unchecked Sendable {
    /// The instrumented model (GPT-2, or a Llama / Phi `InstrumentedFamily`).
    public let model: any InstrumentedModel
    public let options: AttributionOptions
    public var graph: AttributionGraph { model.graph }
    /// Unnormalised sums of all batches so far.   // (nForward, nBackward)
    public private(set) var sums: ScoreMatrix
    /// Samples accumulated so far.
    public private(set) var sampleCount = 0

    private var deltaBuffer = FloatBuffer(count: 0)   // (nForward, B·T·C)  corrupted − clean
    private var gradBuffer = FloatBuffer(count: 0)    // (nBackward, B·T·C) Σ over passes of ∂metric/∂input
    private var extraBuffer = FloatBuffer(count: 0)   // (nForward, B·T·C)  clean outputs (IG on activations), interpolations
    /// How often the Δ, gradient or extra buffer was (re)allocated.
    package private(set) var bufferGrowths = 0
    private var referenceLogits: [Float] = []
    private var dLogits: [Float] = []

    public init(model: any InstrumentedModel, options: AttributionOptions = AttributionOptions()) throws {
        try options.validate()
        self.model = model
        self.options = options
        sums = ScoreMatrix(graph: model.graph)
    }

    /// Forgets all batches.
    public func reset() {
        sums = ScoreMatrix(graph: graph)
        sampleCount = 0
    }

    /// Frees the per-batch buffers (sized to the largest batch seen); the sums are kept and the next
    /// `accumulate` allocates again. A cell runner calls it after discovery, so evaluation does not hold them.
    public func releaseBuffers() {
        deltaBuffer = FloatBuffer(count: 0)
        gradBuffer = FloatBuffer(count: 0)
        extraBuffer = FloatBuffer(count: 0)
        referenceLogits = []
        dLogits = []
    }

    /// The passes per batch the sums were divided by (m for the IG methods, (1 + 2L)·m for IG on
    /// activations, 2 for clean-corrupted, 1 for EAP).
    public var passesPerBatch: Int {
        switch options.method {
        case .eap: return 1
        case .eapIG: return options.igSteps
        case .cleanCorrupted: return 2
        case .eapIGActivations: return (1 + 2 * graph.nLayers) * options.igSteps
        }
    }

    /// The normalised scores: sums / (samples · passes), divided by d_model for `.mean` aggregation;
    /// entries that are not edges are 0.
    public func scores() -> ScoreMatrix {
        Self.normalise(sums, samples: sampleCount, passes: passesPerBatch, options: options, graph: graph, dModel: model.dModel)
    }

    /// Normalises summed scores (e.g. after adding the sums of several processes).
    public static func normalise(_ sums: ScoreMatrix, samples: Int, passes: Int, options: AttributionOptions,
                                 graph: AttributionGraph, dModel: Int) -> ScoreMatrix {
        var s = sums
        if samples > 0 {
            // The reference divides in two steps, by the samples and then by the steps.
            for i in s.values.indices { s.values[i] = s.values[i] / Float(samples) }
            if passes != 1 { for i in s.values.indices { s.values[i] = s.values[i] / Float(passes) } }
        }
        if options.aggregation == .mean { for i in s.values.indices { s.values[i] = s.values[i] / Float(dModel) } }
        s.zeroNonEdges(graph)
        return s
    }

    private func ensureBuffers(_ BTC: Int) { ensureBuffers(BTC: BTC, extra: extraCount(BTC)) }

    /// Grows the Δ and gradient buffers to parts of `BTC` floats a row block, and the method's extra buffer to `extra` floats.
    private func ensureBuffers(BTC: Int, extra: Int) {
        let nF = graph.nForward, nB = graph.nBackward
        guard deltaBuffer.count < nF * BTC || gradBuffer.count < nB * BTC || extraBuffer.count < extra else { return }
        bufferGrowths += 1
        if deltaBuffer.count < nF * BTC { deltaBuffer = FloatBuffer(count: nF * BTC) }
        if gradBuffer.count < nB * BTC { gradBuffer = FloatBuffer(count: nB * BTC) }
        if extraBuffer.count < extra { extraBuffer = FloatBuffer(count: extra) }
    }

    /// Floats of the extra buffer for a part of `BTC`: clean outputs and mixtures (IG on activations), or the
    /// corrupted embedding, the input's Δ and the stacked interpolations (EAP-IG).
    private func extraCount(_ BTC: Int) -> Int {
        switch options.method {
        case .eapIGActivations: return 2 * graph.nForward * BTC
        case .eapIG: return (2 + stepsPerPass(BTC)) * BTC
        case .eap, .cleanCorrupted: return 0
        }
    }

    /// Sizes this engine's buffers and the model's once for `batches` (their parts, and EAP-IG's stacked steps), so
    /// batches that grow from the shortest prompts to the longest do not reallocate and refill them one after another.
    private func reserve(for batches: [PromptBatch]) {
        var BTC = 0, extra = 0, shapes: [(batch: Int, seqLen: Int)] = []
        for batch in batches {
            for part in batch.parts(maxRows: rowsPerPart) {
                let partBTC = part.batch * part.seqLen * model.dModel
                BTC = max(BTC, partBTC)
                extra = max(extra, extraCount(partBTC))
                let copies = options.method == .eapIG ? stepsPerPass(partBTC) : 1
                shapes.append((copies * part.batch, part.seqLen))
            }
        }
        ensureBuffers(BTC: BTC, extra: extra)
        model.reserve(shapes)
    }

    /// Bytes the Δ and gradient buffers may take: (forward nodes + backward columns) × d_model floats per row.
    /// 1 GiB holds GPT-2 small's 512 rows (the default); a wide, deep model (TinyLlama: 2,862 × 2,048 floats
    /// per row, 45 rows) is attributed in smaller parts instead of holding several GB.
    public static let bufferBudgetBytes = 1 << 30

    /// Rows per part: `options.rowsPerPass`, or fewer where the buffers would pass `bufferBudgetBytes`.
    public var rowsPerPart: Int { Self.rowsPerPart(graph: graph, dModel: model.dModel, rowsPerPass: options.rowsPerPass) }

    /// `rowsPerPart` of a model with `graph` and `dModel`.
    public static func rowsPerPart(graph: AttributionGraph, dModel: Int, rowsPerPass: Int) -> Int {
        let perRow = (graph.nForward + graph.nBackward) * dModel * MemoryLayout<Float>.size
        return max(1, min(rowsPerPass, bufferBudgetBytes / max(1, perRow)))
    }

    /// Integration steps stacked into one pass for a batch of `BTC` floats per step.
    func stepsPerPass(_ BTC: Int) -> Int {
        max(1, min(options.igSteps, rowsPerPart / max(1, BTC / model.dModel)))
    }

    /// Adds one batch's sums, in parts of at most `rowsPerPart` rows.
    public func accumulate(_ batch: PromptBatch) {
        precondition(batch.corruptedTokens != nil, "attribution needs corrupted prompts")
        for part in batch.parts(maxRows: rowsPerPart) { accumulate(part: part, meanOver: batch.batch) }
        sampleCount += batch.batch
    }

    /// Adds the sums of `batch`, a part of a batch of `meanOver` samples (the metric's mean divides by it):
    /// the method's passes leave Δ in the delta buffer and Σ of the gradients in the gradient buffer, then
    /// one contraction adds Δ·Gᵀ to the sums.
    private func accumulate(part batch: PromptBatch, meanOver: Int) {
        let B = batch.batch, V = model.vocabSize, BTC = B * batch.seqLen * model.dModel
        ensureBuffers(BTC)
        gradBuffer.base.update(repeating: 0, count: graph.nBackward * BTC)
        if referenceLogits.count < B * V { referenceLogits = [Float](repeating: 0, count: B * V) }
        if dLogits.count < B * V { dLogits = [Float](repeating: 0, count: B * V) }
        let pass = Pass(batch: batch, meanOver: meanOver, BTC: BTC, delta: deltaBuffer.base, grads: gradBuffer.base)
        switch options.method {
        case .eap: eap(pass)
        case .eapIG: eapIG(pass)
        case .cleanCorrupted: cleanCorrupted(pass)
        case .eapIGActivations: eapIGActivations(pass)
        }
        contract(delta: pass.delta, grads: pass.grads, BTC: BTC)
    }

    /// One part's pointers and sizes, shared by the method's passes.
    private struct Pass {
        let batch: PromptBatch
        let meanOver: Int
        let BTC: Int
        let delta: UnsafeMutablePointer<Float>
        let grads: UnsafeMutablePointer<Float>
    }

    /// The logit difference's gradient does not depend on the logits: then no pass needs the unembedding.
    private var logitsNeeded: Bool { options.metric.kind != .logitDifference }

    /// Keeps the read-out logits of the last forward as the metric's reference.
    private func keepReference(_ logits: UnsafePointer<Float>, _ p: Pass) {
        referenceLogits.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: logits, count: p.batch.batch * model.vocabSize) }
    }

    /// Backward from the metric's gradient at the last forward's logits, added to the gradient buffer.
    private func backward(_ p: Pass) {
        let logits = model.readOutLogits, V = model.vocabSize, metric = options.batchMetric
        referenceLogits.withUnsafeBufferPointer { ref in
            dLogits.withUnsafeMutableBufferPointer { d in
                metric.gradient(logits: logits, reference: ref.baseAddress!, batch: p.batch, vocab: V, meanOver: p.meanOver, into: d.baseAddress!)
                model.backward(dLogits: d.baseAddress!, grads: p.grads, copies: 1)
            }
        }
    }

    /// EAP: Δ from the corrupted and clean runs, one backward on the clean run against the corrupted logits.
    private func eap(_ p: Pass) {
        let corrupted = model.forward(p.batch, clean: false, record: p.delta, recordMode: .set, computeLogits: logitsNeeded, readOutOnly: true)
        keepReference(corrupted, p)
        model.forward(p.batch, clean: true, record: p.delta, recordMode: .subtract, computeLogits: logitsNeeded, readOutOnly: true)
        backward(p)
    }

    /// EAP-IG: the token embedding interpolated from corrupted to clean, steps k = 1 … m, up to
    /// `stepsPerPass` of them stacked in one pass, their gradients summed in step order. The last step's input is
    /// the clean embedding (up to rounding), so when the metric needs no clean logits (the logit difference) the
    /// clean run is not made separately: the last step's run is recorded as the clean one, and the input node's
    /// Δ is the exact embedding difference.
    private func eapIG(_ p: Pass) {
        let batch = p.batch, B = batch.batch, V = model.vocabSize, BTC = p.BTC, delta = p.delta
        let k = stepsPerPass(BTC)
        let fused = !logitsNeeded
        // Δ of the input node: its rows of `delta` after the clean run, or (fused) a buffer of its own until the end.
        let corruptedEmb = extraBuffer.base, inputDelta = fused ? extraBuffer.base + BTC : delta
        let steps = extraBuffer.base + 2 * BTC   // (k, B, T, C)
        model.forward(batch, clean: false, record: delta, recordMode: .set, computeLogits: false, readOutOnly: true)
        corruptedEmb.update(from: delta, count: BTC)
        if fused {
            model.tokenEmbedding(batch, clean: true, into: inputDelta)
            for i in 0..<BTC { inputDelta[i] = corruptedEmb[i] - inputDelta[i] }
        } else {
            keepReference(model.forward(batch, clean: true, record: delta, recordMode: .subtract, computeLogits: true, readOutOnly: true), p)
        }
        if dLogits.count < k * B * V { dLogits = [Float](repeating: 0, count: k * B * V) }
        // As the reference: clean' = corrupted − (corrupted − clean), input_k = corrupted + (k/m)·(clean' − corrupted).
        let m = options.igSteps, metric = options.batchMetric
        var first = 1
        while first <= m {
            let n = min(k, m - first + 1), last = first + n - 1 == m
            for c in 0..<n {
                let alpha = Float(Double(first + c) / Double(m))
                let step = steps + c * BTC
                for i in 0..<BTC {
                    let x = corruptedEmb[i], cleanPrime = x - inputDelta[i]
                    step[i] = x + alpha * (cleanPrime - x)
                }
            }
            model.forward(batch.repeated(n), clean: true, record: fused && last ? delta : nil, recordMode: .subtractLastCopy(of: n),
                          replace: [0: UnsafePointer(steps)], computeLogits: logitsNeeded, readOutOnly: true)
            referenceLogits.withUnsafeBufferPointer { ref in
                dLogits.withUnsafeMutableBufferPointer { d in
                    for c in 0..<n {
                        metric.gradient(logits: model.readOutLogits + c * B * V, reference: ref.baseAddress!, batch: batch, vocab: V,
                                        meanOver: p.meanOver, into: d.baseAddress! + c * B * V)
                    }
                    model.backward(dLogits: d.baseAddress!, grads: p.grads, copies: n)
                }
            }
            first += n
        }
        // The input node's Δ: the embeddings' difference itself (the last step recorded its rebuilt input).
        if fused { delta.update(from: inputDelta, count: BTC) }
    }

    /// Clean-corrupted: gradients on the clean run and on the corrupted run, both against the clean logits.
    private func cleanCorrupted(_ p: Pass) {
        model.forward(p.batch, clean: false, record: p.delta, recordMode: .set, computeLogits: false, readOutOnly: true)
        keepReference(model.forward(p.batch, clean: true, record: p.delta, recordMode: .subtract, computeLogits: logitsNeeded, readOutOnly: true), p)
        backward(p)
        model.forward(p.batch, clean: false, computeLogits: logitsNeeded, readOutOnly: true)
        backward(p)
    }

    /// EAP-IG on activations: for each group of nodes (input; a layer's heads; an MLP) in turn, their outputs
    /// mixed from corrupted to clean, k = 1 … m. Δ is formed at the end from the two recorded runs.
    private func eapIGActivations(_ p: Pass) {
        let nF = graph.nForward, BTC = p.BTC, delta = p.delta
        let cleanOut = extraBuffer.base, mixed = extraBuffer.base + nF * BTC
        model.forward(p.batch, clean: false, record: delta, recordMode: .set, computeLogits: false)   // delta holds corrupted outputs
        keepReference(model.forward(p.batch, clean: true, record: cleanOut, recordMode: .set, computeLogits: logitsNeeded), p)
        var groups: [[Int]] = [[0]]
        for l in 0..<graph.nLayers {
            groups.append((0..<graph.nHeads).map { graph.headForward(layer: l, head: $0) })
            groups.append([graph.mlpForward(layer: l)])
        }
        let m = options.igSteps
        for group in groups {
            for k in 1...m {
                // As the reference: alpha·clean + (1 − alpha)·corrupted.
                let alpha = Float(Double(k) / Double(m)), beta = Float(1 - Double(k) / Double(m))
                var replace: [Int: UnsafePointer<Float>] = [:]
                for f in group {
                    let dst = mixed + f * BTC, c = cleanOut + f * BTC, x = delta + f * BTC
                    for i in 0..<BTC { dst[i] = alpha * c[i] + beta * x[i] }
                    replace[f] = UnsafePointer(dst)
                }
                model.forward(p.batch, clean: true, replace: replace, computeLogits: logitsNeeded)
                backward(p)
            }
        }
        for i in 0..<(nF * BTC) { delta[i] -= cleanOut[i] }
    }

    /// Layers whose columns `contract` takes in one product.
    package static let contractionLayersPerBlock = 4

    /// sums[:, cols] += Δ · Gᵀ, one product per block of `contractionLayersPerBlock` layers' columns (the last block
    /// with the logits column) over the rows that feed the block's last layer. A product per layer would be narrow
    /// (37 columns for GPT-2) and read Δ once per layer; a block reads it a quarter as often, at some extra arithmetic
    /// on pairs that are not edges (a row past a column's parents), which `normalise` sets to 0.
    private func contract(delta: UnsafePointer<Float>, grads: UnsafePointer<Float>, BTC: Int) {
        let g = graph, nB = g.nBackward, per = Self.contractionLayersPerBlock
        sums.values.withUnsafeMutableBufferPointer { s in
            let S = s.baseAddress!
            for first in stride(from: 0, to: g.nLayers, by: per) {
                let last = min(first + per, g.nLayers) - 1
                let col0 = g.headBackward(layer: first, head: 0, qkv: .q)
                let end = last == g.nLayers - 1 ? nB : g.mlpBackward(layer: last) + 1
                let rows = g.backwardPrevIndex[end - 1]
                Matmul.sgemm(false, true, M: rows, N: end - col0, K: BTC, alpha: 1, A: delta, lda: BTC,
                             B: grads + col0 * BTC, ldb: BTC, beta: 1, C: S + col0, ldc: nB)
            }
        }
    }

    /// Scores of `pairs` in batches of `batchSize`: the scores of the study's consecutive batches (the last one
    /// shorter), computed in batches of prompts of similar length (`accumulate(pairs:batchSize:)`).
    public static func scores(model: any InstrumentedModel, pairs: [PromptPair], batchSize: Int,
                              options: AttributionOptions = AttributionOptions()) throws -> ScoreMatrix {
        let engine = try EdgeAttribution(model: model, options: options)
        try engine.accumulate(pairs: pairs, batchSize: batchSize)
        return engine.scores()
    }

    /// Adds `pairs` in batches of `batchSize` as the study's DataLoader forms them (consecutive, the last one
    /// shorter), run in the length-ordered batches of `PromptBatch.lengthOrderedBatches`: the same scores up to
    /// float summation order, with fewer padded rows. `progress` gets the samples done after each batch.
    public func accumulate(pairs: [PromptPair], batchSize: Int, progress: ((Int) -> Void)? = nil) throws {
        guard !pairs.isEmpty else { throw AttributionError(item: "attribution data", problem: "has no samples", fix: "check the task, type and frequency filters") }
        var done = 0
        try model.forEachLengthOrderedBatch(of: pairs, batchSize: batchSize, weightedByBatch: options.normalisation == .study,
                                            reserving: reserve(for:)) { indices, batch in
            accumulate(batch)
            done += indices.count
            progress?(done)
        }
    }
}
