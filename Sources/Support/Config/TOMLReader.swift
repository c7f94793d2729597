/// dkc's own TOML reader: turns the text of a config file, or of one `--set` value, into `ConfigValue`s
/// (tables keep the file's key order). It reads the part of TOML 1.0 configs use and rejects everything
/// else with `ConfigError.parse` naming the file, line and column: it never traps, whatever the input
/// (docs/input-validation.md).
///
/// Read: comments; bare, quoted and dotted keys; `key = value`; `[table]` and `[a.b]` headers; basic
/// strings with every TOML escape, literal strings, multi-line basic and literal strings; integers
/// (decimal with `_` separators, `0x` / `0o` / `0b`, 64-bit range checked); floats (fraction, exponent,
/// `inf` / `nan` with signs); booleans; arrays (over several lines, trailing comma, comments inside);
/// inline tables. Duplicate keys and tables defined twice are errors, as TOML says. Arrays of tables
/// (`[[x]]`) and dates / times are named errors: dkc configs do not use them.
///
/// The reader walks the UTF-8 bytes with an index; every access goes through `peek`, which returns nil
/// past the end. It recurses only into arrays and inline tables, and tables plus values nest at most
/// `maxDepth` levels, so deep input cannot exhaust the stack.
enum TOMLReader {
    /// How deep tables, arrays and inline tables may nest (the root table is level 0).
    static let maxDepth = 64

    /// Parses a TOML document into its root table; `fileName` names it in errors.
    static func parse(_ text: String, fileName: String) throws -> ConfigTable {
        var parser = TOMLParser(text: text, fileName: fileName)
        return try parser.document()
    }

    /// Parses `text` as exactly one TOML value (blanks and a comment may follow it).
    static func value(_ text: String, name: String = "value") throws -> ConfigValue {
        var parser = TOMLParser(text: text, fileName: name)
        return try parser.singleValue()
    }
}

/// A table while a document is read: its keys in order and how it came to exist, which decides
/// whether a header or a dotted key may add to it later.
private final class TOMLNode {
    enum Origin {
        /// Created as the parent of a header (`a` for `[a.b]`); a later `[a]` may still define it.
        case implicit
        /// Defined by a header (or the root, or an inline table): cannot be defined again.
        case header
        /// Created by a dotted key (`a.b = 1` creates `a`): dotted keys may add to it, headers not.
        case dotted
    }
    enum Item {
        case value(ConfigValue)
        case table(TOMLNode)
    }

    var origin: Origin
    let depth: Int
    private var order: [String] = []
    private var items: [String: Item] = [:]

    init(origin: Origin, depth: Int) {
        self.origin = origin
        self.depth = depth
    }

    subscript(key: String) -> Item? { items[key] }

    func set(_ key: String, _ item: Item) {
        if items[key] == nil { order.append(key) }
        items[key] = item
    }

    /// The finished table; recursion depth is bounded by `TOMLReader.maxDepth`.
    var configTable: ConfigTable {
        var entries: [(key: String, value: ConfigValue)] = []
        entries.reserveCapacity(order.count)
        for key in order {
            switch items[key] {
            case .value(let v)?: entries.append((key, v))
            case .table(let t)?: entries.append((key, .table(t.configTable)))
            case nil: break
            }
        }
        return ConfigTable(uniqueEntries: entries)
    }
}

private struct TOMLParser {
    private let bytes: [UInt8]
    private let fileName: String
    private var i = 0

    init(text: String, fileName: String) {
        bytes = Array(text.utf8)
        self.fileName = fileName
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }  // byte order mark
    }

    // MARK: Characters

    private static let newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r"), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
    private static let hash = UInt8(ascii: "#"), equals = UInt8(ascii: "="), dot = UInt8(ascii: "."), comma = UInt8(ascii: ",")
    private static let quote = UInt8(ascii: "\""), apostrophe = UInt8(ascii: "'"), backslash = UInt8(ascii: "\\")
    private static let openBracket = UInt8(ascii: "["), closeBracket = UInt8(ascii: "]")
    private static let openBrace = UInt8(ascii: "{"), closeBrace = UInt8(ascii: "}")

    /// The byte `offset` places after the index, or nil past either end.
    private func peek(_ offset: Int = 0) -> UInt8? {
        let (j, overflow) = i.addingReportingOverflow(offset)
        return !overflow && j >= 0 && j < bytes.count ? bytes[j] : nil
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    private static func isLetter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
    private static func isBareKey(_ b: UInt8) -> Bool { isDigit(b) || isLetter(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") }
    /// Control characters TOML forbids unescaped (tab is allowed).
    private static func isControl(_ b: UInt8) -> Bool { (b < 0x20 && b != tab) || b == 0x7F }

    /// The character at the index, for messages.
    private var found: String {
        guard let b = peek() else { return "the end of the text" }
        if b == Self.newline || (b == Self.cr && peek(1) == Self.newline) { return "the end of the line" }
        if b < 0x80 { return "'" + Unicode.Scalar(b).escaped(asASCII: true) + "'" }
        var end = i + 1
        while end < bytes.count, end < i + 4, bytes[end] & 0xC0 == 0x80 { end += 1 }
        return "'" + String(decoding: bytes[i..<end], as: UTF8.self) + "'"
    }

    /// A parse error at byte `position` (default: the index), with its 1-based line and column
    /// (columns count Unicode scalars).
    private func error(_ message: String, at position: Int? = nil) -> ConfigError {
        let end = min(max(position ?? i, 0), bytes.count)
        var line = 1, column = 1, k = 0
        while k < end {
            let b = bytes[k]
            if b == Self.newline { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
            k += 1
        }
        return .parse(file: fileName, line: line, column: column, message: message)
    }

    // MARK: Blanks, comments, line ends

    private mutating func skipBlanks() {
        while let b = peek(), b == Self.space || b == Self.tab { i += 1 }
    }

    /// Consumes a line end (LF or CR LF) if one is at the index.
    private mutating func consumeNewline() -> Bool {
        if peek() == Self.newline { i += 1; return true }
        if peek() == Self.cr, peek(1) == Self.newline { i += 2; return true }
        return false
    }

    /// Consumes a comment from `#` to (not including) the line end.
    private mutating func skipComment() throws {
        guard peek() == Self.hash else { return }
        i += 1
        while let b = peek(), b != Self.newline {
            if b == Self.cr, peek(1) == Self.newline { return }
            if Self.isControl(b) { throw error("control character \(found) in a comment") }
            i += 1
        }
    }

    /// Skips blanks, comments and line ends (inside arrays).
    private mutating func skipBlanksCommentsNewlines() throws {
        while true {
            skipBlanks()
            if peek() == Self.hash { try skipComment() }
            if !consumeNewline() { return }
        }
    }

    /// After a header or key/value: blanks, an optional comment, then a line end or the end of the text.
    private mutating func endOfLine(after what: String) throws {
        skipBlanks()
        try skipComment()
        guard peek() == nil || consumeNewline() else {
            throw error("expected the end of the line after \(what), found \(found)")
        }
    }

    // MARK: Document structure

    mutating func document() throws -> ConfigTable {
        let root = TOMLNode(origin: .header, depth: 0)
        var current = root
        while true {
            skipBlanks()
            guard let b = peek() else { break }
            if b == Self.hash { try skipComment() }
            if consumeNewline() { continue }
            guard peek() != nil else { break }
            if b == Self.openBracket {
                current = try header(root: root)
                try endOfLine(after: "the table header")
            } else {
                try keyValue(into: current)
                try endOfLine(after: "the value")
            }
        }
        return root.configTable
    }

    mutating func singleValue() throws -> ConfigValue {
        skipBlanks()
        let v = try value(depth: 1)
        skipBlanks()
        try skipComment()
        guard peek() == nil else { throw error("expected the end after the value, found \(found)") }
        return v
    }

    /// A key: one or more bare or quoted parts joined by dots, with their byte positions.
    private mutating func key() throws -> [(name: String, position: Int)] {
        var parts: [(name: String, position: Int)] = []
        while true {
            skipBlanks()
            let start = i
            guard let b = peek() else { throw error("expected a key, found the end of the text") }
            let name: String
            if b == Self.quote {
                if peek(1) == Self.quote, peek(2) == Self.quote { throw error("a key cannot be a multi-line string") }
                name = try basicString()
            } else if b == Self.apostrophe {
                if peek(1) == Self.apostrophe, peek(2) == Self.apostrophe { throw error("a key cannot be a multi-line string") }
                name = try literalString()
            } else if Self.isBareKey(b) {
                while let c = peek(), Self.isBareKey(c) { i += 1 }
                name = String(decoding: bytes[start..<i], as: UTF8.self)
            } else {
                throw error("expected a key (letters, digits, '_' and '-', or a quoted key), found \(found)")
            }
            parts.append((name, start))
            guard parts.count <= TOMLReader.maxDepth else {
                throw error("a key of more than \(TOMLReader.maxDepth) dotted parts", at: start)
            }
            skipBlanks()
            guard peek() == Self.dot else { return parts }
            i += 1
        }
    }

    private static func display(_ path: ArraySlice<(name: String, position: Int)>) -> String {
        path.map { ConfigValue.tomlKey($0.name) }.joined(separator: ".")
    }

    private func child(of node: TOMLNode, origin: TOMLNode.Origin, at position: Int) throws -> TOMLNode {
        guard node.depth < TOMLReader.maxDepth else {
            throw error("tables nest deeper than \(TOMLReader.maxDepth) levels", at: position)
        }
        return TOMLNode(origin: origin, depth: node.depth + 1)
    }

    /// A `[a.b]` header: defines that table and returns it.
    private mutating func header(root: TOMLNode) throws -> TOMLNode {
        let start = i
        i += 1
        if peek() == Self.openBracket {
            throw error("arrays of tables ([[name]]) are not used in dkc configs: write a [name] table or an array of inline tables", at: start)
        }
        let path = try key()
        guard peek() == Self.closeBracket else { throw error("expected ']' to close the table header, found \(found)") }
        i += 1
        var node = root
        for (n, part) in path.enumerated() {
            let last = n == path.count - 1
            let name = "[" + Self.display(path[0...n]) + "]"
            switch node[part.name] {
            case nil:
                let t = try child(of: node, origin: last ? .header : .implicit, at: part.position)
                node.set(part.name, .table(t))
                node = t
            case .table(let t)?:
                if last {
                    switch t.origin {
                    case .implicit: t.origin = .header
                    case .header: throw error("table \(name) is defined twice", at: part.position)
                    case .dotted: throw error("table \(name) was already defined by dotted keys and cannot get a header", at: part.position)
                    }
                }
                node = t
            case .value?:
                throw error("\(name): '\(Self.display(path[0...n]))' is already set to a value, not a table", at: part.position)
            }
        }
        return node
    }

    /// `key = value` into `table` (dotted keys create tables inside it).
    private mutating func keyValue(into table: TOMLNode) throws {
        let path = try key()
        guard peek() == Self.equals else {
            throw error("expected '=' after the key '\(Self.display(path[...]))', found \(found)")
        }
        i += 1
        skipBlanks()
        var node = table
        for n in 0..<(path.count - 1) {
            let part = path[n]
            switch node[part.name] {
            case nil:
                let t = try child(of: node, origin: .dotted, at: part.position)
                node.set(part.name, .table(t))
                node = t
            case .table(let t)? where t.origin == .dotted:
                node = t
            case .table?:
                throw error("'\(Self.display(path[0...n]))' is a table with its own header; set its keys under that header", at: part.position)
            case .value?:
                throw error("'\(Self.display(path[0...n]))' is already set to a value, not a table", at: part.position)
            }
        }
        let last = path[path.count - 1]
        if node[last.name] != nil {
            throw error("duplicate key '\(Self.display(path[...]))'", at: last.position)
        }
        node.set(last.name, .value(try value(depth: node.depth + 1)))
    }

    // MARK: Values

    private mutating func value(depth: Int) throws -> ConfigValue {
        guard depth <= TOMLReader.maxDepth else { throw error("values nest deeper than \(TOMLReader.maxDepth) levels") }
        guard let b = peek() else { throw error("expected a value, found the end of the text") }
        switch b {
        case Self.quote:
            return .string(peek(1) == Self.quote && peek(2) == Self.quote ? try multiLineString(literal: false) : try basicString())
        case Self.apostrophe:
            return .string(peek(1) == Self.apostrophe && peek(2) == Self.apostrophe ? try multiLineString(literal: true) : try literalString())
        case Self.openBracket:
            return try array(depth: depth)
        case Self.openBrace:
            return try inlineTable(depth: depth)
        default:
            return try scalar()
        }
    }

    private mutating func array(depth: Int) throws -> ConfigValue {
        let start = i
        i += 1
        var items: [ConfigValue] = []
        while true {
            try skipBlanksCommentsNewlines()
            guard let b = peek() else { throw error("the array is not closed: expected ']'", at: start) }
            if b == Self.closeBracket { i += 1; return .array(items) }
            items.append(try value(depth: depth + 1))
            try skipBlanksCommentsNewlines()
            if peek() == Self.comma { i += 1; continue }
            if peek() == Self.closeBracket { i += 1; return .array(items) }
            if peek() == nil { throw error("the array is not closed: expected ']'", at: start) }
            throw error("expected ',' or ']' in the array, found \(found)")
        }
    }

    private mutating func inlineTable(depth: Int) throws -> ConfigValue {
        i += 1
        let node = TOMLNode(origin: .header, depth: depth)
        skipBlanks()
        if peek() == Self.closeBrace { i += 1; return .table(ConfigTable()) }
        while true {
            try keyValue(into: node)
            skipBlanks()
            if peek() == Self.comma { i += 1; continue }
            if peek() == Self.closeBrace { i += 1; return .table(node.configTable) }
            if peek() == nil || peek() == Self.newline || peek() == Self.cr {
                throw error("an inline table must close with '}' on the line it starts")
            }
            throw error("expected ',' or '}' in the inline table, found \(found)")
        }
    }

    /// Booleans, numbers, and the named errors for dates and unquoted words.
    private mutating func scalar() throws -> ConfigValue {
        let start = i
        while let b = peek(), Self.isDigit(b) || Self.isLetter(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: "+")
                || b == UInt8(ascii: "-") || b == Self.dot || b == UInt8(ascii: ":") { i += 1 }
        let token = Array(bytes[start..<i])
        guard !token.isEmpty else {
            throw error("expected a value (a string, number, boolean, array or inline table), found \(found)")
        }
        let text = String(decoding: token, as: UTF8.self)
        if text == "true" { return .bool(true) }
        if text == "false" { return .bool(false) }
        let looksLikeDate = (token.count >= 5 && token[0..<4].allSatisfy(Self.isDigit) && token[4] == UInt8(ascii: "-"))
            || (token.count >= 3 && token[0..<2].allSatisfy(Self.isDigit) && token[2] == UInt8(ascii: ":"))
        if looksLikeDate {
            throw error("dates and times are not used in dkc configs: write '\(text)' as a string in quotes", at: start)
        }
        if let v = try number(token, text: text, at: start) { return v }
        if Self.isLetter(token[0]) {
            throw error("'\(text)' is not a TOML value: strings need quotes (\"\(text)\"); booleans are true and false", at: start)
        }
        throw error("'\(text)' is not a valid number", at: start)
    }

    /// `token` as an integer or float; nil when it is not number-shaped at all, an error when it is
    /// but breaks a rule (leading zeros, misplaced '_', out of range).
    private func number(_ token: [UInt8], text: String, at start: Int) throws -> ConfigValue? {
        let plus = UInt8(ascii: "+"), minus = UInt8(ascii: "-")
        let signed = token[0] == plus || token[0] == minus
        let negative = token[0] == minus
        let body = signed ? token[1...] : token[0...]
        let bodyText = String(decoding: body, as: UTF8.self)
        if bodyText == "inf" { return .double(negative ? -.infinity : .infinity) }
        if bodyText == "nan" { return .double(.nan) }
        func bad(_ why: String) -> ConfigError { error("'\(text)' is not a valid number: \(why)", at: start) }

        // 0x, 0o, 0b integers.
        if body.count >= 2, body[body.startIndex] == UInt8(ascii: "0"),
           let radix = [UInt8(ascii: "x"): 16, UInt8(ascii: "o"): 8, UInt8(ascii: "b"): 2][body[body.startIndex + 1]] {
            guard !signed else { throw bad("hexadecimal, octal and binary integers take no sign") }
            return .int(try Self.prefixedInteger(body[(body.startIndex + 2)...], radix: radix, bad: bad))
        }

        // Decimal: integer part, optional fraction, optional exponent.
        var k = body.startIndex
        while k < body.endIndex, Self.isDigit(body[k]) || body[k] == Self.underscore { k += 1 }
        let intPart = body[body.startIndex..<k]
        guard !intPart.isEmpty else { return nil }
        guard Self.validDigits(intPart, Self.isDigit) else { throw bad("'_' must sit between digits") }
        if intPart.count > 1, intPart[intPart.startIndex] == UInt8(ascii: "0") { throw bad("leading zeros are not allowed") }
        if k == body.endIndex { return .int(try Self.decimalInteger(intPart, negative: negative, bad: bad)) }
        if body[k] == Self.dot {
            k += 1
            let fracStart = k
            while k < body.endIndex, Self.isDigit(body[k]) || body[k] == Self.underscore { k += 1 }
            guard Self.validDigits(body[fracStart..<k], Self.isDigit) else { throw bad("a '.' must have digits on both sides") }
        }
        if k < body.endIndex, body[k] == UInt8(ascii: "e") || body[k] == UInt8(ascii: "E") {
            k += 1
            if k < body.endIndex, body[k] == plus || body[k] == minus { k += 1 }
            let expStart = k
            while k < body.endIndex, Self.isDigit(body[k]) || body[k] == Self.underscore { k += 1 }
            guard Self.validDigits(body[expStart..<k], Self.isDigit) else { throw bad("an exponent needs digits") }
        }
        guard k == body.endIndex else { throw bad("unexpected '\(Unicode.Scalar(body[k]).escaped(asASCII: true))'") }
        let plain = String(decoding: body.filter { $0 != Self.underscore }, as: UTF8.self)
        guard let magnitude = Double(plain), magnitude.isFinite else { throw bad("out of the range of a 64-bit float") }
        return .double(negative ? -magnitude : magnitude)
    }

    private static let underscore = UInt8(ascii: "_")

    /// Digits (by `isDigit`) with single '_' only between digits.
    private static func validDigits(_ s: ArraySlice<UInt8>, _ isDigit: (UInt8) -> Bool) -> Bool {
        guard let first = s.first, let last = s.last, isDigit(first), isDigit(last) else { return false }
        var previousUnderscore = false
        for b in s {
            if b == underscore {
                if previousUnderscore { return false }
                previousUnderscore = true
            } else if isDigit(b) {
                previousUnderscore = false
            } else {
                return false
            }
        }
        return true
    }

    /// The digits after a 0x, 0o or 0b prefix as a 64-bit integer.
    private static func prefixedInteger(_ digits: ArraySlice<UInt8>, radix: Int, bad: (String) -> ConfigError) throws -> Int {
        let digitValue = { (b: UInt8) -> Int? in
            let v: Int
            if isDigit(b) { v = Int(b - 0x30) } else if b >= 0x61 && b <= 0x66 { v = Int(b - 0x61 + 10) }
            else if b >= 0x41 && b <= 0x46 { v = Int(b - 0x41 + 10) } else { return nil }
            return v < radix ? v : nil
        }
        guard validDigits(digits, { digitValue($0) != nil }) else {
            throw bad("expected base-\(radix) digits after the prefix, '_' only between digits")
        }
        var value = 0
        for b in digits where b != underscore {
            guard let d = digitValue(b) else { throw bad("not a base-\(radix) digit") }
            let (m, o1) = value.multipliedReportingOverflow(by: radix)
            let (s, o2) = m.addingReportingOverflow(d)
            guard !o1, !o2 else { throw bad("does not fit a 64-bit integer") }
            value = s
        }
        return value
    }

    /// Checked decimal digits (with '_') as a 64-bit integer, negated when `negative` (Int.min included).
    private static func decimalInteger(_ digits: ArraySlice<UInt8>, negative: Bool, bad: (String) -> ConfigError) throws -> Int {
        var magnitude: UInt64 = 0
        for b in digits where b != underscore {
            let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(b - 0x30))
            guard !o1, !o2 else { throw bad("does not fit a 64-bit integer") }
            magnitude = s
        }
        if negative {
            guard magnitude <= UInt64(Int.max) + 1 else { throw bad("does not fit a 64-bit integer") }
            return magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude)
        }
        guard magnitude <= UInt64(Int.max) else { throw bad("does not fit a 64-bit integer") }
        return Int(magnitude)
    }

    // MARK: Strings

    /// A `"basic"` string, escapes resolved.
    private mutating func basicString() throws -> String {
        let start = i
        i += 1
        var out: [UInt8] = []
        while true {
            guard let b = peek() else { throw error("the string is not closed: expected '\"'", at: start) }
            if b == Self.quote { i += 1; return String(decoding: out, as: UTF8.self) }
            if b == Self.backslash { try escape(into: &out); continue }
            if b == Self.newline || b == Self.cr {
                throw error("the string is not closed on its line: a string in \"...\" cannot span lines (use \"\"\"...\"\"\")")
            }
            if Self.isControl(b) { throw error("control character \(found) in a string: write it as an escape (\\u00XX)") }
            out.append(b)
            i += 1
        }
    }

    /// A `'literal'` string, taken as written.
    private mutating func literalString() throws -> String {
        let start = i
        i += 1
        while true {
            guard let b = peek() else { throw error("the string is not closed: expected \"'\"", at: start) }
            if b == Self.apostrophe {
                i += 1
                return String(decoding: bytes[(start + 1)..<(i - 1)], as: UTF8.self)
            }
            if b == Self.newline || b == Self.cr {
                throw error("the string is not closed on its line: a string in '...' cannot span lines (use '''...''')")
            }
            if Self.isControl(b) { throw error("control character \(found) in a literal string") }
            i += 1
        }
    }

    /// A `"""multi-line basic"""` or `'''multi-line literal'''` string. A line end right after the
    /// opening quotes is dropped; in basic strings a `\` at the end of a line drops it and the blanks
    /// and line ends after it. Up to two quotes may sit just before the closing three.
    private mutating func multiLineString(literal: Bool) throws -> String {
        let start = i
        let delimiter = literal ? Self.apostrophe : Self.quote
        i += 3
        _ = consumeNewline()
        var out: [UInt8] = []
        while true {
            guard let b = peek() else { throw error("the multi-line string is not closed", at: start) }
            if b == delimiter {
                let runStart = i
                var run = 0
                while peek() == delimiter { run += 1; i += 1 }
                if run >= 3 {
                    guard run <= 5 else { throw error("too many quotes closing the multi-line string", at: runStart) }
                    out.append(contentsOf: repeatElement(delimiter, count: run - 3))
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(contentsOf: repeatElement(delimiter, count: run))
                continue
            }
            if !literal, b == Self.backslash {
                var j = 1
                while let c = peek(j), c == Self.space || c == Self.tab { j += 1 }
                if peek(j) == Self.newline || (peek(j) == Self.cr && peek(j + 1) == Self.newline) {
                    i += j
                    while true {
                        skipBlanks()
                        if !consumeNewline() { break }
                    }
                    continue
                }
                try escape(into: &out)
                continue
            }
            if b == Self.newline { out.append(b); i += 1; continue }
            if b == Self.cr, peek(1) == Self.newline { out.append(Self.newline); i += 2; continue }
            if Self.isControl(b) { throw error("control character \(found) in a string: write it as an escape (\\u00XX)") }
            out.append(b)
            i += 1
        }
    }

    /// One escape at the index (a backslash), appended as UTF-8.
    private mutating func escape(into out: inout [UInt8]) throws {
        let start = i
        guard let e = peek(1) else { throw error("the string ends in a lone backslash", at: start) }
        let simple: [UInt8: UInt8] = [UInt8(ascii: "b"): 0x08, UInt8(ascii: "t"): 0x09, UInt8(ascii: "n"): 0x0A,
                                      UInt8(ascii: "f"): 0x0C, UInt8(ascii: "r"): 0x0D, Self.quote: Self.quote,
                                      Self.backslash: Self.backslash]
        if let c = simple[e] { out.append(c); i += 2; return }
        let count = e == UInt8(ascii: "u") ? 4 : e == UInt8(ascii: "U") ? 8 : 0
        guard count > 0 else {
            i += 1
            throw error("invalid escape '\\\(found.dropFirst().dropLast())': TOML's escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX", at: start)
        }
        var code: UInt32 = 0
        for n in 0..<count {
            guard let h = peek(2 + n) else { throw error("\\\(Unicode.Scalar(e)) needs \(count) hexadecimal digits", at: start) }
            let d: UInt32
            if Self.isDigit(h) { d = UInt32(h - 0x30) } else if h >= 0x61 && h <= 0x66 { d = UInt32(h - 0x61 + 10) }
            else if h >= 0x41 && h <= 0x46 { d = UInt32(h - 0x41 + 10) }
            else { throw error("\\\(Unicode.Scalar(e)) needs \(count) hexadecimal digits", at: start) }
            code = code << 4 | d   // at most 8 digits: fits UInt32
        }
        guard let scalar = Unicode.Scalar(code) else {
            throw error("escape \\\(Unicode.Scalar(e))\(String(code, radix: 16, uppercase: true)) is not a Unicode scalar value", at: start)
        }
        UTF8.encode(scalar) { out.append($0) }
        i += 2 + count
    }
}
