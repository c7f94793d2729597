import Foundation

/// A tokenizer of one model family: text → ids → text, and the special ids the rest of dkc needs.
///
/// Two kinds implement it, both read from a Hugging Face `tokenizer.json` (docs/tokenizers.md):
/// `GPT2Tokenizer` (byte-level BPE: GPT-2, CodeGen/Phi; also from vocab.json + merges.txt) and
/// `SentencePieceBPETokenizer` (Llama's ▁-normalized BPE with byte fallback). Load one with
/// `TokenizerLoader.resolve(explicit:model:)`, which applies the project's one resolution rule.
public protocol Tokenizer: TextEncoder, Sendable {
    /// Token ids of `text`. Added tokens (`<|endoftext|>`, `<s>`, Phi's whitespace runs) written
    /// literally in `text` always become their ids; with `addSpecialTokens` the post-processor's
    /// tokens are added too (Llama: `<s>` first; GPT-2 and Phi: nothing), as Hugging Face's default call.
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    /// The text of `ids` as the tokenizer's decoder writes it. `skipSpecialTokens` drops special
    /// tokens (not Phi's whitespace tokens, which are added but not special); `cleanUpSpaces` applies
    /// transformers' `clean_up_tokenization` (" ." → "." …). Ids that name no token are skipped.
    func decode(_ ids: [Int], skipSpecialTokens: Bool, cleanUpSpaces: Bool) -> String
    /// The id of the beginning-of-sequence token TransformerLens puts in front of prompts.
    var bosTokenId: Int { get }
    /// The end-of-sequence id appended to training texts.
    var eosTokenId: Int { get }
    /// The padding id: the configured pad token, else EOS (what TransformerLens sets).
    var padTokenId: Int { get }
    /// One more than the largest id: the rows of the embedding the ids index.
    var vocabSize: Int { get }
    /// tokenizer_config.json's `clean_up_tokenization_spaces` (false when the file does not say).
    var cleanUpTokenizationSpaces: Bool { get }
    /// Whether `id` names a token (vocabulary or added).
    func isToken(_ id: Int) -> Bool
    /// The file the vocabulary was read from (tokenizer.json or vocab.json).
    var vocabFile: URL { get }
}

public extension Tokenizer {
    /// The decoder's text, special tokens kept, cleaned up as the tokenizer's config says.
    func decodeAsConfigured(_ ids: [Int]) -> String {
        decode(ids, skipSpecialTokens: false, cleanUpSpaces: cleanUpTokenizationSpaces)
    }
}

/// transformers' `clean_up_tokenization`: removes the space before punctuation and English
/// contractions that word-level tokenizers used to leave. Applied after decoding when asked.
public enum TokenizationCleanUp {
    static let rules: [(String, String)] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ]

    /// `text` with the rules applied one after the other, each to the whole text (as the reference does).
    public static func apply(_ text: String) -> String {
        var bytes = Array(text.utf8)
        for (from, to) in rules { bytes = replace(bytes, Array(from.utf8), Array(to.utf8)) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Every non-overlapping occurrence of `pattern`, left to right, replaced (byte-wise, so no
    /// canonical-equivalence matching).
    static func replace(_ s: [UInt8], _ pattern: [UInt8], _ with: [UInt8]) -> [UInt8] {
        guard !pattern.isEmpty, s.count >= pattern.count else { return s }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if i + pattern.count <= s.count && s[i] == pattern[0] && s[i..<(i + pattern.count)].elementsEqual(pattern) {
                out.append(contentsOf: with)
                i += pattern.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
}
