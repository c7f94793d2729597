import ArgumentParser
import Core
import Foundation

/// `dkc tokenize`: token ids of text (or, with --decode, the text of ids), one JSON array per line,
/// with the tokenizer the project's resolution rule picks (docs/tokenizers.md). Runs on one process.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print token ids of text, one JSON array per line (or decode ids back to text).",
        discussion: """
        The tokenizer: --tokenizer (a tokenizer.json or a folder), else the --model folder's own \
        (tokenizer.json, else vocab.json + merges.txt), else GPT-2's in the cache filled by \
        scripts/fetch-gpt2-tokenizer. Byte-level BPE (GPT-2, Phi) and Llama-style BPE are supported.

        Texts come from --text (repeatable) or, without it, from standard input, one per line (a line \
        ends at \\n; a \\r before it is part of the text). Ids are what the study's tokenizer gives with \
        add_special_tokens=False: nothing is added, and added tokens written in the text (<|endoftext|>, \
        <s>, Phi's runs of spaces) become their ids unless --plain is given (byte-level only). With \
        --add-special-tokens the tokenizer's default call is mirrored (Llama: <s> first).

        With --decode, each input is a JSON array of ids and the output is its text, one line each: \
        for byte-level tokenizers the exact bytes the ids stand for, for Llama the decoder's text \
        (▁ → space, byte fallback, one leading space stripped).

        Examples:
          dkc tokenize --text "Orion Rain Lyndon"        → [5574, 295, 10301, 47309]
          printf 'Hello\\n' | dkc tokenize                → [15496]
          dkc tokenize --decode --text "[15496, 11, 995]" → Hello, world
          dkc tokenize --model models/tinyllama --add-special-tokens --text "Hello"
        """
    )

    @Option(name: .long, help: ArgumentHelp(
        "A tokenizer.json, or a folder with tokenizer.json or vocab.json + merges.txt.",
        discussion: "Wins over --model. Default: the --model folder's tokenizer, else the cache folder filled by scripts/fetch-gpt2-tokenizer.",
        valueName: "path"))
    var tokenizer: String?

    @Option(name: .long, help: ArgumentHelp("A model folder whose tokenizer files to use (tokenizer.json, else vocab.json + merges.txt).", valueName: "dir"))
    var model: String?

    @Option(name: .long, parsing: .unconditionalSingleValue, help: ArgumentHelp("A text to encode (or, with --decode, a JSON id array); repeatable.", valueName: "text"))
    var text: [String] = []

    @Flag(name: .long, help: "Decode JSON arrays of ids to text instead of encoding.")
    var decode = false

    @Flag(name: .long, help: "Read added tokens such as <|endoftext|> in the text as plain characters (byte-level tokenizers only).")
    var plain = false

    @Flag(name: .long, help: "Add the tokens the tokenizer's post-processor adds (Llama: <s> first; GPT-2 and Phi: none).")
    var addSpecialTokens = false

    @Flag(name: .long, help: "With --decode: leave special tokens (<s>, <|endoftext|>) out of the text.")
    var skipSpecialTokens = false

    @Flag(name: .long, help: "With --decode: apply transformers' clean_up_tokenization (\" .\" → \".\" …), as tokenizer_config.json's clean_up_tokenization_spaces asks.")
    var cleanUpSpaces = false

    func validate() throws {
        if decode && (plain || addSpecialTokens) { throw ValidationError("--plain and --add-special-tokens apply to encoding only; drop them or --decode") }
        if !decode && (skipSpecialTokens || cleanUpSpaces) { throw ValidationError("--skip-special-tokens and --clean-up-spaces apply to --decode only") }
        if plain && addSpecialTokens { throw ValidationError("--plain and --add-special-tokens exclude each other") }
    }

    func run() throws {
        try runReporting("tokenize", otherErrors: ExitStatus.dataError) {
            let tok = try TokenizerLoader.resolve(explicit: tokenizer.map { ConfigLoader.absolute($0, relativeTo: ConfigLoader.cwd) },
                                                  model: try model.map { try existingPath($0, option: "--model", folder: true) })
            let byteLevel = tok as? GPT2Tokenizer
            if plain && byteLevel == nil {
                throw TokenizeInputError(place: "--plain", problem: "applies to byte-level tokenizers only; \(tok.vocabFile.path) is not one",
                                         exitCode: ExitStatus.usage)
            }
            let out = FileHandle.standardOutput
            func handle(_ input: String, _ place: String) throws {
                if decode {
                    let ids = try parseIds(input, place: place, tokenizer: tok)
                    if let byteLevel, !skipSpecialTokens, !cleanUpSpaces {
                        out.write(Data(byteLevel.decodeBytes(ids) + [0x0A]))
                    } else {
                        out.write(Data((tok.decode(ids, skipSpecialTokens: skipSpecialTokens, cleanUpSpaces: cleanUpSpaces) + "\n").utf8))
                    }
                } else {
                    let ids = plain ? byteLevel!.encodePlain(input) : tok.encode(input, addSpecialTokens: addSpecialTokens)
                    out.write(Data(("[" + ids.map(String.init).joined(separator: ", ") + "]\n").utf8))
                }
            }
            if !text.isEmpty {
                for (k, t) in text.enumerated() { try handle(t, "--text #\(k + 1)") }
            } else {
                try StandardInputLines.forEach { line, number in try handle(line, "standard input line \(number)") }
            }
        }
    }

    /// `[id, id, ...]` with every id a token of `tokenizer`.
    func parseIds(_ s: String, place: String, tokenizer: any Tokenizer) throws -> [Int] {
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
            guard tokenizer.isToken(id) else {
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
    var exitCode: Int32 = ExitStatus.dataError
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
