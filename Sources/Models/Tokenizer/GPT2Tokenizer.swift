import Foundation
import Support

/// Byte-level BPE tokenizer: GPT-2's, and the same machinery for CodeGen/Phi, giving the ids the
/// reference (Hugging Face's tokenizer, `add_special_tokens=False`) gives.
///
/// Encoding: added tokens written literally in the text (`<|endoftext|>`; Phi's runs of spaces and
/// tabs) become their ids, longest first; the text between them is cut into pieces by
/// `GPT2PreTokenizer`, each piece's UTF-8 bytes start as one token per byte, and `BPEMerges`
/// merges them. Decoding concatenates the bytes of the tokens, so `decodeBytes(encode(s))` is
/// exactly `s`'s UTF-8. Nothing is ever added (the post-processor of GPT-2 and Phi adds nothing).
///
/// Thread-safe: the tables are immutable and the cache of encoded pieces is behind a lock.
public final class GPT2Tokenizer: Tokenizer, @unchecked Sendable {
    /// The text of GPT-2's one special token.
    public static let endOfText = "<|endoftext|>"

    /// The EOS id: tokenizer_config.json's `eos_token`, else `<|endoftext|>` (50256 for GPT-2).
    public let eosTokenId: Int
    /// The BOS id: `bos_token`, else EOS (GPT-2 and Phi use `<|endoftext|>` for both).
    public let bosTokenId: Int
    /// The padding id: `pad_token`, else EOS (as TransformerLens sets it).
    public let padTokenId: Int
    /// One more than the largest id (50257 for GPT-2): the rows of the embedding the ids index.
    public let vocabSize: Int
    /// The file the vocabulary was read from (vocab.json or tokenizer.json).
    public let vocabFile: URL
    /// tokenizer_config.json's `clean_up_tokenization_spaces`; false without the file.
    public let cleanUpTokenizationSpaces: Bool

    private let byteToken: [Int32]                    // (256) the one-byte token of each byte
    private let merges: BPEMerges
    private let tokenBytes: [[UInt8]?]                // (vocabSize) raw bytes of each id; nil for unused ids
    private let rawAdded: AddedTokenMatcher           // added tokens matched in raw text (special ones)
    private let normalizedAdded: AddedTokenMatcher    // added tokens matched in the stretches between
    private let specialIds: Set<Int>                  // dropped by skip-special decoding
    private let wholeTokens: [[UInt8]: Int32]?        // for `ignore_merges` only
    private let cacheLock = NSLock()
    private var cache: [[UInt8]: [Int32]] = [:]       // piece bytes → ids
    private static let cacheLimit = 1 << 17

    /// Reads `vocab.json` + `merges.txt` (+ `added_tokens.json`) from `directory` (a Hugging Face
    /// GPT-2 or Phi model folder, or the cache folder `scripts/fetch-gpt2-tokenizer` fills), or
    /// `tokenizer.json` when vocab.json is absent; `tokenizer_config.json` when present.
    /// - Throws: `TokenizerError` naming the missing or malformed file (and line for merges.txt).
    public convenience init(directory: URL) throws {
        try self.init(files: try BPEFiles.read(directory: directory))
    }

    /// The byte-level tokenizer a checked tokenizer.json describes, with the config beside it.
    convenience init(definition: TokenizerDefinition, config: TokenizerConfigFile) throws {
        var files = try BPEFiles.fromDefinition(definition)
        files.config = config
        try self.init(files: files)
    }

    init(files: BPEFiles) throws {
        vocabFile = files.vocabFile

        // Vocabulary: raw bytes ↔ id, both ways unique.
        let maxId = try Self.checkedMaxId(files.vocab.map(\.id) + files.added.map(\.id), file: files.vocabFile)
        var byId = [[UInt8]?](repeating: nil, count: maxId + 1)
        var idOf: [[UInt8]: Int32] = [:]
        idOf.reserveCapacity(files.vocab.count)
        for t in files.vocab {
            if let other = byId[t.id], other != t.bytes {
                throw TokenizerError(file: files.vocabFile, problem:
                    "id \(t.id) is given to two tokens, \"\(ByteLevel.token(ofBytes: other))\" and \"\(ByteLevel.token(ofBytes: t.bytes))\"")
            }
            if let other = idOf[t.bytes], Int(other) != t.id {
                throw TokenizerError(file: files.vocabFile, problem:
                    "token \"\(ByteLevel.token(ofBytes: t.bytes))\" is listed twice, with ids \(other) and \(t.id)")
            }
            byId[t.id] = t.bytes
            idOf[t.bytes] = Int32(t.id)
        }
        for s in files.added {
            if let other = byId[s.id], other != s.bytes {
                throw TokenizerError(file: files.vocabFile, problem:
                    "added token \"\(String(decoding: s.bytes, as: UTF8.self))\" has id \(s.id), which the vocabulary gives to \"\(ByteLevel.token(ofBytes: other))\"")
            }
            byId[s.id] = s.bytes
        }

        var oneByte = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            guard let id = idOf[[UInt8(b)]] else {
                throw TokenizerError(file: files.vocabFile, problem:
                    "no token for the single byte 0x\(String(b, radix: 16)) (\"\(ByteLevel.scalarOfByte[b])\"); a byte-level vocabulary has all 256")
            }
            oneByte[b] = id
        }

        // Merges: later duplicates replace earlier ones, as in the reference.
        var rules: [(left: Int32, right: Int32, merged: Int32)] = []
        rules.reserveCapacity(files.merges.count)
        for m in files.merges {
            func id(_ bytes: [UInt8], _ what: String) throws -> Int32 {
                guard let id = idOf[bytes] else {
                    throw TokenizerError(file: files.mergesFile, line: m.line, problem:
                        "\(m.place): \(what) \"\(ByteLevel.token(ofBytes: bytes))\" is not in the vocabulary (\(files.vocabFile.lastPathComponent))")
                }
                return id
            }
            rules.append((try id(m.left, "token"), try id(m.right, "token"), try id(m.left + m.right, "merged token")))
        }

        func idOfName(_ name: String?, _ key: String) throws -> Int? {
            guard let name else { return nil }
            let bytes = Array(name.utf8)
            if let a = files.added.first(where: { $0.bytes == bytes }) { return a.id }
            if let v = idOf[bytes] { return Int(v) }
            throw TokenizerError(file: files.vocabFile, problem: "tokenizer_config.json's \(key) \"\(name)\" is not a token of this vocabulary")
        }
        let endOfText = files.added.first(where: { $0.bytes.elementsEqual(Self.endOfText.utf8) })?.id
            ?? idOf[Array(Self.endOfText.utf8)].map(Int.init)
        guard let eos = try idOfName(files.config.eos, "eos_token") ?? endOfText else {
            throw TokenizerError(file: files.vocabFile, problem: "no \(Self.endOfText) token and no eos_token in tokenizer_config.json",
                                 fix: "this is not GPT-2's vocabulary; run scripts/fetch-gpt2-tokenizer for it")
        }
        eosTokenId = eos
        bosTokenId = try idOfName(files.config.bos, "bos_token") ?? eos
        padTokenId = try idOfName(files.config.pad, "pad_token") ?? eos
        cleanUpTokenizationSpaces = files.config.cleanUp ?? false
        vocabSize = maxId + 1
        byteToken = oneByte
        merges = BPEMerges(rules)
        tokenBytes = byId
        rawAdded = AddedTokenMatcher(files.added.filter { !$0.normalized }.map { ($0.bytes, $0.id) })
        normalizedAdded = AddedTokenMatcher(files.added.filter { $0.normalized }.map { ($0.bytes, $0.id) })
        specialIds = Set(files.added.filter(\.special).map(\.id))
        wholeTokens = files.ignoreMerges ? idOf : nil
    }

    /// The largest of `ids`, refusing sparse numberings that would make the id table far larger than
    /// the vocabulary (ids index a table of `max + 1` rows).
    static func checkedMaxId(_ ids: [Int], file: URL) throws -> Int {
        let maxId = ids.max() ?? 0
        guard maxId < 2 * ids.count + 1024 else {
            throw TokenizerError(file: file, problem: "the largest id is \(maxId) but there are only \(ids.count) tokens",
                                 fix: "ids must number the tokens densely from 0")
        }
        return maxId
    }

    /// The tokenizer in the cache folder (`Paths.gpt2Tokenizer`).
    /// - Throws: `TokenizerError` telling the user to run `scripts/fetch-gpt2-tokenizer` when it is absent.
    public static func loadDefault() throws -> GPT2Tokenizer {
        let dir = Paths.gpt2Tokenizer
        let fm = FileManager.default
        guard fm.fileExists(atPath: dir.appendingPathComponent("vocab.json").path)
                || fm.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path) else {
            throw TokenizerError(file: dir, problem: "GPT-2's tokenizer is not installed",
                                 fix: "run scripts/fetch-gpt2-tokenizer, or pass the folder of a GPT-2 model")
        }
        return try GPT2Tokenizer(directory: dir)
    }

    // MARK: Encoding

    /// Token ids of `text`, adding no special tokens; added tokens written in `text` (the literal
    /// `<|endoftext|>`) become their ids (they are matched in raw text, and the text between them is
    /// encoded on its own).
    public func encode(_ text: String) -> [Int] {
        encodeBytes(text, matchingAdded: true)
    }

    /// The same as `encode(_:)`: byte-level BPE's post-processor adds nothing.
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        encodeBytes(text, matchingAdded: true)
    }

    /// Token ids of `text` with no added-token matching: `<|endoftext|>` is read as plain text.
    public func encodePlain(_ text: String) -> [Int] {
        encodeBytes(text, matchingAdded: false)
    }

    private func encodeBytes(_ text: String, matchingAdded: Bool) -> [Int] {
        var utf8 = Array(text.utf8)
        var out: [Int] = []
        out.reserveCapacity(utf8.count / 3 + 1)
        utf8.withUnsafeMutableBufferPointer { mbuf in
            let b = UnsafeBufferPointer(mbuf)
            if !matchingAdded || (rawAdded.isEmpty && normalizedAdded.isEmpty) {
                encodeSegment(b, 0..<b.count, into: &out)
                return
            }
            rawAdded.split(b, 0..<b.count, text: { stretch in
                normalizedAdded.split(b, stretch, text: { encodeSegment(b, $0, into: &out) }, token: { out.append($0) })
            }, token: { out.append($0) })
        }
        return out
    }

    private func encodeSegment(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [Int]) {
        guard !range.isEmpty else { return }
        GPT2PreTokenizer.split(b, range) { piece in
            let key = Array(b[piece])
            cacheLock.lock()
            let hit = cache[key]
            cacheLock.unlock()
            let ids = hit ?? bpe(key)
            if hit == nil {
                cacheLock.lock()
                if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
                cache[key] = ids
                cacheLock.unlock()
            }
            for id in ids { out.append(Int(id)) }
        }
    }

    /// BPE of one piece: one token per byte, then the merges.
    private func bpe(_ piece: [UInt8]) -> [Int32] {
        if let whole = wholeTokens?[piece] { return [whole] }
        var word = piece.map { byteToken[Int($0)] }
        var scratch: [Int32] = []
        scratch.reserveCapacity(word.count)
        merges.apply(&word, scratch: &scratch)
        return word
    }

    // MARK: Decoding

    /// The raw bytes of one token, nil if no token has that id.
    public func bytes(ofToken id: Int) -> [UInt8]? {
        guard id >= 0 && id < tokenBytes.count else { return nil }
        return tokenBytes[id]
    }

    /// The bytes `ids` stand for, concatenated. Ids with no token are skipped (as the reference
    /// skips them); check them with `bytes(ofToken:)` first when they come from a user.
    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids {
            if let b = bytes(ofToken: id) { out.append(contentsOf: b) }
        }
        return out
    }

    /// The text `ids` stand for. Exactly the encoded text when `ids` came from `encode`; byte
    /// sequences that are not valid UTF-8 (a cut through a character) become U+FFFD.
    public func decode(_ ids: [Int]) -> String {
        String(decoding: decodeBytes(ids), as: UTF8.self)
    }

    /// The decoder's text: the tokens' bytes (special ones dropped when asked), as UTF-8 with
    /// U+FFFD for cut characters, then transformers' clean-up when asked.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool, cleanUpSpaces: Bool) -> String {
        let kept = skipSpecialTokens ? ids.filter { !specialIds.contains($0) } : ids
        let text = decode(kept)
        return cleanUpSpaces ? TokenizationCleanUp.apply(text) : text
    }

    public func isToken(_ id: Int) -> Bool { bytes(ofToken: id) != nil }
}
