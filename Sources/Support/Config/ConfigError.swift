/// Everything that can be wrong with a configuration file, a `--set` override or a config value.
/// Each message names the file and line (or the override), the key, and what to do.
public enum ConfigError: UserFacingError, Equatable {
    /// The config file given as a path does not exist.
    case fileNotFound(path: String)
    /// A bare config name (`tiny`) not found under `configs/<kind>/`.
    case namedConfigNotFound(name: String, kind: String, folder: String, available: [String])
    /// The file is not valid TOML.
    case parse(file: String, line: Int, column: Int, message: String)
    /// A key no schema entry matches; `suggestion` is the nearest valid name.
    case unknownKey(key: String, location: String, suggestion: String?)
    /// A value of the wrong TOML type.
    case wrongType(key: String, location: String, expected: String, got: String)
    /// A value of the right type that the key does not allow (out of range, not among the choices).
    case invalidValue(key: String, location: String, reason: String)
    /// A required key nobody set.
    case missingRequired(key: String, help: String)
    /// A `--set` argument that is not `key=value`, or whose value is not TOML.
    case badOverride(text: String, reason: String)

    public var exitCode: Int32 { 65 }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "config file \(path) not found: give a path to a .toml file or the name of one in configs/<kind>/"
        case let .namedConfigNotFound(name, kind, folder, available):
            let list = available.isEmpty ? "none found" : available.joined(separator: ", ")
            return "no \(kind) config named '\(name)' in \(folder) (available: \(list)); give one of those names or a path to a .toml file"
        case let .parse(file, line, column, message):
            return "\(file) line \(line), column \(column): not valid TOML: \(message)"
        case let .unknownKey(key, location, suggestion):
            let hint = suggestion.map { "; did you mean '\($0)'?" } ?? ""
            return "\(location): unknown key '\(key)'\(hint)"
        case let .wrongType(key, location, expected, got):
            return "\(location): '\(key)' must be \(article(expected)) \(expected), got \(got)"
        case let .invalidValue(key, location, reason):
            return "\(location): '\(key)' \(reason)"
        case let .missingRequired(key, help):
            return "required key '\(key)' is not set (\(help)): add it to the config file or pass --set \(key)=..."
        case let .badOverride(text, reason):
            return "--set \(text): \(reason)"
        }
    }

    private func article(_ noun: String) -> String {
        if noun.hasPrefix("one of") { return "" }
        guard let first = noun.first else { return "a" }
        return "aeiou".contains(first) ? "an" : "a"
    }
}
