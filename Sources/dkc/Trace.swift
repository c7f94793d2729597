import ArgumentParser
import Core
import Foundation

/// `dkc trace`: one forward pass of a checkpoint, printed as `hook-name shape sum` lines with TransformerLens
/// hook names, so a user can find the first activation where dkc and a Python run part.
struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print `hook-name shape sum` for every activation of one forward pass (TransformerLens hook names).",
        discussion: """
        Runs the model of --model (a Hugging Face GPT-2 folder: config.json + model.safetensors) on the token ids of \
        --text (repeatable: several texts form one batch, right-padded with token 50256) and prints, in computation \
        order, one line per activation: its TransformerLens hook name, its shape and the sum of its values (in double \
        precision) over real positions only, padded positions skipped. The last line, `logits`, is the model output. \
        Standard output holds nothing else, so two traces can be compared with diff.

        To compare with TransformerLens, load the same folder with fold_ln=False, center_writing_weights=False, \
        center_unembed=False and fold_value_biases=False (dkc's plain model keeps the value bias in hook_v and \
        hook_z), run `run_with_cache` on the same ids (with BOS when --bos is given) and print, for each hook \
        name, the cached tensor's shape and its sum in float64. hook_q/k/v and hook_z are [batch, pos, head, \
        d_head]; hook_pattern is [batch, head, query, key].
        """
    )

    @Option(help: ArgumentHelp("Folder of the checkpoint: config.json + model.safetensors.", valueName: "dir"))
    var model: String

    @Option(name: .long, parsing: .unconditionalSingleValue, help: ArgumentHelp("A text to run (repeatable: one batch row each).", valueName: "text"))
    var text: [String] = []

    @Flag(help: "Put the BOS token (50256) before each text, as TransformerLens's to_tokens does by default.")
    var bos = false

    @Option(help: ArgumentHelp("Folder with vocab.json + merges.txt or tokenizer.json (default: --model when it has them, "
                               + "else the cache folder of scripts/fetch-gpt2-tokenizer).", valueName: "dir"))
    var tokenizer: String?

    @Option(help: "Threads for OpenBLAS and dkc's kernels.")
    var threads: Int = 1

    func validate() throws {
        guard !text.isEmpty else { throw ValidationError("give at least one --text") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        try runReporting("trace", otherErrors: ExitStatus.dataError) {
            BLAS.setThreads(threads)
            let folder = URL(fileURLWithPath: model)
            try requireGPT2(folder, command: "trace")
            let arena = try HFCheckpoint.load(folder: folder)
            let gpt2 = GPT2(params: arena, threads: threads)
            let tok = try loadTokenizer(modelFolder: folder)
            let rows = text.map { (bos ? [gpt2.config.bosTokenId] : []) + tok.encode($0) }
            for (k, r) in rows.enumerated() where r.isEmpty {
                throw TraceInputError("--text #\(k + 1) has no tokens: give a non-empty text or add --bos")
            }
            let out = try gpt2.trace(rows: rows).map(\.text)
            FileHandle.standardError.write(Data("dkc trace: token ids \(rows)\n".utf8))
            print(out.joined(separator: "\n"))
        }
    }

    /// The tokenizer of `--tokenizer`, else the model folder's, else the default one.
    func loadTokenizer(modelFolder: URL) throws -> GPT2Tokenizer {
        try TokenizerLoader.resolveGPT2(explicit: tokenizer.map { URL(fileURLWithPath: $0) }, model: modelFolder)
    }
}

/// Input `dkc trace` cannot run.
struct TraceInputError: UserFacingError {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
