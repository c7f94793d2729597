import Foundation

/// Reading JSON text into `JSONValue`: the project's one JSON reader (configs, manifests, data lines,
/// checkpoint headers, logs). It keeps the order of object keys (Foundation's parser forgets it), so
/// files dkc wrote read back to the same lines (`trainer_state.json`'s log history becomes
/// `metrics.jsonl` again on resume). Integers without a fraction or exponent that fit in Int
/// become `.int`, other numbers `.double`.
extension JSONValue {
    public struct ParseError: Error, CustomStringConvertible {
        public let offset: Int
        public let problem: String
        public var description: String { "invalid JSON at byte \(offset): \(problem)" }
    }

    /// Parses one JSON value (surrounding whitespace allowed).
    public init(parsing data: Data) throws {
        var p = Parser(bytes: [UInt8](data))
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == p.bytes.count else { throw ParseError(offset: p.i, problem: "unexpected text after the value") }
        self = v
    }

    public init(parsing text: String) throws { try self.init(parsing: Data(text.utf8)) }

    /// The value of `key` when this is an object holding it.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: return Int(d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The key–value pairs, in file order, when this is an object.
    public var objectValue: [(String, JSONValue)]? {
        if case .object(let pairs) = self { return pairs }
        return nil
    }

    public var isObject: Bool { objectValue != nil }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// Parses a whole file; nil when it cannot be read or is not JSON (callers that must say why use
    /// `init(parsing:)`).
    public init?(contentsOf url: URL) {
        guard let data = try? Data(contentsOf: url), let value = try? JSONValue(parsing: data) else { return nil }
        self = value
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        func fail(_ problem: String) -> ParseError { ParseError(offset: i, problem: problem) }

        mutating func expect(_ word: String) throws {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { throw fail("expected \(word)") }
            i += w.count
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard depth < 512 else { throw fail("nested too deeply") }
            guard i < bytes.count else { throw fail("unexpected end") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var pairs: [(String, JSONValue)] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let key = try string()
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    pairs.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
                    throw fail("expected , or }")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONValue] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw fail("expected , or ]")
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "N"): try expect("NaN"); return .double(.nan)
            case UInt8(ascii: "I"): try expect("Infinity"); return .double(.infinity)
            default: return try number()
            }
        }

        mutating func number() throws -> JSONValue {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "I") { try expect("Infinity"); return .double(-.infinity) }
            }
            var integral = true
            while i < bytes.count {
                let c = bytes[i]
                if c >= 0x30 && c <= 0x39 { i += 1; continue }
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                    integral = false; i += 1; continue
                }
                break
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if integral, let n = Int(text) { return .int(n) }
            guard let d = Double(text), !text.isEmpty else { i = start; throw fail("expected a value") }
            return .double(d)
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let c = bytes[i]
                i += 1
                if c == UInt8(ascii: "\"") { break }
                guard c == UInt8(ascii: "\\") else { out.append(c); continue }
                guard i < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        try expect("\\u")
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("invalid escape")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
                throw fail("expected 4 hex digits")
            }
            i += 4
            return v
        }
    }
}

/// Typed fields of a JSON object (a model's config.json): a key that is absent or `null` takes its
/// default; a value of the wrong kind is the error `bad(key, problem, fix)` builds. Numbers are told
/// from booleans, and an integer must be integral and within ±2^53 (beyond, a double is not exact).
public struct JSONFields {
    public let object: JSONValue
    let bad: (String, String, String) -> Error

    public init(_ object: JSONValue, bad: @escaping (_ field: String, _ problem: String, _ fix: String) -> Error) {
        self.object = object
        self.bad = bad
    }

    /// The value of `key` unless it is absent or null.
    public subscript(_ key: String) -> JSONValue? {
        guard let v = object[key], v != .null else { return nil }
        return v
    }

    /// Object keys in file order.
    public var keys: [String] { object.objectValue?.map(\.0) ?? [] }

    /// An integer; `def` nil makes the key required.
    public func int(_ key: String, _ def: Int?) throws -> Int {
        guard let v = self[key] else {
            guard let def else { throw bad(key, "is missing", "write it as transformers' save_pretrained does") }
            return def
        }
        guard let d = v.doubleValue, d == d.rounded() else { throw bad(key, "\(v.compactText) is not an integer", "write an integer") }
        guard let n = v.intValue, abs(d) < 9.0e15 else { throw bad(key, "\(v.compactText) is out of range", "write an integer of the usual size") }
        return n
    }

    /// A finite number.
    public func double(_ key: String, _ def: Double) throws -> Double {
        guard let v = self[key] else { return def }
        guard let d = v.doubleValue, d.isFinite else { throw bad(key, "\(v.compactText) is not a number", "write a number") }
        return d
    }

    public func bool(_ key: String, _ def: Bool) throws -> Bool {
        guard let v = self[key] else { return def }
        guard let b = v.boolValue else { throw bad(key, "\(v.compactText) is not true or false", "write true or false") }
        return b
    }

    public func string(_ key: String, _ def: String, fix: String) throws -> String {
        guard let v = self[key] else { return def }
        guard let s = v.stringValue else { throw bad(key, "\(v.compactText) is not a string", fix) }
        return s
    }

    /// A list of strings (nil when absent or null).
    public func strings(_ key: String, fix: String) throws -> [String]? {
        guard let v = self[key] else { return nil }
        guard let items = v.arrayValue, let list = Optional(items.compactMap(\.stringValue)), list.count == items.count else {
            throw bad(key, "\(v.compactText) is not a list of strings", fix)
        }
        return list
    }
}
