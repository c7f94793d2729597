import Foundation

/// Axis ticks at "nice" values: the step is 1, 2 or 5 times a power of ten, the one nearest to
/// (max − min) / (maxTicks − 1), so there are about `maxTicks` ticks (at most about 1.5 times as
/// many). The nice-number rounding is Heckbert's ("Nice numbers for graph labels", 1990).
///
/// With `expand` the axis grows to the enclosing multiples of the step (the ticks then start
/// and end the axis); without, the ticks are the step's multiples inside [min, max].
public struct NiceScale: Equatable {
    public let lower: Double
    public let upper: Double
    public let step: Double
    public let ticks: [Double]

    /// - `integer`: the step is at least 1 (checkpoint steps, counts).
    /// - A zero-width range is widened (±1 for integers, else ±max(|v|·0.1, 0.5)).
    public init(min lo: Double, max hi: Double, maxTicks: Int = 6, integer: Bool = false, expand: Bool = true) {
        var lo = lo.isFinite ? lo : 0, hi = hi.isFinite ? hi : 1
        if hi < lo { swap(&lo, &hi) }
        if hi == lo {
            let pad = integer ? 1 : Swift.max(abs(lo) * 0.1, 0.5)
            lo -= pad; hi += pad
        }
        var step = NiceScale.nice((hi - lo) / Double(Swift.max(maxTicks - 1, 1)), round: true)
        if integer { step = Swift.max(1, step.rounded()) }
        let first = (lo / step).rounded(.down) * step
        let last = (hi / step).rounded(.up) * step
        self.step = step
        if expand {
            lower = first; upper = last
        } else {
            lower = lo; upper = hi
        }
        // Tick values rounded to the step's decimals, so 3 × 0.2 is 0.6, not 0.6000000000000001.
        let decimals = Swift.max(0, Int((-log10(step) - 1e-9).rounded(.up)))
        let unit = pow(10, Double(decimals))
        var ticks: [Double] = []
        var k = (lower / step - 1e-9).rounded(.up)
        while k * step <= upper + step * 1e-9 {
            let v = (k * step * unit).rounded() / unit
            ticks.append(v == 0 ? 0 : v)
            k += 1
        }
        self.ticks = ticks
    }

    /// The nice number near `x`: rounded (1, 2, 5, 10 × 10ᵏ) or the next one up (ceiling).
    public static func nice(_ x: Double, round: Bool) -> Double {
        guard x > 0, x.isFinite else { return 1 }
        let exponent = (log10(x)).rounded(.down)
        let fraction = x / pow(10, exponent)
        let niceFraction: Double
        if round {
            niceFraction = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10
        } else {
            niceFraction = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        }
        return niceFraction * pow(10, exponent)
    }

    /// Decimals that show the step exactly (0 for integer steps).
    public var decimals: Int { Swift.max(0, Int((-log10(step) - 1e-9).rounded(.up))) }

    /// A tick label: as many decimals as the step needs; `percent` shows fractions as "50 %".
    public func label(_ value: Double, percent: Bool = false) -> String {
        if percent {
            let d = Swift.max(0, decimals - 2)
            return String(format: "%.\(d)f %%", value * 100)
        }
        let text = String(format: "%.\(decimals)f", value)
        return text.hasPrefix("-") && Double(text) == 0 ? String(text.dropFirst()) : text
    }

    /// Maps a value of [lower, upper] linearly onto [from, to] (pixels).
    public func map(_ value: Double, from: Double, to: Double) -> Double {
        upper > lower ? from + (value - lower) / (upper - lower) * (to - from) : (from + to) / 2
    }
}
