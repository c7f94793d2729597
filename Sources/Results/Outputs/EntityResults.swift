/// acquisition.nc's per-row results: each test entity's type and bucket, and per checkpoint ×
/// entity × attribute whether the query answer was right (1), wrong (0) or not computed (−1).
public struct EntityResults: Equatable, Sendable {
    /// Type and frequency bucket of each test entity, in file order.  (n_entity)
    public let types: [String], frequencies: [String]
    public let nAttributes: Int
    /// (checkpoint, test_entity, attribute) in C order.
    public let queryCorrect: [Int8]
    public let exactCorrect: [Int8]?

    package init(types: [String], frequencies: [String], nAttributes: Int, queryCorrect: [Int8], exactCorrect: [Int8]?) {
        self.types = types
        self.frequencies = frequencies
        self.nAttributes = nAttributes
        self.queryCorrect = queryCorrect
        self.exactCorrect = exactCorrect
    }

    /// The results of one checkpoint and type in file order, entity-major (each entity's
    /// attributes together), as the study's heat map reads its result rows.  (entities of the type × attributes)
    /// The study's per-entity heat-map row (docs/analyze.md) from N 0/1 results in file order:
    /// with N ≥ 1000, items ⌊j·N/1000⌋ for j = 0 … 999, consecutive groups of 5 summed → 200 cells
    /// (groups may straddle entities, as in the study). With N < 1000 the index rule would repeat
    /// items, so every result is kept once and consecutive groups of 5 are summed → ⌈N/5⌉ cells
    /// (the last may be partial); with 5 attributes a cell is then one entity. A group holding a
    /// result that was not computed (−1) is NaN.
    public static func heatmapCells(_ results: [Int8]) -> [Double] {
        let n = results.count
        let items = n >= 1000 ? (0..<1000).map { results[$0 * n / 1000] } : results
        return stride(from: 0, to: items.count, by: 5).map { start in
            let group = items[start..<min(items.count, start + 5)]
            return group.contains { $0 < 0 || $0 > 1 } ? .nan : Double(group.reduce(0) { $0 + Int($1) })
        }
    }

    public func rows(checkpoint c: Int, type: String) -> [Int8] {
        var out: [Int8] = []
        let perCheckpoint = types.count * nAttributes
        for (e, t) in types.enumerated() where t == type {
            let base = c * perCheckpoint + e * nAttributes
            out.append(contentsOf: queryCorrect[base..<(base + nAttributes)])
        }
        return out
    }
}
