import Foundation
import Models

/// One attribution sample: the clean and corrupted prompt (token ids without BOS) and the two label tokens
/// the logit difference compares (the study's `clean_label_idx`, `corrupted_label_idx`).
public struct PromptPair: Sendable, Equatable {
    public var clean: [Int]
    public var corrupted: [Int]
    public var cleanLabel: Int
    public var corruptedLabel: Int

    public init(clean: [Int], corrupted: [Int], cleanLabel: Int, corruptedLabel: Int) {
        self.clean = clean
        self.corrupted = corrupted
        self.cleanLabel = cleanLabel
        self.corruptedLabel = corruptedLabel
    }

    /// The study's prompts: `template` with `{subject}` replaced by each subject, tokenised by `encoder`.
    public init(template: String, cleanSubject: String, corruptedSubject: String,
                cleanLabel: Int, corruptedLabel: Int, encoder: TextEncoder) {
        self.init(clean: encoder.encode(template.replacingOccurrences(of: "{subject}", with: cleanSubject)),
                  corrupted: encoder.encode(template.replacingOccurrences(of: "{subject}", with: corruptedSubject)),
                  cleanLabel: cleanLabel, corruptedLabel: corruptedLabel)
    }
}

/// A batch of prompts laid out as the reference tokenises them (TransformerLens `to_tokens(prompts,
/// prepend_bos=True, padding_side="right")` and `get_attention_mask`): BOS first, right-padded with the pad
/// token to the longest prompt; the mask is 1 from the start up to the last token that is not the pad token
/// and 0 on the trailing run of pad tokens; a sample's length is the sum of its mask. The corrupted prompts
/// share the clean prompts' mask and lengths, so each must have its clean prompt's token count.
public struct PromptBatch: Sendable {
    /// Samples in the batch.
    public let batch: Int
    /// Padded sequence length (positions 0 ..< seqLen).
    public let seqLen: Int
    /// Clean tokens, row-major.   // (B, T)
    public let cleanTokens: [Int32]
    /// Corrupted tokens, row-major (nil for test prompts, which have no corrupted run).   // (B, T)
    public let corruptedTokens: [Int32]?
    /// The attention mask (1 real, 0 trailing pad).   // (B, T)
    public let mask: [UInt8]
    /// Mask sums; the metric reads position `lengths[b] − 1`.   // (B)
    public let lengths: [Int]
    /// Clean label token per sample.   // (B)
    public let cleanLabels: [Int]
    /// Corrupted label token per sample (equal to the clean label for test prompts).   // (B)
    public let corruptedLabels: [Int]

    /// `bos` is prepended; `pad` fills the tail (both 50256 for GPT-2). `vocabSize` bounds every id.
    /// `numbers[i]` (default i) is the index of `pairs[i]` in the whole data set, named in error messages.
    public init(pairs: [PromptPair], vocabSize: Int, maxPositions: Int, bos: Int = 50256, pad: Int = 50256,
                numbers: [Int]? = nil) throws {
        try self.init(clean: pairs.map(\.clean), corrupted: pairs.map(\.corrupted),
                      cleanLabels: pairs.map(\.cleanLabel), corruptedLabels: pairs.map(\.corruptedLabel),
                      vocabSize: vocabSize, maxPositions: maxPositions, bos: bos, pad: pad, number: { numbers?[$0] ?? $0 })
    }

    /// Clean prompts only (circuit tests, predictions): `labels` is the token whose probability is read.
    /// `firstIndex` numbers the prompts in error messages (the index of `prompts[0]` in the whole list).
    public init(prompts: [[Int]], labels: [Int], vocabSize: Int, maxPositions: Int, bos: Int = 50256, pad: Int = 50256,
                firstIndex: Int = 0) throws {
        try self.init(clean: prompts, corrupted: nil, cleanLabels: labels, corruptedLabels: labels,
                      vocabSize: vocabSize, maxPositions: maxPositions, bos: bos, pad: pad, number: { firstIndex + $0 })
    }

    private init(clean: [[Int]], corrupted: [[Int]]?, cleanLabels: [Int], corruptedLabels: [Int],
                 vocabSize: Int, maxPositions: Int, bos: Int, pad: Int, number: (Int) -> Int) throws {
        let B = clean.count
        guard B > 0 else { throw AttributionError(item: "prompt batch", problem: "is empty", fix: "give at least one sample") }
        func bad(_ i: Int, _ problem: String, _ fix: String) -> AttributionError {
            AttributionError(item: "sample \(number(i))", problem: problem, fix: fix)
        }
        let T = 1 + clean.map(\.count).max()!
        guard T <= maxPositions else {
            throw bad(clean.firstIndex { $0.count + 1 == T }!, "has \(T) tokens with BOS, the model has \(maxPositions) positions",
                      "shorten the prompt")
        }
        var ct = [Int32](repeating: Int32(pad), count: B * T)
        var xt: [Int32]? = corrupted == nil ? nil : [Int32](repeating: Int32(pad), count: B * T)
        var mask = [UInt8](repeating: 0, count: B * T)
        var lengths = [Int](repeating: 0, count: B)
        for b in 0..<B {
            let row = [bos] + clean[b]
            for (t, id) in row.enumerated() {
                guard id >= 0 && id < vocabSize else { throw bad(b, "clean token \(id) is outside the vocabulary (0 ..< \(vocabSize))", "check the tokenizer") }
                ct[b * T + t] = Int32(id)
            }
            if let corrupted {
                guard corrupted[b].count == clean[b].count else {
                    throw bad(b, "the corrupted prompt has \(corrupted[b].count) tokens, the clean one \(clean[b].count)",
                              "corrupted subjects must tokenise to as many tokens as the clean subject")
                }
                for (t, id) in ([bos] + corrupted[b]).enumerated() {
                    guard id >= 0 && id < vocabSize else { throw bad(b, "corrupted token \(id) is outside the vocabulary (0 ..< \(vocabSize))", "check the tokenizer") }
                    xt![b * T + t] = Int32(id)
                }
            }
            // Mask: 1 up to the last token that is not the pad token (only the trailing run of pads is masked).
            var last = -1
            for t in 0..<T where ct[b * T + t] != Int32(pad) { last = t }
            guard last >= 0 else {
                throw bad(b, "consists of pad tokens only (\(pad)), so the reference mask is empty", "give a non-empty prompt")
            }
            for t in 0...last { mask[b * T + t] = 1 }
            lengths[b] = last + 1
            for (name, label) in [("clean", cleanLabels[b]), ("corrupted", corruptedLabels[b])] {
                guard label >= 0 && label < vocabSize else {
                    throw bad(b, "\(name) label \(label) is outside the vocabulary (0 ..< \(vocabSize))", "check the label ids")
                }
            }
        }
        batch = B
        seqLen = T
        cleanTokens = ct
        corruptedTokens = xt
        self.mask = mask
        self.lengths = lengths
        self.cleanLabels = cleanLabels
        self.corruptedLabels = corruptedLabels
    }

    /// A batch for a model with `config`: BOS its `bos_token_id`, pad its `eos_token_id` (GPT-2: both 50256),
    /// ids checked against its vocabulary and positions.
    public init(pairs: [PromptPair], config: GPT2Config, numbers: [Int]? = nil) throws {
        try self.init(pairs: pairs, vocabSize: config.vocabSize, maxPositions: config.nPositions,
                      bos: config.bosTokenId, pad: config.eosTokenId, numbers: numbers)
    }

    /// Clean prompts only, for a model with `config`.
    public init(prompts: [[Int]], labels: [Int], config: GPT2Config, firstIndex: Int = 0) throws {
        try self.init(prompts: prompts, labels: labels, vocabSize: config.vocabSize, maxPositions: config.nPositions,
                      bos: config.bosTokenId, pad: config.eosTokenId, firstIndex: firstIndex)
    }

    /// The batch stacked `copies` times (sample c·B + b is a copy of sample b), for running several
    /// integration steps in one pass.
    public func repeated(_ copies: Int) -> PromptBatch {
        precondition(copies >= 1)
        if copies == 1 { return self }
        return PromptBatch(batch: batch * copies, seqLen: seqLen,
                           cleanTokens: Array([[Int32]](repeating: cleanTokens, count: copies).joined()),
                           corruptedTokens: corruptedTokens.map { Array([[Int32]](repeating: $0, count: copies).joined()) },
                           mask: Array([[UInt8]](repeating: mask, count: copies).joined()),
                           lengths: Array([[Int]](repeating: lengths, count: copies).joined()),
                           cleanLabels: Array([[Int]](repeating: cleanLabels, count: copies).joined()),
                           corruptedLabels: Array([[Int]](repeating: corruptedLabels, count: copies).joined()))
    }

    /// The batch cut into consecutive parts of whole samples with at most `maxRows` rows (samples × their
    /// padded length) each where one sample fits, as even as possible; each part is cut to the longest
    /// prompt it holds. A batch within `maxRows` is returned whole. Positions past a prompt's length are
    /// never read and get no gradient, so the parts' attributions add up to the whole batch's.
    public func parts(maxRows: Int) -> [PromptBatch] {
        let rows = batch.multipliedReportingOverflow(by: seqLen)
        guard rows.overflow || rows.partialValue > max(1, maxRows), batch > 1 else { return [self] }
        let count = min(batch, (rows.partialValue + max(1, maxRows) - 1) / max(1, maxRows))
        let size = (batch + count - 1) / count
        return stride(from: 0, to: batch, by: size).map { samples($0..<min(batch, $0 + size)) }
    }

    /// Samples `range` of the batch, cut to the longest of their prompts.
    func samples(_ range: Range<Int>) -> PromptBatch {
        let T = seqLen, t = range.map { lengths[$0] }.max()!
        func rows<E>(_ a: [E]) -> [E] { range.flatMap { a[($0 * T)..<($0 * T + t)] } }
        return PromptBatch(batch: range.count, seqLen: t, cleanTokens: rows(cleanTokens), corruptedTokens: corruptedTokens.map(rows),
                           mask: rows(mask), lengths: Array(lengths[range]), cleanLabels: Array(cleanLabels[range]),
                           corruptedLabels: Array(corruptedLabels[range]))
    }

    private init(batch: Int, seqLen: Int, cleanTokens: [Int32], corruptedTokens: [Int32]?, mask: [UInt8], lengths: [Int],
                 cleanLabels: [Int], corruptedLabels: [Int]) {
        self.batch = batch
        self.seqLen = seqLen
        self.cleanTokens = cleanTokens
        self.corruptedTokens = corruptedTokens
        self.mask = mask
        self.lengths = lengths
        self.cleanLabels = cleanLabels
        self.corruptedLabels = corruptedLabels
    }

    /// Row index (b·T + length_b − 1) of each sample's read-out position in a (B·T, ·) activation.
    public var readRows: [Int] { (0..<batch).map { $0 * seqLen + lengths[$0] - 1 } }
}

extension PromptBatch {
    /// Runs `body` on 0 ..< n in consecutive ranges of `batchSize` (the last may be shorter): the batches of a list of
    /// samples. A batch size below 1 is an error naming it.
    package static func forEachBatch(_ n: Int, _ batchSize: Int, _ body: (Range<Int>) throws -> Void) throws {
        guard batchSize >= 1 else { throw AttributionError(item: "batch size", problem: "is \(batchSize)", fix: "use at least 1") }
        var start = 0
        while start < n {
            let end = min(start + batchSize, n)
            try body(start..<end)
            start = end
        }
    }

    /// The batches (sample indices) dkc runs samples of token counts `lengths` in: the samples in order of length
    /// (stable), cut into batches of `batchSize`, so each batch pads its prompts to a length close to theirs
    /// (with the study's order, prompts of 10–15 tokens leave about a fifth of a batch's rows padding).
    ///
    /// Every result stays the one the study's consecutive batches give, up to float summation order: a sample's
    /// own outputs do not depend on its batch (keys past a prompt are masked, its read-out position is its own),
    /// and where the metric is the mean over a batch (`weightedByBatch`: the study's score normalisation) a
    /// sample's weight is 1 / its batch's size, so the samples of the study's short last batch (the last
    /// `count mod batchSize` in data order) stay together, last, in data order; only the full batches are regrouped.
    package static func lengthOrderedBatches(lengths: [Int], batchSize: Int, weightedByBatch: Bool) throws -> [[Int]] {
        guard batchSize >= 1 else { throw AttributionError(item: "batch size", problem: "is \(batchSize)", fix: "use at least 1") }
        let full = weightedByBatch ? lengths.count - lengths.count % batchSize : lengths.count
        let sorted = (0..<full).sorted { (lengths[$0], $0) < (lengths[$1], $1) } + Array(full..<lengths.count)
        return stride(from: 0, to: sorted.count, by: batchSize).map { Array(sorted[$0..<min($0 + batchSize, sorted.count)]) }
    }
}
