import ArgumentParser
import Core
import Foundation

/// `dkc tokenize`: GPT-2 token ids of text (or, with --decode, the text of ids), one JSON array per line.
/// Runs on one process; it needs no MPI.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print GPT-2 token ids of text, one JSON array per line (or decode ids back to text).",
        discussion: """
        Texts come from --text (repeatable) or, without it, from standard input, one per line (a line \
        ends at \\n; a \\r before it is part of the text). Ids are what the study's tokenizer gives with \
        add_special_tokens=False: nothing is added, and the literal text <|endoftext|> becomes 50256 \
        unless --plain is given.

        With --decode, each input is a JSON array of ids and the output is its text, written as the \
        exact bytes the ids stand for, one line each.

        Examples:
          dkc tokenize --text "Orion Rain Lyndon"        → [5574, 295, 10301, 47309]
          printf 'Hello\\n' | dkc tokenize                → [15496]
          dkc tokenize --decode --text "[15496, 11, 995]" → Hello, world
        """
    )

    @Option(name: .long, help: ArgumentHelp(
        "Folder with vocab.json + merges.txt, or tokenizer.json (a Hugging Face GPT-2 model folder works).",
        discussion: "Default: the cache folder filled by scripts/fetch-gpt2-tokenizer.",
        valueName: "dir"))
    var tokenizer: String?

    @Option(name: .long, parsing: .unconditionalSingleValue, help: ArgumentHelp("A text to encode (or, with --decode, a JSON id array); repeatable.", valueName: "text"))
    var text: [String] = []

    @Flag(name: .long, help: "Decode JSON arrays of ids to text instead of encoding.")
    var decode = false

    @Flag(name: .long, help: "Read <|endoftext|> in the text as plain characters, not as token 50256.")
    var plain = false

    func validate() throws {
        if decode && plain { throw ValidationError("--plain applies to encoding only; drop it or --decode") }
    }

    func run() throws {
        do {
            let tok = try tokenizer.map { try GPT2Tokenizer(directory: URL(fileURLWithPath: $0)) } ?? GPT2Tokenizer.loadDefault()
            let out = FileHandle.standardOutput
            func handle(_ input: String, _ place: String) throws {
                if decode {
                    let ids = try parseIds(input, place: place, tokenizer: tok)
                    out.write(Data(tok.decodeBytes(ids) + [0x0A]))
                } else {
                    let ids = plain ? tok.encodePlain(input) : tok.encode(input)
                    out.write(Data(("[" + ids.map(String.init).joined(separator: ", ") + "]\n").utf8))
                }
            }
            if !text.isEmpty {
                for (k, t) in text.enumerated() { try handle(t, "--text #\(k + 1)") }
            } else {
                try StandardInputLines.forEach { line, number in try handle(line, "standard input line \(number)") }
            }
        } catch {
            FileHandle.standardError.write(Data("dkc tokenize: \(error)\n".utf8))
            throw ExitCode((error as? UserFacingError)?.exitCode ?? ExitStatus.dataError)
        }
    }

    /// `[id, id, ...]` with every id a token of `tokenizer`.
    func parseIds(_ s: String, place: String, tokenizer: GPT2Tokenizer) throws -> [Int] {
        let body = s.trimmingCharacters(in: .whitespaces)
        guard body.hasPrefix("["), body.hasSuffix("]") else {
            throw TokenizeInputError(place: place, problem: "expected a JSON array of ids such as [15496, 11], got \"\(s)\"")
        }
        let inner = body.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
        if inner.isEmpty { return [] }
        return try inner.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let t = item.trimmingCharacters(in: .whitespaces)
            guard let id = Int(t) else {
                throw TokenizeInputError(place: place, problem: "\"\(t)\" is not an integer id")
            }
            guard tokenizer.bytes(ofToken: id) != nil else {
                throw TokenizeInputError(place: place, problem: "id \(id) is not a token (ids run from 0 to \(tokenizer.vocabSize - 1))")
            }
            return id
        }
    }
}

/// Bad input to `dkc tokenize --decode`, naming where it was read.
struct TokenizeInputError: UserFacingError {
    let place: String
    let problem: String
    var description: String { "\(place): \(problem)" }
}

/// Standard input split at \n (the \n removed, nothing else), as it arrives, so a pipe is answered
/// line by line. Each line must be UTF-8.
enum StandardInputLines {
    static func forEach(_ body: (String, Int) throws -> Void) throws {
        let input = FileHandle.standardInput
        var pending: [UInt8] = []
        var number = 0
        func emit(_ bytes: ArraySlice<UInt8>) throws {
            number += 1
            guard let line = String(validating: bytes, as: UTF8.self) else {
                throw TokenizeInputError(place: "standard input line \(number)", problem: "not valid UTF-8")
            }
            try body(line, number)
        }
        while true {
            let chunk = input.availableData
            if chunk.isEmpty { break }
            pending.append(contentsOf: chunk)
            var start = 0
            while let nl = pending[start...].firstIndex(of: 0x0A) {
                try emit(pending[start..<nl])
                start = nl + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { try emit(pending[...]) }
    }
}
