import CKernels

/// The C kernels (`Sources/CKernels`): compiled once per x86-64 level, the copy the loader picked for this CPU.
public enum NativeKernels {
    /// "avx512", "avx2" or "baseline" (the `kernels_isa` of the bench lines and `dkc doctor`).
    public static var instructionSet: String { String(cString: dkc_kernels_isa()) }
}
