import Foundation
import XCTest
@testable import Core
@testable import Models

/// Tokenizers read from tokenizer.json for the study's other families (Phi's byte-level BPE with
/// whitespace tokens, TinyLlama's ▁-normalized BPE with byte fallback) against the reference's ids
/// in fixtures/{phi,llama}/tokenizer, the resolution rule, named errors for unsupported kinds, and
/// a mutation run over the tokenizer.json parser.
final class TokenizerFamilyTests: XCTestCase {
    // MARK: Fixtures

    func familyDir(_ family: String) throws -> URL {
        let dir = Paths.fixtures.appendingPathComponent(family).appendingPathComponent("tokenizer")
        for f in ["cases.jsonl", "tokenizer.json", "special_tokens.json"]
        where !FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path) {
            throw missingFixtures(dir.appendingPathComponent(f).path)
        }
        return dir
    }

    struct Case {
        let text: String
        let ids: [Int]
        let idsWithBOS: [Int]
        let category: String
    }

    func loadCases(_ dir: URL) throws -> [Case] {
        let data = try Data(contentsOf: dir.appendingPathComponent("cases.jsonl"))
        var cases: [Case] = []
        for (n, line) in data.split(separator: 0x0A).enumerated() where !line.isEmpty {
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], "cases.jsonl line \(n + 1)")
            cases.append(Case(text: try XCTUnwrap(obj["text"] as? String, "line \(n + 1): text"),
                              ids: try XCTUnwrap(obj["ids"] as? [Int], "line \(n + 1): ids"),
                              idsWithBOS: try XCTUnwrap(obj["ids_transformer_lens_to_tokens"] as? [Int], "line \(n + 1): ids_transformer_lens_to_tokens"),
                              category: try XCTUnwrap(obj["category"] as? String, "line \(n + 1): category")))
        }
        return cases
    }

    func facts(_ dir: URL) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("special_tokens.json"))) as? [String: Any])
    }

    /// The reference's decoding of Llama ids, worked out from its pipeline rather than from dkc: each
    /// stretch of text between literal special tokens was normalized to "▁" + stretch with spaces as
    /// ▁; the decoder turns every ▁ into a space and strips one leading space of the whole text.
    func llamaExpectedDecode(_ text: String, specials: [String], skip: Bool) -> String {
        let t = Array(text.unicodeScalars)
        let sp = specials.map { Array($0.unicodeScalars) }.sorted { $0.count > $1.count }
        var out: [Unicode.Scalar] = []
        var stretch: [Unicode.Scalar] = []
        func flush() {
            if !stretch.isEmpty { out.append(" "); out += stretch.map { $0 == "▁" ? " " : $0 } }
            stretch = []
        }
        var i = 0
        outer: while i < t.count {
            for s in sp where i + s.count <= t.count && Array(t[i..<(i + s.count)]) == s {
                flush()
                if !skip { out += s }
                i += s.count
                continue outer
            }
            stretch.append(t[i])
            i += 1
        }
        flush()
        if out.first == " " { out.removeFirst() }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: out)
        return String(v)
    }

    // MARK: Llama

    func testLlamaCasesMatchReference() throws {
        let dir = try familyDir("llama")
        let cases = try loadCases(dir)
        XCTAssertEqual(cases.count, 773)
        let tok = try XCTUnwrap(try TokenizerLoader.load(directory: dir) as? SentencePieceBPETokenizer)
        let specials = ["<s>", "</s>", "<unk>"]
        var failures = 0
        let start = Date()
        for c in cases {
            let ids = tok.encode(c.text)
            if ids != c.ids {
                failures += 1
                XCTFail("\(c.text.debugDescription) [\(c.category)]: expected \(c.ids), got \(ids)")
            }
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: true), c.idsWithBOS, "\(c.text.debugDescription) with <s>")
            XCTAssertEqual([tok.bosTokenId] + c.ids, c.idsWithBOS, "\(c.text.debugDescription): TransformerLens prompt")
            XCTAssertTrue(tok.decode(c.ids, skipSpecialTokens: false, cleanUpSpaces: false)
                .unicodeScalars.elementsEqual(llamaExpectedDecode(c.text, specials: specials, skip: false).unicodeScalars),
                          "decode of \(c.text.debugDescription): \(tok.decode(c.ids, skipSpecialTokens: false, cleanUpSpaces: false).debugDescription)")
            XCTAssertTrue(tok.decode(c.idsWithBOS, skipSpecialTokens: true, cleanUpSpaces: false)
                .unicodeScalars.elementsEqual(llamaExpectedDecode(c.text, specials: specials, skip: true).unicodeScalars),
                          "decode (special tokens skipped) of \(c.text.debugDescription)")
        }
        print("TokenizerFamilyTests: Llama \(cases.count) cases in \(String(format: "%.1f", Date().timeIntervalSince(start) * 1000)) ms")
        XCTAssertEqual(failures, 0, "\(failures) of \(cases.count) Llama cases differ from the reference")
    }

    func testLlamaSpecialTokens() throws {
        let dir = try familyDir("llama")
        let tok = try TokenizerLoader.load(directory: dir)
        let f = try facts(dir)
        XCTAssertEqual(tok.bosTokenId, f["bos_token_id"] as? Int)
        XCTAssertEqual(tok.eosTokenId, f["eos_token_id"] as? Int)
        XCTAssertEqual(tok.padTokenId, f["pad_token_id_transformer_lens"] as? Int)
        XCTAssertEqual(tok.vocabSize, f["vocab_size_tokenizer"] as? Int)
        XCTAssertFalse(tok.cleanUpTokenizationSpaces)
        XCTAssertEqual(tok.encode("Hello", addSpecialTokens: true), f["hello_default_call_ids"] as? [Int])
        XCTAssertEqual(tok.encode("", addSpecialTokens: true), f["empty_string_default_call_ids"] as? [Int])
        XCTAssertEqual(tok.encode(" ", addSpecialTokens: false), [f["space_space_token_id"] as! Int])
        let example = try XCTUnwrap(f["transformer_lens_prompt_example"] as? [String: Any])
        XCTAssertEqual(tok.encode(try XCTUnwrap(example["text"] as? String), addSpecialTokens: true), example["ids"] as? [Int])
        // The values the README states.
        XCTAssertEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId], [1, 2, 2])
        XCTAssertEqual(tok.encode("<unk><s></s>"), [0, 1, 2])
        XCTAssertEqual(tok.decode([1, 2, 0], skipSpecialTokens: false, cleanUpSpaces: false), "<s></s><unk>")
        // Byte fallback decoding: é is <0xC3><0xA9> (ids 3 + byte); a lone continuation byte is U+FFFD.
        XCTAssertEqual(tok.decode([3 + 0xC3, 3 + 0xA9], skipSpecialTokens: false, cleanUpSpaces: false), "é")
        XCTAssertEqual(tok.decode([3 + 0xA9, 3 + 0xA9], skipSpecialTokens: false, cleanUpSpaces: false), "\u{FFFD}\u{FFFD}")
    }

    // MARK: Phi

    func testPhiCasesMatchReferenceInBothForms() throws {
        let dir = try familyDir("phi")
        let cases = try loadCases(dir)
        XCTAssertEqual(cases.count, 766)
        let fromJSON = try XCTUnwrap(try TokenizerLoader.load(tokenizerJSON: dir.appendingPathComponent("tokenizer.json")) as? GPT2Tokenizer)
        let fromFiles = try GPT2Tokenizer(directory: dir)  // vocab.json + merges.txt + added_tokens.json
        XCTAssertEqual(fromJSON.vocabFile.lastPathComponent, "tokenizer.json")
        XCTAssertEqual(fromFiles.vocabFile.lastPathComponent, "vocab.json")
        for (name, tok) in [("tokenizer.json", fromJSON), ("vocab.json + merges.txt", fromFiles)] {
            var failures = 0
            for c in cases {
                let ids = tok.encode(c.text)
                if ids != c.ids {
                    failures += 1
                    XCTFail("\(name): \(c.text.debugDescription) [\(c.category)]: expected \(c.ids), got \(ids)")
                }
                XCTAssertEqual(tok.encode(c.text, addSpecialTokens: true), c.ids, "\(name): the default call adds nothing")
                XCTAssertEqual([tok.bosTokenId] + c.ids, c.idsWithBOS, "\(name): TransformerLens prompt")
                XCTAssertEqual(tok.decodeBytes(c.ids), Array(c.text.utf8), "\(name): decode of \(c.text.debugDescription)")
                XCTAssertTrue(tok.decode(c.ids, skipSpecialTokens: true, cleanUpSpaces: false).unicodeScalars
                    .elementsEqual(c.text.replacingOccurrences(of: "<|endoftext|>", with: "", options: .literal).unicodeScalars),
                              "\(name): decode (special tokens skipped) of \(c.text.debugDescription)")
            }
            XCTAssertEqual(failures, 0, "\(name): \(failures) of \(cases.count) Phi cases differ from the reference")
        }
        // The two forms are one tokenizer.
        XCTAssertEqual(fromJSON.vocabSize, fromFiles.vocabSize)
        for id in 0..<fromJSON.vocabSize { XCTAssertEqual(fromJSON.bytes(ofToken: id), fromFiles.bytes(ofToken: id), "id \(id)") }
        for t in ["a<|endoftext|>b", "x  \t\t y", String(repeating: " ", count: 70), "Zürich 😀"] {
            XCTAssertEqual(fromJSON.encode(t), fromFiles.encode(t), t.debugDescription)
        }
    }

    func testPhiSpecialTokensAndCleanUp() throws {
        let dir = try familyDir("phi")
        let tok = try TokenizerLoader.load(directory: dir)
        let f = try facts(dir)
        XCTAssertEqual(tok.bosTokenId, f["bos_token_id"] as? Int)
        XCTAssertEqual(tok.eosTokenId, f["eos_token_id"] as? Int)
        XCTAssertEqual(tok.padTokenId, f["pad_token_id_transformer_lens"] as? Int)
        XCTAssertEqual(tok.vocabSize, f["vocab_size_tokenizer"] as? Int)
        XCTAssertEqual(tok.encode("Hello", addSpecialTokens: true), f["hello_default_call_ids"] as? [Int])
        XCTAssertEqual(tok.encode("<|endoftext|>"), f["endoftext_literal_ids"] as? [Int])
        let plain = try XCTUnwrap(tok as? GPT2Tokenizer).encodePlain("<|endoftext|>")
        XCTAssertEqual(plain, f["endoftext_as_plain_text_ids"] as? [Int])
        for w in try XCTUnwrap(f["added_whitespace_tokens"] as? [[String: Any]]) {
            XCTAssertEqual(tok.encode(try XCTUnwrap(w["text"] as? String)), [try XCTUnwrap(w["id"] as? Int)])
        }
        // Whitespace tokens are added but not special: skipping special tokens keeps them.
        XCTAssertEqual(tok.decode([3000, 64, 3030, 65], skipSpecialTokens: true, cleanUpSpaces: false), "a  b")
        // tokenizer_config.json says clean_up_tokenization_spaces: true. Expected text by hand from
        // transformers' rules: " ." → ".", " ," → ",", " 's" → "'s", " n't" → "n't".
        XCTAssertTrue(tok.cleanUpTokenizationSpaces)
        let ids = tok.encode("Hello , world . It 's fine , isn't it ?")
        XCTAssertEqual(tok.decodeAsConfigured(ids), "Hello, world. It's fine, isn't it?")
        XCTAssertEqual(tok.decode(ids, skipSpecialTokens: false, cleanUpSpaces: false), "Hello , world . It 's fine , isn't it ?")
        XCTAssertEqual(TokenizationCleanUp.apply("do n't ' ok ' , 're 've 'm !"), "don't'ok ','re've'm!")
    }

    // MARK: Merge loop

    /// Both merge loops (rounds with a rank array, priority queue) give what the plain loop gives, on
    /// random trained-style merge lists (each merge's parts are base tokens or made by earlier
    /// merges, some pairs listed twice) and words of 1…300 tokens.
    func testMergeLoopAgreesWithPlainLoop() {
        var rng = DeterministicRandom(seed: 3, stream: "bpe merges")
        func below(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        var compared = 0
        for _ in 0..<200 {
            let alphabet = 2 + below(6)
            var rules: [(left: Int32, right: Int32, merged: Int32)] = []
            var next = alphabet
            for _ in 0..<(1 + below(40)) {
                rules.append((Int32(below(next)), Int32(below(next)), Int32(next)))
                next += 1
            }
            let merges = BPEMerges(rules)
            for _ in 0..<20 {
                var word = (0..<(1 + below(300))).map { _ in Int32(below(alphabet)) }
                var plain = word, queued = word
                var scratch: [Int32] = []
                merges.applyRounds(&word, scratch: &scratch)
                merges.applyQueued(&queued, scratch: &scratch)
                merges.applyPlainly(&plain)
                XCTAssertEqual(word, plain, "round by round")
                XCTAssertEqual(queued, plain, "queued")
                compared += 1
            }
        }
        XCTAssertEqual(compared, 4000)
        // By hand: merges a a → 2 (rank 0), 2 a → 3 (rank 1): "a a a a a" → 2 2 a → 2 3.
        var word: [Int32] = [0, 0, 0, 0, 0]
        var scratch: [Int32] = []
        var long = [Int32](repeating: 0, count: 101)
        BPEMerges([(0, 0, 2), (2, 0, 3)]).apply(&word, scratch: &scratch)
        XCTAssertEqual(word, [2, 3])
        BPEMerges([(0, 0, 2), (2, 0, 3)]).apply(&long, scratch: &scratch)  // the queued path: 50 × "a a", then "2 a"
        XCTAssertEqual(long, [Int32](repeating: 2, count: 49) + [3])
    }

    // MARK: Resolution rule

    func testResolutionRule() throws {
        let llama = try familyDir("llama"), phi = try familyDir("phi")
        let gpt2 = Paths.fixtures.appendingPathComponent("tokenizer")
        // Explicit path wins over the model folder; a tokenizer.json file works too.
        let a = try TokenizerLoader.resolve(explicit: phi.appendingPathComponent("tokenizer.json"), model: llama)
        XCTAssertTrue(a is GPT2Tokenizer)
        XCTAssertEqual(a.vocabSize, 3039)
        XCTAssertTrue(try TokenizerLoader.resolve(explicit: llama, model: phi) is SentencePieceBPETokenizer)
        // The model folder: tokenizer.json before vocab.json + merges.txt.
        let both = try TokenizerLoader.resolve(explicit: nil, model: phi)
        XCTAssertEqual(both.vocabFile.lastPathComponent, "tokenizer.json")
        let onlyFiles = try temporaryFolder()
        for f in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: gpt2.appendingPathComponent(f), to: onlyFiles.appendingPathComponent(f))
        }
        let b = try TokenizerLoader.resolve(explicit: nil, model: onlyFiles)
        XCTAssertEqual(b.vocabFile.lastPathComponent, "vocab.json")
        XCTAssertEqual(b.encode("Hello", addSpecialTokens: true), [15496])
        // A model folder without tokenizer files falls back to the cache.
        let empty = try temporaryFolder()
        let cache = try temporaryFolder()
        let saved = ProcessInfo.processInfo.environment["DKC_CACHE"]
        setenv("DKC_CACHE", cache.path, 1)
        defer { if let saved { setenv("DKC_CACHE", saved, 1) } else { unsetenv("DKC_CACHE") } }
        XCTAssertThrowsError(try TokenizerLoader.resolve(explicit: nil, model: empty)) { e in
            XCTAssertTrue("\(e)".contains("scripts/fetch-gpt2-tokenizer"), "\(e)")
        }
        let cached = cache.appendingPathComponent("gpt2-tokenizer")
        try FileManager.default.createDirectory(at: cached, withIntermediateDirectories: true)
        for f in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: gpt2.appendingPathComponent(f), to: cached.appendingPathComponent(f))
        }
        let c = try TokenizerLoader.resolve(explicit: nil, model: empty)
        XCTAssertEqual(c.vocabFile.deletingLastPathComponent().standardizedFileURL.path, cached.standardizedFileURL.path)
        XCTAssertThrowsError(try TokenizerLoader.resolve(explicit: empty.appendingPathComponent("nothing"), model: phi)) { e in
            XCTAssertTrue(e is TokenizerError, "\(e)")
        }
    }

    // MARK: Unsupported kinds and bad ids

    /// A small valid Llama-style tokenizer.json as a JSON object, to be edited by the tests.
    func tinyLlamaJSON() -> [String: Any] {
        var vocab: [String: Int] = ["<unk>": 0, "<s>": 1, "</s>": 2]
        for b in 0..<256 { vocab[String(format: "<0x%02X>", b)] = 3 + b }
        for (k, t) in ["▁", "a", "b", "▁a", "ab", "▁ab"].enumerated() { vocab[t] = 259 + k }
        return [
            "version": "1.0",
            "added_tokens": [["id": 0, "content": "<unk>", "special": true, "normalized": false],
                             ["id": 1, "content": "<s>", "special": true, "normalized": false],
                             ["id": 2, "content": "</s>", "special": true, "normalized": false]],
            "normalizer": ["type": "Sequence", "normalizers": [["type": "Prepend", "prepend": "▁"],
                                                               ["type": "Replace", "pattern": ["String": " "], "content": "▁"]]],
            "pre_tokenizer": NSNull(),
            "post_processor": ["type": "TemplateProcessing",
                               "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                               "special_tokens": ["<s>": ["id": "<s>", "ids": [1], "tokens": ["<s>"]]]],
            "decoder": ["type": "Sequence", "decoders": [["type": "Replace", "pattern": ["String": "▁"], "content": " "],
                                                         ["type": "ByteFallback"], ["type": "Fuse"],
                                                         ["type": "Strip", "content": " ", "start": 1, "stop": 0]]],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
                      "vocab": vocab, "merges": ["▁ a", "a b", "▁a b"]],
        ]
    }

    func writeJSON(_ object: [String: Any]) throws -> URL {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("tokenizer.json")
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: url)
        return url
    }

    func testTinyLlamaTokenizerByHand() throws {
        let tok = try TokenizerLoader.load(tokenizerJSON: try writeJSON(tinyLlamaJSON()))
        // "ab a" → "▁ab▁a": ▁ a (rank 0) twice, then a b? no: ▁a b (rank 2) → ▁ab, ▁a.
        XCTAssertEqual(tok.encode("ab a"), [264, 262])
        XCTAssertEqual(tok.encode("ab a", addSpecialTokens: true), [1, 264, 262])
        XCTAssertEqual(tok.encode("bab"), [259 + 0, 259 + 2, 259 + 4])          // ▁, b, ab: "▁ b" and "b a" have no merge, "a b" has
        XCTAssertEqual(tok.encode("é"), [259, 3 + 0xC3, 3 + 0xA9])              // byte fallback
        XCTAssertEqual(tok.decode([1, 264, 262], skipSpecialTokens: false, cleanUpSpaces: false), "<s> ab a")
        XCTAssertEqual(tok.decode([1, 264, 262], skipSpecialTokens: true, cleanUpSpaces: false), "ab a")
        // Without byte fallback, unknown characters become one fused <unk>.
        var noFallback = tinyLlamaJSON()
        var model = noFallback["model"] as! [String: Any]
        model["byte_fallback"] = false
        noFallback["model"] = model
        let unk = try TokenizerLoader.load(tokenizerJSON: try writeJSON(noFallback))
        XCTAssertEqual(unk.encode("aéèb"), [262, 0, 261])
    }

    func assertRefused(_ edit: (inout [String: Any]) -> Void, mentions: String, _ message: String, line: UInt = #line) throws {
        var json = tinyLlamaJSON()
        edit(&json)
        let url = try writeJSON(json)
        do {
            _ = try TokenizerLoader.load(tokenizerJSON: url)
            XCTFail("\(message): no error", line: line)
        } catch let e as TokenizerError {
            XCTAssertEqual(e.file.lastPathComponent, "tokenizer.json", "\(message): \(e)", line: line)
            XCTAssertTrue(e.description.contains(mentions), "\(message): \(e)", line: line)
        } catch {
            XCTFail("\(message): unexpected error \(error)", line: line)
        }
    }

    func testUnsupportedKindsAndBadIdsAreNamed() throws {
        func setModel(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { j in var m = j["model"] as! [String: Any]; m[key] = value; j["model"] = m }
        }
        func setVocab(_ token: String, _ id: Any) -> (inout [String: Any]) -> Void {
            { j in var m = j["model"] as! [String: Any]; var v = m["vocab"] as! [String: Any]; v[token] = id; m["vocab"] = v; j["model"] = m }
        }
        try assertRefused({ $0["normalizer"] = ["type": "NFKC"] }, mentions: "NFKC", "NFKC normalizer")
        try assertRefused({ $0["normalizer"] = ["type": "Replace", "pattern": ["Regex": " +"], "content": "▁"] }, mentions: "Regex", "regex pattern")
        try assertRefused({ $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁"] }, mentions: "Metaspace", "Metaspace pre-tokenizer")
        try assertRefused(setModel("type", "Unigram"), mentions: "Unigram", "Unigram model")
        try assertRefused({ $0["decoder"] = ["type": "WordPiece"] }, mentions: "WordPiece", "WordPiece decoder")
        try assertRefused({ $0["post_processor"] = ["type": "RobertaProcessing"] }, mentions: "RobertaProcessing", "Roberta post-processor")
        try assertRefused(setModel("dropout", 0.1), mentions: "dropout", "dropout")
        try assertRefused(setVocab("zz", 2147483648), mentions: "2^31", "id beyond 2^31")
        try assertRefused(setVocab("zz", -1), mentions: "2^31", "negative id")
        try assertRefused(setVocab("zz", 1.5), mentions: "zz", "fractional id")
        try assertRefused(setVocab("zz", 5), mentions: "id 5", "duplicate id")
        try assertRefused(setVocab("zz", 100_000), mentions: "densely", "sparse ids")
        try assertRefused(setModel("merges", ["a c"]), mentions: "\"c\"", "merge of an unknown token")
        try assertRefused(setModel("merges", ["b b"]), mentions: "merged token", "merge making an unknown token")
        try assertRefused(setVocab("<0x41>", NSNull()), mentions: "<0x41>", "byte fallback token missing")
        try assertRefused({ j in
            var m = j["model"] as! [String: Any]; var v = m["vocab"] as! [String: Any]; v["<0x41>"] = nil; m["vocab"] = v; j["model"] = m
        }, mentions: "<0x41>", "byte fallback token missing")
        try assertRefused({ $0["added_tokens"] = [["id": 7, "content": "<s>", "special": true]] }, mentions: "<s>", "added token on another token's id")
        try assertRefused({ $0["post_processor"] = ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<x>"]], ["Sequence": ["id": "A"]]],
                                                    "special_tokens": [:] as [String: Any]] }, mentions: "<x>", "template naming an unknown token")
    }

    // MARK: Mutations

    /// Thousands of deterministic mutations of tokenizer.json files (truncation, bit flips, byte
    /// edits, values of the wrong type): each must load or throw a `TokenizerError`; a loaded
    /// tokenizer must encode and decode without trapping and give only its own ids.
    func testMutatedTokenizerJSONEndsInSuccessOrNamedError() throws {
        var bases: [(String, [UInt8])] = [("tiny llama", Array(try JSONSerialization.data(withJSONObject: tinyLlamaJSON(), options: [.sortedKeys])))]
        if let phi = try? familyDir("phi"), let llama = try? familyDir("llama") {
            bases.append(("phi", Array(try Data(contentsOf: phi.appendingPathComponent("tokenizer.json")))))
            bases.append(("llama", Array(try Data(contentsOf: llama.appendingPathComponent("tokenizer.json")))))
        }
        let wrongValues = ["null", "[]", "{}", "\"x\"", "-1", "1e99", "true", "2147483648", "0.5", "[[1]]"].map { Array($0.utf8) }
        var rng = DeterministicRandom(seed: 20, stream: "tokenizer.json mutations")
        func below(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("tokenizer.json")
        var loaded = 0, refused = 0
        let perBase = bases.count == 1 ? [3000] : [2000, 600, 600]
        for (b, (name, base)) in bases.enumerated() {
            let count = perBase[b]
            for k in 0..<count {
                var m = base
                switch k % 6 {
                case 0: m = Array(m.prefix(below(m.count)))
                case 1: let i = below(m.count); m[i] ^= UInt8(1) << UInt8(below(8))
                case 2: let i = below(m.count); m[i] = Array("{}[]\",:-0123456789ae\\ ".utf8)[below(22)]
                case 3: let i = below(m.count); m.removeSubrange(i..<min(m.count, i + 1 + below(40)))
                default:
                    // A value of the wrong type after a random key.
                    let colons = m.indices.filter { m[$0] == 0x3A }
                    guard !colons.isEmpty else { continue }
                    let c = colons[below(colons.count)] + 1
                    var e = c
                    var depth = 0
                    while e < m.count {  // the end of the value (roughly: next , or } at depth 0)
                        let x = m[e]
                        if x == 0x5B || x == 0x7B { depth += 1 }
                        if x == 0x5D || x == 0x7D { if depth == 0 { break }; depth -= 1 }
                        if x == 0x2C && depth == 0 { break }
                        e += 1
                    }
                    m.replaceSubrange(c..<e, with: wrongValues[below(wrongValues.count)])
                }
                try Data(m).write(to: url)
                do {
                    let tok = try TokenizerLoader.load(tokenizerJSON: url)
                    loaded += 1
                    for text in ["ab a", "Hello <s> world</s>", "x  \t\ty é😀", ""] {
                        let ids = tok.encode(text, addSpecialTokens: true)
                        XCTAssertTrue(ids.allSatisfy { tok.isToken($0) }, "\(name) mutation \(k): an id outside the vocabulary")
                        _ = tok.decode(ids + [-1, Int.max], skipSpecialTokens: k % 2 == 0, cleanUpSpaces: true)
                    }
                } catch let e as TokenizerError {
                    refused += 1
                    XCTAssertEqual(e.file.lastPathComponent, "tokenizer.json", "\(name) mutation \(k): \(e)")
                    XCTAssertFalse(e.problem.isEmpty)
                } catch {
                    XCTFail("\(name) mutation \(k): not a named error: \(error)")
                }
            }
        }
        print("TokenizerFamilyTests: mutations loaded \(loaded), refused with a named error \(refused)")
        XCTAssertGreaterThan(refused, 1000)
        XCTAssertGreaterThan(loaded, 10)
    }

    // MARK: Helpers

    private var folders: [URL] = []

    func temporaryFolder() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-tokfam-test-\(UUID().uuidString)")
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
