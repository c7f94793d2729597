import Foundation

/// Row-parallel loops for the kernels, on Dispatch's pool.
public enum Parallel {
    /// Splits `0..<n` into `k = min(threads, n / minPerChunk)` (at least 1) contiguous chunks of near-equal size
    /// and runs `body(chunkIndex, range)` for each, concurrently when k > 1. Returns when all are done.
    /// `chunkIndex` is in `0..<threads`, so callers can give each chunk its own scratch.
    @inlinable @inline(__always)
    public static func chunks(_ n: Int, threads: Int, minPerChunk: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        guard n > 0 else { return }
        let k = max(1, min(threads, n / max(1, minPerChunk)))
        if k == 1 { body(0, 0..<n); return }
        DispatchQueue.concurrentPerform(iterations: k) { i in
            body(i, (n * i / k)..<(n * (i + 1) / k))
        }
    }

    /// Runs `body(range)` over `0..<n` split into about 8 pieces per thread (at least `minPerPiece` each), handed
    /// out dynamically, so a worker that loses its core to another process (OpenBLAS's spinning threads, other
    /// jobs) does not hold up the rest. With `threads == 1` it is a plain loop.
    @inlinable @inline(__always)
    public static func pieces(_ n: Int, threads: Int, minPerPiece: Int = 1, _ body: (Range<Int>) -> Void) {
        guard n > 0 else { return }
        let k = threads <= 1 ? 1 : max(1, min(8 * threads, n / max(1, minPerPiece)))
        if k == 1 { body(0..<n); return }
        DispatchQueue.concurrentPerform(iterations: k) { i in
            body((n * i / k)..<(n * (i + 1) / k))
        }
    }

    /// Floats per span for the C kernels' flat loops (`spans`): a multiple of their 16-float vectors.
    public static let vectorSpan = 16 * 256

    /// Runs `body(start, length)` over `0..<count` in spans that are whole multiples of `granule` (the last shorter),
    /// about 8 per thread as `pieces` hands them out: for kernels that work on a flat float range in vectors.
    @inlinable @inline(__always)
    public static func spans(_ count: Int, granule: Int, threads: Int, _ body: (Int, Int) -> Void) {
        let n = (count + granule - 1) / granule
        pieces(n, threads: threads) { blocks in
            let start = blocks.lowerBound * granule, end = min(count, blocks.upperBound * granule)
            if end > start { body(start, end - start) }
        }
    }
}
