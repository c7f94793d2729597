import COpenBLAS

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
}
