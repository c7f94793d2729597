/// A small JSON reader for tokenizer files (vocab.json, tokenizer.json).
///
/// Written for these files rather than taken from Foundation for three reasons: object members stay
/// in file order and are never hashed as Swift `String`s (which compare by canonical equivalence,
/// so two distinct tokens such as "é" and "e\u{301}" would collide), a syntax error can name the
/// line it is on, and it is quick on the ~1 MB vocabulary even in debug builds.
indirect enum TokenizerJSON {
    case object([(key: String, value: TokenizerJSON)])
    case array([TokenizerJSON])
    case string(String)
    case number(String)  // the literal text, converted by the reader that needs it
    case bool(Bool)
    case null

    /// A syntax error at a 1-based line.
    struct SyntaxError: Error {
        let line: Int
        let message: String
    }

    /// Parses one JSON document (UTF-8).
    static func parse(_ bytes: [UInt8]) throws -> TokenizerJSON {
        try bytes.withUnsafeBufferPointer { buf in
            var p = Parser(b: buf)
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            if p.i != buf.count { throw p.error("unexpected text after the JSON value") }
            return v
        }
    }

    /// The member `key` of an object (the last one if repeated), nil for other values.
    subscript(key: String) -> TokenizerJSON? {
        guard case .object(let members) = self else { return nil }
        // Keys compared scalar by scalar, not by canonical equivalence.
        return members.last(where: { $0.key.unicodeScalars.elementsEqual(key.unicodeScalars) })?.value
    }

    /// A short name of the kind of value, for error messages.
    var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// The value as written, shortened, for error messages.
    var brief: String {
        switch self {
        case .number(let s): return s
        case .string(let s): return "\"" + (s.count > 40 ? String(s.prefix(40)) + "…" : s) + "\""
        case .bool(let b): return b ? "true" : "false"
        default: return kind
        }
    }

    /// The value as an integer, if it is an integral number.
    var int: Int? {
        guard case .number(let s) = self else { return nil }
        if let v = Int(s) { return v }
        if let d = Double(s), d == d.rounded(), abs(d) < 9.0e15 { return Int(d) }
        return nil
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    private struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0

        func error(_ message: String) -> SyntaxError {
            var line = 1
            for k in 0..<min(i, b.count) where b[k] == 0x0A { line += 1 }
            return SyntaxError(line: line, message: message)
        }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func value(depth: Int) throws -> TokenizerJSON {
            guard depth < 512 else { throw error("nesting deeper than 512 levels") }
            guard i < b.count else { throw error("unexpected end of file") }
            switch b[i] {
            case 0x7B: return try object(depth: depth)
            case 0x5B: return try array(depth: depth)
            case 0x22: return .string(try string())
            case 0x74: try literal("true"); return .bool(true)
            case 0x66: try literal("false"); return .bool(false)
            case 0x6E: try literal("null"); return .null
            case 0x2D, 0x30...0x39: return try number()
            default: throw error("unexpected character '\(Unicode.Scalar(b[i]))'")
            }
        }

        mutating func object(depth: Int) throws -> TokenizerJSON {
            i += 1
            var members: [(key: String, value: TokenizerJSON)] = []
            skipSpace()
            if i < b.count, b[i] == 0x7D { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < b.count, b[i] == 0x22 else { throw error("expected a quoted key") }
                let key = try string()
                skipSpace()
                guard i < b.count, b[i] == 0x3A else { throw error("expected ':' after key \"\(key)\"") }
                i += 1
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard i < b.count else { throw error("unexpected end of file inside an object") }
                if b[i] == 0x2C { i += 1; continue }
                if b[i] == 0x7D { i += 1; return .object(members) }
                throw error("expected ',' or '}' in an object")
            }
        }

        mutating func array(depth: Int) throws -> TokenizerJSON {
            i += 1
            var items: [TokenizerJSON] = []
            skipSpace()
            if i < b.count, b[i] == 0x5D { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard i < b.count else { throw error("unexpected end of file inside an array") }
                if b[i] == 0x2C { i += 1; continue }
                if b[i] == 0x5D { i += 1; return .array(items) }
                throw error("expected ',' or ']' in an array")
            }
        }

        mutating func literal(_ word: String) throws {
            for c in word.utf8 {
                guard i < b.count, b[i] == c else { throw error("expected '\(word)'") }
                i += 1
            }
        }

        mutating func number() throws -> TokenizerJSON {
            let start = i
            while i < b.count, b[i] == 0x2D || b[i] == 0x2B || b[i] == 0x2E || b[i] == 0x45 || b[i] == 0x65
                || (0x30...0x39).contains(b[i]) { i += 1 }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            guard Double(text) != nil else { throw error("malformed number '\(text)'") }
            return .number(text)
        }

        /// A quoted string; `i` is at the opening quote.
        mutating func string() throws -> String {
            i += 1
            let start = i
            // Fast path: no escapes.
            while i < b.count, b[i] != 0x22, b[i] != 0x5C, b[i] >= 0x20 { i += 1 }
            if i < b.count, b[i] == 0x22 {
                defer { i += 1 }
                return try utf8String(Array(b[start..<i]))
            }
            var out = Array(b[start..<i])
            while true {
                guard i < b.count else { throw error("unterminated string") }
                let c = b[i]
                if c == 0x22 { i += 1; return try utf8String(out) }
                if c < 0x20 { throw error("control character inside a string (write it as an escape)") }
                if c != 0x5C { out.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { throw error("unterminated string") }
                let e = b[i]
                i += 1
                switch e {
                case 0x22, 0x5C, 0x2F: out.append(e)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    var v = try hex4()
                    if (0xD800..<0xDC00).contains(v) {
                        guard i + 1 < b.count, b[i] == 0x5C, b[i + 1] == 0x75 else {
                            throw error("unpaired surrogate \\u\(String(v, radix: 16))")
                        }
                        i += 2
                        let lo = try hex4()
                        guard (0xDC00..<0xE000).contains(lo) else {
                            throw error("unpaired surrogate \\u\(String(v, radix: 16))")
                        }
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(v) {
                        throw error("unpaired surrogate \\u\(String(v, radix: 16))")
                    }
                    out.append(contentsOf: Array(String(Unicode.Scalar(v)!).utf8))
                default:
                    throw error("unknown escape '\\\(Unicode.Scalar(e))'")
                }
            }
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw error("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw error("bad hex digit in a \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        func utf8String(_ bytes: [UInt8]) throws -> String {
            guard let s = String(validating: bytes, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
            return s
        }
    }
}
