/// Anything that turns text into token ids (the GPT-2 BPE tokenizer; simple stand-ins in tests).
/// Data generation depends on this protocol only: token lengths of names and first label tokens.
public protocol TextEncoder {
    /// Token ids of `text`, without special tokens added.
    func encode(_ text: String) -> [Int]
}
