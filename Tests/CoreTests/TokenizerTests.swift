import Foundation
import XCTest
@testable import Core
@testable import Models

/// The GPT-2 tokenizer against the reference's ids (fixtures/tokenizer), plus unit checks of the
/// pre-tokeniser, the BPE loop and the file readers on tiny hand-made vocabularies.
final class TokenizerTests: XCTestCase {
    // MARK: Fixtures

    static var fixtureDir: URL { Paths.fixtures.appendingPathComponent("tokenizer") }

    func requireFixtures() throws -> URL {
        let dir = Self.fixtureDir
        for f in ["cases.jsonl", "vocab.json", "merges.txt", "special_tokens.json"] {
            if !FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path) {
                throw missingFixtures(dir.appendingPathComponent(f).path)
            }
        }
        return dir
    }

    struct Case {
        let text: String
        let ids: [Int]
        let category: String
    }

    func loadCases(_ dir: URL) throws -> [Case] {
        let data = try Data(contentsOf: dir.appendingPathComponent("cases.jsonl"))
        var cases: [Case] = []
        for (n, line) in data.split(separator: 0x0A).enumerated() where !line.isEmpty {
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], "cases.jsonl line \(n + 1)")
            cases.append(Case(text: try XCTUnwrap(obj["text"] as? String, "cases.jsonl line \(n + 1): text"),
                              ids: try XCTUnwrap(obj["ids"] as? [Int], "cases.jsonl line \(n + 1): ids"),
                              category: try XCTUnwrap(obj["category"] as? String, "cases.jsonl line \(n + 1): category")))
        }
        return cases
    }

    /// Text with its invisible characters spelled out, for failure messages.
    func show(_ s: String) -> String { s.debugDescription }

    /// Every case gives the reference's ids and decodes back to exactly its text (byte for byte).
    func testFixtureCasesMatchReference() throws {
        let dir = try requireFixtures()
        let cases = try loadCases(dir)
        XCTAssertFalse(cases.isEmpty, "cases.jsonl holds no cases")
        let tok = try GPT2Tokenizer(directory: dir)

        let start = Date()
        let encoded = cases.map { tok.encode($0.text) }  // cold cache: every piece goes through BPE
        let seconds = Date().timeIntervalSince(start)
        print("TokenizerTests: encoded \(cases.count) cases in \(String(format: "%.1f", seconds * 1000)) ms (cold cache)")

        var failures = 0
        for (c, ids) in zip(cases, encoded) {
            if ids != c.ids {
                failures += 1
                XCTFail("text \(show(c.text)) [category \(c.category)]: expected \(c.ids), got \(ids)")
            }
            let back = tok.decodeBytes(c.ids)
            if back != Array(c.text.utf8) {
                XCTFail("text \(show(c.text)) [category \(c.category)]: decoding \(c.ids) gave \(show(String(decoding: back, as: UTF8.self)))")
            }
            XCTAssertTrue(tok.decode(c.ids).unicodeScalars.elementsEqual(c.text.unicodeScalars))
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(cases.count) cases differ from the reference")
        XCTAssertLessThan(seconds, 1.0, "encoding \(cases.count) cases took \(seconds) s")
    }

    /// The facts of special_tokens.json.
    func testSpecialTokens() throws {
        let dir = try requireFixtures()
        let tok = try GPT2Tokenizer(directory: dir)
        let data = try Data(contentsOf: dir.appendingPathComponent("special_tokens.json"))
        let facts = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(tok.eosTokenId, facts["eos_token_id"] as? Int)
        XCTAssertEqual(tok.bosTokenId, facts["bos_token_id"] as? Int)
        XCTAssertEqual(tok.padTokenId, tok.eosTokenId)
        XCTAssertEqual(tok.vocabSize, facts["vocab_size"] as? Int)
        XCTAssertEqual(tok.encode(GPT2Tokenizer.endOfText), facts["endoftext_literal_ids_add_special_tokens_false"] as? [Int])
        XCTAssertEqual(tok.encodePlain(GPT2Tokenizer.endOfText), facts["endoftext_as_plain_text_ids"] as? [Int])
        XCTAssertEqual(tok.encode("Hello"), facts["hello_default_call_ids"] as? [Int])
        // The values the brief states, so a fixture edit cannot hide a change.
        XCTAssertEqual(tok.encode("<|endoftext|>"), [50256])
        XCTAssertEqual(tok.encodePlain("<|endoftext|>"), [27, 91, 437, 1659, 5239, 91, 29])
        XCTAssertEqual(tok.encode("Hello"), [15496])
        XCTAssertEqual(tok.decode([50256]), "<|endoftext|>")
        // The TransformerLens prompt: BOS first, then the text's own ids.
        let example = try XCTUnwrap(facts["transformer_lens_prompt_example"] as? [String: Any])
        let text = try XCTUnwrap(example["text"] as? String)
        XCTAssertEqual([tok.bosTokenId] + tok.encode(text), example["ids"] as? [Int])
    }

    /// tokenizer.json (merges as "a b" strings, and as pairs) reads to the same tokenizer.
    func testTokenizerJSONFormAgrees() throws {
        let dir = try requireFixtures()
        let reference = try GPT2Tokenizer(directory: dir)
        let vocab = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("vocab.json"))) as? [String: Int])
        let mergeLines = try String(contentsOf: dir.appendingPathComponent("merges.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#version") }
        let texts = try loadCases(dir).map(\.text) + ["a<|endoftext|>b", "  spaces\tand\ntabs", "Zürich 😀👍🏽"]

        for asPairs in [false, true] {
            let merges: [Any] = asPairs ? mergeLines.map { $0.split(separator: " ").map(String.init) } : mergeLines
            let json: [String: Any] = [
                "version": "1.0",
                "added_tokens": [["id": 50256, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                                  "rstrip": false, "normalized": true, "special": true]],
                "normalizer": NSNull(),
                "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
                "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": "",
                          "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges],
            ]
            let tmp = try temporaryFolder()
            try JSONSerialization.data(withJSONObject: json).write(to: tmp.appendingPathComponent("tokenizer.json"))
            let tok = try GPT2Tokenizer(directory: tmp)
            XCTAssertEqual(tok.vocabFile.lastPathComponent, "tokenizer.json")
            XCTAssertEqual(tok.vocabSize, reference.vocabSize)
            XCTAssertEqual(tok.eosTokenId, 50256)
            for t in texts {
                XCTAssertEqual(tok.encode(t), reference.encode(t), "tokenizer.json (merges as \(asPairs ? "pairs" : "strings")): text \(show(t))")
            }
        }
    }

    /// Encoding from many threads at once (a shared cache) gives the same ids as one thread.
    func testConcurrentEncodingAgrees() throws {
        let dir = try requireFixtures()
        let texts = try loadCases(dir).map(\.text)
        let serial = try GPT2Tokenizer(directory: dir)
        let expected = texts.map { serial.encode($0) }
        let shared = try GPT2Tokenizer(directory: dir)
        let lock = NSLock()
        var mismatches: [String] = []
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            // Each worker walks the texts from a different start, so cache fills race.
            for k in 0..<texts.count {
                let i = (k + worker * texts.count / 8) % texts.count
                if shared.encode(texts[i]) != expected[i] {
                    lock.lock(); mismatches.append(texts[i]); lock.unlock()
                }
            }
        }
        XCTAssertEqual(mismatches, [], "texts encoded differently under concurrency")
    }

    // MARK: Pre-tokeniser

    /// Pieces worked out by hand from the pattern's semantics.
    func testPreTokenizerPieces() {
        let expected: [(String, [String])] = [
            ("", []),
            ("Hello world", ["Hello", " world"]),
            ("a   b", ["a", "  ", " b"]),
            ("a   ", ["a", "   "]),
            ("\t\tb", ["\t", "\t", "b"]),
            (" \tb", [" ", "\t", "b"]),
            ("\t b", ["\t", " b"]),
            ("x\n\n\ny", ["x", "\n\n", "\n", "y"]),
            ("it's", ["it", "'s"]),
            ("IT'S", ["IT", "'", "S"]),
            (" 's", [" '", "s"]),
            ("She'd've", ["She", "'d", "'ve"]),
            ("!!'s", ["!!'", "s"]),
            ("'''ll", ["'''", "ll"]),
            ("abc123def", ["abc", "123", "def"]),
            (" 42 ", [" 42", " "]),
            ("½ ¼", ["½", " ¼"]),  // No: other number
            ("e\u{301}x", ["e", "\u{301}", "x"]),  // a combining mark is not a letter
            ("👨\u{200D}👩", ["👨\u{200D}👩"]),  // emoji and ZWJ are all "other"
            ("a\u{00A0}b", ["a", "\u{00A0}", "b"]),  // NBSP is whitespace but not the optional space
            ("zero\u{200B}width", ["zero", "\u{200B}", "width"]),  // U+200B is a format control, not whitespace
            ("a\u{1C}b", ["a", "\u{1C}", "b"]),  // U+001C is not White_Space
            ("日本語のテキスト", ["日本語のテキスト"]),
            ("Ⅻ", ["Ⅻ"]),  // Nl
        ]
        for (text, pieces) in expected {
            XCTAssertEqual(GPT2PreTokenizer.pieces(of: text), pieces, "pieces of \(show(text))")
        }
    }

    // MARK: Tiny vocabularies

    /// A byte-level vocabulary of the 256 bytes (ids 0…255 in byte order), then `extra` tokens, then
    /// `<|endoftext|>`; written to a temporary folder with `merges`.
    func tinyTokenizerFolder(extra: [String], merges: [String]) throws -> URL {
        var entries: [String] = []
        for b in 0..<256 { entries.append(jsonString(ByteLevel.token(ofBytes: [UInt8(b)])) + ": \(b)") }
        for (k, t) in extra.enumerated() { entries.append(jsonString(t) + ": \(256 + k)") }
        entries.append("\"<|endoftext|>\": \(256 + extra.count)")
        let dir = try temporaryFolder()
        try ("{" + entries.joined(separator: ",\n") + "}").write(to: dir.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        try (["#version: 0.2"] + merges).joined(separator: "\n").appending("\n")
            .write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        return dir
    }

    func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out += u.value < 0x20 || u.value > 0x7E ? String(format: "\\u%04x", u.value) : String(u)
            }
        }
        return out + "\""
    }

    /// Merges apply by rank, every occurrence left to right without overlap.
    func testBPEMergeOrder() throws {
        // ids: aa 256, bc 257, abc 258, ab 259
        let dir = try tinyTokenizerFolder(extra: ["aa", "bc", "abc", "ab"], merges: ["a a", "b c", "a bc", "a b"])
        let tok = try GPT2Tokenizer(directory: dir)
        XCTAssertEqual(tok.vocabSize, 261)
        XCTAssertEqual(tok.eosTokenId, 260)
        XCTAssertEqual(tok.encode("aaa"), [256, 97])                 // "aa" + "a", not "a" + "aa"
        XCTAssertEqual(tok.encode("aaaa"), [256, 256])
        XCTAssertEqual(tok.encode("abc"), [258])                     // b c (rank 1) before a b (rank 3)
        XCTAssertEqual(tok.encode("ab"), [259])
        XCTAssertEqual(tok.encode("abcab"), [258, 259])
        XCTAssertEqual(tok.encode("a b"), [97, 32, 98])              // " b" has no merge: bytes stay
        XCTAssertEqual(tok.encode("x<|endoftext|>y"), [120, 260, 121])
        XCTAssertEqual(tok.decode([258, 32, 256]), "abc aa")
        XCTAssertEqual(tok.decodeBytes([0xE6, 0x97]), [0xE6, 0x97])
        XCTAssertEqual(tok.decode([0xE6, 0x97]), "\u{FFFD}")      // a cut through a character
        XCTAssertEqual(tok.decode([99999, 97]), "a")                 // unknown ids skipped
        XCTAssertNil(tok.bytes(ofToken: 99999))
        let text = "Crème 😀 e\u{301}\u{00A0}\r\n"
        XCTAssertEqual(tok.decodeBytes(tok.encode(text)), Array(text.utf8))
    }

    // MARK: Malformed files

    func assertTokenizerError(_ dir: URL, file: String, line: Int? = nil, mentions: String? = nil,
                              _ message: String, sourceLine: UInt = #line) {
        do {
            _ = try GPT2Tokenizer(directory: dir)
            XCTFail("\(message): no error", line: sourceLine)
        } catch let e as TokenizerError {
            XCTAssertEqual(e.file.lastPathComponent, file, "\(message): \(e)", line: sourceLine)
            XCTAssertTrue(e.description.contains(e.file.path), "\(message): \(e)", line: sourceLine)
            if let line {
                XCTAssertEqual(e.line, line, "\(message): \(e)", line: sourceLine)
                XCTAssertTrue(e.description.contains("\(file):\(line)"), "\(message): \(e)", line: sourceLine)
            }
            if let mentions { XCTAssertTrue(e.description.contains(mentions), "\(message): \(e)", line: sourceLine) }
        } catch {
            XCTFail("\(message): unexpected error \(error)", line: sourceLine)
        }
    }

    func testMalformedFilesNameTheFile() throws {
        let fm = FileManager.default
        let good = try tinyTokenizerFolder(extra: ["ab"], merges: ["a b"])
        let mergesText = try String(contentsOf: good.appendingPathComponent("merges.txt"), encoding: .utf8)

        let missing = good.appendingPathComponent("does-not-exist")
        assertTokenizerError(missing, file: "does-not-exist", "missing folder")

        let empty = try temporaryFolder()
        assertTokenizerError(empty, file: empty.lastPathComponent, mentions: "vocab.json", "empty folder")

        let noMerges = try tinyTokenizerFolder(extra: [], merges: [])
        try fm.removeItem(at: noMerges.appendingPathComponent("merges.txt"))
        assertTokenizerError(noMerges, file: "merges.txt", "vocab.json without merges.txt")

        let badMerge = try tinyTokenizerFolder(extra: ["ab"], merges: ["a b", "abc"])
        assertTokenizerError(badMerge, file: "merges.txt", line: 3, mentions: "abc", "merge line with one token")

        let unknownMerge = try tinyTokenizerFolder(extra: ["ab"], merges: ["a b", "ab c"])
        assertTokenizerError(unknownMerge, file: "merges.txt", line: 3, mentions: "abc", "merged token not in vocab")

        let badVocab = try temporaryFolder()
        try "{\"a\": 0,\n\"b\" 1}".write(to: badVocab.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        try mergesText.write(to: badVocab.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        assertTokenizerError(badVocab, file: "vocab.json", line: 2, "vocab.json syntax error")

        let vocabArray = try temporaryFolder()
        try "[1, 2]".write(to: vocabArray.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        try mergesText.write(to: vocabArray.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        assertTokenizerError(vocabArray, file: "vocab.json", mentions: "object", "vocab.json not an object")

        let noBytes = try temporaryFolder()
        try "{\"a\": 0, \"<|endoftext|>\": 1}".write(to: noBytes.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        try mergesText.write(to: noBytes.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        assertTokenizerError(noBytes, file: "vocab.json", mentions: "single byte", "vocabulary without the 256 bytes")

        let jsonBadMerge = try temporaryFolder()
        try """
        {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a", 7]}}
        """.write(to: jsonBadMerge.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        assertTokenizerError(jsonBadMerge, file: "tokenizer.json", mentions: "model.merges[1]", "tokenizer.json bad merge")

        let jsonTruncated = try temporaryFolder()
        try "{\"model\": {\"type\": \"BPE\",\n\"vocab\": {\"a\": 0".write(
            to: jsonTruncated.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        assertTokenizerError(jsonTruncated, file: "tokenizer.json", line: 2, "tokenizer.json truncated")

        let stripping = try temporaryFolder()
        try """
        {"added_tokens": [{"id": 0, "content": "<|endoftext|>", "lstrip": true}],
         "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}}
        """.write(to: stripping.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        assertTokenizerError(stripping, file: "tokenizer.json", mentions: "lstrip", "added token with lstrip")

        let wordPiece = try temporaryFolder()
        try "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}".write(
            to: wordPiece.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        assertTokenizerError(wordPiece, file: "tokenizer.json", mentions: "WordPiece", "not BPE")
    }

    /// Ids outside 0 ..< 2^31, ids far beyond the vocabulary's size, and a token listed twice with two ids are
    /// named errors, found before the id table is allocated.
    func testVocabularyIdsAreBoundedAndUnique() throws {
        let good = try tinyTokenizerFolder(extra: ["ab"], merges: ["a b"])
        let mergesText = try String(contentsOf: good.appendingPathComponent("merges.txt"), encoding: .utf8)
        let vocabText = try String(contentsOf: good.appendingPathComponent("vocab.json"), encoding: .utf8)
        func folder(vocab: String) throws -> URL {
            let dir = try temporaryFolder()
            try vocab.write(to: dir.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
            try mergesText.write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
            return dir
        }
        for id in [1 << 31, 1 << 40] {
            assertTokenizerError(try folder(vocab: vocabText.replacingOccurrences(of: "\"ab\": 256", with: "\"ab\": \(id)")),
                                 file: "vocab.json", mentions: "\(id)", "id \(id)")
        }
        assertTokenizerError(try folder(vocab: vocabText.replacingOccurrences(of: "\"ab\": 256", with: "\"ab\": 10000000")),
                             file: "vocab.json", mentions: "10000000", "sparse id")
        assertTokenizerError(try folder(vocab: vocabText.replacingOccurrences(of: "\"ab\": 256", with: "\"ab\": 256, \"ab\": 258")),
                             file: "vocab.json", mentions: "twice", "duplicate token")
        let json = try temporaryFolder()
        try """
        {"added_tokens": [{"id": 4294967296, "content": "<|endoftext|>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a"]}}
        """.write(to: json.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        assertTokenizerError(json, file: "tokenizer.json", mentions: "added_tokens[0]", "added token id beyond 2^31")
        XCTAssertNoThrow(try GPT2Tokenizer(directory: good))
    }

    func testLoadDefaultSaysHowToInstall() throws {
        // Only checkable when the cache is empty; otherwise it must load.
        if FileManager.default.fileExists(atPath: Paths.gpt2Tokenizer.appendingPathComponent("vocab.json").path) {
            XCTAssertEqual(try GPT2Tokenizer.loadDefault().encode("Hello"), [15496])
        } else {
            XCTAssertThrowsError(try GPT2Tokenizer.loadDefault()) { e in
                XCTAssertTrue("\(e)".contains("scripts/fetch-gpt2-tokenizer"), "\(e)")
            }
        }
    }

    // MARK: Helpers

    private var folders: [URL] = []

    func temporaryFolder() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-tokenizer-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        folders.append(u)
        return u
    }

    override func tearDown() {
        for u in folders { try? FileManager.default.removeItem(at: u) }
        folders = []
        super.tearDown()
    }
}
