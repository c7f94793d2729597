import Foundation

/// GPT-2's byte-level BPE tokenizer, giving the ids the reference (Hugging Face's GPT-2 tokenizer,
/// `add_special_tokens=False`) gives.
///
/// Encoding: the literal text of a special token (`<|endoftext|>`) becomes its id; the text between
/// special tokens is cut into pieces by `GPT2PreTokenizer`, each piece's UTF-8 bytes start as one
/// token per byte, and adjacent pairs are merged, lowest merge rank first (every occurrence of the
/// chosen pair, left to right), until no pair has a rank. Decoding concatenates the bytes of the
/// tokens, so `decodeBytes(encode(s))` is exactly `s`'s UTF-8.
///
/// Thread-safe: the tables are immutable and the cache of encoded pieces is behind a lock.
public final class GPT2Tokenizer: TextEncoder, @unchecked Sendable {
    /// The text of GPT-2's one special token.
    public static let endOfText = "<|endoftext|>"

    /// `<|endoftext|>`'s id (50256 for GPT-2): GPT-2's EOS, and also its BOS and padding token.
    public let eosTokenId: Int
    public var bosTokenId: Int { eosTokenId }
    public var padTokenId: Int { eosTokenId }
    /// One more than the largest id (50257 for GPT-2): the rows of the embedding the ids index.
    public let vocabSize: Int
    /// The file the vocabulary was read from (vocab.json or tokenizer.json).
    public let vocabFile: URL

    private let byteToken: [Int32]                    // (256) the one-byte token of each byte
    private let merges: [UInt64: UInt64]              // (left << 32 | right) → (rank << 32 | merged id)
    private let tokenBytes: [[UInt8]?]                // (vocabSize) raw bytes of each id; nil for unused ids
    private let specials: [(bytes: [UInt8], id: Int)] // matched in raw text, longest first
    private let wholeTokens: [[UInt8]: Int32]?        // for `ignore_merges` only
    private let cacheLock = NSLock()
    private var cache: [[UInt8]: [Int32]] = [:]       // piece bytes → ids
    private static let cacheLimit = 1 << 17
    /// The largest token id accepted from a file (ids are stored as Int32).
    static let maxId = Int(Int32.max)
    /// How far the largest id may exceed twice the number of tokens (ids of real vocabularies are dense).
    static let maxIdSlack = 1 << 16

    /// Reads `vocab.json` + `merges.txt` from `directory` (a Hugging Face GPT-2 model folder or the
    /// cache folder `scripts/fetch-gpt2-tokenizer` fills), or `tokenizer.json` when vocab.json is absent.
    /// - Throws: `TokenizerError` naming the missing or malformed file (and line for merges.txt).
    public init(directory: URL) throws {
        let files = try BPEFiles.read(directory: directory)
        vocabFile = files.vocabFile

        // Vocabulary: raw bytes ↔ id, both ways unique. Ids are checked before the id table is allocated:
        // each lies in 0 ..< 2^31 (stored as Int32) and below `maxIdSlack` + 2 × the number of tokens, so a
        // crafted id cannot make the table huge.
        var maxId = 0
        let idLimit = min(Self.maxId, Self.maxIdSlack + 2 * (files.vocab.count + files.specials.count))
        for t in files.vocab where t.id < 0 || t.id > idLimit {
            throw TokenizerError(file: files.vocabFile, problem:
                "token \"\(ByteLevel.token(ofBytes: t.bytes))\" has id \(t.id), outside 0 ... \(idLimit) for \(files.vocab.count) tokens",
                fix: "ids are 0 ..< 2^31 and (nearly) dense; the file is corrupt")
        }
        for s in files.specials where s.id < 0 || s.id > idLimit {
            throw TokenizerError(file: files.vocabFile, problem:
                "special token \"\(String(decoding: s.bytes, as: UTF8.self))\" has id \(s.id), outside 0 ... \(idLimit)",
                fix: "ids are 0 ..< 2^31 and (nearly) dense; the file is corrupt")
        }
        for t in files.vocab { maxId = max(maxId, t.id) }
        for s in files.specials { maxId = max(maxId, s.id) }
        var byId = [[UInt8]?](repeating: nil, count: maxId + 1)
        var idOf: [[UInt8]: Int32] = [:]
        idOf.reserveCapacity(files.vocab.count)
        for t in files.vocab {
            if let other = byId[t.id], other != t.bytes {
                throw TokenizerError(file: files.vocabFile, problem:
                    "id \(t.id) is given to two tokens, \"\(ByteLevel.token(ofBytes: other))\" and \"\(ByteLevel.token(ofBytes: t.bytes))\"")
            }
            if let first = idOf[t.bytes], Int(first) != t.id {
                throw TokenizerError(file: files.vocabFile, problem:
                    "token \"\(ByteLevel.token(ofBytes: t.bytes))\" appears twice, with ids \(first) and \(t.id)",
                    fix: "each token has one id; the file is corrupt")
            }
            byId[t.id] = t.bytes
            idOf[t.bytes] = Int32(t.id)
        }
        for s in files.specials where byId[s.id] == nil { byId[s.id] = s.bytes }

        var oneByte = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            guard let id = idOf[[UInt8(b)]] else {
                throw TokenizerError(file: files.vocabFile, problem:
                    "no token for the single byte 0x\(String(b, radix: 16)) (\"\(ByteLevel.scalarOfByte[b])\"); a byte-level vocabulary has all 256")
            }
            oneByte[b] = id
        }

        // Merges: later duplicates replace earlier ones, as in the reference.
        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(files.merges.count)
        for (rank, m) in files.merges.enumerated() {
            func id(_ bytes: [UInt8], _ what: String) throws -> Int32 {
                guard let id = idOf[bytes] else {
                    throw TokenizerError(file: files.mergesFile, line: m.line, problem:
                        "\(m.place): \(what) \"\(ByteLevel.token(ofBytes: bytes))\" is not in the vocabulary (\(files.vocabFile.lastPathComponent))")
                }
                return id
            }
            let left = try id(m.left, "token"), right = try id(m.right, "token")
            let merged = try id(m.left + m.right, "merged token")
            table[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))] = UInt64(rank) << 32 | UInt64(UInt32(merged))
        }

        guard let eos = files.specials.first(where: { $0.bytes.elementsEqual(Self.endOfText.utf8) })?.id
                ?? idOf[Array(Self.endOfText.utf8)].map(Int.init) else {
            throw TokenizerError(file: files.vocabFile, problem: "no \(Self.endOfText) token",
                                 fix: "this is not GPT-2's vocabulary; run scripts/fetch-gpt2-tokenizer for it")
        }
        eosTokenId = eos
        vocabSize = maxId + 1
        byteToken = oneByte
        merges = table
        tokenBytes = byId
        specials = files.specials.sorted { $0.bytes.count > $1.bytes.count }
        wholeTokens = files.ignoreMerges ? idOf : nil
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

    /// Token ids of `text`, adding no special tokens; the literal text `<|endoftext|>` inside `text`
    /// becomes its id (special tokens are matched in raw text, and the text between them is encoded
    /// on its own).
    public func encode(_ text: String) -> [Int] {
        encodeBytes(text, matchingSpecials: true)
    }

    /// Token ids of `text` with no special-token matching: `<|endoftext|>` is read as plain text.
    public func encodePlain(_ text: String) -> [Int] {
        encodeBytes(text, matchingSpecials: false)
    }

    private func encodeBytes(_ text: String, matchingSpecials: Bool) -> [Int] {
        var utf8 = Array(text.utf8)
        var out: [Int] = []
        out.reserveCapacity(utf8.count / 3 + 1)
        utf8.withUnsafeMutableBufferPointer { mbuf in
            let b = UnsafeBufferPointer(mbuf)
            var segment = 0
            var i = 0
            if matchingSpecials && !specials.isEmpty {
                while i < b.count {
                    if let (length, id) = special(at: i, in: b) {
                        encodeSegment(b, segment..<i, into: &out)
                        out.append(id)
                        i += length
                        segment = i
                    } else {
                        i += 1
                    }
                }
            }
            encodeSegment(b, segment..<b.count, into: &out)
        }
        return out
    }

    /// The longest special token starting at byte `i`, if any.
    private func special(at i: Int, in b: UnsafeBufferPointer<UInt8>) -> (Int, Int)? {
        for s in specials where s.bytes[0] == b[i] && i + s.bytes.count <= b.count {
            var k = 1
            while k < s.bytes.count && s.bytes[k] == b[i + k] { k += 1 }
            if k == s.bytes.count { return (k, s.id) }
        }
        return nil
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

    /// BPE of one piece: start from one token per byte and apply the lowest-ranked merge present,
    /// at every place it occurs (left to right, not overlapping), until none applies.
    private func bpe(_ piece: [UInt8]) -> [Int32] {
        if let whole = wholeTokens?[piece] { return [whole] }
        var word = piece.map { byteToken[Int($0)] }
        var next: [Int32] = []
        next.reserveCapacity(word.count)
        while word.count > 1 {
            var best = UInt64.max
            for k in 0..<(word.count - 1) {
                if let m = merges[UInt64(UInt32(word[k])) << 32 | UInt64(UInt32(word[k + 1]))], m < best { best = m }
            }
            if best == .max { break }
            // The rank is in the high half, so the smallest value is the lowest rank; unpack its pair.
            let merged = Int32(truncatingIfNeeded: best & 0xFFFF_FFFF)
            var left: Int32 = -1, right: Int32 = -1
            for k in 0..<(word.count - 1) {
                if merges[UInt64(UInt32(word[k])) << 32 | UInt64(UInt32(word[k + 1]))] == best {
                    left = word[k]; right = word[k + 1]; break
                }
            }
            next.removeAll(keepingCapacity: true)
            var k = 0
            while k < word.count {
                if k + 1 < word.count && word[k] == left && word[k + 1] == right {
                    next.append(merged); k += 2
                } else {
                    next.append(word[k]); k += 1
                }
            }
            swap(&word, &next)
        }
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
}
