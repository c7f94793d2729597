/// JSON text written byte for byte the way the study's Python writes it (`json.dumps` defaults):
/// `{"key": value, "key": value}` with ", " and ": " separators, keys in the order given, and
/// strings escaped with `ensure_ascii=True` (controls, U+007F and above as `\uXXXX`, surrogate
/// pairs above U+FFFF). Output never depends on the platform or locale.
public enum JSONText {
    /// Appends `text` as a quoted JSON string.
    public static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(0x22)
        appendEscaped(text, to: &out)
        out.append(0x22)
    }

    /// Appends the escaped body of a JSON string (no quotes).
    public static func appendEscaped(_ text: String, to out: inout [UInt8]) {
        for scalar in text.unicodeScalars {
            let v = scalar.value
            switch v {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(0x6E)
            case 0x0D: out.append(0x5C); out.append(0x72)
            case 0x09: out.append(0x5C); out.append(0x74)
            case 0x08: out.append(0x5C); out.append(0x62)
            case 0x0C: out.append(0x5C); out.append(0x66)
            case 0..<0x20, 0x7F..<0x10000:
                appendUnicodeEscape(UInt16(v), to: &out)
            case 0x10000...:
                let u = v - 0x10000
                appendUnicodeEscape(UInt16(0xD800 + (u >> 10)), to: &out)
                appendUnicodeEscape(UInt16(0xDC00 + (u & 0x3FF)), to: &out)
            default:
                out.append(UInt8(v))
            }
        }
    }

    /// `text` as a quoted JSON string.
    public static func quoted(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        appendString(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The escaped body of a JSON string, as bytes.
    public static func escaped(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        appendEscaped(text, to: &out)
        return out
    }

    /// Appends a decimal integer.
    public static func appendInt(_ value: Int, to out: inout [UInt8]) {
        out.append(contentsOf: Array(String(value).utf8))
    }

    /// A JSON number for a double: Swift's shortest round-trip form (the same on every platform),
    /// `null` for NaN and infinities, which JSON cannot hold.
    public static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        return value.description
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private static func appendUnicodeEscape(_ u: UInt16, to out: inout [UInt8]) {
        out.append(0x5C); out.append(0x75)
        out.append(hex[Int(u >> 12) & 0xF])
        out.append(hex[Int(u >> 8) & 0xF])
        out.append(hex[Int(u >> 4) & 0xF])
        out.append(hex[Int(u) & 0xF])
    }
}

/// A JSON value with ordered object keys, for manifests and provenance records.
public indirect enum JSONValue: Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y || (x.isNaN && y.isNaN)
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// One-line text in the Python `json.dumps` style.
    public var compactText: String {
        var out: [UInt8] = []
        write(to: &out, indent: nil, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    /// Multi-line text indented by `indent` spaces per level (like `json.dumps(indent=2)`), ending in a newline.
    public func prettyText(indent: Int = 2) -> String {
        var out: [UInt8] = []
        write(to: &out, indent: indent, level: 0)
        out.append(0x0A)
        return String(decoding: out, as: UTF8.self)
    }

    private func write(to out: inout [UInt8], indent: Int?, level: Int) {
        func newline(_ lvl: Int) {
            guard let indent else { return }
            out.append(0x0A)
            out.append(contentsOf: [UInt8](repeating: 0x20, count: indent * lvl))
        }
        let separator: [UInt8] = indent == nil ? [0x2C, 0x20] : [0x2C]
        switch self {
        case .null: out.append(contentsOf: Array("null".utf8))
        case .bool(let b): out.append(contentsOf: Array((b ? "true" : "false").utf8))
        case .int(let i): JSONText.appendInt(i, to: &out)
        case .double(let d): out.append(contentsOf: Array(JSONText.number(d).utf8))
        case .string(let s): JSONText.appendString(s, to: &out)
        case .array(let items):
            out.append(0x5B)
            if items.isEmpty { out.append(0x5D); return }
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(contentsOf: separator) }
                newline(level + 1)
                item.write(to: &out, indent: indent, level: level + 1)
            }
            newline(level)
            out.append(0x5D)
        case .object(let pairs):
            out.append(0x7B)
            if pairs.isEmpty { out.append(0x7D); return }
            for (i, (key, value)) in pairs.enumerated() {
                if i > 0 { out.append(contentsOf: separator) }
                newline(level + 1)
                JSONText.appendString(key, to: &out)
                out.append(0x3A); out.append(0x20)
                value.write(to: &out, indent: indent, level: level + 1)
            }
            newline(level)
            out.append(0x7D)
        }
    }
}
