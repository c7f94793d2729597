import Foundation

/// SplitMix64 (Steele, Lea & Flood): a small, fast, seedable 64-bit generator. It expands seeds into
/// `DeterministicRandom`'s state and draws the initial weights (with a Box–Muller normal sampler).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    private var spare: Float?

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    public mutating func nextUnit() -> Double { (Double(next() >> 11) + 1) * 0x1.0p-53 }

    /// Standard normal sample.
    public mutating func nextGaussian() -> Float {
        if let s = spare { spare = nil; return s }
        let u1 = nextUnit(), u2 = nextUnit()
        let r = (-2 * log(u1)).squareRoot()
        spare = Float(r * sin(2 * Double.pi * u2))
        return Float(r * cos(2 * Double.pi * u2))
    }
}
