import Foundation

/// An order-independent sum of K Float arrays: each term is converted to 64-bit fixed point with one
/// power-of-two scale and added as integers, so any grouping and order of the K terms (over micro-steps
/// and ranks, through any reduction tree) gives the same bits. The deterministic gradient reduction of
/// `dkc train` is built on it.
///
/// Contract: with the scale 2^e chosen by `scale(forMax:terms:)` from a bound M on |x|, every |x| ≤ 2⁶·M
/// converts exactly when |x| · 2^e is an integer (entries within about 2⁻³¹ of M at K ≤ 2⁸) and otherwise
/// rounds to the nearest multiple of 2^−e, i.e. to about M · 2^(−56 + ⌈log₂ K⌉); the K-term sum cannot
/// overflow. An entry beyond 2⁶·M is refused (`add` returns false) so the caller can choose a larger
/// scale and start over.
public final class FixedPointSum {
    public let count: Int
    /// K: how many arrays will be added (on all ranks together).
    public let terms: Int
    /// The accumulator (count Int64), e.g. for an allreduce.
    public let values: UnsafeMutablePointer<Int64>
    /// 2^e of the current sum.
    public private(set) var scale: Double = 1

    public init(count: Int, terms: Int) {
        precondition(count > 0 && terms > 0)
        self.count = count
        self.terms = terms
        values = .allocate(capacity: count)
        values.initialize(repeating: 0, count: count)
    }

    deinit { values.deallocate() }

    /// Headroom of a later term over the bound the scale was chosen for: 2⁶.
    public static let headroom = 64.0

    /// The power of two 2^e with M · 2^e · K · 2⁶ < 2⁶² (M = 1 when it is 0 or not finite).
    public static func scale(forMax m: Float, terms: Int) -> Double {
        let bound = m > 0 && m.isFinite ? Double(m) : 1
        let k = Int(bound.exponent) + 1                  // bound < 2^k
        var r = 0
        while (1 << r) < terms { r += 1 }                // K ≤ 2^r
        return Double(sign: .plus, exponent: 62 - 6 - r - k, significand: 1)
    }

    /// Largest |x| a term may hold at the current scale.
    public var termLimit: Double { 0x1p62 / Double(terms) / scale }

    /// Clears the sum and sets its scale from a bound on the terms' entries.
    public func reset(forMax m: Float) {
        values.update(repeating: 0, count: count)
        scale = Self.scale(forMax: m, terms: terms)
    }

    /// Adds `x` (count Floats) whose largest |entry| is `maxAbs` (`FixedPointSum.maxAbs`). Returns false,
    /// adding nothing, when an entry is beyond the range (or not finite).
    @discardableResult
    public func add(_ x: UnsafePointer<Float>, maxAbs m: Float) -> Bool {
        guard m.isFinite, Double(m) < termLimit else { return false }
        let s = scale, acc = values
        for i in 0..<count { acc[i] &+= Int64((Double(x[i]) * s).rounded(.toNearestOrEven)) }
        return true
    }

    /// Writes sum / divisor (e.g. the mean over K terms) as Floats.
    public func result(into out: UnsafeMutablePointer<Float>, dividedBy divisor: Double) {
        let inv = 1 / (scale * divisor)
        for i in 0..<count { out[i] = Float(Double(values[i]) * inv) }
    }

    /// max |x[i]|, NaN when an entry is NaN.
    public static func maxAbs(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var mv = SIMD8<Float>(repeating: 0)
        var nanLanes = SIMDMask<SIMD8<Int32>>(repeating: false)
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            nanLanes .|= v .!= v
            mv = pointwiseMax(mv, pointwiseMax(v, -v))
            i += 8
        }
        var nan = any(nanLanes)
        var m = mv.max()
        while i < n {
            let a = abs(x[i])
            if a.isNaN { nan = true }
            m = max(m, a)
            i += 1
        }
        return nan ? .nan : m
    }
}
