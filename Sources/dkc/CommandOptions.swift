import ArgumentParser
import Core
import Foundation

/// Options several subcommands share, declared once (swift-argument-parser option groups), and the
/// one rule by which every subcommand reports an error.

/// Runs a command body; a thrown error becomes "dkc <name>: <message>" on standard error and an exit
/// code: the error's own for a `UserFacingError` (65 bad input, 64 usage, 1 runtime), `otherErrors`
/// for any other error (a runtime failure unless the command reads only input files), and an
/// `ExitCode` passes through unchanged.
func runReporting(_ name: String, otherErrors: Int32 = ExitStatus.failure, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as UserFacingError {
        FileHandle.standardError.write(Data("dkc \(name): \(error)\n".utf8))
        throw ExitCode(error.exitCode)
    } catch {
        FileHandle.standardError.write(Data("dkc \(name): \(error)\n".utf8))
        throw ExitCode(otherErrors)
    }
}

extension CommandConfiguration {
    /// A command that only gathers subcommands (`dkc config`, `dkc data`, `dkc bench`).
    static func group(_ name: String, abstract: String, _ subcommands: [ParsableCommand.Type]) -> CommandConfiguration {
        CommandConfiguration(commandName: name, abstract: abstract, subcommands: subcommands)
    }
}

/// The kind of configuration a command reads: the folder `configs/<kind>/` of built-in names.
protocol ConfigKind {
    static var kind: String { get }
}

enum DataConfigKind: ConfigKind { static let kind = "data" }
enum TrainConfigKind: ConfigKind { static let kind = "train" }
enum SweepConfigKind: ConfigKind { static let kind = "sweep" }

/// `--config NAME|FILE` and repeatable `--set key=value` of the commands driven by a configuration
/// file (docs/configs.md).
struct ConfigOptions<Kind: ConfigKind>: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(ConfigOptions.configHelp))
    var config: String

    @Option(name: .customLong("set"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Override a config key: key=value, value in TOML syntax (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    /// The configuration file `--config` names.
    func file() throws -> URL { try ConfigLoader.locate(config, kind: Kind.kind) }

    private static var configHelp: String {
        let names = ConfigLoader.availableNames(kind: Kind.kind)
        let list = names.isEmpty ? "" : " (\(names.joined(separator: ", ")))"
        return "A config name in configs/\(Kind.kind)/\(list) or a path to a .toml file."
    }
}

/// The result file a circuit command writes and the JSON file it may write beside it: the table's name and
/// the side file's option and help.
protocol ResultFileKind {
    /// The table in the NetCDF file: "scores", "circuits", "acquisition".
    static var table: String { get }
    /// The side file's option, without dashes ("json", "predictions"), and what it holds.
    static var sideOption: String { get }
    static var sideHelp: String { get }
}

enum ScoresFileKind: ResultFileKind {
    static let table = "scores", sideOption = "json", sideHelp = "Also write the scored graph in the study's JSON layout."
}
enum CircuitsFileKind: ResultFileKind {
    static let table = "circuits", sideOption = "predictions", sideHelp = "Also write per-entity test results (JSON lines)."
}
enum AcquisitionFileKind: ResultFileKind {
    static let table = "acquisition", sideOption = "predictions"
    static let sideHelp = "Also write one JSON line per entity and attribute (the study's prediction rows)."
}

/// `--out` (the NetCDF result file) and the optional side file of `discover` (`--json`), `evaluate` and
/// `predict` (`--predictions`).
struct ResultOutputOptions<Kind: ResultFileKind>: ParsableArguments {
    @Option(help: ArgumentHelp("The \(Kind.table) file to write (NetCDF)."))
    var out: String

    @Option(name: .customLong(Kind.sideOption), help: ArgumentHelp(Kind.sideHelp, valueName: Kind.sideOption))
    var side: String?

    /// Both paths, absolute; the folder of each must exist.
    func urls() throws -> (out: URL, side: URL?) {
        (try outputPath(out, option: "--out"), try side.map { try outputPath($0, option: "--" + Kind.sideOption) })
    }
}

/// `discover`, `evaluate` and `predict`: a model folder in (`modelOptions`), a result file and maybe a side file
/// out (`output`). `run()` resolves and checks those paths, then runs the command's own part, every error
/// reported as `runReporting` reports it.
protocol ResultCommand: ParsableCommand {
    associatedtype Kind: ResultFileKind
    var modelOptions: ModelOptions { get }
    var output: ResultOutputOptions<Kind> { get }
    /// The command with its model folder and output paths checked (`side`: the side file, when asked for).
    func run(model: URL, output: URL, side: URL?) throws
}

extension ResultCommand {
    func run() throws {
        try runReporting(Self._commandName) {
            let model = try modelOptions.folder()
            let (out, side) = try output.urls()
            try run(model: model, output: out, side: side)
        }
    }
}

/// `--model`, `--tokenizer` and `--threads` of the single-process circuit commands.
struct ModelOptions: ParsableArguments {
    @Option(help: "The model folder (config.json + model.safetensors).")
    var model: String

    @Option(help: "Tokenizer folder (default: the model folder's tokenizer.json, or vocab.json + merges.txt, else GPT-2's).")
    var tokenizer: String?

    @Option(help: "OpenBLAS threads (default: as the environment sets).")
    var threads: Int?

    /// Applies `--threads` and returns the checked model folder.
    func folder() throws -> URL {
        if let threads { BLAS.setThreads(threads) }
        return try modelFolder(model)
    }
}

/// `--tokenizer` and `--pools` of the benchmarks that build their own prompts (bench discover, bench cell).
struct BenchPromptOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Folder with GPT-2's vocab.json + merges.txt (default: the cache folder of scripts/fetch-gpt2-tokenizer).",
                               valueName: "dir"))
    var tokenizer: String?

    @Option(help: ArgumentHelp("Pools folder the names and cities are drawn from (default: data/pools of the source checkout).",
                               valueName: "dir"))
    var pools: String?

    /// The tokenizer, by the project's one resolution rule (docs/tokenizers.md).
    func loadTokenizer() throws -> GPT2Tokenizer {
        try TokenizerLoader.resolveGPT2(explicit: tokenizer.map { URL(fileURLWithPath: $0) }, model: nil)
    }

    var poolFolder: URL { pools.map { URL(fileURLWithPath: $0) } ?? Paths.sourceRoot.appendingPathComponent("data/pools") }
}

/// The usage error for the first of `options` below `minimum`: "--repeats must be at least 1" ("--warmup must be 0 or
/// more"), with the study's own value where it has one. For the numeric options of the bench commands' `validate()`.
func requireAtLeast(_ minimum: Int, _ options: KeyValuePairs<String, Int>) throws {
    let studyValues = ["--circuit-n": 300, "--ig-steps": 5]
    for (name, value) in options where value < minimum {
        let bound = minimum == 0 ? "0 or more" : "at least \(minimum)"
        throw ValidationError("\(name) must be \(bound)" + (studyValues[name].map { " (the study uses \($0))" } ?? ""))
    }
}

/// The step options `dkc bench model` and `dkc bench train` share.
struct BenchStepOptions: ParsableArguments {
    @Option(help: "Timed steps per config.")
    var repeats: Int = 5

    @Option(help: "Untimed warm-up steps per config.")
    var warmup: Int = 2

    @Option(name: .customLong("batch-size"), help: "Sequences per step on each rank (bench train: per micro-step).")
    var batchSize: Int = 8

    @Option(name: .customLong("seq-len"), help: "Tokens per sequence (at most 1024).")
    var seqLen: Int = 128

    func validate() throws {
        try requireAtLeast(1, ["--repeats": repeats, "--batch-size": batchSize])
        try requireAtLeast(0, ["--warmup": warmup])
        guard (2...1024).contains(seqLen) else { throw ValidationError("--seq-len must be in 2...1024 (the configs' n_positions)") }
    }
}
