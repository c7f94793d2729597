import Foundation

/// Wall-clock time per named phase, accumulated over calls (for benchmarks' breakdowns). Set
/// `GPT2.phaseTimer` to collect the time of every kernel of a step; leave it nil for no overhead.
public final class PhaseTimer: @unchecked Sendable {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var order: [String] = []

    public init() {}

    @inline(__always)
    public func measure<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer {
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if seconds[name] == nil { order.append(name) }
            seconds[name, default: 0] += dt
        }
        return try body()
    }

    public func reset() { seconds = [:]; order = [] }

    /// "name  seconds  share" lines in first-seen order.
    public func report(divideBy steps: Int = 1) -> String {
        let total = seconds.values.reduce(0, +)
        return order.map { name in
            let s = seconds[name]! / Double(max(1, steps))
            return String(format: "  %-22@ %8.2f ms  %5.1f%%", name as NSString, 1000 * s, 100 * seconds[name]! / max(total, 1e-12))
        }.joined(separator: "\n")
    }
}
