/// A configuration value, independent of the TOML library: what a parsed file, a `--set` override
/// and a schema default all become. Tables keep their keys in order.
public indirect enum ConfigValue: Equatable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
    case array([ConfigValue])
    case table(ConfigTable)

    /// The TOML name of the value's type, for error messages ("integer", "array", …).
    public var typeName: String {
        switch self {
        case .int: return "integer"
        case .double: return "float"
        case .bool: return "boolean"
        case .string: return "string"
        case .array: return "array"
        case .table: return "table"
        }
    }

    /// The value as TOML text (`42`, `0.4`, `"gpt2"`, `[1, 1]`, `{ low = [1, 1] }`).
    public var description: String { tomlText }

    public var tomlText: String {
        switch self {
        case .int(let i): return String(i)
        case .double(let d): return ConfigValue.tomlFloat(d)
        case .bool(let b): return b ? "true" : "false"
        case .string(let s): return ConfigValue.tomlString(s)
        case .array(let items): return "[" + items.map(\.tomlText).joined(separator: ", ") + "]"
        case .table(let t):
            if t.isEmpty { return "{}" }
            return "{ " + t.entries.map { "\(ConfigValue.tomlKey($0.key)) = \($0.value.tomlText)" }
                .joined(separator: ", ") + " }"
        }
    }

    /// The value as JSON (tables become objects in key order).
    public var json: JSONValue {
        switch self {
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .bool(let b): return .bool(b)
        case .string(let s): return .string(s)
        case .array(let items): return .array(items.map(\.json))
        case .table(let t): return .object(t.entries.map { ($0.key, $0.value.json) })
        }
    }

    /// A TOML float that reads back to the same double: Swift's shortest round-trip digits,
    /// which always carry a "." or an exponent; `inf`, `-inf`, `nan` as TOML spells them.
    static func tomlFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        return d.description
    }

    /// A TOML basic string with the escapes TOML defines.
    static func tomlString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16, uppercase: true)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A key bare when TOML allows it (A–Z a–z 0–9 _ -), quoted otherwise.
    static func tomlKey(_ k: String) -> String {
        let bare = !k.isEmpty && k.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
        }
        return bare ? k : tomlString(k)
    }
}

/// An ordered table of configuration values.
public struct ConfigTable: Equatable {
    public private(set) var entries: [(key: String, value: ConfigValue)] = []

    public init() {}

    /// A table of `entries` whose keys are distinct (the TOML reader checks that), in O(n).
    init(uniqueEntries: [(key: String, value: ConfigValue)]) {
        entries = uniqueEntries
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    public subscript(key: String) -> ConfigValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    public static func == (a: ConfigTable, b: ConfigTable) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
