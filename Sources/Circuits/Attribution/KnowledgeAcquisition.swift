import Foundation
import Models

/// What the full model knows about one entity attribute (pipeline §5, the study's `predict.py`): greedy
/// continuation of the task prompt, cut at the first ".", stripped, compared with the ground truth; and
/// the rank and probability of the label token (first token of " " + value) at the last prompt position.
public struct AcquisitionOutcome: Sendable, Equatable {
    /// Generated token ids (up to the first ".", the end-of-text token or the token limit; EOS not included).
    public var continuation: [Int]
    /// The continuation's text before its first ".", whitespace-stripped (`output.split(".")[0].strip()`).
    public var prediction: String
    /// prediction == ground truth.
    public var exactMatch: Bool
    /// Tokens with a strictly larger logit than the label at the last prompt position (0 = top).
    public var labelRank: Int
    /// Softmax probability of the label there.
    public var labelProbability: Double
}

/// Greedy decoding with the plain model over batches of prompts of different lengths (right padding, positions
/// 0 … T−1, padded keys masked, a key/value cache for the generated tokens: every row computes what it would
/// alone, up to rounding). GPT-2, Llama and Phi (`GreedyDecoder`, `FamilyGreedyDecoder`).
public final class KnowledgeAcquisition: @unchecked Sendable {
    /// End-of-text token: generation of a row stops there (HF `generate` with `eos_token_id`).
    public let eos: Int
    /// The model's family (prompt and label conventions of `Acquisition.predict`).
    public let family: ModelFamily

    private let decoder: any CachedDecoder

    public init(model: GPT2) {
        eos = model.config.eosTokenId
        family = .gpt2
        decoder = GreedyDecoder(model: model)
    }

    public init(model: FamilyModel) {
        eos = model.config.eosTokenId
        family = model.config.family
        decoder = FamilyGreedyDecoder(model: model)
    }

    /// The decoder of an instrumented checkpoint: a plain model over the same parameters (no copy).
    public convenience init(circuitModel m: CircuitModel) {
        if let gpt2 = m.model as? InstrumentedGPT2 {
            self.init(model: GPT2(params: gpt2.parameters))
        } else if let family = m.model as? InstrumentedFamily {
            self.init(model: FamilyModel(params: family.parameters))
        } else {
            preconditionFailure("CircuitModel holds an InstrumentedGPT2 or an InstrumentedFamily")
        }
    }

    /// Runs `prompts` (token ids as the tokenizer's default call gives them, as the study's `predict.py`) in batches of `batchSize`, generating at
    /// most `maxNewTokens` tokens per prompt. `labels[i]` is the token ranked at the last prompt position,
    /// `answers[i]` the ground truth, `decode` turns generated ids into text (special tokens already removed).
    public func run(prompts: [[Int]], labels: [Int], answers: [String], batchSize: Int, maxNewTokens: Int,
                    decode: ([Int]) -> String) throws -> [AcquisitionOutcome] {
        guard prompts.count == labels.count, prompts.count == answers.count else {
            throw AttributionError(item: "acquisition", problem: "\(prompts.count) prompts, \(labels.count) labels and \(answers.count) answers",
                                   fix: "give one label and one answer per prompt")
        }
        guard batchSize >= 1 else { throw AttributionError(item: "batch size", problem: "is \(batchSize)", fix: "use at least 1") }
        guard maxNewTokens >= 1 else { throw AttributionError(item: "max_new_tokens", problem: "is \(maxNewTokens)", fix: "use at least 1") }
        let V = decoder.cache.vocabSize, maxT = decoder.cache.maxPositions
        for (i, p) in prompts.enumerated() {
            guard !p.isEmpty, p.count <= maxT else {
                throw AttributionError(item: "prompt \(i)", problem: "has \(p.count) tokens (the model takes 1 … \(maxT))", fix: "check the prompt")
            }
            guard labels[i] >= 0 && labels[i] < V, p.allSatisfy({ $0 >= 0 && $0 < V }) else {
                throw AttributionError(item: "prompt \(i)", problem: "has a token id outside 0 ..< \(V)", fix: "check the tokenizer")
            }
        }
        var out: [AcquisitionOutcome] = []
        out.reserveCapacity(prompts.count)
        var start = 0
        while start < prompts.count {
            let end = min(start + batchSize, prompts.count)
            out += try runBatch(Array(prompts[start..<end]), Array(labels[start..<end]), Array(answers[start..<end]),
                                maxNewTokens: maxNewTokens, decode: decode)
            start = end
        }
        return out
    }

    private func runBatch(_ prompts: [[Int]], _ labels: [Int], _ answers: [String], maxNewTokens: Int,
                          decode: ([Int]) -> String) throws -> [AcquisitionOutcome] {
        let B = prompts.count, V = decoder.cache.vocabSize
        let capacity = min(decoder.cache.maxPositions, prompts.map(\.count).max()! + maxNewTokens)
        var generated = [[Int]](repeating: [], count: B)
        var done = [Bool](repeating: false, count: B)
        var rank = [Int](repeating: 0, count: B), prob = [Double](repeating: 0, count: B)
        var logits = try decoder.prefill(prompts, capacity: capacity)
        var rows = Array(0..<B)   // the rows `logits` belongs to, in order
        for step in 0..<maxNewTokens {
            var nextRows: [Int] = [], nextTokens: [Int] = [], nextPositions: [Int] = []
            for (i, b) in rows.enumerated() {
                let row = logits + i * V
                if step == 0 {
                    let label = row[labels[b]]
                    var r = 0
                    for t in 0..<V where row[t] > label { r += 1 }
                    let (m, lse) = AttributionMetric.logSumExp(row, V)
                    rank[b] = r
                    prob[b] = exp(Double(label) - m - lse)
                }
                // argmax, first index on ties (torch.argmax).
                var best = 0
                for t in 1..<V where row[t] > row[best] { best = t }
                if best == eos { done[b] = true; continue }
                generated[b].append(best)
                let position = prompts[b].count + generated[b].count - 1
                if decode(generated[b]).contains(".") || position + 1 >= capacity { done[b] = true; continue }
                nextRows.append(b); nextTokens.append(best); nextPositions.append(position)
            }
            if nextRows.isEmpty || step == maxNewTokens - 1 { break }
            logits = decoder.step(rows: nextRows, tokens: nextTokens, positions: nextPositions)
            rows = nextRows
        }
        return (0..<B).map { b in
            let text = decode(generated[b])
            let prediction = (text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return AcquisitionOutcome(continuation: generated[b], prediction: prediction, exactMatch: prediction == answers[b],
                                      labelRank: rank[b], labelProbability: prob[b])
        }
    }
}

/// Summary of label ranks and probabilities over a set of prompts (a type × bucket cell): the columns
/// `label_prob`, `label_rank_mean`, `hits_at_1`, `hits_at_10` of circuits.nc and acquisition.nc.
public struct LabelStatistics: Sendable, Equatable {
    public var count: Int
    /// Mean probability of the label.
    public var meanProbability: Double
    /// Mean 0-based rank of the label.
    public var meanRank: Double
    /// Share of prompts whose label ranks first (rank < 1).
    public var hitsAt1: Double
    /// Share with rank < 10.
    public var hitsAt10: Double

    /// NaN means for an empty set.
    public init(probabilities: [Double], ranks: [Int]) {
        precondition(probabilities.count == ranks.count, "one rank per probability")
        count = ranks.count
        let n = Double(max(count, 1))
        meanProbability = count == 0 ? .nan : probabilities.reduce(0, +) / n
        meanRank = count == 0 ? .nan : Double(ranks.reduce(0, +)) / n
        hitsAt1 = count == 0 ? .nan : Double(ranks.filter { $0 < 1 }.count) / n
        hitsAt10 = count == 0 ? .nan : Double(ranks.filter { $0 < 10 }.count) / n
    }

    /// Share of exact matches among acquisition outcomes (NaN for none).
    public static func exactMatchRate(_ outcomes: [AcquisitionOutcome]) -> Double {
        outcomes.isEmpty ? .nan : Double(outcomes.filter(\.exactMatch).count) / Double(outcomes.count)
    }
}
