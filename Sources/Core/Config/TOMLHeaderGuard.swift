/// A check of TOML text before it reaches TOMLKit, for the one input its bundled parser (toml++ 3.4) does not
/// reject cleanly: a table header whose `[` or `[[` is followed by a character that cannot start a key
/// (`[[[`, `[+`, `[` at the end of a line, …) fails an assertion inside the library and ends the process
/// (and without assertions is undefined behaviour). Found by ParserFuzzTests; docs/input-validation.md.
///
/// Every line whose first non-blank character is `[` is checked as toml++ reads a header: `[`, blanks, an
/// optional second `[` right after the first, blanks, then a bare-key character (A–Z a–z 0–9 _ -), a quote,
/// `]` or the end of the text. `[ [` (blank between the brackets) is left to toml++, which rejects it. The
/// check also sees lines inside multi-line arrays; there it refuses only elements starting `[[[`, `[{`, `[+`
/// or the like, which dkc's configs never contain.
enum TOMLHeaderGuard {
    /// The 1-based line and column of the first header toml++ cannot parse safely, or nil.
    static func firstUnsafeHeader(in text: String) -> (line: Int, column: Int, found: String)? {
        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, raw) in lines.enumerated() {
            let line = index + 1
            let s = Array(raw)
            var i = 0
            func skipBlanks() -> Bool {
                let start = i
                while i < s.count, s[i] == " " || s[i] == "\t" { i += 1 }
                return i > start
            }
            _ = skipBlanks()
            guard i < s.count, s[i] == "[" else { continue }
            i += 1
            let blank = skipBlanks()
            if i < s.count, s[i] == "[" {
                if blank { continue }   // "[ [": toml++ reports an error itself
                i += 1
                _ = skipBlanks()
            }
            // The end of the text is reported by toml++; the end of a line is not (a newline cannot start a key).
            if i == s.count && line == lines.count { continue }
            guard i < s.count else { return (line, i + 1, "the end of the line") }
            let c = s[i]
            let isKeyStart = (c >= "A" && c <= "Z") || (c >= "a" && c <= "z") || (c >= "0" && c <= "9")
                || c == "_" || c == "-" || c == "\"" || c == "'" || c == "]"
            if !isKeyStart { return (line, i + 1, "'\(c.escaped(asASCII: true))'") }
        }
        return nil
    }

    /// Throws `ConfigError.parse` naming `fileName`, line and column when the text holds such a header.
    static func check(_ text: String, fileName: String) throws {
        if let bad = firstUnsafeHeader(in: text) {
            throw ConfigError.parse(file: fileName, line: bad.line, column: bad.column,
                                    message: "a table header must start with a key name or a quoted key, found \(bad.found)")
        }
    }
}
