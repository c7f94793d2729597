import Foundation
import Numerics

/// The two-segment fit of a curve and whether it shows a phase shift.
public struct PhaseShiftFit: Equatable, Sendable {
    /// Finite points the fit used.
    public let n: Int
    /// Whether two segments fit markedly better than one (see `PhaseShift.fit`).
    public let isShift: Bool
    /// Why there is no phase shift ("fewer than 4 points", …); nil when `isShift`.
    public let reasonNone: String?
    /// x of the best breakpoint (a checkpoint step); nil with fewer than 4 points.
    public let breakX: Double?
    /// Residual sum of squares of one least-squares line.
    public let sseOneSegment: Double
    /// Residual sum of squares of the best continuous two-segment fit (NaN with fewer than 4 points).
    public let sseTwoSegments: Double
    /// (SSE₁ − SSE₂) / SSE₁: the share of the line's error the break removes.
    public let improvement: Double
    /// The improvement needed: max(minimum, the `confidence` quantile under a straight line + noise).
    public let threshold: Double
    /// Monte-Carlo p-value: share of straight-line-plus-noise curves at the same x whose best
    /// break improves at least as much.
    public let pValue: Double
    /// Slopes (y per unit of x) before and after the break.
    public let slopeBefore: Double
    public let slopeAfter: Double
    /// The fitted segments as three points: first x, break, last x (empty without a break).
    public let segmentX: [Double]
    public let segmentY: [Double]

    /// Root-mean-square error of the two-segment fit.
    public var rmseTwoSegments: Double { n > 0 ? (sseTwoSegments / Double(n)).squareRoot() : .nan }
}

/// Finds the checkpoint where a curve (the similarity of each checkpoint's circuit to the final
/// one) turns from formation to optimisation.
///
/// Model: a **continuous** two-segment line (a hinge), y ≈ a + b·x + c·max(0, x − x_k), fitted
/// by least squares for every candidate breakpoint x_k at an interior point (k = 1 … n−2, so each
/// segment spans at least two points); the best k has the smallest SSE. Continuity is chosen
/// because circuit similarity changes gradually between checkpoints; a free break would fit a
/// jump that the data cannot distinguish from noise with so few points.
///
/// Criterion for "none": fewer than 4 finite points; or one line fits exactly (SSE₁ ≈ 0); or the
/// relative improvement (SSE₁ − SSE₂)/SSE₁ is below max(`minImprovement`, q), where q is the
/// `confidence` quantile of the same statistic for a straight line plus independent Gaussian
/// noise at the same x positions. The statistic does not depend on the line's slope or the noise
/// level, so q depends only on the x positions; it is estimated by `simulations` seeded draws
/// (deterministic). With 25 evenly spaced points q(0.95) ≈ 0.29; with 8 points ≈ 0.77.
public enum PhaseShift {
    public static let minimumPoints = 4

    public static func fit(x: [Double], y: [Double], minImprovement: Double = 0.10,
                           confidence: Double = 0.95, simulations: Int = 2000) -> PhaseShiftFit {
        precondition(x.count == y.count, "PhaseShift.fit: x and y differ in length")
        let points = zip(x, y).filter { $0.0.isFinite && $0.1.isFinite }.sorted { $0.0 < $1.0 }
        let xs = points.map(\.0), ys = points.map(\.1)
        let n = xs.count
        func none(_ reason: String, sse1: Double, best: Hinge?, improvement: Double = .nan,
                  threshold: Double = .nan, p: Double = .nan) -> PhaseShiftFit {
            PhaseShiftFit(n: n, isShift: false, reasonNone: reason, breakX: best.map { xs[$0.k] },
                          sseOneSegment: sse1, sseTwoSegments: best?.sse ?? .nan, improvement: improvement,
                          threshold: threshold, pValue: p,
                          slopeBefore: best?.slopeBefore ?? .nan, slopeAfter: best?.slopeAfter ?? .nan,
                          segmentX: [], segmentY: [])
        }
        guard n >= minimumPoints else {
            let sse1 = n >= 2 ? lineSSE(scaled(xs), ys) : .nan
            return none("fewer than \(minimumPoints) points (\(n))", sse1: sse1, best: nil)
        }
        let t = scaled(xs)
        let sse1 = lineSSE(t, ys)
        let best = bestHinge(t, ys)!
        let span = xs[n - 1] - xs[0]
        let hinge = Hinge(k: best.k, sse: best.sse, slopeBefore: best.b / span, slopeAfter: (best.b + best.c) / span,
                          a: best.a, b: best.b, c: best.c)
        let scale = ys.reduce(0) { $0 + $1 * $1 }
        if sse1 <= 1e-24 + 1e-12 * scale {
            return none("one straight line fits exactly", sse1: sse1, best: hinge, improvement: 0,
                        threshold: minImprovement, p: 1)
        }
        let improvement = (sse1 - best.sse) / sse1
        let null = nullImprovements(t, simulations: simulations)
        let q = quantile(null, confidence)
        let threshold = max(minImprovement, q)
        let p = Double(1 + null.filter { $0 >= improvement }.count) / Double(1 + null.count)
        if improvement < threshold {
            return none(String(format: "two segments lower the error by %.1f %%, below the %.1f %% needed",
                               100 * improvement, 100 * threshold),
                        sse1: sse1, best: hinge, improvement: improvement, threshold: threshold, p: p)
        }
        let tk = t[best.k]
        let segY = [best.a, best.a + best.b * tk, best.a + best.b * 1 + best.c * (1 - tk)]
        return PhaseShiftFit(n: n, isShift: true, reasonNone: nil, breakX: xs[best.k],
                             sseOneSegment: sse1, sseTwoSegments: best.sse, improvement: improvement,
                             threshold: threshold, pValue: p, slopeBefore: hinge.slopeBefore,
                             slopeAfter: hinge.slopeAfter, segmentX: [xs[0], xs[best.k], xs[n - 1]], segmentY: segY)
    }

    /// A fitted hinge: breakpoint index, SSE, and coefficients on the scaled axis t ∈ [0, 1].
    struct Hinge {
        var k: Int
        var sse: Double
        var slopeBefore = Double.nan, slopeAfter = Double.nan
        var a = 0.0, b = 0.0, c = 0.0
    }

    /// x mapped affinely onto [0, 1] (conditioning; the fit is invariant to it).
    static func scaled(_ x: [Double]) -> [Double] {
        guard let lo = x.first, let hi = x.last, hi > lo else { return x.map { _ in 0 } }
        return x.map { ($0 - lo) / (hi - lo) }
    }

    /// SSE of the least-squares line through (t, y).
    static func lineSSE(_ t: [Double], _ y: [Double]) -> Double {
        let n = Double(t.count)
        let mt = t.reduce(0, +) / n, my = y.reduce(0, +) / n
        var stt = 0.0, sty = 0.0, syy = 0.0
        for (ti, yi) in zip(t, y) { stt += (ti - mt) * (ti - mt); sty += (ti - mt) * (yi - my); syy += (yi - my) * (yi - my) }
        return max(0, stt > 0 ? syy - sty * sty / stt : syy)
    }

    /// The least-squares hinge over every interior breakpoint (the earliest on ties).
    static func bestHinge(_ t: [Double], _ y: [Double]) -> Hinge? {
        var best: Hinge?
        for k in 1..<(t.count - 1) {
            guard let h = hinge(t, y, k), best == nil || h.sse < best!.sse - 1e-15 * max(1, best!.sse) else { continue }
            best = h
        }
        return best
    }

    /// Least squares on the basis [1, t, max(0, t − t_k)] by the 3 × 3 normal equations.
    static func hinge(_ t: [Double], _ y: [Double], _ k: Int) -> Hinge? {
        let tk = t[k]
        var m = [[Double]](repeating: [0, 0, 0, 0], count: 3)   // augmented [XᵀX | Xᵀy]
        for (ti, yi) in zip(t, y) {
            let row = [1, ti, max(0, ti - tk)]
            for r in 0..<3 {
                for c in 0..<3 { m[r][c] += row[r] * row[c] }
                m[r][3] += row[r] * yi
            }
        }
        guard let beta = solve3(m) else { return nil }
        var sse = 0.0
        for (ti, yi) in zip(t, y) {
            let r = yi - (beta[0] + beta[1] * ti + beta[2] * max(0, ti - tk))
            sse += r * r
        }
        return Hinge(k: k, sse: sse, a: beta[0], b: beta[1], c: beta[2])
    }

    /// Gaussian elimination with partial pivoting on a 3 × 4 augmented matrix.
    static func solve3(_ input: [[Double]]) -> [Double]? {
        var m = input
        for col in 0..<3 {
            let pivot = (col..<3).max { abs(m[$0][col]) < abs(m[$1][col]) }!
            guard abs(m[pivot][col]) > 1e-14 else { return nil }
            m.swapAt(col, pivot)
            for r in 0..<3 where r != col {
                let f = m[r][col] / m[col][col]
                for c in col..<4 { m[r][c] -= f * m[col][c] }
            }
        }
        return (0..<3).map { m[$0][3] / m[$0][$0] }
    }

    /// The improvement statistic for `simulations` curves of pure Gaussian noise at positions t
    /// (equivalently, any straight line plus noise). Seeded by the number of points. Cached:
    /// every cell of a sweep usually has the same checkpoints.
    static func nullImprovements(_ t: [Double], simulations: Int) -> [Double] {
        let key = NullKey(t: t, simulations: simulations)
        cacheLock.lock()
        let cached = cache[key]
        cacheLock.unlock()
        if let cached { return cached }
        let values = simulateNull(t, simulations: simulations)
        cacheLock.lock()
        cache[key] = values
        cacheLock.unlock()
        return values
    }

    private struct NullKey: Hashable { let t: [Double]; let simulations: Int }
    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [NullKey: [Double]] = [:]

    private static func simulateNull(_ t: [Double], simulations: Int) -> [Double] {
        var rng = SplitMix64(seed: 0x9E37_79B9 &+ UInt64(t.count))
        var out: [Double] = []
        out.reserveCapacity(simulations)
        var y = [Double](repeating: 0, count: t.count)
        for _ in 0..<simulations {
            for i in y.indices { y[i] = Double(rng.nextGaussian()) }
            let sse1 = lineSSE(t, y)
            guard sse1 > 0, let best = bestHinge(t, y) else { continue }
            out.append((sse1 - best.sse) / sse1)
        }
        return out
    }

    /// The q-quantile (nearest rank) of the values; 1 when there are none.
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 1 }
        let sorted = values.sorted()
        let rank = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        return sorted[rank]
    }
}
