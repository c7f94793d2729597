import Foundation
import Core

/// One line of a `dkc data generate` JSONL corpus (`train.jsonl`, `validation.jsonl`, `base.jsonl`):
/// `{"text": …, "full_name": …, "birthday": …, "city": …, …, "type": "new" | "revised"}`.
public struct BiographyRecord: Equatable, Sendable {
    public var text: String
    /// 1 new, 2 revised, 0 when the record has no `type` (its attributes are then not scored).
    public var typeCode: UInt8
    /// Value per `BiographyAttribute` (nil when the record lacks the field).
    public var attributes: [String?]

    public init(text: String, typeCode: UInt8, attributes: [String?]) {
        precondition(attributes.count == BiographyAttribute.allCases.count)
        self.text = text
        self.typeCode = typeCode
        self.attributes = attributes
    }

    /// Reads the records of a JSONL file; blank lines are skipped. With `parts` > 1 only the `part`-th of
    /// `parts` contiguous, near-equal shares of the records is parsed (ranks split the work); `total` is the
    /// number of records in the whole file.
    /// - Throws: `TrainError` naming the file and line of a line that is not a JSON object with a string
    ///   `text`, or whose `type` is neither "new" nor "revised".
    public static func read(_ url: URL, part: Int = 0, of parts: Int = 1) throws -> (records: [BiographyRecord], total: Int) {
        precondition(parts >= 1 && part >= 0 && part < parts)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TrainError.file(url, "cannot be read (\(error.localizedDescription))",
                                  fix: "run `dkc data generate` to write it, or point data_dir / train_file / validation_file at it")
        }
        // Line ranges of the non-blank lines, with their 1-based numbers.
        var lines: [(range: Range<Int>, number: Int)] = []
        data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0, number = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != 0x0A { end += 1 }
                number += 1
                var blank = true
                for i in start..<end where !(bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0D) { blank = false; break }
                if !blank { lines.append((start..<end, number)) }
                start = end + 1
            }
        }
        let mine = lines[(lines.count * part / parts)..<(lines.count * (part + 1) / parts)]
        var records: [BiographyRecord] = []
        records.reserveCapacity(mine.count)
        let names = BiographyAttribute.allCases.map(\.rawValue)
        for (range, lineNumber) in mine {
            let line = data[(data.startIndex + range.lowerBound)..<(data.startIndex + range.upperBound)]
            guard let dict = try? JSONValue(parsing: line), dict.isObject else {
                throw TrainError.file(url, line: lineNumber, "is not a JSON object", fix: "each line must be one record {\"text\": …}")
            }
            guard let text = dict["text"]?.stringValue else {
                throw TrainError.file(url, line: lineNumber, "has no string field \"text\"", fix: "each record needs the biography under \"text\"")
            }
            var code: UInt8 = 0
            if let t = dict["type"], t != .null {
                guard let s = t.stringValue, let c = FirstTokenMark.typeCode(s) else {
                    throw TrainError.file(url, line: lineNumber, "field \"type\" is \(t.compactText), expected \"new\" or \"revised\"")
                }
                code = c
            }
            let attributes: [String?] = names.map { name in
                switch dict[name] {
                case .string(let s)?: return s
                case .int(let n)?: return String(n)
                case .double(let d)? where d.isFinite: return d == d.rounded() && abs(d) < 9e15 ? String(Int(d)) : "\(d)"
                default: return nil
                }
            }
            records.append(BiographyRecord(text: text, typeCode: code, attributes: attributes))
        }
        return (records, lines.count)
    }

    /// The record tokenised as the study's training script does, its attributes marked with
    /// `FirstTokenMark` codes (`bos`, `markLeadingSpace`: the family's, see `TokenizedText.make`).
    public func tokenized(encoder: TextEncoder, eos: Int, blockSize: Int, bos: Int? = nil, markLeadingSpace: Bool = true) -> TokenizedText {
        var marks: [(value: String, code: UInt8)] = []
        if typeCode != 0 {
            for (a, value) in attributes.enumerated() {
                if let value, !value.isEmpty { marks.append((value, FirstTokenMark.code(type: typeCode, attribute: a))) }
            }
        }
        return TokenizedText.make(text: text, marks: marks, encoder: encoder, eos: eos, blockSize: blockSize, bos: bos,
                                  markLeadingSpace: markLeadingSpace)
    }
}

/// The random orders of training: which texts go together into blocks, the order of the blocks, and
/// their reshuffle every epoch. Every order is a pure function of the seed (and epoch), so every rank
/// computes the same one without communication and a resumed run continues exactly.
public enum DataOrder {
    /// Streams of the seed, one per use, so that changing one order changes no other.
    public enum Stream: UInt64 {
        case texts = 1, blocks = 2, epochs = 3
    }

    /// A generator for `stream` of `seed` (and `index`, e.g. the epoch).
    public static func generator(seed: UInt64, stream: Stream, index: UInt64 = 0) -> SplitMix64 {
        SplitMix64(seed: mix(mix(seed ^ 0x6A09_E667_F3BC_C908) ^ (stream.rawValue &* 0x9E37_79B9_7F4A_7C15) ^ mix(index)))
    }

    /// The SplitMix64 finaliser: a bijective scramble of 64 bits.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<n (n ≥ 1) without modulo bias (Lemire's multiply-and-reject), written out so the
    /// draws never depend on the standard library's version.
    public static func below(_ n: Int, using rng: inout SplitMix64) -> Int {
        precondition(n >= 1)
        let bound = UInt64(n)
        var product = rng.next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = rng.next().multipliedFullWidth(by: bound) }
        }
        return Int(product.high)
    }

    /// Fisher–Yates shuffle in place.
    public static func shuffle<T>(_ a: inout [T], using rng: inout SplitMix64) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = below(i + 1, using: &rng)
            if i != j { a.swapAt(i, j) }
        }
    }

    /// A random permutation of 0..<count.
    public static func permutation(count: Int, using rng: inout SplitMix64) -> [Int] {
        var p = Array(0..<count)
        shuffle(&p, using: &rng)
        return p
    }

    /// The order in which epoch `epoch` (0-based) visits the `count` blocks.
    public static func epochPermutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var rng = generator(seed: seed, stream: .epochs, index: UInt64(epoch))
        return permutation(count: count, using: &rng)
    }
}

extension PackedBlocks {
    /// The study's preparation of a corpus: shuffle the tokenised texts with `seed`, pack them in groups of
    /// `groupSize` (`init(texts:blockSize:groupSize:)`), then shuffle the blocks.
    public static func prepare(texts: [TokenizedText], blockSize: Int, groupSize: Int, seed: UInt64) -> PackedBlocks {
        var order = texts
        var textRNG = DataOrder.generator(seed: seed, stream: .texts)
        DataOrder.shuffle(&order, using: &textRNG)
        let packed = PackedBlocks(texts: order, blockSize: blockSize, groupSize: groupSize)
        var blockRNG = DataOrder.generator(seed: seed, stream: .blocks)
        return packed.permuted(DataOrder.permutation(count: packed.count, using: &blockRNG))
    }

    /// A 64-bit FNV-1a digest of the tokens and marks, to recognise the same training data on resume.
    public var fingerprint: UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        tokens.withUnsafeBytes { raw in
            for b in raw { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        }
        for b in attributeMask { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h ^ UInt64(blockSize)
    }
}
