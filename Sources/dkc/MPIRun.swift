import Core
import Foundation
import MPIShim

/// Exit codes shared by every subcommand (documented in `dkc --help` and the README).
enum ExitStatus {
    static let ok: Int32 = 0
    static let failure: Int32 = 1
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
}

/// Runs `body` on every rank with the world communicator, then finalises MPI.
/// An error on any rank prints its message and brings the whole job down, so nothing hangs.
func withWorld(_ body: (Communicator) throws -> Void) -> Never {
    // Past a file size limit (ulimit -f) a write then fails with EFBIG, reported as a named error,
    // instead of the process being killed by SIGXFSZ with a half-written temporary file.
    signal(SIGXFSZ, SIG_IGN)
    let comm: Communicator
    do {
        comm = try MPICommunicator.world()
    } catch {
        FileHandle.standardError.write(Data("dkc: \(error)\n".utf8))
        exit(ExitStatus.failure)
    }
    do {
        try body(comm)
    } catch let error as CollectiveError {
        // Every rank agreed on this error: end cleanly, rank 0 reports it.
        if comm.isRoot { FileHandle.standardError.write(Data("dkc: \(error.message)\n".utf8)) }
        comm.finalize()
        exit(error.exitCode)
    } catch {
        let code: Int32 = (error as? UserFacingError)?.exitCode ?? ExitStatus.failure
        if comm.size > 1 {
            comm.abort("\(error)", code: code)
        }
        FileHandle.standardError.write(Data("dkc: \(error)\n".utf8))
        comm.finalize()
        exit(code)
    }
    comm.finalize()
    exit(ExitStatus.ok)
}

/// Whether progress may redraw one live line on `fd` instead of printing plain lines.
///
/// A terminal is required, and under an MPI launcher (mpirun, srun) a terminal is not enough: OpenMPI
/// hands each rank a pseudo-terminal even when mpirun's own output goes to a log file, so there the
/// default is plain lines. `DKC_PROGRESS=live` or `DKC_PROGRESS=plain` overrides the choice.
func liveProgress(_ fd: Int32) -> Bool {
    let env = ProcessInfo.processInfo.environment
    switch env["DKC_PROGRESS"] {
    case "live": return true
    case "plain": return false
    default: break
    }
    guard isatty(fd) != 0 else { return false }
    let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_ID"].contains { env[$0] != nil }
    return !launched
}
