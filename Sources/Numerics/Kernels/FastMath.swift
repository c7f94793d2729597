/// Vectorised exp and tanh for the kernels' inner loops, 8 lanes at a time.
///
/// `exp` uses Cody–Waite range reduction x = n·ln2 + r, |r| ≤ ln2/2, a degree-7 polynomial for e^r and a
/// bit-level 2ⁿ; relative error ≤ 2 ulp on [-87.3, 88]; inputs are clamped to that range, so
/// very negative inputs give ~1e-38 instead of 0 (harmless in a softmax sum). Only +, −, × and bit
/// operations are used, so it vectorises on every x86-64 (no FMA or SSE4.1 rounding needed).
public enum FastMath {
    public typealias V8 = SIMD8<Float>

    @inlinable @inline(__always)
    public static func exp(_ x: V8) -> V8 {
        // Clamp with masked replacement (the generic pointwiseMin/Max do not inline into vector code).
        var xc = x
        xc.replace(with: V8(repeating: -87.33654), where: xc .< V8(repeating: -87.33654))
        xc.replace(with: V8(repeating: 88), where: xc .> V8(repeating: 88))
        // Round x·log2(e) to the nearest integer with the 1.5·2²³ trick: its low mantissa bits hold n.
        let magic = V8(repeating: 12_582_912)
        let t = xc * V8(repeating: 1.442_695_04) + magic
        let n = t - magic
        let r = xc - n * V8(repeating: 0.693_359_375) - n * V8(repeating: -2.121_944_4e-4)
        let r2 = r * r
        var p = V8(repeating: 1.987_569_15e-4)
        p = p * r + V8(repeating: 1.398_199_95e-3)
        p = p * r + V8(repeating: 8.333_451_9e-3)
        p = p * r + V8(repeating: 4.166_579_6e-2)
        p = p * r + V8(repeating: 1.666_666_55e-1)
        p = p * r + V8(repeating: 5.000_000_1e-1)
        p = p * r2 + r + V8(repeating: 1)
        let bits = (unsafeBitCast(t, to: SIMD8<UInt32>.self) &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V8.self)
    }

    /// tanh(x) = 1 − 2 / (e^{2x} + 1): absolute error ≲ 1.5e-7.
    @inlinable @inline(__always)
    public static func tanh(_ x: V8) -> V8 {
        let e = exp(x + x)
        return V8(repeating: 1) - V8(repeating: 2) / (e + V8(repeating: 1))
    }

    /// Scalar exp through the vector path (for loop tails).
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V8(repeating: x))[0] }

    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }

    @inlinable @inline(__always)
    public static func store(_ v: V8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self) }
}
