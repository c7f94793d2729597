/// The one random number generator behind every random choice of `dkc data generate`.
///
/// Contract: the same seed and stream name give the same sequence of values on every machine and
/// every build. To get there it uses only integer arithmetic and IEEE-754 double operations whose
/// results are exactly specified (+, −, ×, ÷, rounding); it never calls the C library's `log` or
/// Foundation's random sources, whose results may differ between platforms.
///
/// Generator: xoshiro256** (Blackman & Vigna), 256-bit state, period 2^256 − 1. A named stream's
/// state is filled by four SplitMix64 outputs started at `seed ^ FNV-1a-64(name)`, so streams for
/// different purposes ("names", "texts", "validation", …) are independent: changing how many
/// values one of them consumes (say, `validation_size`) changes nothing drawn from another.
public struct DeterministicRandom {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// The stream `name` of generator `seed`.
    public init(seed: UInt64, stream name: String) {
        var sm = SplitMix64(seed: seed ^ DeterministicRandom.fnv1a64(name))
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }  // the all-zero state is a fixed point
    }

    /// FNV-1a, 64-bit, over the UTF-8 bytes of `text`.
    public static func fnv1a64(_ text: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    /// The next 64 uniformly distributed bits (xoshiro256**).
    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    /// A uniform double in [0, 1): the top 53 bits of `next()` times 2^-53 (exact).
    @inline(__always)
    public mutating func uniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform integer in 0 ..< n, without bias (Lemire's multiply-and-reject method).
    @inline(__always)
    public mutating func below(_ n: Int) -> Int {
        precondition(n > 0, "DeterministicRandom.below needs n > 0")
        let range = UInt64(n)
        var m = next().multipliedFullWidth(by: range)
        if m.low < range {
            let threshold = (0 &- range) % range
            while m.low < threshold {
                m = next().multipliedFullWidth(by: range)
            }
        }
        return Int(m.high)
    }

    /// One element of `items`, uniformly.
    @inline(__always)
    public mutating func choice<T>(_ items: [T]) -> T {
        items[below(items.count)]
    }

    /// An exponential variate with the given scale (mean; scale = 1/λ): −scale · ln(1 − u),
    /// u uniform in [0, 1), so 1 − u is in (0, 1] and exact. Uses `DeterministicRandom.log`.
    public mutating func exponential(scale: Double) -> Double {
        let v = 1.0 - uniform()
        return -DeterministicRandom.log(v) * scale
    }

    /// Shuffles `items` in place (Fisher–Yates, from the last position down).
    public mutating func shuffle<T>(_ items: inout [T]) {
        var i = items.count - 1
        while i > 0 {
            let j = below(i + 1)
            if i != j { items.swapAt(i, j) }
            i -= 1
        }
    }

    /// `k` distinct indices of 0 ..< n in the order drawn (a partial Fisher–Yates shuffle from the
    /// front), like Python's `random.sample(range(n), k)` in meaning (not in the exact values).
    public mutating func sample(_ n: Int, _ k: Int) -> [Int] {
        precondition(k >= 0 && k <= n, "DeterministicRandom.sample needs 0 <= k <= n")
        var idx = Array(0..<n)
        for i in 0..<k {
            let j = i + below(n - i)
            if i != j { idx.swapAt(i, j) }
        }
        return Array(idx[0..<k])
    }

    /// Natural logarithm of a positive finite double, from exactly specified operations only:
    /// x = (1 + f) · 2^e with 1 + f in [√½, √2); with s = f / (2 + f), ln(1 + f) = 2·atanh(s)
    /// = f − s·(f − R), R = 2s²/3 + 2s⁴/5 + … + 2s²⁶/27 (|s| ≤ 0.1716, truncation < 1e-21); f is
    /// exact, so only the small correction s·(f − R) carries rounding error; e · ln 2 is added in
    /// two parts. Relative error below about 1 ulp; what matters here is that every machine gets
    /// the same bits.
    public static func log(_ x: Double) -> Double {
        precondition(x > 0 && x.isFinite, "DeterministicRandom.log needs a positive finite argument")
        var e = Int(x.exponent)
        var m = x.significand           // [1, 2), exact
        if m > 1.4142135623730951 {     // √2
            m *= 0.5
            e += 1
        }
        let f = m - 1.0                 // exact (Sterbenz)
        let s = f / (2.0 + f)
        let z = s * s
        // Horner evaluation of R / z = 2/3 + 2z/5 + … + 2z¹²/27.
        var p = 2.0 / 27.0
        var k = 25.0
        while k >= 3.0 {
            p = p * z + 2.0 / k
            k -= 2.0
        }
        let lnm = f - s * (f - z * p)
        let ln2Hi = 6.93147180369123816490e-01  // high 32 bits of ln 2: e · ln2Hi is exact for |e| < 2^20
        let ln2Lo = 1.90821492927058770002e-10
        let ed = Double(e)
        return ed * ln2Hi + (ed * ln2Lo + lnm)
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 &- k)) }
}
