import Foundation

/// Full-model knowledge acquisition (docs/pipeline.md §5, docs/test-set.md): for every test entity and attribute,
/// the task prompt (no BOS, as the Hugging Face tokenizer encodes it) is decoded greedily for at most
/// `maxNewTokens` tokens and the text after the prompt is cut at the first "." and stripped. It is judged
/// twice: under the study's rule (`predict.py`: correct iff it equals the value or is a substring of it, so
/// an empty prediction counts; the paper's query accuracy) and strictly (exact match, `batch_predict.py`).
/// Besides, the probability and rank of the label's first token (of " " + value) at the last prompt position.
///
/// The decoded text goes through the tokenizer's `clean_up_tokenization_spaces` (on in the study's
/// transformers version), as `tokenizer.decode` does there. The study decodes prompt + continuation and
/// cuts the prompt's characters off; decoding the continuation alone gives the same text, since no
/// clean-up pattern can span the boundary (prompts end in a letter, every pattern starts with a space).
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
        /// Everything decoded after the prompt, and its token ids (end-of-text excluded).
        public var continuation: String
        public var generated: [Int]
        /// The study's rule: `prediction == answer or prediction in answer` (`isQueryCorrect`).
        public var queryCorrect: Bool
        /// Strict: the prediction equals the value.
        public var exactMatch: Bool
        /// Probability and rank (0 = most probable) of the label's first token at the last prompt position.
        public var labelProb: Double
        public var labelRank: Int
    }

    /// Decodes every entity × attribute with `decoder` (greedy, key/value cache, one batch of
    /// `options.batchSize` prompts at a time). `progress(done, total)` after each batch of prompts.
    public static func predict(entities: [Entity], decoder: KnowledgeAcquisition, tokenizer: GPT2Tokenizer, options: Options = Options(),
                               progress: ((Int, Int) -> Void)? = nil) throws -> [Prediction] {
        guard options.batchSize >= 1 else { throw CircuitsError(item: "batch size", problem: "is \(options.batchSize)", fix: "use at least 1") }
        guard options.maxNewTokens >= 1 else {
            throw CircuitsError(item: "max_new_tokens", problem: "is \(options.maxNewTokens)", fix: "generate at least 1 token (the study: 15)")
        }
        struct Job { let entity: Entity; let attribute: CircuitTask; let tokens: [Int]; let label: Int }
        var jobs: [Job] = []
        jobs.reserveCapacity(entities.count * attributes.count)
        for e in entities {
            for a in attributes {
                guard let label = e.labelToken(task: a, encoder: tokenizer) else {
                    throw CircuitsError(item: "test entity '\(e.fullName)'", problem: "has an empty \(a.rawValue)", fix: "regenerate the test set")
                }
                jobs.append(Job(entity: e, attribute: a, tokens: tokenizer.encode(a.prompt(subject: e.fullName)), label: label))
            }
        }
        let text = { (ids: [Int]) in cleanUpTokenizationSpaces(tokenizer.decode(ids)) }
        var out: [Prediction] = []
        out.reserveCapacity(jobs.count)
        var start = 0
        while start < jobs.count {
            let batch = Array(jobs[start..<min(start + options.batchSize, jobs.count)])
            let outcomes = try decoder.run(prompts: batch.map(\.tokens), labels: batch.map(\.label),
                                           answers: batch.map { $0.entity.value(of: $0.attribute) }, batchSize: batch.count,
                                           maxNewTokens: options.maxNewTokens, decode: text)
            for (job, o) in zip(batch, outcomes) {
                out.append(Prediction(entity: job.entity, attribute: job.attribute, groundTruth: job.entity.value(of: job.attribute),
                                      prediction: o.prediction, continuation: text(o.continuation), generated: o.continuation,
                                      queryCorrect: isQueryCorrect(prediction: o.prediction, answer: job.entity.value(of: job.attribute)),
                                      exactMatch: o.exactMatch, labelProb: o.labelProbability, labelRank: o.labelRank))
            }
            start += batch.count
            progress?(start, jobs.count)
        }
        return out
    }

    /// The study's query rule (`predict.py`): `prediction == answer or prediction in answer`, Python's
    /// substring test on Unicode code points. An empty prediction is a substring of every answer, so it
    /// counts as correct; "New" counts for "New York, NY"; a prediction longer than the answer never does.
    public static func isQueryCorrect(prediction: String, answer: String) -> Bool {
        if prediction == answer { return true }
        let p = Array(prediction.unicodeScalars), a = Array(answer.unicodeScalars)
        if p.isEmpty { return true }
        guard p.count <= a.count else { return false }
        for start in 0...(a.count - p.count) where a[start] == p[0] {
            if a[start..<(start + p.count)].elementsEqual(p) { return true }
        }
        return false
    }

    /// The acquisition table cells of one checkpoint: per attribute × type × bucket, the query accuracy
    /// (study rule) and exact match, hits@1 and hits@10 of the label's first token, its mean probability,
    /// and the count. Entities outside every bucket are left out.
    public static func summarize(_ predictions: [Prediction], buckets: FrequencyBuckets) -> [AcquisitionKey: AcquisitionTable.Result] {
        var groups: [AcquisitionKey: [Prediction]] = [:]
        for p in predictions {
            guard let bucket = buckets.name(of: p.entity.frequency) else { continue }
            groups[AcquisitionKey(attribute: p.attribute.rawValue, type: p.entity.type.rawValue, frequency: bucket), default: []].append(p)
        }
        return groups.mapValues { ps in
            let stats = LabelStatistics(probabilities: ps.map(\.labelProb), ranks: ps.map(\.labelRank))
            return AcquisitionTable.Result(queryAccuracy: Double(ps.filter(\.queryCorrect).count) / Double(ps.count),
                                           exactMatch: Double(ps.filter(\.exactMatch).count) / Double(ps.count), hitsAt1: stats.hitsAt1,
                                           hitsAt10: stats.hitsAt10, labelProb: stats.meanProbability, nEntities: ps.count)
        }
    }

    /// The test entities as acquisition.nc's `test_entity` axis: full name, type and bucket ("" when in none),
    /// in the order given (test.jsonl's file order).
    public static func testEntityLabels(_ entities: [Entity], buckets: FrequencyBuckets) -> [AcquisitionTable.TestEntity] {
        entities.map { AcquisitionTable.TestEntity(name: $0.fullName, type: $0.type.rawValue, frequency: buckets.name(of: $0.frequency) ?? "") }
    }

    /// Per-entity results of one checkpoint (the study's per-row correctness): for each attribute, 1/0 per
    /// entity of `entities` (in that order) under the study's rule and strictly. `predictions` are those
    /// `predict` returned for exactly these entities.
    public static func entityResults(_ predictions: [Prediction], entities: [Entity]) throws -> AcquisitionTable.EntityResults {
        var query: [String: [Int8]] = [:], exact: [String: [Int8]] = [:]
        for a in attributes {
            query[a.rawValue] = [Int8](repeating: OutputFill.flag, count: entities.count)
            exact[a.rawValue] = [Int8](repeating: OutputFill.flag, count: entities.count)
        }
        for (n, p) in predictions.enumerated() {
            // predict keeps the entity × attribute order; names may repeat in a hand-made test file.
            let i = n / attributes.count
            guard i < entities.count, entities[i].fullName == p.entity.fullName, query[p.attribute.rawValue] != nil else {
                throw CircuitsError(item: "prediction \(n + 1) (\(p.entity.fullName), \(p.attribute.rawValue))",
                                    problem: "does not follow the test entities' order", fix: "pass the predictions of exactly these entities", exitCode: 1)
            }
            query[p.attribute.rawValue]![i] = p.queryCorrect ? 1 : 0
            exact[p.attribute.rawValue]![i] = p.exactMatch ? 1 : 0
        }
        return AcquisitionTable.EntityResults(query: query, exact: exact)
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
