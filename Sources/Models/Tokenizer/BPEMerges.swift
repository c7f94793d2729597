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
    /// Short words (GPT-2's pieces) go round by round; long ones (whole Llama stretches) through a
    /// priority queue. Both give the result the plain loop gives (`applyPlainly`, tested).
    func apply(_ word: inout [Int32], scratch next: inout [Int32]) {
        if word.count > 48 { applyQueued(&word, scratch: &next) } else { applyRounds(&word, scratch: &next) }
    }

    /// Round by round: the rank of every adjacent pair is kept in an array and looked up again only
    /// for the pairs a merge changes; each round merges every place of the lowest-ranked pair.
    func applyRounds(_ word: inout [Int32], scratch next: inout [Int32]) {
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

    /// With a priority queue of (rank, position), lowest rank first and leftmost among equals, as
    /// the reference merges: O(n log n) for a word of n tokens. An entry whose pair has changed
    /// since it was queued is dropped when it comes up.
    func applyQueued(_ word: inout [Int32], scratch next: inout [Int32]) {
        let n = word.count
        guard n > 1 else { return }
        var after = [Int](repeating: -1, count: n)   // (n) the next live token, −1 at the end
        var before = [Int](repeating: -1, count: n)  // (n) the previous live token, −1 at the start
        var alive = [Bool](repeating: true, count: n)
        for k in 0..<n { after[k] = k + 1 < n ? k + 1 : -1; before[k] = k - 1 }
        var heap = MinHeap()
        heap.reserve(n)
        @inline(__always) func entry(_ m: UInt64, _ pos: Int) -> UInt64 { (m >> 32) << 32 | UInt64(pos) }
        for k in 0..<(n - 1) {
            if let m = table[Self.key(word[k], word[k + 1])] { heap.push(entry(m, k)) }
        }
        while let top = heap.pop() {
            let pos = Int(top & 0xFFFF_FFFF), rank = top >> 32
            guard alive[pos] else { continue }
            let right = after[pos]
            guard right >= 0, let m = table[Self.key(word[pos], word[right])], m >> 32 == rank else { continue }
            word[pos] = Int32(bitPattern: UInt32(truncatingIfNeeded: m))
            alive[right] = false
            after[pos] = after[right]
            if after[right] >= 0 { before[after[right]] = pos }
            let left = before[pos]
            if left >= 0, let m2 = table[Self.key(word[left], word[pos])] { heap.push(entry(m2, left)) }
            if after[pos] >= 0, let m3 = table[Self.key(word[pos], word[after[pos]])] { heap.push(entry(m3, pos)) }
        }
        next.removeAll(keepingCapacity: true)
        for k in 0..<n where alive[k] { next.append(word[k]) }
        swap(&word, &next)
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

/// A binary min-heap of `UInt64` keys (rank in the high half, position in the low half).
struct MinHeap {
    private var items: [UInt64] = []

    mutating func reserve(_ n: Int) { items.reserveCapacity(n) }

    mutating func push(_ x: UInt64) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent] <= items[i] { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l] < items[m] { m = l }
            if r < items.count && items[r] < items[m] { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return first
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
