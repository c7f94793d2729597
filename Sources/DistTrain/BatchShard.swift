/// Which blocks of a global batch a rank processes.
///
/// The global batch holds `ranks × perRankBatch × accumulation` blocks, in the epoch's shuffled
/// order. Micro-step `m` of rank `r` takes the `perRankBatch` consecutive blocks starting at
/// `(m × ranks + r) × perRankBatch`, so every block is used exactly once per optimizer step.
public struct BatchShard: Equatable, Sendable {
    public let ranks: Int
    public let rank: Int
    public let perRankBatch: Int
    public let accumulation: Int

    public init(ranks: Int, rank: Int, perRankBatch: Int, accumulation: Int) {
        precondition(ranks > 0 && rank >= 0 && rank < ranks && perRankBatch > 0 && accumulation > 0)
        self.ranks = ranks; self.rank = rank; self.perRankBatch = perRankBatch; self.accumulation = accumulation
    }

    public var globalBatch: Int { ranks * perRankBatch * accumulation }

    /// Offsets (within the global batch) of the blocks this rank runs at micro-step `micro`.
    public func blocks(micro: Int) -> Range<Int> {
        let start = (micro * ranks + rank) * perRankBatch
        return start..<(start + perRankBatch)
    }
}
