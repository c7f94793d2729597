import ArgumentParser
import Core
import Foundation
import MPIShim

@main
struct DKC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dkc",
        abstract: "Knowledge circuits of GPT-2 during continual pre-training, on CPUs over MPI.",
        discussion: """
        Stages: generate the synthetic corpus (data), train GPT-2 on it (train), find and evaluate \
        the knowledge circuit of every checkpoint (discover, evaluate, sweep), and analyse how the \
        circuits evolve (analyze). Every command runs as one rank without mpirun and as many under it.

        Exit codes: 0 success (or stopped cleanly, resumable), 1 runtime failure, 64 usage error, \
        65 bad input data or configuration.
        """,
        version: DKCVersion.source,
        subcommands: [
            Doctor.self,
            ConfigCommand.self,
            Tokenize.self,
            Trace.self,
            DataCommand.self,
            Train.self,
            Discover.self,
            Evaluate.self,
            Predict.self,
            Components.self,
            Sweep.self,
            Analyze.self,
            Bench.self,
        ]
    )

    /// Parses and runs the command line. A usage error (a bad option or value, or a command's `validate()`
    /// failing: exit 64) is reported as every other error is (`runReporting`): "dkc <command>: message" on
    /// standard error, then the usage. Help, version and the errors a command reported itself pass through.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        BLAS.applyIdleSpin()
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            guard !(error is ExitCode), exitCode(for: error) == .validationFailure else { exit(withError: error) }
            let full = fullMessage(for: error)
            let text = full.hasPrefix("Error: ") ? "\(commandPath(arguments)): " + full.dropFirst("Error: ".count) : full
            FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
    }

    /// "dkc" and the subcommand names at the start of `arguments` ("dkc bench cell").
    static func commandPath(_ arguments: [String]) -> String {
        var names = ["dkc"]
        var current: ParsableCommand.Type = DKC.self
        for word in arguments {
            guard let next = current.configuration.subcommands.first(where: { $0._commandName == word }) else { break }
            names.append(word)
            current = next
        }
        return names.joined(separator: " ")
    }
}
