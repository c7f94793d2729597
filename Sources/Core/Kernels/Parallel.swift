import Foundation

/// Row-parallel loops for the kernels: contiguous chunks of a range run concurrently on Dispatch's pool.
public enum Parallel {
    /// Splits `0..<n` into `k = min(threads, n / minPerChunk)` (at least 1) contiguous chunks of near-equal size
    /// and runs `body(chunkIndex, range)` for each, concurrently when k > 1. Returns when all are done.
    /// `chunkIndex` is in `0..<threads`, so callers can give each chunk its own scratch.
    @inline(__always)
    public static func chunks(_ n: Int, threads: Int, minPerChunk: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        guard n > 0 else { return }
        let k = max(1, min(threads, n / max(1, minPerChunk)))
        if k == 1 { body(0, 0..<n); return }
        DispatchQueue.concurrentPerform(iterations: k) { i in
            body(i, (n * i / k)..<(n * (i + 1) / k))
        }
    }
}
