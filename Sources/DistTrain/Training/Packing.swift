import Core

/// Turning tokenised biographies into the fixed-length blocks training runs on, the way the study's
/// training script packs them (docs/pipeline.md §4).
///
/// - Each text is tokenised without BOS, truncated to `blockSize`, and gets an EOS appended unless
///   it already ends with one or was truncated (`TokenizedText.make`).
/// - Texts are packed in groups of `groupSize` (in the order given, which the caller has shuffled).
///   Inside a group a block always starts at a text boundary: a new block starts at the first text
///   that would run past `blockSize` tokens from the current block's start. Each block holds exactly
///   `blockSize` tokens of the group's concatenated stream, so its tail may hold the beginning of the
///   next text, which then appears again, whole, at the start of the following block. The last block
///   begun in each group is dropped (it may be short).
public struct TokenizedText: Equatable, Sendable {
    /// Token ids (Int32 to halve memory on the study's 2.5M texts).
    public var ids: [Int32]
    /// Per token: 0, or the entity-type code (1 new, 2 revised) where the first token of an attribute
    /// value (`" " + value`) begins; used by the first-token attribute accuracy.
    public var attributeMask: [UInt8]

    public init(ids: [Int32], attributeMask: [UInt8]) {
        precondition(ids.count == attributeMask.count, "ids and mask must have the same length")
        self.ids = ids
        self.attributeMask = attributeMask
    }

    /// Tokenises `text` as the training script does and marks the first token of each attribute value.
    /// - Parameters:
    ///   - attributes: attribute values as they appear in the text (without the leading space).
    ///   - typeCode: 1 for new entities, 2 for revised ones.
    public static func make(text: String, attributes: [String], typeCode: UInt8, encoder: TextEncoder,
                            eos: Int = 50256, blockSize: Int) -> TokenizedText {
        make(text: text, marks: attributes.map { (value: $0, code: typeCode) }, encoder: encoder, eos: eos, blockSize: blockSize)
    }

    /// Like `make(text:attributes:typeCode:…)`, with a code of its own for each value (e.g. the entity type
    /// and which attribute it is, combined); a later value whose first token lands on the same position wins.
    /// `bos` goes first when the family's tokenizer adds one (Llama's `<s>`; GPT-2 and Phi: nil); a value is
    /// found by the tokens of " " + value, or of the value alone when `markLeadingSpace` is false (Llama, whose
    /// tokenizer gives a text's first word the in-text `▁` piece: `ModelFamily.circuitLabelHasLeadingSpace`).
    public static func make(text: String, marks: [(value: String, code: UInt8)], encoder: TextEncoder,
                            eos: Int = 50256, blockSize: Int, bos: Int? = nil, markLeadingSpace: Bool = true) -> TokenizedText {
        var ids = (bos.map { [$0] } ?? []) + encoder.encode(text)
        if ids.count > blockSize { ids.removeLast(ids.count - blockSize) }
        if ids.last != eos && ids.count < blockSize { ids.append(eos) }
        var mask = [UInt8](repeating: 0, count: ids.count)
        for mark in marks where !mark.value.isEmpty {
            let sub = encoder.encode((markLeadingSpace ? " " : "") + mark.value)
            if let at = firstOccurrence(of: sub, in: ids) { mask[at] = mark.code }
        }
        return TokenizedText(ids: ids.map { Int32($0) }, attributeMask: mask)
    }

    /// Index of the first place `needle` occurs in `haystack`, or nil.
    static func firstOccurrence(of needle: [Int], in haystack: [Int]) -> Int? {
        guard !needle.isEmpty, needle.count <= haystack.count else { return nil }
        outer: for i in 0...(haystack.count - needle.count) {
            for j in 0..<needle.count where haystack[i + j] != needle[j] { continue outer }
            return i
        }
        return nil
    }
}

/// Packed blocks, stored flat: block `b` is `tokens[b*blockSize ..< (b+1)*blockSize]`.
public struct PackedBlocks: Equatable, Sendable {
    public let blockSize: Int
    public private(set) var tokens: [Int32]
    public private(set) var attributeMask: [UInt8]

    public var count: Int { tokens.count / blockSize }

    public init(blockSize: Int) {
        precondition(blockSize > 0)
        self.blockSize = blockSize
        tokens = []
        attributeMask = []
    }

    /// Blocks given flat (e.g. received from another rank): `tokens.count` must be a multiple of `blockSize`.
    public init(blockSize: Int, tokens: [Int32], attributeMask: [UInt8]) {
        precondition(blockSize > 0 && tokens.count % blockSize == 0 && attributeMask.count == tokens.count)
        self.blockSize = blockSize
        self.tokens = tokens
        self.attributeMask = attributeMask
    }

    /// Packs `texts` (already in their shuffled order) in groups of `groupSize`.
    public init(texts: [TokenizedText], blockSize: Int, groupSize: Int) {
        precondition(groupSize > 0)
        self.init(blockSize: blockSize)
        var g = 0
        while g < texts.count {
            append(group: texts[g..<min(g + groupSize, texts.count)])
            g += groupSize
        }
    }

    /// Starts of the blocks of one group, the last (incomplete) one included.
    static func blockStarts<C: Collection>(lengths: C, blockSize: Int) -> [Int] where C.Element == Int {
        var starts = [0]
        var offset = 0
        for n in lengths {
            if offset + n > starts[starts.count - 1] + blockSize { starts.append(offset) }
            offset += n
        }
        return starts
    }

    private mutating func append(group: ArraySlice<TokenizedText>) {
        let starts = PackedBlocks.blockStarts(lengths: group.map(\.ids.count), blockSize: blockSize)
        guard starts.count > 1 else { return }
        var stream: [Int32] = []
        var mask: [UInt8] = []
        stream.reserveCapacity(group.reduce(0) { $0 + $1.ids.count })
        mask.reserveCapacity(stream.capacity)
        for t in group { stream += t.ids; mask += t.attributeMask }
        for s in starts.dropLast() {
            // Every block but the last begun is full: the text that opened the next block ran past it.
            tokens += stream[s..<(s + blockSize)]
            attributeMask += mask[s..<(s + blockSize)]
        }
    }

    /// The token ids of block `b`.
    public func block(_ b: Int) -> ArraySlice<Int32> { tokens[(b * blockSize)..<((b + 1) * blockSize)] }
    public func mask(_ b: Int) -> ArraySlice<UInt8> { attributeMask[(b * blockSize)..<((b + 1) * blockSize)] }

    /// The blocks reordered by `order` (a permutation of 0..<count).
    public func permuted(_ order: [Int]) -> PackedBlocks {
        precondition(order.count == count)
        var out = PackedBlocks(blockSize: blockSize)
        out.tokens.reserveCapacity(tokens.count)
        out.attributeMask.reserveCapacity(tokens.count)
        for b in order { out.tokens += block(b); out.attributeMask += mask(b) }
        return out
    }
}
