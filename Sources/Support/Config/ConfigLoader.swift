import Foundation

/// Loads a configuration: the schema's defaults, then a TOML file, then `--set key=value`
/// overrides, each value checked against the schema as it arrives.
///
/// - Unknown keys are errors naming the file and line (or the override) and the nearest valid key.
/// - Paths in the file resolve relative to the file's folder; paths in `--set` relative to the
///   working directory; `~/` is the home folder.
/// - An override's value is TOML (`--set tasks=["city"]`, `--set learning_rate=5e-4`); for a
///   textual key a value that is not TOML is taken as a string (`--set model_name=gpt2-medium`),
///   and bare words inside brackets are quoted (`--set tasks=[city,company]`, which is what the
///   shell leaves of `tasks=["city","company"]`). Dotted keys reach a section
///   (`--set continual.num_train_epochs=2`) or one entry of a map (`--set frequency_buckets.low=[1,1]`).
public enum ConfigLoader {
    /// The file a config argument names: an existing path as given (relative to `workingDirectory`),
    /// or, for a bare name like `tiny`, `configs/<kind>/<name>.toml` in the source checkout.
    public static func locate(_ spec: String, kind: String, workingDirectory: URL = cwd) throws -> URL {
        let looksLikePath = spec.contains("/") || spec.hasSuffix(".toml")
        let asPath = absolute(spec, relativeTo: workingDirectory)
        if looksLikePath {
            guard FileManager.default.fileExists(atPath: asPath.path) else { throw ConfigError.fileNotFound(path: spec) }
            return asPath
        }
        let folder = Paths.sourceRoot.appendingPathComponent("configs").appendingPathComponent(kind)
        let named = folder.appendingPathComponent(spec + ".toml")
        if FileManager.default.fileExists(atPath: named.path) { return named }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: asPath.path, isDirectory: &isDir), !isDir.boolValue { return asPath }
        throw ConfigError.namedConfigNotFound(name: spec, kind: kind, folder: folder.path, available: availableNames(kind: kind))
    }

    /// Names of the configs in `configs/<kind>/` of the source checkout, sorted.
    public static func availableNames(kind: String) -> [String] {
        let folder = Paths.sourceRoot.appendingPathComponent("configs").appendingPathComponent(kind)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return files.filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Resolves a configuration of `schema`'s kind from `file` (nil: defaults only) and `overrides`
    /// (`key=value` strings, applied in order after the file).
    public static func load(schema: ConfigSchema, file: URL?, overrides: [String] = [],
                            workingDirectory: URL = cwd) throws -> ResolvedConfig {
        var config = ResolvedConfig(schema: schema, file: file, overrides: overrides)
        if let file {
            let text: String
            do { text = try String(contentsOf: file, encoding: .utf8) } catch {
                throw ConfigError.fileNotFound(path: file.path)
            }
            try apply(text: text, fileName: file.path, baseDirectory: file.deletingLastPathComponent(), to: &config)
        }
        for o in overrides {
            try applyOverride(o, workingDirectory: workingDirectory, to: &config)
        }
        for key in schema.keys where key.required && config.values[key.name] == nil {
            throw ConfigError.missingRequired(key: key.name, help: key.help)
        }
        return config
    }

    /// Applies the keys of a TOML document (`fileName` names it in errors).
    static func apply(text: String, fileName: String, baseDirectory: URL, to config: inout ResolvedConfig) throws {
        let table = try TOMLReader.parse(text, fileName: fileName)
        let lines = KeyLines(text: text)
        let schema = config.schema
        for (key, value) in table.entries {
            let location = { (path: [String]) in "\(fileName)" + (lines.line(of: path).map { " line \($0)" } ?? "") }
            if let spec = schema.key(key) {
                let loc = location([key])
                config.set(key, section: nil, to: try coerce(value, to: spec.type, key: key, location: loc, baseDirectory: baseDirectory), origin: loc)
            } else if let section = schema.section(key) {
                guard case .table(let sub) = value else {
                    throw ConfigError.wrongType(key: key, location: location([key]), expected: "table ([\(key)])", got: value.typeName)
                }
                for (k, item) in sub.entries {
                    let loc = location([key, k])
                    guard let spec = section.ownKey(k) ?? (section.keys.contains(k) ? schema.key(k) : nil) else {
                        let suggestion = NameSuggestion.nearest(k, in: section.allKeys)
                        throw ConfigError.unknownKey(key: "\(key).\(k)", location: loc, suggestion: suggestion.map { "\(key).\($0)" })
                    }
                    config.set(k, section: key, to: try coerce(item, to: spec.type, key: "\(key).\(k)", location: loc, baseDirectory: baseDirectory), origin: loc)
                }
            } else {
                throw ConfigError.unknownKey(key: key, location: location([key]), suggestion: NameSuggestion.nearest(key, in: schema.allNames))
            }
        }
    }

    /// Applies one `key=value` override.
    static func applyOverride(_ text: String, workingDirectory: URL, to config: inout ResolvedConfig) throws {
        guard let eq = text.firstIndex(of: "=") else {
            throw ConfigError.badOverride(text: text, reason: "expected key=value (e.g. --set n_entities=1000)")
        }
        let keyPath = text[..<eq].trimmingCharacters(in: .whitespaces)
        let rawValue = String(text[text.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
        let parts = keyPath.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let location = "--set \(text)"
        let schema = config.schema
        guard !keyPath.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else {
            throw ConfigError.badOverride(text: text, reason: "empty key name")
        }
        let unknown = ConfigError.unknownKey(key: keyPath, location: location, suggestion: NameSuggestion.nearest(keyPath, in: schema.allNames))

        if let spec = schema.key(parts[0]) {
            if parts.count == 1 {
                let value = try parseOverrideValue(rawValue, type: spec.type, text: text)
                config.set(spec.name, section: nil, to: try coerce(value, to: spec.type, key: spec.name, location: location, baseDirectory: workingDirectory), origin: location)
                return
            }
            guard parts.count == 2, case .map(let element) = spec.type else { throw unknown }
            let value = try parseOverrideValue(rawValue, type: element, text: text)
            let entry = try coerce(value, to: element, key: keyPath, location: location, baseDirectory: workingDirectory)
            var table: ConfigTable
            if case .table(let t)? = config.values[spec.name] { table = t } else { table = ConfigTable() }
            table[parts[1]] = entry
            config.set(spec.name, section: nil, to: .table(table), origin: location)
            return
        }
        if let section = schema.section(parts[0]) {
            guard parts.count == 2,
                  let spec = section.ownKey(parts[1]) ?? (section.keys.contains(parts[1]) ? schema.key(parts[1]) : nil) else {
                let suggestion = parts.count == 2 ? NameSuggestion.nearest(parts[1], in: section.allKeys).map { "\(section.name).\($0)" } : nil
                throw ConfigError.unknownKey(key: keyPath, location: location, suggestion: suggestion ?? section.allKeys.first.map { "\(section.name).\($0)" })
            }
            let value = try parseOverrideValue(rawValue, type: spec.type, text: text)
            config.set(spec.name, section: section.name, to: try coerce(value, to: spec.type, key: keyPath, location: location, baseDirectory: workingDirectory), origin: location)
            return
        }
        throw unknown
    }

    /// Parses the value of an override as TOML, with the leniencies described on `ConfigLoader`.
    static func parseOverrideValue(_ raw: String, type: ConfigType, text: String) throws -> ConfigValue {
        if let v = parseTOMLValue(raw) {
            // A textual key given a number or boolean (`--set model_name=2024`) means the text.
            if type.isTextual, !isString(v) { return .string(raw) }
            return v
        }
        if type.isTextual, let first = raw.first, !"\"'[{".contains(first) { return .string(raw) }
        if raw.hasPrefix("["), let v = parseTOMLValue(quotingBareWords(raw)) { return v }
        if raw.isEmpty {
            throw ConfigError.badOverride(text: text, reason: "no value after '=' (expected \(type.name))")
        }
        throw ConfigError.badOverride(text: text, reason: "'\(raw)' is not a TOML value (expected \(type.name); quote the whole argument for the shell, e.g. --set 'tasks=[\"city\"]')")
    }

    private static func isString(_ v: ConfigValue) -> Bool {
        if case .string = v { return true }
        return false
    }

    private static func parseTOMLValue(_ raw: String) -> ConfigValue? {
        guard !raw.isEmpty else { return nil }
        return try? TOMLReader.value(raw)
    }

    /// `[city, company]` → `["city", "company"]`: words that TOML would not read as a value get quotes.
    static func quotingBareWords(_ raw: String) -> String {
        var out = ""
        var word = ""
        var inQuote: Character?
        func flush() {
            guard !word.isEmpty else { return }
            let keep = ["true", "false", "inf", "nan", "+inf", "-inf"].contains(word) || Double(word) != nil || Int(word) != nil
            out += keep ? word : "\"" + word + "\""
            word = ""
        }
        for ch in raw {
            if let q = inQuote {
                out.append(ch)
                if ch == q { inQuote = nil }
            } else if ch == "\"" || ch == "'" {
                flush(); out.append(ch); inQuote = ch
            } else if "[]{},= ".contains(ch) {
                flush(); out.append(ch)
            } else {
                word.append(ch)
            }
        }
        flush()
        return out
    }

    /// Checks `value` against `type`, converting where the conversion is exact (integer → float,
    /// integral float → integer) and resolving paths against `baseDirectory`.
    static func coerce(_ value: ConfigValue, to type: ConfigType, key: String, location: String, baseDirectory: URL) throws -> ConfigValue {
        func wrong() -> ConfigError {
            ConfigError.wrongType(key: key, location: location, expected: type.name, got: "\(value.typeName) \(value.tomlText)")
        }
        switch (type, value) {
        case (.int, .int), (.double, .double), (.bool, .bool), (.string, .string):
            return value
        case (.int, .double(let d)):
            guard d.rounded() == d, abs(d) < 9.0e15 else { throw wrong() }
            return .int(Int(d))
        case (.double, .int(let i)):
            return .double(Double(i))
        case (.path, .string(let s)):
            guard !s.isEmpty else { throw ConfigError.invalidValue(key: key, location: location, reason: "is an empty path") }
            return .string(absolute(s, relativeTo: baseDirectory).path)
        case (.pathOr(let words), .string(let s)):
            guard !s.isEmpty else { throw ConfigError.invalidValue(key: key, location: location, reason: "is empty: give a path or one of \(words.joined(separator: ", "))") }
            return words.contains(s) ? value : .string(absolute(s, relativeTo: baseDirectory).path)
        case (.choice(let options), .string(let s)):
            guard options.contains(s) else {
                let near = NameSuggestion.nearest(s, in: options).map { "; did you mean \"\($0)\"?" } ?? ""
                throw ConfigError.invalidValue(key: key, location: location,
                                               reason: "must be one of \(options.map { "\"\($0)\"" }.joined(separator: ", ")), got \"\(s)\"\(near)")
            }
            return value
        case (.array(let element), .array(let items)):
            return .array(try items.enumerated().map { i, item in
                try coerce(item, to: element, key: "\(key)[\(i)]", location: location, baseDirectory: baseDirectory)
            })
        case (.map(let element), .table(let table)):
            var out = ConfigTable()
            for (k, v) in table.entries {
                out[k] = try coerce(v, to: element, key: "\(key).\(k)", location: location, baseDirectory: baseDirectory)
            }
            return .table(out)
        default:
            throw wrong()
        }
    }

    /// `path` as an absolute, standardized file URL: `~/…` from the home folder, relative paths from `base`.
    public static func absolute(_ path: String, relativeTo base: URL) -> URL {
        let home = FileManager.default.homeDirectoryForCurrentUser
        if path == "~" { return home.standardizedFileURL }
        if path.hasPrefix("~/") {
            let folder = URL(fileURLWithPath: home.path, isDirectory: true)
            return URL(fileURLWithPath: String(path.dropFirst(2)), relativeTo: folder).standardizedFileURL
        }
        if path.hasPrefix("/") { return URL(fileURLWithPath: path).standardizedFileURL }
        let folder = URL(fileURLWithPath: base.path, isDirectory: true)  // a base without "/" would lose its last component
        return URL(fileURLWithPath: path, relativeTo: folder).standardizedFileURL
    }

    public static var cwd: URL { URL(fileURLWithPath: FileManager.default.currentDirectoryPath) }
}

/// Finds the line on which a TOML document sets a key, for error messages about valid TOML
/// (unknown keys, wrong types; TOMLReader reports the positions of syntax errors). Understands `key = …`, `"key" = …`, dotted keys
/// (`a.b = …`) and `[table]` headers; multi-line values are skipped by the first-match rule.
struct KeyLines {
    private var entries: [(path: [String], line: Int)] = []

    init(text: String) {
        var table: [String] = []
        for (n, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") && !line.hasPrefix("[[") {
                guard let close = line.firstIndex(of: "]") else { continue }
                table = KeyLines.splitKey(String(line[line.index(after: line.startIndex)..<close]))
                entries.append((table, n + 1))
            } else if let eq = line.firstIndex(of: "="), !line.hasPrefix("#") {
                let key = KeyLines.splitKey(String(line[..<eq]))
                guard !key.isEmpty else { continue }
                entries.append((table + key, n + 1))
            }
        }
    }

    /// The first line whose key path equals `path` or starts with it.
    func line(of path: [String]) -> Int? {
        entries.first { $0.path == path }?.line ?? entries.first { $0.path.starts(with: path) }?.line
    }

    private static func splitKey(_ s: String) -> [String] {
        s.split(separator: ".").map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }.filter { !$0.isEmpty }
    }
}
