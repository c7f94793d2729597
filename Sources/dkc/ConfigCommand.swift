import ArgumentParser
import Core
import Foundation

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration.group("config", abstract: "Inspect configurations.", [Show.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a configuration resolved: defaults filled in, paths absolute, as TOML dkc accepts back.",
            discussion: """
            NAME is a built-in name (tiny, gpt2, gpt2-medium, gpt2-pretrained: the files configs/<kind>/NAME.toml) or a \
            path to a TOML file. Without --kind, every kind that has a file of that name is printed \
            (data, train, sweep), each under a comment naming its file. Unknown keys are errors.
            """
        )

        @Argument(help: "Configuration name or file.")
        var name: String

        @Option(help: "Only this kind: \(ConfigSchema.all.map(\.kind).joined(separator: ", ")).")
        var kind: String?

        @Option(name: .customLong("set"), help: "Override a key (TOML value; dotted keys reach a table). Repeatable.")
        var overrides: [String] = []

        func run() throws {
            let schemas = ConfigSchema.all.filter { kind == nil || $0.kind == kind }
            guard !schemas.isEmpty else {
                throw ValidationError("unknown --kind '\(kind!)'; choose one of \(ConfigSchema.all.map(\.kind).joined(separator: ", "))")
            }
            var printed = 0
            try runReporting("config show") {
                for schema in schemas {
                    let file: URL
                    do { file = try ConfigLoader.locate(name, kind: schema.kind) } catch {
                        if kind != nil || name.hasSuffix(".toml") { throw error }
                        continue  // this built-in name has no file of this kind
                    }
                    let resolved = try ConfigLoader.load(schema: schema, file: file, overrides: overrides)
                    if printed > 0 { print("") }
                    print("# \(schema.kind): \(file.path)")
                    print(resolved.tomlText, terminator: resolved.tomlText.hasSuffix("\n") ? "" : "\n")
                    printed += 1
                }
            }
            if printed == 0 {
                let known = ConfigSchema.all.map { "\($0.kind): " + ConfigLoader.availableNames(kind: $0.kind).joined(separator: ", ") }
                FileHandle.standardError.write(Data("dkc config show: no configuration named '\(name)' (\(known.joined(separator: "; ")))\n".utf8))
                throw ExitCode(65)
            }
        }
    }
}
