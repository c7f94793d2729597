import Foundation

/// A tokenizer file that is missing, unreadable or malformed. Names the file (and the line where it
/// can) and says what to do.
public struct TokenizerError: UserFacingError {
    /// The file (or folder) at fault.
    public let file: URL
    /// 1-based line in `file`, where it is known.
    public let line: Int?
    /// What is wrong.
    public let problem: String
    /// What the user can do about it.
    public let fix: String?

    public init(file: URL, line: Int? = nil, problem: String, fix: String? = nil) {
        self.file = file
        self.line = line
        self.problem = problem
        self.fix = fix
    }

    public var description: String {
        var s = file.path
        if let line { s += ":\(line)" }
        s += ": " + problem
        if let fix { s += " (" + fix + ")" }
        return s
    }
}

/// The contents of a byte-level BPE tokenizer as read from its files, before the tables are built.
/// Tokens are raw bytes (the byte-level spelling already undone).
struct BPEFiles {
    /// Where each piece came from, for error messages.
    var vocabFile: URL
    var mergesFile: URL
    /// Every vocabulary entry, in file order.
    var vocab: [(bytes: [UInt8], id: Int)] = []
    /// Merge rules in rank order, with a description of where each was read (`line 12`, `model.merges[10]`).
    var merges: [(left: [UInt8], right: [UInt8], line: Int?, place: String)] = []
    /// Tokens matched literally in raw text before pre-tokenisation (`<|endoftext|>`), by their UTF-8 bytes.
    var specials: [(bytes: [UInt8], id: Int)] = []
    /// tokenizer.json's `model.ignore_merges`: a piece that is itself a vocabulary token is taken whole.
    var ignoreMerges = false

    static let endOfText = "<|endoftext|>"

    /// Reads `vocab.json` + `merges.txt` from `directory`, or `tokenizer.json` when vocab.json is absent.
    static func read(directory: URL) throws -> BPEFiles {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw TokenizerError(file: directory, problem: "no such folder",
                                 fix: "give a folder holding GPT-2's vocab.json and merges.txt, or tokenizer.json")
        }
        let vocabURL = directory.appendingPathComponent("vocab.json")
        let mergesURL = directory.appendingPathComponent("merges.txt")
        let jsonURL = directory.appendingPathComponent("tokenizer.json")
        if fm.fileExists(atPath: vocabURL.path) {
            guard fm.fileExists(atPath: mergesURL.path) else {
                throw TokenizerError(file: mergesURL, problem: "missing: vocab.json is there but merges.txt is not",
                                     fix: "copy GPT-2's merges.txt beside vocab.json")
            }
            return try readVocabAndMerges(vocab: vocabURL, merges: mergesURL)
        }
        if fm.fileExists(atPath: jsonURL.path) {
            return try readTokenizerJSON(jsonURL)
        }
        throw TokenizerError(file: directory, problem: "no tokenizer files: expected vocab.json and merges.txt, or tokenizer.json",
                             fix: "point to a GPT-2 model folder, or run scripts/fetch-gpt2-tokenizer")
    }

    static func readBytes(_ url: URL) throws -> [UInt8] {
        do {
            return [UInt8](try Data(contentsOf: url))
        } catch {
            throw TokenizerError(file: url, problem: "cannot be read: \(error.localizedDescription)")
        }
    }

    static func parseJSON(_ url: URL) throws -> TokenizerJSON {
        do {
            return try TokenizerJSON.parse(try readBytes(url))
        } catch let e as TokenizerJSON.SyntaxError {
            throw TokenizerError(file: url, line: e.line, problem: "not valid JSON: \(e.message)")
        }
    }

    /// The raw bytes of a vocabulary token written in GPT-2's byte-level alphabet.
    static func tokenBytes(_ token: String, file: URL, place: String) throws -> [UInt8] {
        guard let b = ByteLevel.bytes(ofToken: token.unicodeScalars) else {
            throw TokenizerError(file: file, problem: "\(place): token \"\(token)\" has characters outside GPT-2's byte-level alphabet",
                                 fix: "this reader takes byte-level BPE (GPT-2) tokenizers only")
        }
        return b
    }

    /// Reads a `{"token": id, ...}` object.
    static func readVocab(_ json: TokenizerJSON, file: URL, field: String) throws -> [(bytes: [UInt8], id: Int)] {
        guard case .object(let members) = json else {
            throw TokenizerError(file: file, problem: "\(field) is \(json.kind), expected an object {\"token\": id, ...}")
        }
        guard !members.isEmpty else { throw TokenizerError(file: file, problem: "\(field) is empty") }
        var out: [(bytes: [UInt8], id: Int)] = []
        out.reserveCapacity(members.count)
        for (key, value) in members {
            guard let id = value.int, id >= 0, id <= GPT2Tokenizer.maxId else {
                throw TokenizerError(file: file, problem: "\(field): token \"\(key)\" has id \(value.brief), expected an integer in 0 ..< 2^31")
            }
            out.append((try tokenBytes(key, file: file, place: field), id))
        }
        return out
    }

    static func readVocabAndMerges(vocab vocabURL: URL, merges mergesURL: URL) throws -> BPEFiles {
        var files = BPEFiles(vocabFile: vocabURL, mergesFile: mergesURL)
        files.vocab = try readVocab(parseJSON(vocabURL), file: vocabURL, field: "the vocabulary")
        files.merges = try readMergesText(mergesURL)
        if let eot = files.vocab.last(where: { $0.bytes.elementsEqual(endOfText.utf8) }) {
            files.specials = [(Array(endOfText.utf8), eot.id)]
        }
        return files
    }

    /// merges.txt: an optional `#version` line, then one merge per line, two tokens separated by one space.
    static func readMergesText(_ url: URL) throws -> [(left: [UInt8], right: [UInt8], line: Int?, place: String)] {
        let bytes = try readBytes(url)
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw TokenizerError(file: url, problem: "not valid UTF-8 text")
        }
        var out: [(left: [UInt8], right: [UInt8], line: Int?, place: String)] = []
        out.reserveCapacity(50_000)
        var lineNo = 0
        for rawLine in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNo += 1
            var line = rawLine
            if line.last == 0x0D { line = line.dropLast() }
            if line.isEmpty { continue }
            if lineNo == 1 && line.starts(with: "#version".utf8) { continue }
            let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError(file: url, line: lineNo,
                                     problem: "expected two tokens separated by one space, found \"\(String(decoding: line, as: UTF8.self))\"")
            }
            let place = "merge \"\(String(decoding: line, as: UTF8.self))\""
            let left = try tokenBytes(String(decoding: parts[0], as: UTF8.self), file: url, place: "line \(lineNo)")
            let right = try tokenBytes(String(decoding: parts[1], as: UTF8.self), file: url, place: "line \(lineNo)")
            out.append((left, right, lineNo, place))
        }
        if out.isEmpty { throw TokenizerError(file: url, problem: "holds no merges") }
        return out
    }

    /// tokenizer.json (a Hugging Face fast-tokenizer file): `model.vocab`, `model.merges` (strings
    /// "a b" or pairs ["a", "b"]) and `added_tokens`.
    static func readTokenizerJSON(_ url: URL) throws -> BPEFiles {
        let json = try parseJSON(url)
        var files = BPEFiles(vocabFile: url, mergesFile: url)
        guard let model = json["model"], case .object = model else {
            throw TokenizerError(file: url, problem: "no \"model\" object", fix: "expected a Hugging Face tokenizer.json")
        }
        if let type = model["type"]?.string, type != "BPE" {
            throw TokenizerError(file: url, problem: "model.type is \"\(type)\"; only BPE (GPT-2) tokenizers are supported")
        }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[field]?.string, !v.isEmpty {
                throw TokenizerError(file: url, problem: "model.\(field) is \"\(v)\"; GPT-2's byte-level BPE uses none")
            }
        }
        if let d = model["dropout"], case .number(let s) = d, (Double(s) ?? 0) != 0 {
            throw TokenizerError(file: url, problem: "model.dropout is \(s); encoding is deterministic only without dropout")
        }
        if let pre = json["pre_tokenizer"], pre["type"]?.string == "ByteLevel",
           case .bool(true)? = pre["add_prefix_space"] {
            throw TokenizerError(file: url, problem: "pre_tokenizer.add_prefix_space is true; GPT-2 encodes without a prefix space",
                                 fix: "set it to false")
        }
        if case .bool(let b)? = model["ignore_merges"] { files.ignoreMerges = b }
        guard let vocab = model["vocab"] else { throw TokenizerError(file: url, problem: "no model.vocab") }
        files.vocab = try readVocab(vocab, file: url, field: "model.vocab")
        guard let merges = model["merges"], case .array(let items) = merges else {
            throw TokenizerError(file: url, problem: "model.merges is missing or not an array")
        }
        files.merges.reserveCapacity(items.count)
        for (k, item) in items.enumerated() {
            let place = "model.merges[\(k)]"
            let pair: (String, String)
            switch item {
            case .string(let s):
                let parts = s.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw TokenizerError(file: url, problem: "\(place) is \"\(s)\", expected two tokens separated by one space")
                }
                pair = (String(String.UnicodeScalarView(parts[0])), String(String.UnicodeScalarView(parts[1])))
            case .array(let two):
                guard two.count == 2, let a = two[0].string, let b = two[1].string, !a.isEmpty, !b.isEmpty else {
                    throw TokenizerError(file: url, problem: "\(place) is not a pair of two non-empty strings")
                }
                pair = (a, b)
            default:
                throw TokenizerError(file: url, problem: "\(place) is \(item.kind), expected \"a b\" or [\"a\", \"b\"]")
            }
            files.merges.append((try tokenBytes(pair.0, file: url, place: place),
                                 try tokenBytes(pair.1, file: url, place: place), nil, place))
        }
        if files.merges.isEmpty { throw TokenizerError(file: url, problem: "model.merges is empty") }
        if let added = json["added_tokens"], case .array(let tokens) = added {
            for (k, t) in tokens.enumerated() {
                guard let content = t["content"]?.string, !content.isEmpty, let id = t["id"]?.int, id >= 0, id <= GPT2Tokenizer.maxId else {
                    throw TokenizerError(file: url, problem: "added_tokens[\(k)] lacks a non-empty \"content\" and an integer \"id\"")
                }
                for flag in ["single_word", "lstrip", "rstrip"] {
                    if case .bool(true)? = t[flag] {
                        throw TokenizerError(file: url, problem: "added_tokens[\(k)] (\"\(content)\") sets \(flag), which this reader does not implement",
                                             fix: "GPT-2's <|endoftext|> sets none of single_word, lstrip, rstrip")
                    }
                }
                files.specials.append((Array(content.utf8), id))
            }
        } else if let eot = files.vocab.last(where: { $0.bytes.elementsEqual(endOfText.utf8) }) {
            files.specials = [(Array(endOfText.utf8), eot.id)]
        }
        return files
    }
}
