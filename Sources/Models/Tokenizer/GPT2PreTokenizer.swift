/// GPT-2's pre-tokenisation: the text is cut into pieces before BPE, by the pattern
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// applied leftmost-first, match after match, as the reference's regex engine does. It is written
/// out by hand over Unicode scalars (never grapheme clusters, so a ZWJ emoji sequence or a letter
/// with a combining mark splits exactly as the reference splits it):
/// - contractions: an ASCII apostrophe followed by `s t m d re ve ll`, lowercase only;
/// - letters: general category L (Lu Ll Lt Lm Lo); numbers: category N (Nd Nl No); each run may
///   take one leading U+0020 SPACE;
/// - "other": neither whitespace, letter nor number (punctuation, symbols, marks, format controls
///   such as ZWJ and U+200B), also with one optional leading space;
/// - `\s` is the Unicode White_Space property (TAB…CR, SPACE, NEL, NBSP, U+1680, U+2000…U+200A,
///   U+2028, U+2029, U+202F, U+205F, U+3000), the class the reference's regex engine uses;
///   U+001C…U+001F, which Python's `re` would also call whitespace, are "other" here, as there;
/// - a whitespace run that ends the text is one piece; a run followed by something else leaves its
///   last scalar to start the next piece (`\s+(?!\S)` backtracks by one), so `"a   b"` gives
///   `a`, `"  "`, `" b"`; a single whitespace scalar that is not a SPACE (`"\tb"`) is its own piece.
public enum GPT2PreTokenizer {
    /// The classes the pattern distinguishes. `space` is U+0020 (also whitespace).
    enum ScalarClass: UInt8 { case letter, number, space, whitespace, other }

    /// The pieces of `text`, as the reference cuts them (for tests and debugging).
    public static func pieces(of text: String) -> [String] {
        var utf8 = Array(text.utf8)
        var out: [String] = []
        utf8.withUnsafeMutableBufferPointer { buf in
            let b = UnsafeBufferPointer(buf)
            split(b, 0..<b.count) { r in out.append(String(decoding: b[r], as: UTF8.self)) }
        }
        return out
    }

    /// Calls `body` with the byte range of each piece of `bytes[range]`, in order. The pieces tile
    /// the range. `bytes` must be valid UTF-8 and `range` must start and end on scalar boundaries.
    static func split(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let (c, n) = decode(bytes, i)
            // 's 't 're 've 'm 'll 'd: the bytes after an ASCII apostrophe are ASCII or they do not match.
            if c == 0x27, i + 1 < end {
                let b1 = bytes[i + 1]
                if b1 == 0x73 || b1 == 0x74 || b1 == 0x6D || b1 == 0x64 {  // s t m d
                    body(i..<(i + 2)); i += 2; continue
                }
                if i + 2 < end {
                    let b2 = bytes[i + 2]
                    if (b1 == 0x72 && b2 == 0x65) || (b1 == 0x76 && b2 == 0x65) || (b1 == 0x6C && b2 == 0x6C) {  // re ve ll
                        body(i..<(i + 3)); i += 3; continue
                    }
                }
            }
            var cls = classify(c)
            var runStart = i + n  // where the run of one class continues after its first scalar
            if cls == .space {
                // " ?X+": the space joins a following letter, number or other run.
                if runStart < end {
                    let next = classify(decode(bytes, runStart).0)
                    if next == .letter || next == .number || next == .other {
                        cls = next
                        runStart += decode(bytes, runStart).1
                    }
                }
            }
            switch cls {
            case .letter, .number, .other:
                var j = runStart
                while j < end {
                    let (d, m) = decode(bytes, j)
                    if classify(d) != cls { break }
                    j += m
                }
                body(i..<j); i = j
            case .space, .whitespace:
                // \s+(?!\S) then \s+: the run, less its last scalar if something non-white follows
                // and the run has more than one scalar.
                var j = i + n
                var lastStart = i
                var count = 1
                while j < end {
                    let (d, m) = decode(bytes, j)
                    let k = classify(d)
                    if k != .space && k != .whitespace { break }
                    lastStart = j; count += 1; j += m
                }
                let stop = (j < end && count > 1) ? lastStart : j
                body(i..<stop); i = stop
            }
        }
    }

    /// The scalar starting at byte `p` of valid UTF-8, and its length in bytes.
    @inline(__always)
    static func decode(_ b: UnsafeBufferPointer<UInt8>, _ p: Int) -> (UInt32, Int) {
        let b0 = UInt32(b[p])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(b[p + 1] & 0x3F), 2) }
        if b0 < 0xF0 {
            return ((b0 & 0x0F) << 12 | UInt32(b[p + 1] & 0x3F) << 6 | UInt32(b[p + 2] & 0x3F), 3)
        }
        return ((b0 & 0x07) << 18 | UInt32(b[p + 1] & 0x3F) << 12 | UInt32(b[p + 2] & 0x3F) << 6
                | UInt32(b[p + 3] & 0x3F), 4)
    }

    /// The class of a scalar value (a table for ASCII, Unicode properties above).
    @inline(__always)
    static func classify(_ v: UInt32) -> ScalarClass {
        if v < 0x80 { return asciiClass[Int(v)] }
        guard let s = Unicode.Scalar(v) else { return .other }
        let p = s.properties
        if p.isWhitespace { return .whitespace }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    private static let asciiClass: [ScalarClass] = (0..<128).map { v -> ScalarClass in
        switch v {
        case 0x20: return .space
        case 0x09...0x0D: return .whitespace
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return .other
        }
    }
}
