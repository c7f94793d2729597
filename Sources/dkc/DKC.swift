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
}
