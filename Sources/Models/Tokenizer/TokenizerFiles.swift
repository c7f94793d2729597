import Foundation
import Support

/// A tokenizer file that is missing, unreadable or malformed. Names the file (and the line where it
/// can) and says what to do.
public typealias TokenizerError = FileError

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
    /// Added tokens, matched literally in text before pre-tokenisation (`<|endoftext|>`, Phi's
    /// whitespace runs), by their UTF-8 bytes; `special` ones are dropped by skip-special decoding,
    /// `normalized` ones are matched after the non-normalized ones (tokenizer.json's flags).
    var added: [(bytes: [UInt8], id: Int, special: Bool, normalized: Bool)] = []
    /// tokenizer_config.json beside the files.
    var config = TokenizerConfigFile()
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
            var files = try readVocabAndMerges(vocab: vocabURL, merges: mergesURL)
            files.config = try TokenizerConfigFile.read(directory: directory)
            let addedURL = directory.appendingPathComponent("added_tokens.json")
            if fm.fileExists(atPath: addedURL.path) {
                let c = files.config
                let names = Set([c.bos, c.eos, c.unk, c.pad].compactMap { $0 })
                let extra = try readAddedTokensJSON(addedURL, specialNames: names)
                files.added.removeAll { a in extra.contains { $0.bytes == a.bytes } }
                files.added += extra
            }
            return files
        }
        if fm.fileExists(atPath: jsonURL.path) {
            var files = try readTokenizerJSON(jsonURL)
            files.config = try TokenizerConfigFile.read(directory: directory)
            return files
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
            guard let id = value.int, id >= 0, id < TokenizerDefinition.idLimit else {
                throw TokenizerError(file: file, problem: "\(field): token \"\(key)\" has id \(value.brief), expected an integer in [0, 2^31)")
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
            files.added = [(Array(endOfText.utf8), eot.id, true, false)]
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

    /// A byte-level BPE tokenizer.json (GPT-2, CodeGen/Phi): the byte-level pre-tokenizer, no
    /// normalizer, a ByteLevel decoder (or none), no byte fallback.
    static func readTokenizerJSON(_ url: URL) throws -> BPEFiles {
        try fromDefinition(TokenizerDefinition.read(url))
    }

    static func fromDefinition(_ d: TokenizerDefinition) throws -> BPEFiles {
        let url = d.file
        guard d.preTokenizer == .byteLevel else {
            throw TokenizerError(file: url, problem: "pre_tokenizer is not ByteLevel, so this is not a byte-level BPE tokenizer")
        }
        guard d.normalizers.isEmpty else {
            throw TokenizerError(file: url, problem: "a byte-level BPE tokenizer with a normalizer is not supported", fix: "GPT-2 and Phi have normalizer null")
        }
        guard !d.byteFallback else {
            throw TokenizerError(file: url, problem: "model.byte_fallback is true; a byte-level vocabulary needs no byte fallback")
        }
        guard d.decoder.allSatisfy({ $0 == .byteLevel }) else {
            throw TokenizerError(file: url, problem: "the decoder of a byte-level BPE tokenizer must be ByteLevel (or absent)")
        }
        guard d.prefixIds.isEmpty && d.suffixIds.isEmpty else {
            throw TokenizerError(file: url, problem: "a post_processor template adding tokens to byte-level BPE is not supported",
                                 fix: "GPT-2 and Phi add nothing (post_processor ByteLevel)")
        }
        var files = BPEFiles(vocabFile: url, mergesFile: url)
        files.ignoreMerges = d.ignoreMerges
        files.vocab.reserveCapacity(d.vocab.count)
        for (token, id) in d.vocab {
            files.vocab.append((try tokenBytes(token, file: url, place: "model.vocab"), id))
        }
        files.merges.reserveCapacity(d.merges.count)
        for m in d.merges {
            files.merges.append((try tokenBytes(m.left, file: url, place: m.place),
                                 try tokenBytes(m.right, file: url, place: m.place), nil, m.place))
        }
        if files.merges.isEmpty { throw TokenizerError(file: url, problem: "model.merges is empty") }
        if d.added.isEmpty {
            if let eot = files.vocab.last(where: { $0.bytes.elementsEqual(endOfText.utf8) }) {
                files.added = [(Array(endOfText.utf8), eot.id, true, false)]
            }
        } else {
            files.added = d.added.map { (Array($0.content.utf8), $0.id, $0.special, $0.normalized) }
        }
        return files
    }

    /// added_tokens.json beside vocab.json (`{"content": id, ...}`, the slow tokenizers' added
    /// tokens such as Phi's whitespace runs): matched in raw text; special when the content is
    /// `<|endoftext|>` or one of `specialNames`.
    static func readAddedTokensJSON(_ url: URL, specialNames: Set<String>) throws -> [(bytes: [UInt8], id: Int, special: Bool, normalized: Bool)] {
        let json = try parseJSON(url)
        guard case .object(let members) = json else {
            throw TokenizerError(file: url, problem: "the file is \(json.kind), expected an object {\"token\": id, ...}")
        }
        return try members.map { key, value in
            guard !key.isEmpty, let id = value.int, id >= 0, id < TokenizerDefinition.idLimit else {
                throw TokenizerError(file: url, problem: "token \"\(key)\" has id \(value.brief), expected a non-empty token and an integer in [0, 2^31)")
            }
            let special = key == endOfText || specialNames.contains(key)
            return (Array(key.utf8), id, special, !special)
        }
    }
}
