import Foundation
import XCTest
@testable import Core
@testable import Support

/// dkc's TOML reader (Sources/Support/Config/TOMLReader.swift): every construct configs use, and every
/// error with its line and column. Expected values are written by hand from the TOML 1.0 rules.
final class TOMLReaderTests: XCTestCase {
    private func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigTable? {
        do { return try TOMLReader.parse(text, fileName: "t.toml") } catch {
            XCTFail("\(text.debugDescription): \(error)", file: file, line: line)
            return nil
        }
    }

    private func value(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigValue? {
        parse("v = " + text, file: file, line: line)?["v"]
    }

    private func table(_ entries: [(String, ConfigValue)]) -> ConfigValue {
        var t = ConfigTable()
        for (k, v) in entries { t[k] = v }
        return .table(t)
    }

    /// `text` must fail with a parse error at `line`, `column`, whose message contains `containing`.
    private func assertError(_ text: String, line: Int, column: Int, _ containing: String,
                             file: StaticString = #filePath, sourceLine: UInt = #line) {
        XCTAssertThrowsError(try TOMLReader.parse(text, fileName: "t.toml"), text.debugDescription, file: file, line: sourceLine) { e in
            guard case let ConfigError.parse(f, l, c, message) = e else {
                return XCTFail("\(text.debugDescription): \(e)", file: file, line: sourceLine)
            }
            XCTAssertEqual(f, "t.toml", file: file, line: sourceLine)
            XCTAssertEqual(l, line, "\(text.debugDescription): \(message)", file: file, line: sourceLine)
            XCTAssertEqual(c, column, "\(text.debugDescription): \(message)", file: file, line: sourceLine)
            XCTAssertTrue(message.contains(containing), "\(text.debugDescription): \(message)", file: file, line: sourceLine)
        }
    }

    // MARK: Structure

    func testCommentsKeysAndTables() throws {
        let text = """
        # a comment line
        seed = 42   # trailing comment
        "quoted key" = 1
        'literal key' = 2
        "" = 3
        a.b . c = 4
        x-y_Z9 = 5

        [section]
        k = "v"
        [ outer . "in ner" ]
        deep = true
        """
        let t = try XCTUnwrap(parse(text))
        XCTAssertEqual(t.keys, ["seed", "quoted key", "literal key", "", "a", "x-y_Z9", "section", "outer"])
        XCTAssertEqual(t["seed"], .int(42))
        XCTAssertEqual(t["quoted key"], .int(1))
        XCTAssertEqual(t["literal key"], .int(2))
        XCTAssertEqual(t[""], .int(3))
        XCTAssertEqual(t["a"], table([("b", table([("c", .int(4))]))]))
        XCTAssertEqual(t["x-y_Z9"], .int(5))
        XCTAssertEqual(t["section"], table([("k", .string("v"))]))
        XCTAssertEqual(t["outer"], table([("in ner", table([("deep", .bool(true))]))]))
    }

    func testKeyOrderIsKeptAndCRLFLineEndsRead() throws {
        let t = try XCTUnwrap(parse("z = 1\r\ny = 2\r\n[b]\r\nq = 3 # c\r\n[a]\r\n"))
        XCTAssertEqual(t.keys, ["z", "y", "b", "a"])
        XCTAssertEqual(t["b"], table([("q", .int(3))]))
        XCTAssertEqual(t["a"], table([]))
        XCTAssertEqual(try XCTUnwrap(parse("")).keys, [])
        XCTAssertEqual(try XCTUnwrap(parse("\u{FEFF}k = 1")).keys, ["k"])
    }

    func testImplicitTablesAndSubTables() throws {
        // [a] may be defined after [a.b] created it; dotted tables may get sub-tables by header.
        let t = try XCTUnwrap(parse("[a.b]\nx = 1\n[a]\ny = 2\n[f]\napple.color = \"red\"\n[f.apple.texture]\nsmooth = true\n"))
        XCTAssertEqual(t["a"], table([("b", table([("x", .int(1))])), ("y", .int(2))]))
        XCTAssertEqual(t["f"], table([("apple", table([("color", .string("red")),
                                                        ("texture", table([("smooth", .bool(true))]))]))]))
    }

    // MARK: Strings

    func testBasicStringEscapes() throws {
        XCTAssertEqual(value(#""a\bb\tc\nd\fe\rf\"g\\h""#), .string("a\u{08}b\tc\nd\u{0C}e\rf\"g\\h"))
        XCTAssertEqual(value(#""\u00e9\u03B1 \U0001F600""#), .string("éα 😀"))
        XCTAssertEqual(value("\"tab\there é\""), .string("tab\there é"))
        XCTAssertEqual(value("\"\""), .string(""))
    }

    func testLiteralAndMultiLineStrings() throws {
        XCTAssertEqual(value(#"'C:\path\n'"#), .string(#"C:\path\n"#))
        XCTAssertEqual(value("''"), .string(""))
        XCTAssertEqual(value("\"\"\"\nline 1\nline \\\"2\\\"\"\"\""), .string("line 1\nline \"2\""))
        XCTAssertEqual(value("\"\"\"one \\\n    two \\  \r\n\n  three\"\"\""), .string("one two three"))
        XCTAssertEqual(value("\"\"\"a \"quote\" \"\"here\"\"\"\"\""), .string("a \"quote\" \"\"here\"\""))
        XCTAssertEqual(value("'''\nraw \\n 'x' ''y'''''"), .string("raw \\n 'x' ''y''"))
        XCTAssertEqual(value("\"\"\"crlf\r\nline\"\"\""), .string("crlf\nline"))
    }

    // MARK: Numbers and booleans

    func testIntegers() throws {
        XCTAssertEqual(value("0"), .int(0))
        XCTAssertEqual(value("+17"), .int(17))
        XCTAssertEqual(value("-0"), .int(0))
        XCTAssertEqual(value("-42"), .int(-42))
        XCTAssertEqual(value("1_000_000"), .int(1_000_000))
        XCTAssertEqual(value("0xDEAD_beef"), .int(0xDEADBEEF))
        XCTAssertEqual(value("0o755"), .int(0o755))
        XCTAssertEqual(value("0b1101_0110"), .int(0b11010110))
        XCTAssertEqual(value("9223372036854775807"), .int(Int.max))
        XCTAssertEqual(value("-9223372036854775808"), .int(Int.min))
        XCTAssertEqual(value("0x7FFFFFFFFFFFFFFF"), .int(Int.max))
    }

    func testFloatsAndBooleans() throws {
        XCTAssertEqual(value("0.4"), .double(0.4))
        XCTAssertEqual(value("-3.5"), .double(-3.5))
        XCTAssertEqual(value("+1.0"), .double(1.0))
        XCTAssertEqual(value("5e-4"), .double(0.0005))
        XCTAssertEqual(value("1E+2"), .double(100))
        XCTAssertEqual(value("6.626e-34"), .double(6.626e-34))
        XCTAssertEqual(value("1_000.000_1"), .double(1000.0001))
        XCTAssertEqual(value("1e0_1"), .double(10))
        XCTAssertEqual(value("-0.0"), .double(-0.0))
        XCTAssertEqual(value("inf"), .double(.infinity))
        XCTAssertEqual(value("+inf"), .double(.infinity))
        XCTAssertEqual(value("-inf"), .double(-.infinity))
        for nan in ["nan", "+nan", "-nan"] {
            guard case .double(let d)? = value(nan) else { XCTFail(nan); continue }
            XCTAssertTrue(d.isNaN, nan)
        }
        XCTAssertEqual(value("true"), .bool(true))
        XCTAssertEqual(value("false"), .bool(false))
    }

    // MARK: Arrays and inline tables

    func testArrays() throws {
        XCTAssertEqual(value("[]"), .array([]))
        XCTAssertEqual(value("[1, 2.5, \"x\", true]"), .array([.int(1), .double(2.5), .string("x"), .bool(true)]))
        XCTAssertEqual(value("[\n  \"city\",  # first\n  # a whole comment line\n  \"company\",\n]"),
                       .array([.string("city"), .string("company")]))
        XCTAssertEqual(value("[[1, 1], [2, 5], []]"), .array([.array([.int(1), .int(1)]), .array([.int(2), .int(5)]), .array([])]))
        XCTAssertEqual(value("[{ a = 1 }, {}]"), .array([table([("a", .int(1))]), table([])]))
    }

    func testInlineTables() throws {
        XCTAssertEqual(value("{}"), table([]))
        XCTAssertEqual(value("{ low = [1, 1], medium = [2, 5], high = [6, 1000000] }"),
                       table([("low", .array([.int(1), .int(1)])), ("medium", .array([.int(2), .int(5)])),
                              ("high", .array([.int(6), .int(1_000_000)]))]))
        XCTAssertEqual(value("{ a.b = 1, a.c = 'x', \"q k\" = { n = -1 } }"),
                       table([("a", table([("b", .int(1)), ("c", .string("x"))])), ("q k", table([("n", .int(-1))]))]))
    }

    func testSingleValues() throws {
        XCTAssertEqual(try TOMLReader.value("[\"city\", \"company\"]  # c"), .array([.string("city"), .string("company")]))
        XCTAssertEqual(try TOMLReader.value("5e-4"), .double(5e-4))
        XCTAssertThrowsError(try TOMLReader.value("1 2"))
        XCTAssertThrowsError(try TOMLReader.value("1\nw = 2"))
        XCTAssertThrowsError(try TOMLReader.value("gpt2-medium"))
    }

    // MARK: Errors, with line and column

    func testSyntaxErrors() {
        assertError("seed = 1\nn_entities = = 3\n", line: 2, column: 14, "expected a value")
        assertError("a = 1\nb 2\n", line: 2, column: 3, "expected '='")
        assertError("= 1\n", line: 1, column: 1, "expected a key")
        assertError("a = 1 2\n", line: 1, column: 7, "end of the line")
        assertError("a = gpt2\n", line: 1, column: 5, "strings need quotes")
        assertError("[a\nx = 1\n", line: 1, column: 3, "expected ']'")
        assertError("[]\n", line: 1, column: 2, "expected a key")
        assertError("[a] b = 1\n", line: 1, column: 5, "end of the line")
        assertError("a = \"\"\"x\"\"\"\n\"\"\"k\"\"\" = 1\n", line: 2, column: 1, "multi-line string")
        assertError("# bad \u{01} comment\n", line: 1, column: 7, "control character")
        assertError("a = 1\r\rb = 2\n", line: 1, column: 6, "end of the line")
    }

    func testStringErrors() {
        assertError("a = \"open\n", line: 1, column: 10, "cannot span lines")
        assertError("a = 'open\nb = 1", line: 1, column: 10, "cannot span lines")
        assertError("a = \"open", line: 1, column: 5, "not closed")
        assertError("a = \"\"\"open\n\n", line: 1, column: 5, "not closed")
        assertError("a = '''open''''''\n", line: 1, column: 12, "too many quotes")
        assertError("a = \"bad \\q\"\n", line: 1, column: 10, "invalid escape")
        assertError("a = \"\\u12\"\n", line: 1, column: 6, "hexadecimal digits")
        assertError("a = \"\\uD800\"\n", line: 1, column: 6, "not a Unicode scalar")
        assertError("a = \"\\U00110000\"\n", line: 1, column: 6, "not a Unicode scalar")
        assertError("a = \"x\u{7F}\"\n", line: 1, column: 7, "control character")
        assertError("a = 'x\u{00}'\n", line: 1, column: 7, "control character")
        assertError("a = \"\"\"x\u{1B}\"\"\"\n", line: 1, column: 9, "control character")
    }

    func testNumberErrors() {
        assertError("a = 9223372036854775808\n", line: 1, column: 5, "64-bit integer")
        assertError("a = -9223372036854775809\n", line: 1, column: 5, "64-bit integer")
        assertError("a = 0x1_0000_0000_0000_0000\n", line: 1, column: 5, "64-bit integer")
        assertError("a = 012\n", line: 1, column: 5, "leading zeros")
        assertError("a = 1__0\n", line: 1, column: 5, "'_'")
        assertError("a = _1\n", line: 1, column: 5, "'_'")
        assertError("a = 1_\n", line: 1, column: 5, "'_'")
        assertError("a = -0x10\n", line: 1, column: 5, "take no sign")
        assertError("a = 0b102\n", line: 1, column: 5, "base-2")
        assertError("a = 1.\n", line: 1, column: 5, "digits on both sides")
        assertError("a = .5\n", line: 1, column: 5, "not a valid number")
        assertError("a = 1e\n", line: 1, column: 5, "exponent")
        assertError("a = 1e400\n", line: 1, column: 5, "64-bit float")
        assertError("a = 1.5.2\n", line: 1, column: 5, "unexpected '.'")
        assertError("a = ++1\n", line: 1, column: 5, "not a valid number")
        assertError("a = True\n", line: 1, column: 5, "strings need quotes")
    }

    func testArrayAndInlineTableErrors() {
        assertError("a = [1, 2\nb = 3\n", line: 2, column: 1, "expected ',' or ']'")
        assertError("a = [1,\n2,\n", line: 1, column: 5, "not closed")
        assertError("a = [,]\n", line: 1, column: 6, "expected a value")
        assertError("a = [1,,2]\n", line: 1, column: 8, "expected a value")
        assertError("a = { x = 1,\ny = 2 }\n", line: 1, column: 13, "expected a key")
        assertError("a = { x = 1\n}\n", line: 1, column: 12, "close with '}'")
        assertError("a = { x = 1, }\n", line: 1, column: 14, "expected a key")
        assertError("a = { x = 1 y = 2 }\n", line: 1, column: 13, "expected ',' or '}'")
        assertError("a = { x = 1, x = 2 }\n", line: 1, column: 14, "duplicate key 'x'")
    }

    func testDuplicatesAndRedefinitions() {
        assertError("a = 1\na = 2\n", line: 2, column: 1, "duplicate key 'a'")
        assertError("\"a\" = 1\na = 2\n", line: 2, column: 1, "duplicate key")
        assertError("[t]\nx = 1\n[t]\n", line: 3, column: 2, "defined twice")
        assertError("[t.u]\n[t]\n[t]\n", line: 3, column: 2, "defined twice")
        assertError("a = 1\n[a]\n", line: 2, column: 2, "already set to a value")
        assertError("a = 1\n[a.b]\n", line: 2, column: 2, "already set to a value")
        assertError("a = 1\na.b = 2\n", line: 2, column: 1, "already set to a value")
        assertError("[f]\napple.color = 1\n[f.apple]\n", line: 3, column: 4, "dotted keys")
        assertError("[a.b]\nx = 1\n[a]\nb.y = 2\n", line: 4, column: 1, "its own header")
        assertError("a = { x = 1 }\na.y = 2\n", line: 2, column: 1, "already set to a value")
        assertError("a = { x = 1 }\n[a.z]\n", line: 2, column: 2, "already set to a value")
        assertError("a.b = 1\na.b.c = 2\n", line: 2, column: 3, "already set to a value")
    }

    func testUnsupportedConstructsAreNamed() {
        assertError("x = 1\n[[runs]]\nn = 2\n", line: 2, column: 1, "arrays of tables")
        assertError("d = 1979-05-27\n", line: 1, column: 5, "dates and times")
        assertError("d = 1979-05-27T07:32:00Z\n", line: 1, column: 5, "dates and times")
        assertError("d = 1979-05-27 07:32:00\n", line: 1, column: 5, "dates and times")
        assertError("t = 07:32:00\n", line: 1, column: 5, "dates and times")
    }

    func testColumnsCountCharactersNotBytes() {
        assertError("\"é\" = 1\nk = \"ü\" x\n", line: 2, column: 9, "end of the line")
        assertError("\"αβ\" = 1 2", line: 1, column: 10, "end of the line")
    }

    /// Nesting is capped, so neither deep arrays nor long dotted keys can exhaust the stack; at the cap they read.
    func testNestingDepthIsCapped() throws {
        let ok = String(repeating: "[", count: TOMLReader.maxDepth - 1) + String(repeating: "]", count: TOMLReader.maxDepth - 1)
        XCTAssertNotNil(value(ok))
        let deep = String(repeating: "[", count: 100_000)
        assertError("v = " + deep, line: 1, column: 5 + TOMLReader.maxDepth, "nest deeper")
        let braces = String(repeating: "{a=", count: 10_000)
        assertError("v = " + braces, line: 1, column: 5 + 3 * TOMLReader.maxDepth, "nest deeper")
        let longKey = Array(repeating: "k", count: 10_000).joined(separator: ".")
        assertError(longKey + " = 1\n", line: 1, column: 1 + 2 * TOMLReader.maxDepth, "dotted parts")
        assertError("[" + longKey + "]\n", line: 1, column: 2 + 2 * TOMLReader.maxDepth, "dotted parts")
        var header = ""
        for n in 0..<40 { header += "[" + Array(repeating: "k", count: n + 1).joined(separator: ".") + "]\n" }
        XCTAssertNotNil(parse(header))
        assertError("[" + Array(repeating: "k", count: 40).joined(separator: ".") + "]\n"
                    + Array(repeating: "j", count: 30).joined(separator: ".") + " = 1\n",
                    line: 2, column: 49, "tables nest deeper")
    }

    /// Every config shipped in configs/ reads, and the data config's keys come out as written.
    func testShippedConfigsRead() throws {
        let root = Paths.sourceRoot.appendingPathComponent("configs")
        var count = 0
        for kind in ["data", "train", "sweep"] {
            let folder = root.appendingPathComponent(kind)
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".toml") {
                let url = folder.appendingPathComponent(name)
                let text = try String(contentsOf: url, encoding: .utf8)
                XCTAssertNoThrow(try TOMLReader.parse(text, fileName: url.path), url.path)
                count += 1
            }
        }
        XCTAssertGreaterThanOrEqual(count, 13)
        let tiny = try TOMLReader.parse(String(contentsOf: root.appendingPathComponent("data/tiny.toml"), encoding: .utf8), fileName: "tiny")
        XCTAssertEqual(tiny.keys, ["seed", "n_entities", "new_fraction", "frequency_rate", "validation_size", "test_per_cell",
                                   "circuit_n", "circuit_seed", "test_set", "frequency_buckets", "tasks", "model_name",
                                   "pools", "templates", "forget"])
        XCTAssertEqual(tiny["new_fraction"], .double(0.8))
        XCTAssertEqual(tiny["frequency_buckets"], table([("low", .array([.int(1), .int(1)])), ("medium", .array([.int(2), .int(5)])),
                                                         ("high", .array([.int(6), .int(1_000_000)]))]))
        XCTAssertEqual(tiny["tasks"], .array([.string("city"), .string("company"), .string("major")]))
        XCTAssertEqual(tiny["forget"], table([("n_new", .int(400)), ("seed", .int(20)), ("include_cpt_new", .bool(true)),
                                              ("conflict", .bool(false)), ("validation_size", .int(50))]))
    }
}
