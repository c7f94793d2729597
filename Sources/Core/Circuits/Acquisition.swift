import Foundation

/// Full-model knowledge acquisition (pipeline.md §5), as the study's `batch_predict.py` measures it: for
/// every test entity and attribute, the task prompt (no BOS, as the Hugging Face tokenizer encodes it) is
/// decoded greedily for at most `maxNewTokens` tokens; the text after the prompt, cut at the first "."
/// and stripped of surrounding whitespace, is correct iff it equals the attribute's value. Besides, the
/// probability and rank of the label's first token (of " " + value) at the last prompt position.
///
/// The decoded text goes through the tokenizer's `clean_up_tokenization_spaces` (on in the study's
/// transformers version) before the prompt's characters are cut off, as `tokenizer.decode` does there.
/// Decoding of a prompt stops early once its continuation holds a "." or the end-of-text token: the
/// text before the first "." can no longer change, so the result equals decoding all `maxNewTokens`.
public enum Acquisition {
    /// The attributes asked, in the order of the acquisition file.
    public static let attributes: [CircuitTask] = [.birthday, .city, .company, .major, .university]

    public struct Options: Sendable, Equatable {
        /// Tokens generated at most per prompt (the study's `--max_new_tokens 15`).
        public var maxNewTokens: Int
        /// Prompts decoded together.
        public var batchSize: Int

        public init(maxNewTokens: Int = 15, batchSize: Int = 64) {
            self.maxNewTokens = maxNewTokens
            self.batchSize = batchSize
        }
    }

    /// One test entity asked for one attribute.
    public struct Prediction: Sendable {
        public var entity: Entity
        public var attribute: CircuitTask
        /// The attribute's value (the study's `ground_truth`).
        public var groundTruth: String
        /// The text after the prompt, cut at the first "." and stripped (the study's `prediction`).
        public var prediction: String
        /// Everything decoded after the prompt.
        public var continuation: String
        public var correct: Bool
        /// Probability and rank (0 = most probable) of the label's first token at the last prompt position.
        public var labelProb: Double
        public var labelRank: Int
    }

    /// Decodes every entity × attribute. `progress(done, total)` after each batch of prompts.
    public static func predict(entities: [Entity], decoder: GreedyDecoder, tokenizer: GPT2Tokenizer, options: Options = Options(),
                               progress: ((Int, Int) -> Void)? = nil) throws -> [Prediction] {
        guard options.batchSize >= 1 else { throw CircuitsError(item: "batch size", problem: "is \(options.batchSize)", fix: "use at least 1") }
        guard options.maxNewTokens >= 1 else {
            throw CircuitsError(item: "max_new_tokens", problem: "is \(options.maxNewTokens)", fix: "generate at least 1 token (the study: 15)")
        }
        struct Job { let entity: Entity; let attribute: CircuitTask; let prompt: String; let tokens: [Int]; let label: Int }
        var jobs: [Job] = []
        jobs.reserveCapacity(entities.count * attributes.count)
        for e in entities {
            for a in attributes {
                let prompt = a.prompt(subject: e.fullName)
                guard let label = tokenizer.encode(" " + e.value(of: a)).first else {
                    throw CircuitsError(item: "test entity '\(e.fullName)'", problem: "has an empty \(a.rawValue)", fix: "regenerate the test set")
                }
                jobs.append(Job(entity: e, attribute: a, prompt: prompt, tokens: tokenizer.encode(prompt), label: label))
            }
        }
        let V = decoder.config.vocabSize
        let period = UInt8(ascii: ".")
        var out: [Prediction] = []
        out.reserveCapacity(jobs.count)
        var start = 0
        while start < jobs.count {
            let batch = Array(jobs[start..<min(start + options.batchSize, jobs.count)])
            var first = [(Double, Int)](repeating: (0, 0), count: batch.count)
            let generated = try decoder.decode(prompts: batch.map(\.tokens), maxNewTokens: options.maxNewTokens,
                                               firstLogits: { b, row in first[b] = labelProbabilityAndRank(row, V, label: batch[b].label) },
                                               isDone: { _, ids in ids.last.map { tokenizer.bytes(ofToken: $0)?.contains(period) ?? false } ?? false })
            for (b, job) in batch.enumerated() {
                let (continuation, prediction) = answer(prompt: job.prompt, promptTokens: job.tokens, generated: generated[b], tokenizer: tokenizer)
                let truth = job.entity.value(of: job.attribute)
                out.append(Prediction(entity: job.entity, attribute: job.attribute, groundTruth: truth, prediction: prediction,
                                      continuation: continuation, correct: prediction == truth,
                                      labelProb: first[b].0, labelRank: first[b].1))
            }
            start += batch.count
            progress?(start, jobs.count)
        }
        return out
    }

    /// The acquisition table cells of one checkpoint: per attribute × type × bucket, the share of exact
    /// matches, hits@1 and hits@10 of the label's first token, its mean probability, and the count.
    /// Entities outside every bucket are left out.
    public static func summarize(_ predictions: [Prediction], buckets: FrequencyBuckets) -> [AcquisitionKey: AcquisitionTable.Result] {
        var groups: [AcquisitionKey: [Prediction]] = [:]
        for p in predictions {
            guard let bucket = buckets.name(of: p.entity.frequency) else { continue }
            groups[AcquisitionKey(attribute: p.attribute.rawValue, type: p.entity.type.rawValue, frequency: bucket), default: []].append(p)
        }
        return groups.mapValues { ps in
            let n = Double(ps.count)
            return AcquisitionTable.Result(exactMatch: Double(ps.filter(\.correct).count) / n,
                                           hitsAt1: Double(ps.filter { $0.labelRank < 1 }.count) / n,
                                           hitsAt10: Double(ps.filter { $0.labelRank < 10 }.count) / n,
                                           labelProb: ps.reduce(0.0) { $0 + $1.labelProb } / n, nEntities: ps.count)
        }
    }

    /// The study's reading of a generation: `decode(prompt + generated, skip_special_tokens=True)` with the
    /// tokenization spaces cleaned up, the prompt's characters cut off (the continuation), then the text
    /// before the first "." stripped (the prediction).
    public static func answer(prompt: String, promptTokens: [Int], generated: [Int], tokenizer: GPT2Tokenizer) -> (continuation: String, prediction: String) {
        let ids = (promptTokens + generated).filter { $0 != tokenizer.eosTokenId }
        let full = cleanUpTokenizationSpaces(String(decoding: tokenizer.decodeBytes(ids), as: UTF8.self))
        let continuation = String(String.UnicodeScalarView(full.unicodeScalars.dropFirst(prompt.unicodeScalars.count)))
        return (continuation, cutAtFirstPeriod(continuation))
    }

    /// Probability (softmax, summed in double) and rank (entries strictly larger) of `label` in a logits row.
    static func labelProbabilityAndRank(_ row: UnsafePointer<Float>, _ V: Int, label: Int) -> (Double, Int) {
        let (m, lse) = AttributionMetric.logSumExp(row, V)
        let value = row[label]
        var rank = 0
        for t in 0..<V where row[t] > value { rank += 1 }
        return (exp(Double(value) - m - lse), rank)
    }

    /// The Hugging Face tokenizers' `clean_up_tokenization`: spaces before punctuation and English
    /// contractions removed, in this order.
    public static func cleanUpTokenizationSpaces(_ s: String) -> String {
        var t = s
        for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                           (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            t = t.replacingOccurrences(of: from, with: to)
        }
        return t
    }

    /// `text.split(".")[0].strip()` as Python computes it.
    public static func cutAtFirstPeriod(_ text: String) -> String {
        let scalars = text.unicodeScalars
        let head = scalars.firstIndex(of: ".").map { String(scalars[..<$0]) } ?? text
        return head.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// An attribute × type × frequency cell of the acquisition table (its checkpoint implied).
public struct AcquisitionKey: Hashable, Sendable {
    public var attribute: String
    public var type: String
    public var frequency: String

    public init(attribute: String, type: String, frequency: String) {
        self.attribute = attribute; self.type = type; self.frequency = frequency
    }
}
