import Foundation
import Circuits

/// circuits.nc: writing a `CircuitsTable` and reading it back (docs/outputs.md).
///
/// Layout (grid = checkpoint, task, type, frequency; chunks one grid cell each, inner
/// dimensions whole):
///
///     clean_baseline, corrupted_baseline, faithfulness_denominator (grid) double
///     circuit_performance, faithfulness, faithfulness_numerator (grid, topn) double
///     n_edges, n_nodes (grid, topn) int64 fill -1; edge_entropy (grid, topn) float
///     in_circuit (grid, topn, upstream, downstream) byte fill -1   chunk (1, 1, 1, 1, n_topn, n_forward, n_backward)
///     label_prob, label_rank_mean, hits_at_1, hits_at_10 (grid, topn, target_type, target_frequency) double
///     n_test (grid, topn, target_type, target_frequency) int64 fill -1
///
/// plus the coordinates checkpoint, checkpoint_path, task, type, frequency, topn (int64),
/// target_type, target_frequency, upstream, downstream and is_edge.
extension CircuitsTable {
    /// Writes the table to `url` atomically. Missing cells, circuits and targets are left
    /// unwritten (NaN / -1). The same table and provenance always give the same file.
    public func write(to url: URL, provenance: Provenance, options: OutputWriteOptions = OutputWriteOptions()) throws {
        let layout = grid.layout
        let sizes = topn.sorted()
        let targets = (targetTypes.sorted, targetFrequencies.sorted)
        let perTopn = GridIndex(shape: layout.index.shape + [sizes.count])
        let perTarget = GridIndex(shape: perTopn.shape + [targets.0.count, targets.1.count])
        let (nF, nB) = (edges.nForward, edges.nBackward)
        let minimum = faithfulnessMinDenominator

        try OutputFileWriter.write(.circuits, to: url, provenance: provenance, options: options) { w, file in
            try layout.writeCoordinates(w, checkpoints: checkpoints)
            try w.numericCoordinate(ResultName.topn, sizes.map(Int64.init), describe(AxisNames.topn, units: "1"))
            try w.stringCoordinate(ResultName.targetType, targets.0, describe(AxisNames.targetType))
            try w.stringCoordinate(ResultName.targetFrequency, targets.1, describe(AxisNames.targetFrequency))
            try w.edgeCoordinates(edges)

            try defineVariables(w)
            try writeTransplants(w, layout: layout, sizes: sizes)

            var clean = [Double](repeating: .nan, count: layout.count)
            var corrupted = clean, denominator = clean
            var performance = [Double](repeating: .nan, count: perTopn.count)
            var faithfulness = performance, numerator = performance
            var nEdges = [Int](repeating: OutputFill.count, count: perTopn.count), nNodes = nEdges
            var entropy = [Float](repeating: .nan, count: perTopn.count)
            var labelProb = [Double](repeating: .nan, count: perTarget.count)
            var rankMean = labelProb, hits1 = labelProb, hits10 = labelProb
            var nTest = [Int](repeating: OutputFill.count, count: perTarget.count)

            let topnAt = positions(sizes), targetAt = (positions(targets.0), positions(targets.1))
            for (index, _, value) in layout.inFileOrder(cells) {
                let o = layout.index.offset(index)
                clean[o] = value.cleanBaseline
                corrupted[o] = value.corruptedBaseline
                denominator[o] = Self.denominator(value)
                var mask = [Int8](repeating: OutputFill.flag, count: sizes.count * nF * nB)
                for (n, circuit) in value.circuits {
                    let k = topnAt[n]!
                    let ot = perTopn.offset(index + [k])
                    performance[ot] = circuit.performance
                    numerator[ot] = circuit.performance - value.corruptedBaseline
                    faithfulness[ot] = Self.faithfulness(numerator[ot], denominator[o], minimum)
                    nEdges[ot] = circuit.nEdges
                    nNodes[ot] = circuit.nNodes
                    entropy[ot] = circuit.edgeEntropy
                    mask.replaceSubrange(k * nF * nB ..< (k + 1) * nF * nB, with: circuit.inCircuit)
                    for (target, result) in circuit.targets {
                        let ox = perTarget.offset(index + [k, targetAt.0[target.type]!, targetAt.1[target.frequency]!])
                        labelProb[ox] = result.labelProb
                        rankMean[ox] = result.labelRankMean
                        hits1[ox] = result.hitsAt1
                        hits10[ox] = result.hitsAt10
                        nTest[ox] = result.nTest
                    }
                }
                if !value.circuits.isEmpty {
                    w.later { try file.write(mask, to: ResultName.inCircuit, start: index + [0, 0, 0], count: [1, 1, 1, 1, sizes.count, nF, nB]) }
                }
            }
            if layout.count > 0 {
                w.queue(clean, to: ResultName.cleanBaseline); w.queue(corrupted, to: ResultName.corruptedBaseline)
                w.queue(denominator, to: ResultName.faithfulnessDenominator)
            }
            if perTopn.count > 0 {
                w.queue(performance, to: ResultName.circuitPerformance); w.queue(faithfulness, to: ResultName.faithfulness)
                w.queue(numerator, to: ResultName.faithfulnessNumerator); w.queue(nEdges, to: ResultName.nEdges)
                w.queue(nNodes, to: ResultName.nNodes); w.queue(entropy, to: ResultName.edgeEntropy)
            }
            if perTarget.count > 0 {
                w.queue(labelProb, to: ResultName.labelProb); w.queue(rankMean, to: ResultName.labelRankMean)
                w.queue(hits1, to: ResultName.hitsAt1); w.queue(hits10, to: ResultName.hitsAt10); w.queue(nTest, to: ResultName.nTest)
            }
        }
    }

    /// Defines circuits.nc's variables over the grid (baselines, circuits, their tests).
    private func defineVariables(_ w: OutputFileWriter) throws {
        let g = ResultGrid.dimensions
        let gt = g + [ResultName.topn]
        let gtt = gt + [ResultName.targetType, ResultName.targetFrequency]
        let minimum = faithfulnessMinDenominator
        func real(_ name: String, _ dims: [String], type: NetCDFType = .double, _ attrs: AttributeList) throws {
            try w.variable(name, type: type, dimensions: dims, gridRank: 4, fill: .nan, attrs)
        }
        func count(_ name: String, _ dims: [String], _ longName: String) throws {
            try w.variable(name, type: .int64, dimensions: dims, gridRank: 4, fill: .value(Double(OutputFill.count)),
                           describe(longName, units: "1", [("comment", .text("-1 where not computed"))]))
        }
        try real(ResultName.cleanBaseline, g, describe("mean logit difference (clean label - corrupted label) on the clean prompts", units: "1"))
        try real(ResultName.corruptedBaseline, g, describe("mean logit difference (clean label - corrupted label) on the corrupted prompts", units: "1"))
        try real(ResultName.circuitPerformance, gt, describe("mean logit difference with the circuit patched in (edges outside it carry corrupted values)", units: "1"))
        try real(ResultName.faithfulness, gt, describe("(circuit_performance - corrupted_baseline) / (clean_baseline - corrupted_baseline)", units: "1",
                                              [(ResultName.faithfulnessMinDenominator, .double([minimum])),
                                               ("comment", .text("NaN where |clean_baseline - corrupted_baseline| < faithfulness_min_denominator"))]))
        try real(ResultName.faithfulnessNumerator, gt, describe("circuit_performance - corrupted_baseline", units: "1"))
        try real(ResultName.faithfulnessDenominator, g, describe("clean_baseline - corrupted_baseline", units: "1"))
        try count(ResultName.nEdges, gt, "edges kept after pruning")
        try count(ResultName.nNodes, gt, "nodes kept after pruning, input and logits included")
        try real(ResultName.edgeEntropy, gt, type: .float, describe("entropy of |score| over the kept edges", units: "nat"))
        try w.variable(ResultName.inCircuit, type: .int8, dimensions: gt + [ResultName.upstream, ResultName.downstream], gridRank: 4,
                       fill: .value(Double(OutputFill.flag)),
                       describe("1 for an edge kept in the circuit, else 0", units: "1",
                                [("hook_names", .text(HookNames.edges)),
                                 ("comment", .text("-1 where the circuit was not evaluated"))]))
        try real(ResultName.labelProb, gtt, describe("mean probability of the label's first token, edges outside the circuit zero-ablated", units: "1"))
        try real(ResultName.labelRankMean, gtt, describe("mean rank of the label's first token (0 = most probable), edges outside the circuit zero-ablated", units: "1"))
        try real(ResultName.hitsAt1, gtt, describe("share of test entities whose label token has rank < 1", units: "1"))
        try real(ResultName.hitsAt10, gtt, describe("share of test entities whose label token has rank < 10", units: "1"))
        try count(ResultName.nTest, gtt, "test entities of the target type and frequency")
    }

    /// Reads a circuits.nc back into a table; the file's label order becomes the table's
    /// canonical order. A cell is present where a baseline is not NaN or some circuit has
    /// `n_edges` ≠ -1; a circuit where `n_edges` ≠ -1; a target where `n_test` ≠ -1. The derived
    /// variables (faithfulness and its terms) are not read: the table recomputes them.
    public static func read(from url: URL) throws -> CircuitsTable {
        let reader = try OutputFileReader(url: url, kind: .circuits)
        defer { reader.close() }
        let (layout, checkpoints) = try ResultGridLayout.read(reader)
        let sizes = try reader.integers(ResultName.topn).map { Int($0) }
        let targets = (try reader.labels(ResultName.targetType), try reader.labels(ResultName.targetFrequency))
        let edges = try reader.edges()
        let g = ResultGrid.dimensions
        let gt = g + [ResultName.topn]
        let gtt = gt + [ResultName.targetType, ResultName.targetFrequency]
        let reals: [NetCDFType] = [.double, .float]
        let ints: [NetCDFType] = [.int64, .int32]
        try reader.require(ResultName.faithfulness, dimensions: gt, types: reals)
        try reader.require(ResultName.faithfulnessNumerator, dimensions: gt, types: reals)
        try reader.require(ResultName.faithfulnessDenominator, dimensions: g, types: reals)
        let minimum = try reader.numericAttribute(ResultName.faithfulnessMinDenominator, of: ResultName.faithfulness, as: Double.self)
        let clean = try reader.values(ResultName.cleanBaseline, dimensions: g, types: reals, as: Double.self)
        let corrupted = try reader.values(ResultName.corruptedBaseline, dimensions: g, types: reals, as: Double.self)
        let performance = try reader.values(ResultName.circuitPerformance, dimensions: gt, types: reals, as: Double.self)
        let nEdges = try reader.values(ResultName.nEdges, dimensions: gt, types: ints, as: Int.self)
        let nNodes = try reader.values(ResultName.nNodes, dimensions: gt, types: ints, as: Int.self)
        let entropy = try reader.values(ResultName.edgeEntropy, dimensions: gt, types: [.float], as: Float.self)
        try reader.require(ResultName.inCircuit, dimensions: gt + [ResultName.upstream, ResultName.downstream], types: [.int8])
        let labelProb = try reader.values(ResultName.labelProb, dimensions: gtt, types: reals, as: Double.self)
        let rankMean = try reader.values(ResultName.labelRankMean, dimensions: gtt, types: reals, as: Double.self)
        let hits1 = try reader.values(ResultName.hitsAt1, dimensions: gtt, types: reals, as: Double.self)
        let hits10 = try reader.values(ResultName.hitsAt10, dimensions: gtt, types: reals, as: Double.self)
        let nTest = try reader.values(ResultName.nTest, dimensions: gtt, types: ints, as: Int.self)

        let perTopn = GridIndex(shape: layout.index.shape + [sizes.count])
        let perTarget = GridIndex(shape: perTopn.shape + [targets.0.count, targets.1.count])
        let (nF, nB) = (edges.nForward, edges.nBackward)
        var cells: [ResultCell: Cell] = [:]
        for index in layout.allPositions {
            let o = layout.index.offset(index)
            let evaluated = sizes.indices.filter { nEdges[perTopn.offset(index + [$0])] != OutputFill.count }
            guard !clean[o].isNaN || !corrupted[o].isNaN || !evaluated.isEmpty else { continue }
            var value = Cell(cleanBaseline: clean[o], corruptedBaseline: corrupted[o])
            if !evaluated.isEmpty {
                let mask = try reader.file.read(ResultName.inCircuit, as: Int8.self, start: index + [0, 0, 0],
                                                count: [1, 1, 1, 1, sizes.count, nF, nB])
                for k in evaluated {
                    let ot = perTopn.offset(index + [k])
                    var circuit = Circuit(performance: performance[ot], nEdges: nEdges[ot], nNodes: nNodes[ot],
                                          edgeEntropy: entropy[ot],
                                          inCircuit: Array(mask[k * nF * nB ..< (k + 1) * nF * nB]))
                    for a in targets.0.indices {
                        for b in targets.1.indices {
                            let ox = perTarget.offset(index + [k, a, b])
                            guard nTest[ox] != OutputFill.count else { continue }
                            circuit.targets[Target(type: targets.0[a], frequency: targets.1[b])] =
                                TargetResult(labelProb: labelProb[ox], labelRankMean: rankMean[ox],
                                             hitsAt1: hits1[ox], hitsAt10: hits10[ox], nTest: nTest[ox])
                        }
                    }
                    value.circuits[sizes[k]] = circuit
                }
            }
            cells[layout.cell(at: index)] = value
        }
        var table = CircuitsTable(edges: edges, faithfulnessMinDenominator: minimum, grid: ResultGrid(layout, checkpoints: checkpoints),
                                  topn: Set(sizes),
                                  targetTypes: LabelAxis(targets.0, canonicalOrder: targets.0),
                                  targetFrequencies: LabelAxis(targets.1, canonicalOrder: targets.1), cells: cells)
        try table.readTransplants(reader, layout: layout, sizes: sizes)
        return table
    }
}
