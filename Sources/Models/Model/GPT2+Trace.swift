import Foundation

extension GPT2 {
    /// A matched trace of one forward pass (`dkc trace`): runs `rows` (token ids, one batch row each, BOS already
    /// included where wanted) right-padded with `eos_token_id` to the longest row, and returns
    /// `GPT2Activations.trace()` (every activation's TransformerLens hook name, shape and sum over real positions)
    /// followed by a `logits` line, shape (B, T, V), summed over real positions.
    /// - Throws: `ModelError` for an empty row, a row longer than n_positions, or an id outside the vocabulary.
    public func trace(rows: [[Int]]) throws -> [GPT2Activations.TraceLine] {
        guard !rows.isEmpty else { throw ModelError("trace: no rows to run") }
        for (b, r) in rows.enumerated() where r.isEmpty { throw ModelError("trace: row \(b) has no tokens") }
        let B = rows.count, T = rows.map(\.count).max()!, V = config.vocabSize
        guard T <= config.nPositions else {
            throw ModelError("trace: a row has \(T) tokens, the model has \(config.nPositions) positions (n_positions); shorten it")
        }
        var tokens = [Int](repeating: config.eosTokenId, count: B * T)
        for (b, r) in rows.enumerated() { for (t, id) in r.enumerated() { tokens[b * T + t] = id } }
        let lengths = rows.map(\.count)
        let logits = try forward(tokens: tokens, batch: B, seqLen: T, lengths: lengths)   // (B, T, V)
        var s = 0.0
        for (b, n) in lengths.enumerated() {
            let row = logits.baseAddress! + b * T * V
            for i in 0..<(n * V) { s += Double(row[i]) }
        }
        return acts.trace() + [GPT2Activations.TraceLine(hook: "logits", shape: [B, T, V], sum: s)]
    }
}
