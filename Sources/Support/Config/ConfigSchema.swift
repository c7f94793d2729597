/// What a configuration key may hold. Checked when a file or `--set` gives the key a value.
public indirect enum ConfigType: Equatable {
    case int
    /// A float; an integer is accepted and converted (`learning_rate = 1` means 1.0).
    case double
    case bool
    case string
    /// A string naming a file or folder; resolved to an absolute path (relative to the config
    /// file's folder when the file gives it, to the working directory when `--set` gives it).
    case path
    /// A path, or one of a few keywords kept as written (`init = "scratch"` or a model folder).
    case pathOr([String])
    /// One of a closed set of strings.
    case choice([String])
    case array(ConfigType)
    /// A table whose key names the user chooses (e.g. bucket name → range), all of one type.
    case map(ConfigType)

    /// "integer", "array of strings", … for error messages and help.
    public var name: String {
        switch self {
        case .int: return "integer"
        case .double: return "float"
        case .bool: return "boolean (true or false)"
        case .string: return "string"
        case .path: return "path (a string)"
        case .pathOr(let words): return "path or one of " + words.map { "\"\($0)\"" }.joined(separator: ", ")
        case .choice(let options): return "one of " + options.map { "\"\($0)\"" }.joined(separator: ", ")
        case .array(let element): return "array of " + element.pluralName
        case .map(let element): return "table of " + element.pluralName
        }
    }

    var pluralName: String {
        switch self {
        case .int: return "integers"
        case .double: return "floats"
        case .bool: return "booleans"
        case .string: return "strings"
        case .path: return "paths"
        case .pathOr: return "paths or keywords"
        case .choice(let options): return "strings among " + options.map { "\"\($0)\"" }.joined(separator: ", ")
        case .array(let element): return "arrays of " + element.pluralName
        case .map(let element): return "tables of " + element.pluralName
        }
    }

    /// Whether values of this type are textual, so that a bare `--set key=word` is taken as a string.
    var isTextual: Bool {
        switch self {
        case .string, .path, .pathOr, .choice: return true
        default: return false
        }
    }
}

/// One key of a configuration kind: its name, type, default and a one-line help.
public struct ConfigKey {
    public let name: String
    public let type: ConfigType
    /// The value used when neither the file nor `--set` gives one; nil: the key is unset unless
    /// given (optional keys such as `revised_names`) or must be given (`required`).
    public let defaultValue: ConfigValue?
    public let required: Bool
    public let help: String

    public init(_ name: String, _ type: ConfigType, default defaultValue: ConfigValue?, required: Bool = false, help: String) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.required = required
        self.help = help
    }
}

/// A named table that overrides some top-level keys for one part of the work (the training
/// stages `[base]` and `[continual]`). Those keys have no defaults of their own: an unset key falls
/// back to the top-level value. A section may also own keys that exist only inside it (`ownKeys`,
/// e.g. `[forget] n_new`), with their own defaults.
public struct ConfigSection {
    public let name: String
    public let help: String
    /// Names of top-level keys the section may override.
    public let keys: [String]
    /// Keys valid only inside this section (`section.key`), with their types and defaults.
    public let ownKeys: [ConfigKey]

    public init(_ name: String, help: String, keys: [String], ownKeys: [ConfigKey] = []) {
        precondition(Set(ownKeys.map(\.name)).isDisjoint(with: keys), "section \(name) owns a key it also overrides")
        self.name = name
        self.help = help
        self.keys = keys
        self.ownKeys = ownKeys
    }

    public func ownKey(_ name: String) -> ConfigKey? { ownKeys.first { $0.name == name } }

    /// Every key name valid inside the section: overridden top-level keys, then its own.
    public var allKeys: [String] { keys + ownKeys.map(\.name) }
}

/// The schema of one configuration kind (`data`, `train`, `sweep`): the keys a file of that kind
/// may hold. Each kind defines its schema next to the code that reads it, as a static property
/// on `ConfigSchema` (`ConfigSchema.data`), and the dkc executable lists them all (`ConfigSchema.all`).
public struct ConfigSchema {
    /// The kind, also the folder under `configs/` holding its named configs.
    public let kind: String
    /// The command the configuration is for, for the header of written files ("dkc data generate").
    public let command: String
    public let keys: [ConfigKey]
    public let sections: [ConfigSection]

    public init(kind: String, command: String, keys: [ConfigKey], sections: [ConfigSection] = []) {
        precondition(Set(keys.map(\.name)).count == keys.count, "duplicate key in config schema \(kind)")
        self.kind = kind
        self.command = command
        self.keys = keys
        self.sections = sections
    }

    public func key(_ name: String) -> ConfigKey? { keys.first { $0.name == name } }
    public func section(_ name: String) -> ConfigSection? { sections.first { $0.name == name } }

    /// Every name valid somewhere in a file of this kind: top-level keys, section names and
    /// `section.key` forms. Used to suggest the nearest one for a misspelt key.
    public var allNames: [String] {
        keys.map(\.name) + sections.map(\.name) + sections.flatMap { s in s.allKeys.map { "\(s.name).\($0)" } }
    }

}

/// Edit distance and nearest-name suggestions for misspelt keys.
public enum NameSuggestion {
    /// Levenshtein distance (insertions, deletions, substitutions each cost 1) between two strings,
    /// compared by Unicode scalars.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }

    /// The candidate nearest to `name` (smallest edit distance, first in list order on ties).
    public static func nearest(_ name: String, in candidates: [String]) -> String? {
        var best: (String, Int)?
        for c in candidates {
            let d = editDistance(name, c)
            if best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }
}
