import Foundation

/// What a Hugging Face `tokenizer.json` says, checked and reduced to the parts dkc implements.
///
/// Read as untrusted input: every kind of normalizer, pre-tokenizer, model, post-processor and
/// decoder that dkc does not implement is refused by name (`TokenizerError`), never guessed at; ids
/// lie in [0, 2^31) and are dense enough to index a table; a token has one id and an id one token.
/// The supported combinations are listed in docs/tokenizers.md.
struct TokenizerDefinition {
    enum Normalizer: Equatable {
        case prepend(String)
        case replace(String, String)
    }
    enum PreTokenizer: Equatable { case none, byteLevel }
    enum DecoderStep: Equatable {
        case byteLevel
        case replace(String, String)
        case byteFallback
        case fuse
        case strip(Unicode.Scalar, start: Int, stop: Int)
    }
    struct AddedToken {
        var content: String
        var id: Int
        var special: Bool
        var normalized: Bool
    }

    var file: URL
    /// `model.vocab`, in file order.
    var vocab: [(token: String, id: Int)] = []
    /// `model.merges` in rank order, with where each was read.
    var merges: [(left: String, right: String, place: String)] = []
    var added: [AddedToken] = []
    var normalizers: [Normalizer] = []
    var preTokenizer: PreTokenizer = .none
    /// Decoder steps in order; empty for no decoder.
    var decoder: [DecoderStep] = []
    var hasDecoder = false
    /// The single-sequence template of a `TemplateProcessing` post-processor: ids before and after.
    var prefixIds: [Int] = []
    var suffixIds: [Int] = []
    var unkToken: String?
    var byteFallback = false
    var fuseUnk = false
    var ignoreMerges = false

    /// Largest id accepted (ids are Int32 inside the tokenizers).
    static let idLimit = 1 << 31

    static func read(_ url: URL) throws -> TokenizerDefinition {
        let json = try BPEFiles.parseJSON(url)
        var d = TokenizerDefinition(file: url)
        guard case .object = json else { throw d.fail("the file is \(json.kind), expected an object", fix: "expected a Hugging Face tokenizer.json") }
        guard let model = json["model"], case .object = model else {
            throw d.fail("no \"model\" object", fix: "expected a Hugging Face tokenizer.json")
        }
        try d.readModelSettings(model)
        try d.readVocabulary(model["vocab"])
        try d.readMerges(model["merges"])
        try d.readAddedTokens(json["added_tokens"])
        d.normalizers = try readNormalizer(json["normalizer"], "normalizer", url)
        d.preTokenizer = try readPreTokenizer(json["pre_tokenizer"], url)
        if let dec = json["decoder"], dec != .null {
            d.hasDecoder = true
            d.decoder = try readDecoder(dec, "decoder", url)
        }
        try readPostProcessor(json["post_processor"], into: &d)
        return d
    }

    /// A `TokenizerError` about this file.
    func fail(_ problem: String, fix: String? = nil) -> TokenizerError { TokenizerError(file: file, problem: problem, fix: fix) }

    /// `model.type` (BPE only), the subword affixes and dropout dkc's BPE does not have, and the flags it does.
    mutating func readModelSettings(_ model: TokenizerJSON) throws {
        if let t = model["type"] {
            guard let type = t.string else { throw fail("model.type is \(t.kind), expected a string") }
            guard type == "BPE" else {
                throw fail("model.type is \"\(type)\"; only BPE models are supported", fix: "dkc reads byte-level BPE (GPT-2, Phi) and Llama-style BPE tokenizers")
            }
        }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[field] {
                switch v {
                case .null: break
                case .string(let s) where s.isEmpty: break
                default: throw fail("model.\(field) is \(v.brief); dkc's BPE uses none")
                }
            }
        }
        if let v = model["dropout"] {
            switch v {
            case .null: break
            case .number(let s) where (Double(s) ?? 1) == 0: break
            default: throw fail("model.dropout is \(v.brief); encoding is deterministic only without dropout", fix: "set it to null")
            }
        }
        byteFallback = try Self.bool(model["byte_fallback"], "model.byte_fallback", file) ?? false
        fuseUnk = try Self.bool(model["fuse_unk"], "model.fuse_unk", file) ?? false
        ignoreMerges = try Self.bool(model["ignore_merges"], "model.ignore_merges", file) ?? false
        if let u = model["unk_token"] {
            switch u {
            case .null: break
            case .string(let s): unkToken = s
            default: throw fail("model.unk_token is \(u.kind), expected a string or null")
            }
        }
    }

    /// `model.vocab`: an object {"token": id, ...} with ids in [0, 2^31).
    mutating func readVocabulary(_ vocab: TokenizerJSON?) throws {
        guard let vocab else { throw fail("no model.vocab") }
        guard case .object(let members) = vocab else {
            throw fail("model.vocab is \(vocab.kind), expected an object {\"token\": id, ...}")
        }
        guard !members.isEmpty else { throw fail("model.vocab is empty") }
        self.vocab.reserveCapacity(members.count)
        for (key, value) in members {
            guard let id = value.int, id >= 0, id < Self.idLimit else {
                throw fail("model.vocab: token \"\(key)\" has id \(value.brief), expected an integer in [0, 2^31)")
            }
            self.vocab.append((key, id))
        }
    }

    /// `model.merges`: "a b" strings or ["a", "b"] pairs, in rank order.
    mutating func readMerges(_ merges: TokenizerJSON?) throws {
        guard let merges, case .array(let items) = merges else {
            throw fail("model.merges is missing or not an array")
        }
        self.merges.reserveCapacity(items.count)
        for (k, item) in items.enumerated() {
            let place = "model.merges[\(k)]"
            switch item {
            case .string(let s):
                let parts = s.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw fail("\(place) is \(item.brief), expected two tokens separated by one space")
                }
                self.merges.append((String(String.UnicodeScalarView(parts[0])), String(String.UnicodeScalarView(parts[1])), place))
            case .array(let two):
                guard two.count == 2, let a = two[0].string, let b = two[1].string, !a.isEmpty, !b.isEmpty else {
                    throw fail("\(place) is not a pair of two non-empty strings")
                }
                self.merges.append((a, b, place))
            default:
                throw fail("\(place) is \(item.kind), expected \"a b\" or [\"a\", \"b\"]")
            }
        }
    }

    /// `added_tokens`: content, id and the flags dkc implements (single_word, lstrip and rstrip are refused).
    mutating func readAddedTokens(_ added: TokenizerJSON?) throws {
        guard let added else { return }
        switch added {
        case .null: break
        case .array(let tokens):
            for (k, t) in tokens.enumerated() {
                guard let content = t["content"]?.string, !content.isEmpty, let id = t["id"]?.int, id >= 0, id < Self.idLimit else {
                    throw fail("added_tokens[\(k)] lacks a non-empty \"content\" and an integer \"id\" in [0, 2^31)")
                }
                for flag in ["single_word", "lstrip", "rstrip"] {
                    if try Self.bool(t[flag], "added_tokens[\(k)].\(flag)", file) == true {
                        throw fail("added_tokens[\(k)] (\"\(content)\") sets \(flag), which dkc does not implement",
                                   fix: "the GPT-2, Phi and Llama tokenizers set none of single_word, lstrip, rstrip")
                    }
                }
                let special = try Self.bool(t["special"], "added_tokens[\(k)].special", file) ?? false
                let normalized = try Self.bool(t["normalized"], "added_tokens[\(k)].normalized", file) ?? !special
                self.added.append(AddedToken(content: content, id: id, special: special, normalized: normalized))
            }
        default:
            throw fail("added_tokens is \(added.kind), expected an array")
        }
    }

    static func bool(_ v: TokenizerJSON?, _ field: String, _ url: URL) throws -> Bool? {
        guard let v else { return nil }
        switch v {
        case .null: return nil
        case .bool(let b): return b
        default: throw TokenizerError(file: url, problem: "\(field) is \(v.kind), expected true or false")
        }
    }

    static func type(_ v: TokenizerJSON, _ field: String, _ url: URL) throws -> String {
        guard case .object = v else { throw TokenizerError(file: url, problem: "\(field) is \(v.kind), expected an object with a \"type\"") }
        guard let t = v["type"]?.string else { throw TokenizerError(file: url, problem: "\(field) has no \"type\" string") }
        return t
    }

    /// A `{"String": "x"}` pattern; Regex patterns are refused.
    static func stringPattern(_ v: TokenizerJSON?, _ field: String, _ url: URL) throws -> String {
        guard let v, case .object = v else { throw TokenizerError(file: url, problem: "\(field).pattern is missing or not an object") }
        if v["Regex"] != nil {
            throw TokenizerError(file: url, problem: "\(field).pattern is a Regex, which dkc does not implement", fix: "only {\"String\": ...} patterns are supported")
        }
        guard let s = v["String"]?.string, !s.isEmpty else {
            throw TokenizerError(file: url, problem: "\(field).pattern has no non-empty \"String\"")
        }
        return s
    }

    /// The steps of a "Sequence" component: each item of its array `key` read by `read` (with its field path), in order.
    static func sequence<T>(_ v: TokenizerJSON, _ key: String, _ field: String, _ url: URL,
                            _ read: (TokenizerJSON, String) throws -> [T]) throws -> [T] {
        guard case .array(let items)? = v[key] else {
            throw TokenizerError(file: url, problem: "\(field).\(key) is missing or not an array")
        }
        var out: [T] = []
        for (k, item) in items.enumerated() { out += try read(item, "\(field).\(key)[\(k)]") }
        return out
    }

    static func readNormalizer(_ v: TokenizerJSON?, _ field: String, _ url: URL) throws -> [Normalizer] {
        guard let v, v != .null else { return [] }
        switch try type(v, field, url) {
        case "Sequence":
            return try sequence(v, "normalizers", field, url) { try readNormalizer($0, $1, url) }
        case "Prepend":
            guard let p = v["prepend"]?.string else { throw TokenizerError(file: url, problem: "\(field).prepend is missing or not a string") }
            return [.prepend(p)]
        case "Replace":
            let pattern = try stringPattern(v["pattern"], field, url)
            guard let content = v["content"]?.string else { throw TokenizerError(file: url, problem: "\(field).content is missing or not a string") }
            return [.replace(pattern, content)]
        case let other:
            throw TokenizerError(file: url, problem: "\(field) is of type \"\(other)\", which dkc does not implement",
                                 fix: "supported normalizers: Prepend, Replace with a String pattern, and Sequences of them")
        }
    }

    static func readPreTokenizer(_ v: TokenizerJSON?, _ url: URL) throws -> PreTokenizer {
        guard let v, v != .null else { return .none }
        switch try type(v, "pre_tokenizer", url) {
        case "ByteLevel":
            if try bool(v["add_prefix_space"], "pre_tokenizer.add_prefix_space", url) == true {
                throw TokenizerError(file: url, problem: "pre_tokenizer.add_prefix_space is true; dkc encodes byte-level text without a prefix space",
                                     fix: "set it to false (GPT-2 and Phi use false)")
            }
            if try bool(v["use_regex"], "pre_tokenizer.use_regex", url) == false {
                throw TokenizerError(file: url, problem: "pre_tokenizer.use_regex is false; dkc implements GPT-2's regex split only",
                                     fix: "set it to true")
            }
            return .byteLevel
        case let other:
            throw TokenizerError(file: url, problem: "pre_tokenizer is of type \"\(other)\", which dkc does not implement",
                                 fix: "supported: ByteLevel (GPT-2, Phi) or none (Llama)")
        }
    }

    static func readDecoder(_ v: TokenizerJSON, _ field: String, _ url: URL) throws -> [DecoderStep] {
        switch try type(v, field, url) {
        case "Sequence":
            return try sequence(v, "decoders", field, url) { try readDecoder($0, $1, url) }
        case "ByteLevel": return [.byteLevel]
        case "ByteFallback": return [.byteFallback]
        case "Fuse": return [.fuse]
        case "Replace":
            let pattern = try stringPattern(v["pattern"], field, url)
            guard let content = v["content"]?.string else { throw TokenizerError(file: url, problem: "\(field).content is missing or not a string") }
            return [.replace(pattern, content)]
        case "Strip":
            guard let c = v["content"]?.string, c.unicodeScalars.count == 1, let scalar = c.unicodeScalars.first else {
                throw TokenizerError(file: url, problem: "\(field).content is not a one-character string")
            }
            guard let start = v["start"]?.int, let stop = v["stop"]?.int, (0...1024).contains(start), (0...1024).contains(stop) else {
                throw TokenizerError(file: url, problem: "\(field).start and .stop must be integers in [0, 1024]")
            }
            return [.strip(scalar, start: start, stop: stop)]
        case let other:
            throw TokenizerError(file: url, problem: "\(field) is of type \"\(other)\", which dkc does not implement",
                                 fix: "supported decoders: ByteLevel, or a Sequence of Replace, ByteFallback, Fuse, Strip")
        }
    }

    /// `null`, `ByteLevel` (adds nothing) or `TemplateProcessing` with one sequence `A` between
    /// special tokens.
    static func readPostProcessor(_ v: TokenizerJSON?, into d: inout TokenizerDefinition) throws {
        let url = d.file
        guard let v, v != .null else { return }
        switch try type(v, "post_processor", url) {
        case "ByteLevel":
            return
        case "TemplateProcessing":
            guard case .array(let single)? = v["single"] else {
                throw TokenizerError(file: url, problem: "post_processor.single is missing or not an array")
            }
            var seenSequence = false
            for (k, piece) in single.enumerated() {
                let place = "post_processor.single[\(k)]"
                if let s = piece["Sequence"] {
                    guard s["id"]?.string == "A", !seenSequence else {
                        throw TokenizerError(file: url, problem: "\(place) is not the one sequence \"A\" of a single-sequence template")
                    }
                    seenSequence = true
                } else if let t = piece["SpecialToken"] {
                    guard let name = t["id"]?.string else { throw TokenizerError(file: url, problem: "\(place).SpecialToken has no \"id\" string") }
                    guard let entry = v["special_tokens"]?[name], case .array(let ids)? = entry["ids"] else {
                        throw TokenizerError(file: url, problem: "\(place) names \"\(name)\", which post_processor.special_tokens does not list with \"ids\"")
                    }
                    for item in ids {
                        guard let id = item.int, id >= 0, id < idLimit else {
                            throw TokenizerError(file: url, problem: "post_processor.special_tokens[\"\(name)\"].ids holds \(item.brief), expected ids in [0, 2^31)")
                        }
                        if seenSequence { d.suffixIds.append(id) } else { d.prefixIds.append(id) }
                    }
                } else {
                    throw TokenizerError(file: url, problem: "\(place) is neither a Sequence nor a SpecialToken")
                }
            }
            guard seenSequence else { throw TokenizerError(file: url, problem: "post_processor.single has no Sequence \"A\"") }
        case let other:
            throw TokenizerError(file: url, problem: "post_processor is of type \"\(other)\", which dkc does not implement",
                                 fix: "supported: ByteLevel, TemplateProcessing, or none")
        }
    }
}

extension TokenizerJSON: Equatable {
    static func == (a: TokenizerJSON, b: TokenizerJSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key.unicodeScalars.elementsEqual($1.key.unicodeScalars) && $0.value == $1.value }
        default: return false
        }
    }
}

/// tokenizer_config.json (transformers' settings beside tokenizer.json): the special tokens' names
/// and `clean_up_tokenization_spaces`. Absent file: nothing set.
struct TokenizerConfigFile {
    var bos: String?
    var eos: String?
    var unk: String?
    var pad: String?
    var cleanUp: Bool?

    static func read(directory: URL) throws -> TokenizerConfigFile {
        let url = directory.appendingPathComponent("tokenizer_config.json")
        var c = TokenizerConfigFile()
        guard FileManager.default.fileExists(atPath: url.path) else { return c }
        let json = try BPEFiles.parseJSON(url)
        guard case .object = json else { throw TokenizerError(file: url, problem: "the file is \(json.kind), expected an object") }
        func token(_ key: String) throws -> String? {
            guard let v = json[key] else { return nil }
            switch v {
            case .null: return nil
            case .string(let s): return s
            case .object: if let s = v["content"]?.string { return s }
            default: break
            }
            throw TokenizerError(file: url, problem: "\(key) is \(v.kind), expected a string, {\"content\": ...} or null")
        }
        c.bos = try token("bos_token")
        c.eos = try token("eos_token")
        c.unk = try token("unk_token")
        c.pad = try token("pad_token")
        c.cleanUp = try TokenizerDefinition.bool(json["clean_up_tokenization_spaces"], "clean_up_tokenization_spaces", url)
        return c
    }
}
