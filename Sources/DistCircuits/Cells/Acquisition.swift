import Foundation
import Core

/// Full-model knowledge acquisition (docs/pipeline.md §5, docs/test-set.md): for every test entity and attribute,
/// the task prompt (as the Hugging Face tokenizer's default call encodes it: no BOS for GPT-2 and Phi, `<s>`
/// for Llama) is decoded greedily for at most `maxNewTokens` tokens and the text after the prompt is cut at the
/// first "." and stripped. It is judged twice: under the study's rule (`predict.py`: correct iff it equals the
/// value or is a substring of it, so an empty prediction counts; the paper's query accuracy) and strictly
/// (exact match, `batch_predict.py`). Besides, the probability and rank of the label's first token (of
/// " " + value; Llama: of the value) at the last prompt position.
///
/// As the study does, prompt + continuation are decoded together with special tokens skipped and
/// `clean_up_tokenization_spaces` as `cleansUpSpaces` says, and the prompt's characters are cut off.
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
    /// `options.batchSize` prompts at a time). Prompts are encoded as the tokenizer's default call does
    /// (Llama: `<s>` first; GPT-2 and Phi: nothing added), labels follow the family's rule
    /// (`ModelFamily.circuitLabelHasLeadingSpace`). `progress(done, total)` after each batch of prompts.
    public static func predict(entities: [Entity], decoder: KnowledgeAcquisition, tokenizer: any Tokenizer, options: Options = Options(),
                               progress: ((Int, Int) -> Void)? = nil) throws -> [Prediction] {
        guard options.batchSize >= 1 else { throw CircuitsError(item: "batch size", problem: "is \(options.batchSize)", fix: "use at least 1") }
        guard options.maxNewTokens >= 1 else {
            throw CircuitsError(item: "max_new_tokens", problem: "is \(options.maxNewTokens)", fix: "generate at least 1 token (the study: 15)")
        }
        struct Job { let entity: Entity; let attribute: CircuitTask; let prompt: String; let tokens: [Int]; let label: Int }
        let leadingSpace = decoder.family.circuitLabelHasLeadingSpace
        var jobs: [Job] = []
        jobs.reserveCapacity(entities.count * attributes.count)
        for e in entities {
            for a in attributes {
                guard let label = e.labelToken(task: a, encoder: tokenizer, leadingSpace: leadingSpace) else {
                    throw CircuitsError(item: "test entity '\(e.fullName)'", problem: "has an empty \(a.rawValue)", fix: "regenerate the test set")
                }
                let prompt = a.prompt(subject: e.fullName)
                jobs.append(Job(entity: e, attribute: a, prompt: prompt, tokens: tokenizer.encode(prompt, addSpecialTokens: true), label: label))
            }
        }
        let cleanUp = cleansUpSpaces(tokenizer, family: decoder.family)
        // Only tells when a continuation holds a "." (decoding stops there); the answer is read below.
        let text = { (ids: [Int]) in tokenizer.decode(ids, skipSpecialTokens: true, cleanUpSpaces: cleanUp) }
        var out: [Prediction] = []
        out.reserveCapacity(jobs.count)
        var start = 0
        while start < jobs.count {
            let batch = Array(jobs[start..<min(start + options.batchSize, jobs.count)])
            let outcomes = try decoder.run(prompts: batch.map(\.tokens), labels: batch.map(\.label),
                                           answers: batch.map { $0.entity.value(of: $0.attribute) }, batchSize: batch.count,
                                           maxNewTokens: options.maxNewTokens, decode: text)
            for (job, o) in zip(batch, outcomes) {
                let truth = job.entity.value(of: job.attribute)
                let (continuation, prediction) = answer(prompt: job.prompt, promptTokens: job.tokens, generated: o.continuation,
                                                        tokenizer: tokenizer, cleanUp: cleanUp)
                out.append(Prediction(entity: job.entity, attribute: job.attribute, groundTruth: truth,
                                      prediction: prediction, continuation: continuation, generated: o.continuation,
                                      queryCorrect: isQueryCorrect(prediction: prediction, answer: truth),
                                      exactMatch: prediction == truth, labelProb: o.labelProbability, labelRank: o.labelRank))
            }
            start += batch.count
            progress?(start, jobs.count)
        }
        return out
    }

    /// Whether `tokenizer.decode` cleans up tokenization spaces in the study's transformers version: always for
    /// GPT-2 (the default then, whatever the folder says), else as the folder's tokenizer_config.json says
    /// (TinyLlama: no; Phi-1.5: yes).
    public static func cleansUpSpaces(_ tokenizer: any Tokenizer, family: ModelFamily) -> Bool {
        family == .gpt2 || tokenizer.cleanUpTokenizationSpaces
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

    /// The acquisition table cells of checkpoint `step`: per attribute × type × bucket, the query accuracy
    /// (study rule) and exact match, hits@1 and hits@10 of the label's first token, its mean probability,
    /// and the count. Entities outside every bucket are left out.
    public static func summarize(_ predictions: [Prediction], checkpoint step: Int64, buckets: FrequencyBuckets) -> [AcquisitionCell: AcquisitionTable.Result] {
        var groups: [AcquisitionCell: [Prediction]] = [:]
        for p in predictions {
            guard let bucket = buckets.name(of: p.entity.frequency) else { continue }
            groups[AcquisitionCell(checkpoint: step, attribute: p.attribute.rawValue, type: p.entity.type.rawValue, frequency: bucket), default: []].append(p)
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

    /// The study's reading of a generation: `decode(prompt + generated, skip_special_tokens=True)` (spaces
    /// cleaned up when `cleanUp`), the prompt's characters cut off (the continuation), then the text before the
    /// first "." stripped (the prediction). Decoding the whole sequence keeps the decoder's rules at the
    /// boundary (Llama's decoder strips the first piece's space only at the start of the text).
    public static func answer(prompt: String, promptTokens: [Int], generated: [Int], tokenizer: any Tokenizer,
                              cleanUp: Bool = true) -> (continuation: String, prediction: String) {
        let full = tokenizer.decode(promptTokens + generated, skipSpecialTokens: true, cleanUpSpaces: cleanUp)
        let continuation = String(String.UnicodeScalarView(full.unicodeScalars.dropFirst(prompt.unicodeScalars.count)))
        return (continuation, cutAtFirstPeriod(continuation))
    }

    /// `text.split(".")[0].strip()` as Python computes it.
    public static func cutAtFirstPeriod(_ text: String) -> String {
        let scalars = text.unicodeScalars
        let head = scalars.firstIndex(of: ".").map { String(scalars[..<$0]) } ?? text
        return head.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
