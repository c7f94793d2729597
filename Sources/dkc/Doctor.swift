import ArgumentParser
import Core
import Foundation
import MPIShim

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what a user debugging a cluster needs: versions, ranks, hosts, BLAS, paths.",
        discussion: "Under mpirun every rank reports one line, gathered to rank 0 and printed in rank order."
    )

    func run() throws {
        withWorld { comm in
            let env = ProcessInfo.processInfo.environment
            let line = "rank \(comm.rank)/\(comm.size) host=\(MPICommunicator.processorName()) pid=\(getpid()) " +
                "blas_core=\(BLAS.coreName) blas_threads=\(BLAS.threads) kernels_isa=\(NativeKernels.instructionSet) " +
                "OPENBLAS_CORETYPE=\(env["OPENBLAS_CORETYPE"] ?? "-") OPENBLAS_NUM_THREADS=\(env["OPENBLAS_NUM_THREADS"] ?? "-") " +
                "OPENBLAS_THREAD_TIMEOUT=\(env["OPENBLAS_THREAD_TIMEOUT"] ?? "-")"
            let lines = try comm.gather(string: line)
            guard comm.isRoot else { return }
            let fm = FileManager.default
            func mark(_ u: URL) -> String { fm.fileExists(atPath: u.path) ? "\(u.path) (present)" : "\(u.path) (missing)" }
            print("""
            dkc:        \(DKCVersion.version) (commit \(DKCVersion.gitCommit))
            MPI:        \(MPICommunicator.libraryVersion()), world size \(comm.size)
            NetCDF:     \(NetCDF.libraryVersion)
            OpenBLAS:   core \(BLAS.coreName), \(BLAS.threads) thread(s)
            tokenizer:  \(mark(Paths.gpt2Tokenizer))
            fixtures:   \(mark(Paths.fixtures))
            ranks:
            """)
            for l in lines { print("  " + l) }
        }
    }
}
