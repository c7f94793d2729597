import Foundation

/// Llama's tokenizer (TinyLlama's tokenizer.json): BPE over ▁-normalized text with byte fallback,
/// giving the ids Hugging Face's `tokenizers` gives.
///
/// Encoding (docs/tokenizers.md): added tokens not marked `normalized` (`<s>`, `</s>`, `<unk>`) are
/// found in the raw text first; each stretch between them is normalized on its own (Prepend `▁`,
/// Replace `" "` → `▁`: "a b" → "▁a▁b", " x" → "▁▁x"), there is no pre-tokenizer, and the whole
/// stretch is one BPE word: each character is its vocabulary token, else (byte fallback) one
/// `<0xXX>` token per UTF-8 byte, else `<unk>` (consecutive unknowns fused into one when
/// `fuse_unk`). `BPEMerges` merges the word. With `addSpecialTokens` the post-processor's template
/// adds its tokens (`<s>` first).
///
/// Decoding runs the decoder's steps: Replace ▁ → " ", ByteFallback (runs of `<0xXX>` tokens back
/// to UTF-8, U+FFFD per byte when invalid), Fuse, Strip (one leading space).
public final class SentencePieceBPETokenizer: Tokenizer, @unchecked Sendable {
    public let bosTokenId: Int
    public let eosTokenId: Int
    public let padTokenId: Int
    public let vocabSize: Int
    public let vocabFile: URL
    public let cleanUpTokenizationSpaces: Bool

    private let tokenText: [[UInt8]?]           // (vocabSize) UTF-8 of each token's text; nil for unused ids
    private let idOf: [[UInt8]: Int32]           // vocabulary token text → id
    private let idOfScalar: [UInt32: Int32]      // the same for one-character tokens, by scalar value
    private let merges: BPEMerges
    private let byteFallback: [Int32]?           // (256) the `<0xXX>` token of each byte, when byte_fallback
    private let unkId: Int32?
    private let fuseUnk: Bool
    private let ignoreMerges: Bool
    private let normalizers: [TokenizerDefinition.Normalizer]
    private let rawAdded: AddedTokenMatcher
    private let normalizedAdded: AddedTokenMatcher
    private let specialIds: Set<Int>
    private let prefixIds: [Int]
    private let suffixIds: [Int]
    private let decoder: [TokenizerDefinition.DecoderStep]

    /// The tokenizer a checked tokenizer.json describes, with the tokenizer_config.json beside it.
    init(definition d: TokenizerDefinition, config: TokenizerConfigFile) throws {
        let url = d.file
        vocabFile = url
        guard d.preTokenizer == .none else {
            throw TokenizerError(file: url, problem: "a Llama-style BPE tokenizer has no pre_tokenizer")
        }
        guard !d.decoder.contains(.byteLevel) else {
            throw TokenizerError(file: url, problem: "a ByteLevel decoder needs the ByteLevel pre_tokenizer")
        }

        let maxId = try GPT2Tokenizer.checkedMaxId(d.vocab.map(\.id) + d.added.map(\.id), file: url)
        let (byId, ids) = try Self.vocabulary(d, maxId: maxId)
        let rules = try Self.mergeRules(d, ids: ids)
        byteFallback = try Self.byteFallbackTable(d, ids: ids)
        if let unk = d.unkToken {
            guard let id = ids[Array(unk.utf8)] else {
                throw TokenizerError(file: url, problem: "model.unk_token \"\(unk)\" is not in model.vocab")
            }
            unkId = id
        } else {
            unkId = nil
        }

        func idOfName(_ name: String?, _ key: String) throws -> Int? {
            guard let name else { return nil }
            if let a = d.added.first(where: { $0.content.unicodeScalars.elementsEqual(name.unicodeScalars) }) { return a.id }
            if let v = ids[Array(name.utf8)] { return Int(v) }
            throw TokenizerError(file: url, problem: "tokenizer_config.json's \(key) \"\(name)\" is not a token of this vocabulary")
        }
        guard let bos = try idOfName(config.bos ?? "<s>", "bos_token") else { throw TokenizerError(file: url, problem: "no BOS token") }
        guard let eos = try idOfName(config.eos ?? "</s>", "eos_token") else { throw TokenizerError(file: url, problem: "no EOS token") }
        bosTokenId = bos
        eosTokenId = eos
        padTokenId = try idOfName(config.pad, "pad_token") ?? eos
        cleanUpTokenizationSpaces = config.cleanUp ?? false
        vocabSize = maxId + 1
        tokenText = byId
        idOf = ids
        var single: [UInt32: Int32] = [:]
        for (token, id) in ids where String(decoding: token, as: UTF8.self).unicodeScalars.count == 1 {
            single[String(decoding: token, as: UTF8.self).unicodeScalars.first!.value] = id
        }
        idOfScalar = single
        merges = BPEMerges(rules)
        fuseUnk = d.fuseUnk
        ignoreMerges = d.ignoreMerges
        normalizers = d.normalizers
        rawAdded = AddedTokenMatcher(d.added.filter { !$0.normalized }.map { (Array($0.content.utf8), $0.id) })
        normalizedAdded = AddedTokenMatcher(d.added.filter { $0.normalized }.map { (Array($0.content.utf8), $0.id) })
        specialIds = Set(d.added.filter(\.special).map(\.id))
        prefixIds = d.prefixIds
        suffixIds = d.suffixIds
        decoder = d.decoder
    }

    /// Each id's token bytes (model.vocab and the added tokens, nil for unused ids) and the id of each vocab token;
    /// an id given to two tokens, a token listed twice, or a post-processor id that is no token is an error.
    private static func vocabulary(_ d: TokenizerDefinition, maxId: Int) throws -> ([[UInt8]?], [[UInt8]: Int32]) {
        let url = d.file
        var byId = [[UInt8]?](repeating: nil, count: maxId + 1)
        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(d.vocab.count)
        for (token, id) in d.vocab {
            let bytes = Array(token.utf8)
            if let other = byId[id], other != bytes {
                throw TokenizerError(file: url, problem: "model.vocab: id \(id) is given to two tokens, \"\(String(decoding: other, as: UTF8.self))\" and \"\(token)\"")
            }
            if let other = ids[bytes], Int(other) != id {
                throw TokenizerError(file: url, problem: "model.vocab: token \"\(token)\" is listed twice, with ids \(other) and \(id)")
            }
            byId[id] = bytes
            ids[bytes] = Int32(id)
        }
        for a in d.added {
            let bytes = Array(a.content.utf8)
            if let other = byId[a.id], other != bytes {
                throw TokenizerError(file: url, problem: "added token \"\(a.content)\" has id \(a.id), which model.vocab gives to \"\(String(decoding: other, as: UTF8.self))\"")
            }
            byId[a.id] = bytes
        }
        for id in d.prefixIds + d.suffixIds where id >= byId.count || byId[id] == nil {
            throw TokenizerError(file: url, problem: "post_processor adds id \(id), which is not a token")
        }
        return (byId, ids)
    }

    /// The merges as (left, right, merged) ids, in priority order; a merge of tokens not in model.vocab is an error.
    private static func mergeRules(_ d: TokenizerDefinition, ids: [[UInt8]: Int32]) throws -> [(left: Int32, right: Int32, merged: Int32)] {
        var rules: [(left: Int32, right: Int32, merged: Int32)] = []
        rules.reserveCapacity(d.merges.count)
        for m in d.merges {
            func id(_ text: String, _ what: String) throws -> Int32 {
                guard let id = ids[Array(text.utf8)] else {
                    throw TokenizerError(file: d.file, problem: "\(m.place): \(what) \"\(text)\" is not in model.vocab")
                }
                return id
            }
            rules.append((try id(m.left, "token"), try id(m.right, "token"), try id(m.left + m.right, "merged token")))
        }
        return rules
    }

    /// The ids of the 256 byte tokens <0x00> … <0xFF> when model.byte_fallback is on, else nil.
    private static func byteFallbackTable(_ d: TokenizerDefinition, ids: [[UInt8]: Int32]) throws -> [Int32]? {
        guard d.byteFallback else { return nil }
        var table = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let name = "<0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true) + ">"
            guard let id = ids[Array(name.utf8)] else {
                throw TokenizerError(file: d.file, problem: "model.byte_fallback is true but model.vocab has no \(name)",
                                     fix: "a byte-fallback vocabulary has all 256 tokens <0x00> … <0xFF>")
            }
            table[b] = id
        }
        return table
    }

    // MARK: Encoding

    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: false) }

    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var out: [Int] = addSpecialTokens ? prefixIds : []
        var utf8 = Array(text.utf8)
        utf8.withUnsafeMutableBufferPointer { mbuf in
            let b = UnsafeBufferPointer(mbuf)
            rawAdded.split(b, 0..<b.count, text: { stretch in
                var normalized = normalize(Array(b[stretch]))
                normalized.withUnsafeMutableBufferPointer { nbuf in
                    let n = UnsafeBufferPointer(nbuf)
                    normalizedAdded.split(n, 0..<n.count, text: { word(n, $0, into: &out) }, token: { out.append($0) })
                }
            }, token: { out.append($0) })
        }
        if addSpecialTokens { out += suffixIds }
        return out
    }

    /// The normalizers in order, on UTF-8 bytes (Prepend leaves empty text empty).
    private func normalize(_ s: [UInt8]) -> [UInt8] {
        var s = s
        for n in normalizers {
            switch n {
            case .prepend(let p): if !s.isEmpty { s = Array(p.utf8) + s }
            case .replace(let pattern, let content): s = TokenizationCleanUp.replace(s, Array(pattern.utf8), Array(content.utf8))
            }
        }
        return s
    }

    /// One BPE word: the characters of `b[range]` as tokens (byte fallback, fused unknowns), merged.
    private func word(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [Int]) {
        if ignoreMerges, let whole = idOf[Array(b[range])] { out.append(Int(whole)); return }
        var symbols: [Int32] = []
        symbols.reserveCapacity(range.count)
        var lastWasUnk = false
        var i = range.lowerBound
        while i < range.upperBound {
            let n = Self.scalarLength(b[i])
            let end = min(i + n, range.upperBound)
            if end - i == n, let id = idOfScalar[GPT2PreTokenizer.decode(b, i).0] {
                symbols.append(id); lastWasUnk = false
            } else if let fallback = byteFallback {
                for k in i..<end { symbols.append(fallback[Int(b[k])]) }
                lastWasUnk = false
            } else if let unk = unkId {
                if !(fuseUnk && lastWasUnk) { symbols.append(unk) }
                lastWasUnk = true
            }
            i = end
        }
        var scratch: [Int32] = []
        scratch.reserveCapacity(symbols.count)
        merges.apply(&symbols, scratch: &scratch)
        for s in symbols { out.append(Int(s)) }
    }

    /// Bytes in the UTF-8 sequence a lead byte starts.
    @inline(__always)
    static func scalarLength(_ lead: UInt8) -> Int {
        lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
    }

    // MARK: Decoding

    public func isToken(_ id: Int) -> Bool { id >= 0 && id < tokenText.count && tokenText[id] != nil }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool, cleanUpSpaces: Bool) -> String {
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids where isToken(id) {
            if skipSpecialTokens && specialIds.contains(id) { continue }
            tokens.append(tokenText[id]!)
        }
        for step in decoder { tokens = Self.run(step, tokens) }
        let text = String(decoding: tokens.joined(), as: UTF8.self)
        return cleanUpSpaces ? TokenizationCleanUp.apply(text) : text
    }

    /// One decoder step over the token texts (UTF-8), as the reference's decoders.
    static func run(_ step: TokenizerDefinition.DecoderStep, _ tokens: [[UInt8]]) -> [[UInt8]] {
        switch step {
        case .byteLevel:
            return tokens  // refused at load time for this kind
        case .replace(let pattern, let content):
            let p = Array(pattern.utf8), c = Array(content.utf8)
            return tokens.map { TokenizationCleanUp.replace($0, p, c) }
        case .fuse:
            return [Array(tokens.joined())]
        case .byteFallback:
            var out: [[UInt8]] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if String(validating: pending, as: UTF8.self) != nil {
                    out.append(pending)
                } else {
                    for _ in pending { out.append(Array("\u{FFFD}".utf8)) }
                }
                pending.removeAll()
            }
            for t in tokens {
                if let byte = byteOfFallbackToken(t) {
                    pending.append(byte)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .strip(let c, let start, let stop):
            return tokens.map { t in
                var scalars = Array(String(decoding: t, as: UTF8.self).unicodeScalars)
                var cut = 0
                while cut < start && cut < scalars.count && scalars[cut] == c { cut += 1 }
                scalars.removeFirst(cut)
                var trailing = 0
                while trailing < stop && trailing < scalars.count && scalars[scalars.count - 1 - trailing] == c { trailing += 1 }
                scalars.removeLast(trailing)
                var s = String.UnicodeScalarView()
                s.append(contentsOf: scalars)
                return Array(String(s).utf8)
            }
        }
    }

    /// The byte of a `<0xXX>` token (six bytes, two hex digits; the reference's parser also takes
    /// `+X`), nil for any other token.
    static func byteOfFallbackToken(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        if t[3] == 0x2B, let lo = hex(t[4]) { return lo }
        guard let hi = hex(t[3]), let lo = hex(t[4]) else { return nil }
        return hi << 4 | lo
    }
}
