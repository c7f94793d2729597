/// The merge rules of a BPE model and the merge loop: the one BPE implementation every dkc
/// tokenizer uses (GPT-2's byte-level pieces and Llama's ▁-normalized stretches alike).
///
/// A word is a list of token ids. The pair with the lowest merge rank is merged at every place it
/// occurs, left to right without overlap, until no adjacent pair has a rank. (Hugging Face merges
/// one place at a time from a priority queue; for merge lists in which every merged token's parts
/// were made by earlier merges, as trained lists are, both give the same tokens.)
struct BPEMerges: Sendable {
    /// (left << 32 | right) → (rank << 32 | merged id).
    private let table: [UInt64: UInt64]

    /// `merges` in rank order (rank 0 first); a pair listed again replaces its earlier rank, as in the reference.
    init(_ merges: [(left: Int32, right: Int32, merged: Int32)]) {
        var t: [UInt64: UInt64] = [:]
        t.reserveCapacity(merges.count)
        for (rank, m) in merges.enumerated() {
            t[Self.key(m.left, m.right)] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: m.merged))
        }
        table = t
    }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Merges `word` in place; `next` is scratch space (any contents) so callers can reuse it.
    ///
    /// The rank of every adjacent pair is kept in an array and looked up again only for the pairs a
    /// merge changes, so a long word (a whole Llama stretch) costs one hash lookup per pair and merge
    /// rather than per pair per round.
    func apply(_ word: inout [Int32], scratch next: inout [Int32]) {
        guard word.count > 1 else { return }
        var ranks = [UInt64](repeating: .max, count: word.count - 1)      // (count − 1) rank of pair k, k+1
        for k in 0..<(word.count - 1) { ranks[k] = table[Self.key(word[k], word[k + 1])] ?? .max }
        var nextRanks: [UInt64] = []
        var fromOld: [Int] = []  // (next.count) the index in `word` of each kept token, −1 for merged ones
        while word.count > 1 {
            var best = UInt64.max
            for r in ranks where r < best { best = r }
            if best == .max { return }
            // The rank is in the high half (one pair per rank), so every place with this value holds
            // the same pair; merge them left to right without overlap.
            let merged = Int32(bitPattern: UInt32(truncatingIfNeeded: best))
            next.removeAll(keepingCapacity: true)
            fromOld.removeAll(keepingCapacity: true)
            var k = 0
            while k < word.count {
                if k + 1 < word.count && ranks[k] == best {
                    next.append(merged); fromOld.append(-1); k += 2
                } else {
                    next.append(word[k]); fromOld.append(k); k += 1
                }
            }
            nextRanks.removeAll(keepingCapacity: true)
            for j in 0..<max(next.count - 1, 0) {
                let a = fromOld[j], b = fromOld[j + 1]
                nextRanks.append(a >= 0 && b == a + 1 ? ranks[a] : table[Self.key(next[j], next[j + 1])] ?? .max)
            }
            swap(&word, &next)
            swap(&ranks, &nextRanks)
        }
    }

    /// The merge loop written plainly (every pair looked up every round), for tests of `apply`.
    func applyPlainly(_ word: inout [Int32]) {
        while word.count > 1 {
            var best = UInt64.max
            for k in 0..<(word.count - 1) {
                if let m = table[Self.key(word[k], word[k + 1])], m < best { best = m }
            }
            if best == .max { return }
            let merged = Int32(bitPattern: UInt32(truncatingIfNeeded: best))
            var out: [Int32] = []
            var k = 0
            while k < word.count {
                if k + 1 < word.count && table[Self.key(word[k], word[k + 1])] == best {
                    out.append(merged); k += 2
                } else {
                    out.append(word[k]); k += 1
                }
            }
            word = out
        }
    }
}

/// Added tokens (tokenizer.json's `added_tokens`, GPT-2's `<|endoftext|>`) found in text: at each
/// place the longest token starting there, scanning left to right (leftmost-longest, as the
/// reference's matcher), by exact bytes.
struct AddedTokenMatcher: Sendable {
    private let tokens: [(bytes: [UInt8], id: Int)]  // longest first
    private let starts: [Bool]                       // (256) whether some token starts with the byte

    init(_ tokens: [(bytes: [UInt8], id: Int)]) {
        let kept = tokens.filter { !$0.bytes.isEmpty }
        self.tokens = kept.enumerated().sorted { a, b in
            a.element.bytes.count != b.element.bytes.count ? a.element.bytes.count > b.element.bytes.count : a.offset < b.offset
        }.map(\.element)
        var s = [Bool](repeating: false, count: 256)
        for t in kept { s[Int(t.bytes[0])] = true }
        starts = s
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// The longest token starting at byte `i`: its length and id.
    @inline(__always)
    func match(at i: Int, in b: UnsafeBufferPointer<UInt8>) -> (length: Int, id: Int)? {
        guard starts[Int(b[i])] else { return nil }
        for t in tokens where i + t.bytes.count <= b.count && t.bytes[0] == b[i] {
            var k = 1
            while k < t.bytes.count && t.bytes[k] == b[i + k] { k += 1 }
            if k == t.bytes.count { return (k, t.id) }
        }
        return nil
    }

    /// Cuts `b[range]` at the added tokens: `text` for each stretch between them (also empty ones
    /// are skipped), `token` for each match, in order.
    func split(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
               text: (Range<Int>) -> Void, token: (Int) -> Void) {
        var stretch = range.lowerBound
        var i = range.lowerBound
        if !tokens.isEmpty {
            let view = UnsafeBufferPointer(rebasing: b[..<range.upperBound])
            while i < range.upperBound {
                if let (length, id) = match(at: i, in: view) {
                    if stretch < i { text(stretch..<i) }
                    token(id)
                    i += length
                    stretch = i
                } else {
                    i += 1
                }
            }
        }
        if stretch < range.upperBound { text(stretch..<range.upperBound) }
    }
}
