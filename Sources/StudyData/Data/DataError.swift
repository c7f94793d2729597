import Support

/// What can go wrong generating the synthetic corpus: bad pool or template files, a world too
/// small for the requested samples, an output folder in the way. Messages name the file and
/// line or the config key, and the fix.
public enum DataError: UserFacingError, Equatable {
    case missingFile(path: String, what: String)
    case unreadable(path: String, reason: String)
    case emptyEntry(file: String, line: Int)
    case surroundingWhitespace(file: String, line: Int)
    case duplicateEntry(file: String, line: Int, firstLine: Int, entry: String)
    case noEntries(file: String)
    case templateMissingPlaceholder(file: String, line: Int, placeholder: String)
    case templateUnknownPlaceholder(file: String, line: Int, placeholder: String, allowed: [String])
    case templateBrace(file: String, line: Int)
    /// The name pools cannot give `needed` distinct names.
    case notEnoughNames(needed: Int, possible: Int, folder: String)
    case notEnoughRevisedNames(file: String, needed: Int, available: Int)
    /// A type × bucket cell holds fewer entities than a sample needs (`key`: test_per_cell or circuit_n).
    case cellTooSmall(type: String, bucket: String, entities: Int, key: String, requested: Int)
    /// Every circuit entity of a cell was dropped because its token length had ≤ 5 names.
    case circuitCellEmpty(type: String, bucket: String, sampled: Int)
    case emptyEncoding(text: String)
    /// A pool with a single entry: a conflicting value cannot differ from the old one.
    case conflictPoolTooSmall(file: String)
    case outputExists(path: String)
    case outputNotEmpty(path: String)
    case io(path: String, reason: String)

    public var exitCode: Int32 {
        switch self {
        case .io: return 1
        default: return 65
        }
    }

    public var description: String {
        switch self {
        case let .missingFile(path, what):
            return "\(what) \(path) not found: create it or point the config key at a folder that has it"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .emptyEntry(file, line):
            return "\(file) line \(line): empty entry (a line of spaces); delete the line or start it with # to make it a comment"
        case let .surroundingWhitespace(file, line):
            return "\(file) line \(line): entry starts or ends with whitespace; remove the spaces (they would end up inside the texts)"
        case let .duplicateEntry(file, line, firstLine, entry):
            return "\(file) line \(line): duplicate entry \"\(entry)\" (first on line \(firstLine)); entries must be unique"
        case let .noEntries(file):
            return "\(file) has no entries; add one entry per line"
        case let .templateMissingPlaceholder(file, line, placeholder):
            return "\(file) line \(line): template lacks the placeholder \(placeholder); every template needs {full_name} and its attribute's placeholder"
        case let .templateUnknownPlaceholder(file, line, placeholder, allowed):
            return "\(file) line \(line): unknown placeholder \(placeholder); this file's templates may use \(allowed.joined(separator: " and "))"
        case let .templateBrace(file, line):
            return "\(file) line \(line): unmatched '{' or '}'; braces may only enclose a placeholder"
        case let .notEnoughNames(needed, possible, folder):
            return "the name pools in \(folder) give at most \(possible) distinct names but \(needed) are needed; add first/middle/last names or lower n_entities"
        case let .notEnoughRevisedNames(file, needed, available):
            return "revised_names file \(file) has \(available) usable names (unique, not among the new names) but \(needed) revised entities are needed; add names or lower n_entities / raise new_fraction"
        case let .cellTooSmall(type, bucket, entities, key, requested):
            return "the \(type) × \(bucket) cell holds \(entities) entities but \(key) = \(requested) asks for \(requested); raise n_entities, lower \(key), or widen frequency_buckets"
        case let .circuitCellEmpty(type, bucket, sampled):
            return "all \(sampled) circuit entities of the \(type) × \(bucket) cell were dropped (their names' token lengths had 5 or fewer names among the circuit entities); raise circuit_n"
        case let .emptyEncoding(text):
            return "the tokenizer encoded \"\(text)\" to no tokens; check the tokenizer files"
        case let .conflictPoolTooSmall(file):
            return "\(file) has a single entry, so forget.conflict cannot draw a different value; add entries or set forget.conflict = false"
        case let .outputExists(path):
            return "\(path) already holds a complete data set (manifest.json); pass --force to replace it or choose another --out"
        case let .outputNotEmpty(path):
            return "\(path) exists and is not a dkc data set; pass --force to replace it or choose another --out"
        case let .io(path, reason):
            return "\(path): \(reason)"
        }
    }
}
