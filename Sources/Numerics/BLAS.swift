import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Facts about, and control of, the OpenBLAS library every matrix product goes through.
public enum BLAS {
    /// The kernel family OpenBLAS chose (`openblas_get_corename`), e.g. "Zen" or "Haswell".
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// Threads OpenBLAS uses for one call.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// The `OPENBLAS_THREAD_TIMEOUT` dkc runs with unless the environment sets one: OpenBLAS's idle worker threads
    /// spin, calling `sched_yield`, for 2^timeout cycles after each product before they sleep (its default, 28, is
    /// about 0.1 s). Between products dkc runs its own kernels on the same cores, so a long spin takes CPU from
    /// them: a paper-size GPT-2 cell spent a tenth of its CPU time in the kernel's scheduler. 2^12 cycles is a
    /// few microseconds; measured in docs/performance.md ("OpenBLAS's idle threads").
    public static let idleSpinExponent = 12

    /// Restarts OpenBLAS's thread pool with `OPENBLAS_THREAD_TIMEOUT` = `idleSpinExponent` when the environment
    /// does not set it (the library reads the variable once, when it is loaded). Call before any threaded work;
    /// returns the timeout in force, or nil where this OpenBLAS cannot be told (its pool then keeps its own).
    @discardableResult
    public static func applyIdleSpin() -> Int? {
        if let set = getenv("OPENBLAS_THREAD_TIMEOUT") { return Int(String(cString: set)) }
        // Both entry points are exported by OpenBLAS's pthreads build; another build keeps its default.
        guard let readEnv = dlsym(nil, "openblas_read_env"), let shutdown = dlsym(nil, "blas_thread_shutdown_") else { return nil }
        setenv("OPENBLAS_THREAD_TIMEOUT", String(idleSpinExponent), 0)
        unsafeBitCast(readEnv, to: (@convention(c) () -> Void).self)()
        // The next threaded product starts the pool again, reading the new timeout.
        _ = unsafeBitCast(shutdown, to: (@convention(c) () -> Int32).self)()
        return idleSpinExponent
    }
}
