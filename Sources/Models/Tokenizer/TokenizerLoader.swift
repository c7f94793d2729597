import Foundation
import Support

/// Where dkc finds a tokenizer, and which kind a file describes. The one resolution rule
/// (docs/tokenizers.md) every command should use:
///
/// 1. an explicit path (a `--tokenizer` option or config key): a tokenizer.json file, or a folder;
/// 2. else the model folder, when it holds tokenizer.json or vocab.json + merges.txt;
/// 3. else GPT-2's tokenizer in the cache (`scripts/fetch-gpt2-tokenizer`).
///
/// An explicit path that is the cache folder (`Paths.gpt2Tokenizer`, the default of the `tokenizer`
/// config keys) is step 3, so its absence says how to fetch it.
///
/// In a folder, tokenizer.json wins over vocab.json + merges.txt (+ added_tokens.json); both are
/// read with the tokenizer_config.json beside them.
public enum TokenizerLoader {
    /// The tokenizer by the resolution rule above.
    /// - Throws: `TokenizerError` naming the file at fault, or saying how to install GPT-2's tokenizer.
    public static func resolve(explicit: URL?, model: URL?) throws -> any Tokenizer {
        if let explicit {
            let isCache = explicit.standardizedFileURL.path == Paths.gpt2Tokenizer.standardizedFileURL.path
            return isCache ? try GPT2Tokenizer.loadDefault() : try load(path: explicit)
        }
        if let model, hasTokenizerFiles(model) { return try load(directory: model) }
        return try GPT2Tokenizer.loadDefault()
    }

    /// The rule above for code that needs GPT-2's byte-level BPE (data generation, training, the circuit
    /// commands and the sweep).
    /// - Throws: `TokenizerError` when the files resolve to another kind of tokenizer, naming what was found.
    public static func resolveGPT2(explicit: URL?, model: URL?) throws -> GPT2Tokenizer {
        let t = try resolve(explicit: explicit, model: model)
        guard let gpt2 = t as? GPT2Tokenizer else {
            let from = explicit ?? model ?? Paths.gpt2Tokenizer
            throw TokenizerError(file: from, problem: "is a \(type(of: t)) tokenizer; this needs a byte-level BPE (GPT-2 style) tokenizer",
                                 fix: "give the tokenizer of a GPT-2 model (vocab.json + merges.txt, or a ByteLevel tokenizer.json)")
        }
        return gpt2
    }

    /// Whether `folder` holds tokenizer.json, or vocab.json and merges.txt.
    public static func hasTokenizerFiles(_ folder: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder.appendingPathComponent("tokenizer.json").path)
            || (fm.fileExists(atPath: folder.appendingPathComponent("vocab.json").path)
                && fm.fileExists(atPath: folder.appendingPathComponent("merges.txt").path))
    }

    /// A tokenizer.json file or a folder.
    public static func load(path: URL) throws -> any Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isDir) else {
            throw TokenizerError(file: path, problem: "no such file or folder", fix: "give a tokenizer.json or a model folder")
        }
        return isDir.boolValue ? try load(directory: path) : try load(tokenizerJSON: path)
    }

    /// A folder: its tokenizer.json, else its vocab.json + merges.txt (byte-level BPE).
    public static func load(directory: URL) throws -> any Tokenizer {
        let json = directory.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json.path) { return try load(tokenizerJSON: json) }
        return try GPT2Tokenizer(directory: directory)
    }

    /// A tokenizer.json (and the tokenizer_config.json beside it): byte-level BPE when its
    /// pre-tokenizer is ByteLevel, Llama-style BPE when it has none.
    public static func load(tokenizerJSON url: URL) throws -> any Tokenizer {
        let definition = try TokenizerDefinition.read(url)
        let config = try TokenizerConfigFile.read(directory: url.deletingLastPathComponent())
        switch definition.preTokenizer {
        case .byteLevel: return try GPT2Tokenizer(definition: definition, config: config)
        case .none: return try SentencePieceBPETokenizer(definition: definition, config: config)
        }
    }
}
