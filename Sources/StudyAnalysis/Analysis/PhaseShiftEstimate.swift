import Foundation
import Numerics

/// dkc's own phase-shift estimate (the study reads the shift off its curves; docs/analyze.md).
///
/// The plain two-segment fit of the similarity to the final circuit (`PhaseShift.fit`, the
/// `phase_shift_*` variables) is biased on short runs: that similarity is 1 at the final
/// checkpoint by construction, so the curve always bends towards its last point. This estimate
/// therefore fits two curves per type, each the mean over the type's cells (tasks × buckets):
/// - `final_without_reference`: similarity to the final circuit with each cell's final checkpoint
///   (the reference itself) left out;
/// - `previous`: similarity to the previous checkpoint's circuit, which has no reference point.
/// The fit and its test are `PhaseShift.fit`'s (continuous hinge; a break counts when it lowers
/// the one-line SSE by at least max(minimum, the null quantile)). Uncertainty: `resamples`
/// bootstrap draws of the cells with replacement (seeded, so deterministic), each refitted.
///
/// **Supported** iff the fit of the mean curve passes that test **and** at least `minSupport` of
/// the bootstrap fits pass it too; otherwise the estimate says "not supported" and why.
public struct PhaseShiftEstimate: Equatable, Sendable {
    /// `final_without_reference` or `previous`.
    public let curve: String
    /// Cells averaged (and resampled).
    public let cells: Int
    /// The fit of the mean curve.
    public let fit: PhaseShiftFit
    public let supported: Bool
    /// Why the break is not supported; nil when it is.
    public let reasonNone: String?
    /// Share of bootstrap resamples whose fit finds a break.
    public let bootstrapShare: Double
    /// 5th, 50th and 95th percentile of the break step over the resamples that find one (NaN if none).
    public let low: Double, median: Double, high: Double
    public let resamples: Int

    /// The break step when supported, else NaN.
    public var step: Double { supported ? fit.breakX ?? .nan : .nan }
}

public enum PhaseShiftEstimator {
    /// The two curves, in the order analysis.nc's `similarity_curve` dimension lists them.
    public static let curves = ["final_without_reference", "previous"]

    /// Fits the mean of `cells` (each a curve over `x`, NaN where missing) and bootstraps over cells.
    public static func estimate(x: [Double], cells: [[Double]], curve: String, resamples: Int = 200, seed: UInt64 = 0x14,
                                minSupport: Double = 0.8, minImprovement: Double = 0.10, confidence: Double = 0.95,
                                simulations: Int = 2000) -> PhaseShiftEstimate {
        func mean(_ chosen: [Int]) -> [Double] {
            x.indices.map { i in CircuitMetrics.finiteMean(chosen.map { cells[$0][i] }) }
        }
        func fit(_ y: [Double]) -> PhaseShiftFit {
            PhaseShift.fit(x: x, y: y, minImprovement: minImprovement, confidence: confidence, simulations: simulations)
        }
        let main = fit(mean(Array(cells.indices)))
        var breaks: [Double] = []
        if !cells.isEmpty && main.n >= PhaseShift.minimumPoints {
            var rng = SplitMix64(seed: seed)
            for _ in 0..<resamples {
                let draw = cells.indices.map { _ in Int(rng.next() % UInt64(cells.count)) }
                let f = fit(mean(draw))
                if f.isShift, let b = f.breakX { breaks.append(b) }
            }
        }
        let share = resamples > 0 && !cells.isEmpty ? Double(breaks.count) / Double(resamples) : 0
        breaks.sort()
        func percentile(_ q: Double) -> Double {
            guard !breaks.isEmpty else { return .nan }
            return breaks[min(breaks.count - 1, max(0, Int((q * Double(breaks.count)).rounded(.up)) - 1))]
        }
        var reason: String?
        if !main.isShift {
            reason = main.reasonNone ?? "no break"
        } else if share < minSupport {
            reason = String(format: "only %.0f %% of %d bootstrap resamples over the %d cells find a break (%.0f %% needed)",
                            100 * share, resamples, cells.count, 100 * minSupport)
        }
        return PhaseShiftEstimate(curve: curve, cells: cells.count, fit: main, supported: reason == nil, reasonNone: reason,
                                  bootstrapShare: share, low: percentile(0.05), median: percentile(0.5), high: percentile(0.95),
                                  resamples: resamples)
    }
}
