import Foundation

/// A configuration after defaults, file and overrides: every key of the schema with a value
/// (except optional keys nobody set), paths absolute, each value's origin remembered for errors.
///
/// Typed getters (`int`, `double`, `string`, `url`, …) are for keys the schema declares with
/// that type; asking for an undeclared key or the wrong type is a programming error.
public struct ResolvedConfig {
    public let schema: ConfigSchema
    /// The file the configuration came from, if any.
    public let file: URL?
    /// The `--set` arguments, as given.
    public let overrides: [String]
    /// Top-level values in schema order.
    public private(set) var values = ConfigTable()
    /// Section name → the keys that section overrides.
    public private(set) var sections: [String: ConfigTable] = [:]
    /// "key" or "section.key" → where its value came from ("configs/data/tiny.toml line 4",
    /// "--set seed=7", "default").
    public private(set) var origins: [String: String] = [:]

    init(schema: ConfigSchema, file: URL?, overrides: [String]) {
        self.schema = schema
        self.file = file
        self.overrides = overrides
        for key in schema.keys {
            if let d = key.defaultValue {
                values[key.name] = d
                origins[key.name] = "default"
            }
        }
        for section in schema.sections {
            for key in section.ownKeys {
                if let d = key.defaultValue {
                    sections[section.name, default: ConfigTable()][key.name] = d
                    origins["\(section.name).\(key.name)"] = "default"
                }
            }
        }
    }

    mutating func set(_ key: String, section: String?, to value: ConfigValue, origin: String) {
        if let section {
            sections[section, default: ConfigTable()][key] = value
            origins["\(section).\(key)"] = origin
        } else {
            values[key] = value
            origins[key] = origin
        }
    }

    /// The value of `key`, from `section` when the section sets it, else the top-level value.
    public func value(_ key: String, section: String? = nil) -> ConfigValue? {
        if let section, let v = sections[section]?[key] { return v }
        return values[key]
    }

    /// Where `key`'s value came from, for error messages.
    public func origin(of key: String, section: String? = nil) -> String {
        if let section, let o = origins["\(section).\(key)"] { return o }
        return origins[key] ?? "default"
    }

    /// The error for a value of `key` that breaks a rule: names the key as written (`section.key` when the section's
    /// table sets it) and where its value came from.
    public func invalid(_ key: String, section: String? = nil, _ reason: String) -> ConfigError {
        let written = section.map { s in sections[s]?[key] != nil ? "\(s).\(key)" : key } ?? key
        return ConfigError.invalidValue(key: written, location: origin(of: key, section: section), reason: reason)
    }

    /// The value of `key` as `convert` reads it; another type is a fault of the schema (`typeFault`), which checked it.
    private func typed<T>(_ key: String, _ section: String?, _ type: String, _ convert: (ConfigValue) -> T?) -> T {
        guard let value = value(key, section: section), let t = convert(value) else { typeFault(key, type) }
        return t
    }

    public func int(_ key: String, section: String? = nil) -> Int { typed(key, section, "integer") { if case .int(let i) = $0 { i } else { nil } } }
    public func double(_ key: String, section: String? = nil) -> Double { typed(key, section, "float") { if case .double(let d) = $0 { d } else { nil } } }
    public func bool(_ key: String, section: String? = nil) -> Bool { typed(key, section, "boolean") { if case .bool(let b) = $0 { b } else { nil } } }
    public func string(_ key: String, section: String? = nil) -> String { typed(key, section, "string") { if case .string(let s) = $0 { s } else { nil } } }

    /// A path key as a file URL (absolute).
    public func url(_ key: String, section: String? = nil) -> URL {
        URL(fileURLWithPath: string(key, section: section))
    }

    /// A path key that may be unset.
    public func optionalURL(_ key: String, section: String? = nil) -> URL? {
        guard case .string(let s)? = value(key, section: section) else { return nil }
        return URL(fileURLWithPath: s)
    }

    public func strings(_ key: String, section: String? = nil) -> [String] {
        typed(key, section, "array of strings") { v in
            guard case .array(let items) = v else { return nil }
            return items.map { if case .string(let s) = $0 { s } else { typeFault(key, "array of strings") } }
        }
    }

    public func ints(_ key: String, section: String? = nil) -> [Int] {
        typed(key, section, "array of integers") { v in
            guard case .array(let items) = v else { return nil }
            return items.map { if case .int(let i) = $0 { i } else { typeFault(key, "array of integers") } }
        }
    }

    public func table(_ key: String, section: String? = nil) -> ConfigTable {
        guard case .table(let t)? = value(key, section: section) else { typeFault(key, "table") }
        return t
    }

    private func typeFault(_ key: String, _ type: String) -> Never {
        preconditionFailure("config key '\(key)' read as \(type) but the \(schema.kind) schema or value disagrees")
    }

    // MARK: - Serialisation

    /// The configuration as TOML that dkc reads back to the same values: a comment with each
    /// key's help, keys in schema order, unset optional keys as commented-out lines, then each
    /// section that overrides something as a `[section]` table.
    public var tomlText: String {
        var lines: [String] = [
            "# \(schema.command) configuration, resolved by \(DKCVersion.source):",
            "# defaults filled in, paths absolute.",
        ]
        for key in schema.keys {
            lines.append("")
            lines.append("# \(key.help)")
            if let v = values[key.name] {
                lines.append("\(ConfigValue.tomlKey(key.name)) = \(v.tomlText)")
            } else {
                lines.append("# \(ConfigValue.tomlKey(key.name)) =  (not set)")
            }
        }
        for section in schema.sections {
            guard let t = sections[section.name], !t.isEmpty else { continue }
            lines.append("")
            lines.append("# \(section.help)")
            lines.append("[\(ConfigValue.tomlKey(section.name))]")
            for key in section.keys {
                if let v = t[key] { lines.append("\(ConfigValue.tomlKey(key)) = \(v.tomlText)") }
            }
            for key in section.ownKeys {
                lines.append("# \(key.help)")
                if let v = t[key.name] {
                    lines.append("\(ConfigValue.tomlKey(key.name)) = \(v.tomlText)")
                } else {
                    lines.append("# \(ConfigValue.tomlKey(key.name)) =  (not set)")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The configuration as a JSON object (keys in schema order, sections as nested objects;
    /// unset optional keys as null), for provenance records.
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = schema.keys.map { ($0.name, values[$0.name]?.json ?? .null) }
        for section in schema.sections {
            guard let t = sections[section.name], !t.isEmpty else { continue }
            pairs.append((section.name, ConfigValue.table(t).json))
        }
        return .object(pairs)
    }
}
