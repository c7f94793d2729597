import Foundation
import Support

/// Reads the plain-text list files of `data/pools/` and `data/templates/`: one entry a line,
/// blank lines ignored, lines starting with `#` (after optional spaces) are comments.
/// Rejected, with file and line: a line of only spaces, an entry with leading or trailing
/// whitespace, a duplicate entry, a file without entries, bytes that are not UTF-8.
public enum WordListFile {
    /// The entries of `file` with their 1-based line numbers.
    public static func read(_ file: URL, what: String) throws -> [(entry: String, line: Int)] {
        guard FileManager.default.fileExists(atPath: file.path) else { throw DataError.missingFile(path: file.path, what: what) }
        let data: Data
        do { data = try Data(contentsOf: file) } catch { throw DataError.unreadable(path: file.path, reason: "\(error.localizedDescription)") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DataError.unreadable(path: file.path, reason: "not UTF-8 text")
        }
        var out: [(String, Int)] = []
        var seen: [String: Int] = [:]
        // "\r\n" is one Character in Swift, so both line ends are named explicitly.
        for (i, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let lineNo = i + 1
            if line.isEmpty { continue }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") { continue }
            if trimmed.isEmpty { throw DataError.emptyEntry(file: file.path, line: lineNo) }
            if trimmed.count != line.count { throw DataError.surroundingWhitespace(file: file.path, line: lineNo) }
            if let first = seen[trimmed] {
                throw DataError.duplicateEntry(file: file.path, line: lineNo, firstLine: first, entry: trimmed)
            }
            seen[trimmed] = lineNo
            out.append((trimmed, lineNo))
        }
        guard !out.isEmpty else { throw DataError.noEntries(file: file.path) }
        return out
    }
}

/// The selection pools every entity's name and attributes are drawn from, uniformly.
public struct DataPools {
    public var firstNames: [String]
    public var middleNames: [String]
    public var lastNames: [String]
    /// Day of month, as written in birthdays ("1" … "28").
    public var days: [String]
    public var months: [String]
    public var years: [String]
    /// "City, ST".
    public var cities: [String]
    public var companies: [String]
    public var majors: [String]
    public var universities: [String]

    /// File names inside a pools folder, in the order above.
    public static let fileNames = ["first_names.txt", "middle_names.txt", "last_names.txt", "days.txt", "months.txt",
                                   "years.txt", "cities.txt", "companies.txt", "majors.txt", "universities.txt"]

    public init(firstNames: [String], middleNames: [String], lastNames: [String], days: [String], months: [String],
                years: [String], cities: [String], companies: [String], majors: [String], universities: [String]) {
        self.firstNames = firstNames
        self.middleNames = middleNames
        self.lastNames = lastNames
        self.days = days
        self.months = months
        self.years = years
        self.cities = cities
        self.companies = companies
        self.majors = majors
        self.universities = universities
    }

    /// Reads every pool file of `folder` (see `fileNames`).
    public static func load(from folder: URL) throws -> DataPools {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw DataError.missingFile(path: folder.path, what: "pools folder")
        }
        let lists = try fileNames.map { name in
            try WordListFile.read(folder.appendingPathComponent(name), what: "pool file").map(\.entry)
        }
        return DataPools(firstNames: lists[0], middleNames: lists[1], lastNames: lists[2], days: lists[3], months: lists[4],
                         years: lists[5], cities: lists[6], companies: lists[7], majors: lists[8], universities: lists[9])
    }
}

/// The five attribute groups of a biography, one sentence each, in the order sentences are
/// drawn (before they are shuffled).
public enum AttributeGroup: String, CaseIterable {
    case birthday, city, company, major, university

    /// The placeholder of the group's value in its templates.
    public var placeholder: String { "{\(rawValue)}" }
}

/// One sentence template, split once into literal text and placeholders so that filling it is
/// a copy of pre-escaped bytes.
public struct SentenceTemplate {
    public enum Piece: Equatable {
        case text(String)
        case fullName
        case value
    }

    public let pieces: [Piece]
    /// The template as written.
    public let source: String
    /// The literal pieces JSON-escaped, parallel to `pieces` (empty for placeholders).
    let escapedText: [[UInt8]]

    /// Parses `source`; `group` decides which value placeholder it must hold. Errors name `file` and `line`.
    public init(_ source: String, group: AttributeGroup, file: String, line: Int) throws {
        var pieces: [Piece] = []
        var text = ""
        var sawName = false, sawValue = false
        var i = source.startIndex
        while i < source.endIndex {
            let ch = source[i]
            if ch == "}" { throw DataError.templateBrace(file: file, line: line) }
            if ch == "{" {
                guard let close = source[i...].firstIndex(of: "}") else { throw DataError.templateBrace(file: file, line: line) }
                let name = String(source[i...close])
                if name.dropFirst().contains("{") { throw DataError.templateBrace(file: file, line: line) }
                if !text.isEmpty { pieces.append(.text(text)); text = "" }
                if name == "{full_name}" {
                    pieces.append(.fullName); sawName = true
                } else if name == group.placeholder {
                    pieces.append(.value); sawValue = true
                } else {
                    throw DataError.templateUnknownPlaceholder(file: file, line: line, placeholder: name,
                                                               allowed: ["{full_name}", group.placeholder])
                }
                i = source.index(after: close)
                continue
            }
            text.append(ch)
            i = source.index(after: i)
        }
        if !text.isEmpty { pieces.append(.text(text)) }
        guard sawName else { throw DataError.templateMissingPlaceholder(file: file, line: line, placeholder: "{full_name}") }
        guard sawValue else { throw DataError.templateMissingPlaceholder(file: file, line: line, placeholder: group.placeholder) }
        self.pieces = pieces
        self.source = source
        self.escapedText = pieces.map { if case .text(let t) = $0 { return JSONText.escaped(t) } else { return [] } }
    }

    /// The sentence for a person and value, as plain text.
    public func fill(fullName: String, value: String) -> String {
        pieces.map {
            switch $0 {
            case .text(let t): return t
            case .fullName: return fullName
            case .value: return value
            }
        }.joined()
    }

    /// Appends the sentence, JSON-escaped, given the name and value already escaped.
    @inline(__always)
    func appendEscaped(name: [UInt8], value: [UInt8], to out: inout [UInt8]) {
        for (k, piece) in pieces.enumerated() {
            switch piece {
            case .text: out.append(contentsOf: escapedText[k])
            case .fullName: out.append(contentsOf: name)
            case .value: out.append(contentsOf: value)
            }
        }
    }
}

/// The sentence templates of every attribute group: `<group>.txt` in a templates folder.
public struct BiographyTemplates {
    /// Indexed like `AttributeGroup.allCases`.
    public let groups: [[SentenceTemplate]]

    public init(groups: [[SentenceTemplate]]) {
        precondition(groups.count == AttributeGroup.allCases.count && groups.allSatisfy { !$0.isEmpty })
        self.groups = groups
    }

    public subscript(group: AttributeGroup) -> [SentenceTemplate] {
        groups[AttributeGroup.allCases.firstIndex(of: group)!]
    }

    public static func load(from folder: URL) throws -> BiographyTemplates {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw DataError.missingFile(path: folder.path, what: "templates folder")
        }
        return BiographyTemplates(groups: try AttributeGroup.allCases.map { group in
            let file = folder.appendingPathComponent("\(group.rawValue).txt")
            return try WordListFile.read(file, what: "template file").map {
                try SentenceTemplate($0.entry, group: group, file: file.path, line: $0.line)
            }
        })
    }
}
