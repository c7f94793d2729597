import ArgumentParser
import Core
import Foundation

/// `dkc data …`: the synthetic corpus.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration.group("data", abstract: "Generate the synthetic biography corpus and its evaluation sets.",
                                                          [DataGenerate.self])
}

/// `dkc data generate --config NAME|FILE [--set key=value ...] --out DIR [--force]`
struct DataGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write entities, biographies, test and circuit sets for one synthetic world.",
        discussion: """
        Writes new.jsonl, revised.jsonl, train.jsonl, validation.jsonl, base.jsonl, test.jsonl, \
        circuit_<n>/<model_name>/<task>.jsonl and manifest.json into --out. The folder appears only \
        when complete (written as <out>.tmp-<pid>, then renamed). The same configuration gives \
        byte-identical files on every machine. By default (test_set = "circuit", as the study) the test \
        people of each type × bucket cell are that cell's circuit sample; test_set = "independent" draws \
        them separately (docs/test-set.md). With forget.n_new > 0 it also writes the forgetting \
        experiment's sets into forget/: new.jsonl, train.jsonl, replay.jsonl, and conflict.jsonl and \
        validation.jsonl when asked (docs/forgetting.md).

        Config keys (configs/data/*.toml; override with --set key=value, value in TOML syntax):
        \(ConfigSchema.data.keys.map { "  \($0.name): \($0.help)" }.joined(separator: "\n"))
        Keys of the [forget] table (--set forget.key=value):
        \((ConfigSchema.data.section("forget")?.ownKeys ?? []).map { "  forget.\($0.name): \($0.help)" }.joined(separator: "\n"))
        """
    )

    @OptionGroup var configOptions: ConfigOptions<DataConfigKind>

    @Option(name: .long, help: "The output folder.")
    var out: String

    @Flag(name: .long, help: "Replace an existing output folder.")
    var force = false

    func run() throws {
        try runReporting("data generate") {
            let started = Date()
            let dataConfig = try DataConfig.load(file: try configOptions.file(), overrides: configOptions.overrides)
            let outURL = ConfigLoader.absolute(out, relativeTo: ConfigLoader.cwd)
            let commandLine = Provenance.quote(CommandLine.arguments)
            let result = try DataGeneration.run(config: dataConfig, out: outURL, force: force, commandLine: commandLine,
                                                makeEncoder: makeTokenizer)
            let seconds = Date().timeIntervalSince(started)
            print("""
            wrote \(outURL.path) in \(String(format: "%.1f", seconds)) s
              entities: \(result.world.new.count) new, \(result.world.revised.count) revised
              texts: \(result.trainCount) train, \(result.validationCount) validation, \(result.baseCount) base
              files: \(result.files.map(\.path).joined(separator: ", ")), manifest.json
            """)
        }
    }
}

/// The tokenizer the circuit sets are measured with (config key `tokenizer`, by the one resolution rule:
/// a folder's tokenizer.json or vocab.json + merges.txt, a tokenizer.json file, or the default fetched GPT-2
/// copy when it is `Paths.gpt2Tokenizer`): equal-token-length corruption and label ids use the family's own.
func makeTokenizer(_ directory: URL) throws -> TextEncoder {
    try TokenizerLoader.resolve(explicit: directory, model: nil)
}

