/// Unaligned 8-lane loads and stores for the Swift kernels' inner loops (LayerNorm, RMSNorm, AdamW, the attribution
/// norm gradients). The exponentials (softmax, cross-entropy, GELU, SwiGLU) are in C (`CKernels`): one range
/// reduction and polynomial, compiled per x86-64 level.
public enum FastMath {
    public typealias V8 = SIMD8<Float>

    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }

    @inlinable @inline(__always)
    public static func store(_ v: V8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self) }
}
