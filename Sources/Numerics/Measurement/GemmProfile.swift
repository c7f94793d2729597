import Foundation

/// Wall time of every `Matmul.sgemm` call by product shape, collected only while switched on (`dkc bench discover
/// --gemm-profile`): it says which products of a benchmark run near the sgemm roof and which do not, and how much of
/// the time is not in products at all. Off (the default), it costs each product one load and one branch.
///
/// A product run by `Matmul.pair` (two side by side, one OpenBLAS thread each) has `blasThreads` 1; its seconds are
/// its own wall time, so two such products overlap. `coreSeconds` (seconds × OpenBLAS threads) adds up across both.
public enum GemmProfile {
    /// One product shape: row-major `C (M, N) = op(A) (M, K) · op(B) (K, N)` at the OpenBLAS thread count of the call.
    public struct Shape: Hashable, Sendable, Comparable {
        public let transA: Bool, transB: Bool
        public let M: Int, N: Int, K: Int
        public let blasThreads: Int

        public init(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, blasThreads: Int) {
            self.transA = transA; self.transB = transB
            self.M = M; self.N = N; self.K = K
            self.blasThreads = blasThreads
        }

        public static func < (a: Shape, b: Shape) -> Bool {
            (a.M, a.N, a.K, a.blasThreads, a.transA ? 1 : 0, a.transB ? 1 : 0) < (b.M, b.N, b.K, b.blasThreads, b.transA ? 1 : 0, b.transB ? 1 : 0)
        }

        /// "NT 480×768×64" style: the transposes of A and B, then M×N×K.
        public var label: String { "\(transA ? "T" : "N")\(transB ? "T" : "N") \(M)×\(N)×\(K)" }
    }

    /// The calls of one shape while the profile was on.
    public struct Entry: Sendable {
        public let shape: Shape
        public let calls: Int
        public let seconds: Double

        public init(shape: Shape, calls: Int, seconds: Double) {
            self.shape = shape; self.calls = calls; self.seconds = seconds
        }

        /// 2·M·N·K per call.
        public var flops: Double { Double(calls) * 2 * Double(shape.M) * Double(shape.N) * Double(shape.K) }
        /// Seconds × OpenBLAS threads: the share of the cores these calls held.
        public var coreSeconds: Double { seconds * Double(shape.blasThreads) }
    }

    /// Whether `Matmul.sgemm` records its calls now.
    nonisolated(unsafe) public private(set) static var isOn = false
    private static let lock = NSLock()
    nonisolated(unsafe) private static var table: [Shape: (calls: Int, seconds: Double)] = [:]

    /// Forgets what was recorded.
    public static func reset() {
        lock.lock(); defer { lock.unlock() }
        table = [:]
    }

    /// Starts (true) or pauses (false) recording; what was recorded stays until `reset`.
    public static func record(_ on: Bool) { isOn = on }

    /// What was recorded, the longest total time first.
    public static var entries: [Entry] {
        lock.lock(); defer { lock.unlock() }
        return table.map { Entry(shape: $0.key, calls: $0.value.calls, seconds: $0.value.seconds) }
            .sorted { $0.coreSeconds != $1.coreSeconds ? $0.coreSeconds > $1.coreSeconds : $0.shape < $1.shape }
    }

    /// Adds one call of `shape` that took `nanoseconds`.
    @usableFromInline
    static func add(_ shape: Shape, nanoseconds: UInt64) {
        lock.lock(); defer { lock.unlock() }
        var e = table[shape] ?? (0, 0)
        e.calls += 1
        e.seconds += Double(nanoseconds) / 1e9
        table[shape] = e
    }

    /// The calls of one group of shapes in `report`: every M of one (transposes, N, K, OpenBLAS threads), or all
    /// the small products (every side under `smallSide`: attention's per-head products at short prompts).
    public struct Group: Sendable {
        public let label: String
        public let calls: Int
        public let coreSeconds: Double
        public let flops: Double
        public var gflopsPerThread: Double { coreSeconds > 0 ? flops / coreSeconds / 1e9 : 0 }

        /// The calls of `parts` together, under `label`.
        init(_ label: String, summing parts: some Collection<Group>) {
            self.label = label
            calls = parts.reduce(0) { $0 + $1.calls }
            coreSeconds = parts.reduce(0) { $0 + $1.coreSeconds }
            flops = parts.reduce(0) { $0 + $1.flops }
        }

        /// One shape's calls.
        init(_ entry: Entry) {
            label = entry.shape.label
            calls = entry.calls
            coreSeconds = entry.coreSeconds
            flops = entry.flops
        }
    }

    /// Sides below which a product counts as small in `groups`.
    public static let smallSide = 128

    /// `entries` in groups (see `Group`), the longest core time first. A group's label names its M range,
    /// e.g. "NT (352–480)×768×64 @1".
    public static func groups(_ entries: [Entry]) -> [Group] {
        struct Key: Hashable { let small: Bool, transA: Bool, transB: Bool, N: Int, K: Int, threads: Int }
        var byKey: [Key: [Entry]] = [:]
        for e in entries {
            let s = e.shape
            let key = max(s.M, s.N, s.K) < smallSide ? Key(small: true, transA: false, transB: false, N: 0, K: 0, threads: 0)
                : Key(small: false, transA: s.transA, transB: s.transB, N: s.N, K: s.K, threads: s.blasThreads)
            byKey[key, default: []].append(e)
        }
        return byKey.map { key, list -> Group in
            let label: String
            if key.small {
                label = "\(list.count) shapes with every side under \(smallSide)"
            } else {
                let ms = list.map(\.shape.M), lo = ms.min()!, hi = ms.max()!
                label = "\(key.transA ? "T" : "N")\(key.transB ? "T" : "N") \(lo == hi ? "\(lo)" : "(\(lo)–\(hi))")×\(key.N)×\(key.K) @\(key.threads)"
            }
            return Group(label, summing: list.map(Group.init))
        }.sorted { $0.coreSeconds != $1.coreSeconds ? $0.coreSeconds > $1.coreSeconds : $0.label < $1.label }
    }

    /// A report of `entries` against a roof of `roofGflops` at `threads` threads over `wallSeconds` of calls: the
    /// products' share of the cores' time, then the `top` groups (`groups`) by core time with their GFLOP/s per
    /// thread and its fraction of the roof per thread (roof / threads), then the rest in one line.
    public static func report(_ entries: [Entry], wallSeconds: Double, threads: Int, roofGflops: Double, top: Int = 20) -> [String] {
        let available = wallSeconds * Double(threads), perThreadRoof = roofGflops / Double(max(1, threads))
        func share(_ x: Double) -> Double { 100 * x / max(available, 1e-12) }
        func ofRoof(_ g: Double) -> Double { 100 * g / max(perThreadRoof, 1e-12) }
        func line(_ g: Group) -> String {
            String(format: "%8.3f  %5.1f%%  %7d  %11.1f  %6.1f%%  %@", g.coreSeconds, share(g.coreSeconds), g.calls,
                   g.gflopsPerThread, ofRoof(g.gflopsPerThread), g.label as NSString)
        }
        let all = groups(entries), whole = Group("", summing: all), core = whole.coreSeconds
        var lines = [String(format: "sgemm: %.2f of %.2f core-seconds (%.1f%%) at %.1f GFLOP/s per thread (%.1f%% of the roof per thread, %.1f); "
                            + "outside the products: %.2f core-seconds (%.1f%%)", core, available, share(core),
                            whole.gflopsPerThread, ofRoof(whole.gflopsPerThread), perThreadRoof,
                            max(0, available - core), max(0, share(available - core)))]
        lines.append("  core-s   share    calls  GFLOP/s/thr  of roof  products (transposes M×N×K @OpenBLAS threads)")
        lines += all.prefix(top).map(line)
        let rest = all.dropFirst(top)
        if !rest.isEmpty { lines.append(line(Group("\(rest.count) other groups", summing: rest))) }
        return lines
    }
}
