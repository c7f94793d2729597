import Foundation

/// Circuit transplant (the study's `one_circuit_eval.py`, docs/components.md): the circuits of a source
/// checkpoint's cell evaluated with another checkpoint's model on the same cell's samples (faithfulness)
/// and tested on the same cell's test entities, edges outside the circuit zero-ablated (hits@10).
///
/// In circuits.nc (only when the table holds or declares transplants):
///
///     source_checkpoint(source_checkpoint) int64
///     transplant_clean_baseline, transplant_corrupted_baseline (source_checkpoint, grid) double
///     transplant_circuit_performance, transplant_faithfulness, transplant_hits_at_10 (source_checkpoint, grid, topn) double
///     transplant_n_test (source_checkpoint, grid, topn) int64 fill -1
///
/// where grid = checkpoint (the model evaluated), task, type, frequency (the source cell's labels).
extension CircuitsTable {
    /// A source checkpoint and the cell evaluated (its checkpoint is the model's).
    public struct TransplantKey: Hashable, Sendable, CustomStringConvertible {
        public var source: Int64
        public var cell: ResultCell
        public init(source: Int64, cell: ResultCell) { self.source = source; self.cell = cell }
        public var description: String { "source_checkpoint=\(source) \(cell)" }
    }

    /// One source circuit (one top-n) on the model of `TransplantKey.cell.checkpoint`.
    public struct TransplantCircuit: Equatable, Sendable {
        /// Mean logit difference with the circuit patched in.
        @NaNEqual public var performance: Double
        /// Share of the cell's test entities whose label token has rank < 10 (zero-ablated); NaN when not tested.
        @NaNEqual public var hitsAt10: Double
        /// Test entities behind `hitsAt10` (-1 when not tested: an empty circuit).
        public var nTest: Int
        public init(performance: Double, hitsAt10: Double, nTest: Int) { self.performance = performance; self.hitsAt10 = hitsAt10; self.nTest = nTest }
    }

    /// The source cell's circuits on one model.
    public typealias Transplant = Evaluated<TransplantCircuit>

    /// Adds source checkpoints that have no transplant yet (so the file has its final shape early).
    public mutating func declare(transplantSources: [Int64]) { self.transplantSources.formUnion(transplantSources) }

    /// Sets (or replaces) a transplant; the evaluated checkpoint must be known.
    public mutating func setTransplant(_ key: TransplantKey, _ value: Transplant) throws {
        try grid.requireCheckpoint(of: key.cell, "transplant \(key)")
        grid.insertLabels(of: key.cell)
        topn.formUnion(value.circuits.keys)
        transplantSources.insert(key.source)
        transplants[key] = value
    }

    /// The faithfulness of a transplanted circuit, as `faithfulness(_:topn:)` defines it.
    public func transplantFaithfulness(_ key: TransplantKey, topn n: Int) -> Double? {
        guard let t = transplants[key], let c = t.circuits[n] else { return nil }
        return Self.faithfulness(c.performance - t.corruptedBaseline, t.cleanBaseline - t.corruptedBaseline, faithfulnessMinDenominator)
    }

    /// Defines and queues the transplant variables (nothing when there are no transplant sources).
    func writeTransplants(_ w: OutputFileWriter, layout: ResultGridLayout, sizes: [Int]) throws {
        guard !transplantSources.isEmpty else { return }
        let sources = transplantSources.sorted()
        let g = [ResultName.sourceCheckpoint] + ResultGrid.dimensions, gt = g + [ResultName.topn]
        let bySource = GridIndex(shape: [sources.count] + layout.index.shape)
        let perTopn = GridIndex(shape: bySource.shape + [sizes.count])
        try w.numericCoordinate(ResultName.sourceCheckpoint, sources, describe("training step of the checkpoint whose circuits are transplanted", units: "1"))
        func real(_ name: String, _ dims: [String], _ longName: String, _ extra: AttributeList = []) throws {
            try w.variable(name, type: .double, dimensions: dims, gridRank: 5, fill: .nan, describe(longName, units: "1", extra))
        }
        try real(ResultName.transplantCleanBaseline, g, "mean logit difference on the source cell's clean prompts, model of checkpoint")
        try real(ResultName.transplantCorruptedBaseline, g, "mean logit difference on the source cell's corrupted prompts, model of checkpoint")
        try real(ResultName.transplantCircuitPerformance, gt, "mean logit difference with the source checkpoint's circuit patched into the model of checkpoint")
        try real(ResultName.transplantFaithfulness, gt, "(transplant_circuit_performance - transplant_corrupted_baseline) / (transplant_clean_baseline - transplant_corrupted_baseline)",
                 [(ResultName.faithfulnessMinDenominator, .double([faithfulnessMinDenominator]))])
        try real(ResultName.transplantHitsAt10, gt, "share of the source cell's test entities whose label token has rank < 10, the source circuit zero-ablated in the model of checkpoint")
        try w.variable(ResultName.transplantNTest, type: .int64, dimensions: gt, gridRank: 5, fill: .value(Double(OutputFill.count)),
                       describe("test entities behind transplant_hits_at_10", units: "1", [("comment", .text("-1 where not tested"))]))
        var clean = [Double](repeating: .nan, count: bySource.count), corrupted = clean
        var performance = [Double](repeating: .nan, count: perTopn.count), faith = performance, hits = performance
        var nTest = [Int](repeating: OutputFill.count, count: perTopn.count)
        let sourceAt = positions(sources), topnAt = positions(sizes)
        for (key, t) in transplants {
            let index = [sourceAt[key.source]!] + layout.position(of: key.cell)
            let o = bySource.offset(index)
            clean[o] = t.cleanBaseline; corrupted[o] = t.corruptedBaseline
            for (n, c) in t.circuits {
                let ot = perTopn.offset(index + [topnAt[n]!])
                performance[ot] = c.performance; hits[ot] = c.hitsAt10; nTest[ot] = c.nTest
                faith[ot] = transplantFaithfulness(key, topn: n)!
            }
        }
        guard bySource.count > 0 else { return }
        w.queue(clean, to: ResultName.transplantCleanBaseline); w.queue(corrupted, to: ResultName.transplantCorruptedBaseline)
        if perTopn.count > 0 {
            w.queue(performance, to: ResultName.transplantCircuitPerformance); w.queue(faith, to: ResultName.transplantFaithfulness)
            w.queue(hits, to: ResultName.transplantHitsAt10); w.queue(nTest, to: ResultName.transplantNTest)
        }
    }

    /// Reads the transplant variables when the file has them.
    mutating func readTransplants(_ reader: OutputFileReader, layout: ResultGridLayout, sizes: [Int]) throws {
        guard reader.file.hasVariable(ResultName.sourceCheckpoint) else { return }
        let sources = try reader.integers(ResultName.sourceCheckpoint)
        let g = [ResultName.sourceCheckpoint] + ResultGrid.dimensions, gt = g + [ResultName.topn]
        let clean = try reader.values(ResultName.transplantCleanBaseline, dimensions: g, types: [.double], as: Double.self)
        let corrupted = try reader.values(ResultName.transplantCorruptedBaseline, dimensions: g, types: [.double], as: Double.self)
        let performance = try reader.values(ResultName.transplantCircuitPerformance, dimensions: gt, types: [.double], as: Double.self)
        let hits = try reader.values(ResultName.transplantHitsAt10, dimensions: gt, types: [.double], as: Double.self)
        let nTest = try reader.values(ResultName.transplantNTest, dimensions: gt, types: [.int64], as: Int.self)
        let bySource = GridIndex(shape: [sources.count] + layout.index.shape)
        let perTopn = GridIndex(shape: bySource.shape + [sizes.count])
        transplantSources.formUnion(sources)
        for s in sources.indices {
            for position in layout.allPositions {
                let index = [s] + position, o = bySource.offset(index)
                guard !clean[o].isNaN || !corrupted[o].isNaN else { continue }
                var value = Transplant(cleanBaseline: clean[o], corruptedBaseline: corrupted[o])
                for k in sizes.indices {
                    let ot = perTopn.offset(index + [k])
                    guard !performance[ot].isNaN else { continue }
                    value.circuits[sizes[k]] = TransplantCircuit(performance: performance[ot], hitsAt10: hits[ot], nTest: nTest[ot])
                }
                transplants[TransplantKey(source: sources[s], cell: layout.cell(at: position))] = value
            }
        }
    }
}
