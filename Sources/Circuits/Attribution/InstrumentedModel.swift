import Foundation

/// A model run as TransformerLens runs it for EAP-IG, with the hooks that attribution (`EdgeAttribution`) and
/// circuit evaluation (`CircuitEvaluator`) need: `InstrumentedGPT2` for GPT-2, `InstrumentedFamily` for Llama
/// and Phi. Both share the graph layout (`AttributionGraph`), the record / replace / patch conventions and the
/// backward contract below; docs/eap.md and docs/model-families.md describe them.
public protocol InstrumentedModel: AnyObject, Sendable {
    /// The model's EAP-IG graph.
    var graph: AttributionGraph { get }
    /// Width of the residual stream (d_model).
    var dModel: Int { get }
    /// Vocabulary size (columns of the logits).
    var vocabSize: Int { get }
    /// Logits of the last forward pass at the read-out positions, `(B, V)`.
    var readOutLogits: UnsafeMutablePointer<Float> { get }

    /// Runs the model on `clean ? batch.cleanTokens : batch.corruptedTokens` (see `InstrumentedGPT2.forward`):
    /// node outputs go to `record` `[nForward, B·T·C]` as `recordMode` says, `replace` substitutes node outputs
    /// (they then pass no gradient), `patch` rebuilds downstream inputs from `record`. Returns the read-out logits.
    /// `readOutOnly`: the caller reads nothing of the forward pass but the read-out logits and the gradients of a
    /// following backward pass, so the model may run its last MLP at the read-out rows alone (then the final
    /// residual and that MLP's recorded output hold only those rows; its other rows reach nothing the metric reads).
    @discardableResult
    func run(_ batch: PromptBatch, clean: Bool, record: UnsafeMutablePointer<Float>?, recordMode: InstrumentedGPT2.RecordMode,
             replace: [Int: UnsafePointer<Float>], patch: InstrumentedGPT2.Patch?, computeLogits: Bool, readOutOnly: Bool) -> UnsafeMutablePointer<Float>

    /// The input node's output for `batch` (`hook_embed`: the token embeddings of the clean or corrupted tokens,
    /// `(B, T, C)`), as a forward pass computes it first.
    func tokenEmbedding(_ batch: PromptBatch, clean: Bool, into out: UnsafeMutablePointer<Float>)

    /// Given ∂metric/∂logits `(B, V)` of the last unpatched forward, adds ∂metric/∂(input of column b) to
    /// `grads + b·B/copies·T·C` for every column of the graph (`InstrumentedGPT2.backward`).
    func backward(dLogits: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, copies: Int)

    /// A batch of attribution pairs with this model's BOS, pad, vocabulary and positions; `numbers[i]` is the
    /// index of `pairs[i]` in the whole data set (for error messages).
    func promptBatch(pairs: [PromptPair], numbers: [Int]) throws -> PromptBatch
    /// A batch of clean prompts (circuit tests) with this model's BOS, pad, vocabulary and positions.
    func promptBatch(prompts: [[Int]], labels: [Int], firstIndex: Int) throws -> PromptBatch

    /// Sizes the activation buffers once for forward passes of all `shapes` (sequences, padded length)
    /// (`InstrumentedEngine.reserve`); a forward pass past them still grows them.
    func reserve(_ shapes: [(batch: Int, seqLen: Int)])
}

extension InstrumentedModel {
    /// `run` with the defaults of `InstrumentedGPT2.forward`.
    @discardableResult
    public func forward(_ batch: PromptBatch, clean: Bool = true,
                        record: UnsafeMutablePointer<Float>? = nil, recordMode: InstrumentedGPT2.RecordMode = .set,
                        replace: [Int: UnsafePointer<Float>] = [:], patch: InstrumentedGPT2.Patch? = nil,
                        computeLogits: Bool = true, readOutOnly: Bool = false) -> UnsafeMutablePointer<Float> {
        run(batch, clean: clean, record: record, recordMode: recordMode, replace: replace, patch: patch, computeLogits: computeLogits,
            readOutOnly: readOutOnly)
    }

    /// `promptBatch(pairs:numbers:)` for samples numbered from `firstIndex`.
    public func promptBatch(pairs: [PromptPair], firstIndex: Int) throws -> PromptBatch {
        try promptBatch(pairs: pairs, numbers: Array(firstIndex..<firstIndex + pairs.count))
    }

    /// Runs `body` on each batch of `pairs` as `PromptBatch.lengthOrderedBatches` groups them, with the indices
    /// (into `pairs`) of its samples. All batches are formed first (a bad sample fails before any work) and
    /// handed to `reserving`, which sizes the buffers the caller's runs need once (default: the model's own
    /// for one forward pass of each batch), since the batches grow from the shortest prompts to the longest.
    public func forEachLengthOrderedBatch(of pairs: [PromptPair], batchSize: Int, weightedByBatch: Bool,
                                          reserving: (([PromptBatch]) -> Void)? = nil,
                                          _ body: (_ indices: [Int], PromptBatch) throws -> Void) throws {
        let groups = try PromptBatch.lengthOrderedBatches(lengths: pairs.map(\.clean.count), batchSize: batchSize,
                                                          weightedByBatch: weightedByBatch)
        let batches = try groups.map { try promptBatch(pairs: $0.map { pairs[$0] }, numbers: $0) }
        if let reserving { reserving(batches) } else { reserve(batches.map { ($0.batch, $0.seqLen) }) }
        for (indices, batch) in zip(groups, batches) { try body(indices, batch) }
    }
}

extension InstrumentedGPT2: InstrumentedModel {
    public func tokenEmbedding(_ batch: PromptBatch, clean: Bool, into out: UnsafeMutablePointer<Float>) {
        let tokens = clean ? batch.cleanTokens : batch.corruptedTokens!, wte = parameters.views.wte
        for row in 0..<(batch.batch * batch.seqLen) { (out + row * C).update(from: wte + Int(tokens[row]) * C, count: C) }
    }

    @discardableResult
    public func run(_ batch: PromptBatch, clean: Bool, record: UnsafeMutablePointer<Float>?, recordMode: RecordMode,
                    replace: [Int: UnsafePointer<Float>], patch: Patch?, computeLogits: Bool, readOutOnly: Bool) -> UnsafeMutablePointer<Float> {
        forward(batch, clean: clean, record: record, recordMode: recordMode, replace: replace, patch: patch, computeLogits: computeLogits,
                readOutOnly: readOutOnly)
    }

    public func promptBatch(pairs: [PromptPair], numbers: [Int]) throws -> PromptBatch {
        try PromptBatch(pairs: pairs, config: config, numbers: numbers)
    }

    public func promptBatch(prompts: [[Int]], labels: [Int], firstIndex: Int) throws -> PromptBatch {
        try PromptBatch(prompts: prompts, labels: labels, config: config, firstIndex: firstIndex)
    }
}
