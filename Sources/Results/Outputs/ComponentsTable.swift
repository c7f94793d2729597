import Foundation
import Circuits

/// The component analysis of every computed sweep cell: the contents of `circuits/components.nc`
/// (docs/components.md). Per cell the means over its entities (per-entity arrays are left to `dkc components`:
/// over a whole sweep they would dwarf every other file).
///
/// - Cells can be set in any order; a cell not set is missing (NaN, -1 for counts, "" for classes).
/// - `merge` unions disjoint parts; merged parts write the same file as the table built at once.
/// - Equality is NaN-aware.
///
/// File layout (grid = checkpoint, task, type, frequency; chunks one grid cell each):
///
///     lens(lens) string, layer(layer), head(head) int64, class(class) string, topn(topn) int64
///     n_entities (grid) int64 fill -1
///     logit_lens_rank_plus1_mean, logit_lens_prob_mean, min_rank_at_subject_plus1_mean (grid, lens) double
///     head_subject_ratio, head_relation_ratio (grid, layer, head) double; head_class (grid, layer, head) string
///     circuit_heads (grid, topn, class, layer) int64 fill -1; circuit_nodes (grid, topn) int64 fill -1
public struct ComponentsTable: MergeableTable, ResultGridTable, Equatable, Sendable {
    public static let tableName = "components"

    /// One cell: what `CellComponents` summarises.
    public struct Cell: Equatable, Sendable {
        public var nEntities: Int
        /// Means of (rank + 1), probability, (subject rank + 1) per lens point.   // (L+1)
        public var rankPlus1: [Double]
        public var probability: [Double]
        public var subjectRankPlus1: [Double]
        /// Mean DLA ratios per head, row-major [layer, head].   // (L·H)
        public var meanSubject: [Double]
        public var meanRelation: [Double]
        /// Per top-n: heads per class and layer, classes in `HeadClass.allCases` order.   // (3·L)
        public var circuitHeads: [Int: [Int]]
        /// Per top-n: size of the circuit's node set.
        public var circuitNodes: [Int: Int]

        public init(nEntities: Int, rankPlus1: [Double], probability: [Double], subjectRankPlus1: [Double], meanSubject: [Double],
                    meanRelation: [Double], circuitHeads: [Int: [Int]], circuitNodes: [Int: Int]) {
            self.nEntities = nEntities; self.rankPlus1 = rankPlus1; self.probability = probability; self.subjectRankPlus1 = subjectRankPlus1
            self.meanSubject = meanSubject; self.meanRelation = meanRelation; self.circuitHeads = circuitHeads; self.circuitNodes = circuitNodes
        }

        public init(_ c: CellComponents) {
            let m = c.lensMeans, r = c.headRatios
            self.init(nEntities: c.entities.count, rankPlus1: m.rankPlus1, probability: m.probability, subjectRankPlus1: m.subjectRankPlus1,
                      meanSubject: r.meanSubject, meanRelation: r.meanRelation,
                      circuitHeads: Dictionary(uniqueKeysWithValues: c.circuits.map { ($0.topn, $0.heads.layerCounts.flatMap { $0 }) }),
                      circuitNodes: Dictionary(uniqueKeysWithValues: c.circuits.map { ($0.topn, $0.heads.nodeCount) }))
        }

        public static func == (a: Cell, b: Cell) -> Bool {
            func same(_ x: [Double], _ y: [Double]) -> Bool { x.count == y.count && zip(x, y).allSatisfy { sameValue($0, $1) } }
            return a.nEntities == b.nEntities && same(a.rankPlus1, b.rankPlus1) && same(a.probability, b.probability)
                && same(a.subjectRankPlus1, b.subjectRankPlus1) && same(a.meanSubject, b.meanSubject)
                && same(a.meanRelation, b.meanRelation) && a.circuitHeads == b.circuitHeads && a.circuitNodes == b.circuitNodes
        }
    }

    public let nLayers: Int
    public let nHeads: Int
    /// Checkpoints and labels of the cells set or declared.
    public private(set) var grid: ResultGrid
    public private(set) var topn: Set<Int> = []
    public private(set) var cells: [ResultCell: Cell] = [:]

    public init(nLayers: Int, nHeads: Int, taskOrder: [String] = OutputLabels.tasks, typeOrder: [String] = OutputLabels.types,
                frequencyOrder: [String] = OutputLabels.frequencies) {
        self.nLayers = nLayers; self.nHeads = nHeads
        grid = ResultGrid(taskOrder: taskOrder, typeOrder: typeOrder, frequencyOrder: frequencyOrder)
    }

    public mutating func addCheckpoint(step: Int64, path: String) throws { try grid.addCheckpoint(step: step, path: path) }

    /// Adds axis values that have no cell yet, so the file covers the whole planned grid.
    public mutating func declare(tasks: [String] = [], types: [String] = [], frequencies: [String] = [], topn: [Int] = []) {
        grid.declare(tasks: tasks, types: types, frequencies: frequencies)
        self.topn.formUnion(topn)
    }

    /// Sets (or replaces) a cell; its arrays must fit the table's layers and heads.
    public mutating func set(_ cell: ResultCell, _ value: Cell) throws {
        try grid.requireCheckpoint(of: cell, "cell \(cell)")
        let L = nLayers, LH = nLayers * nHeads
        guard value.nEntities >= 0, [value.rankPlus1, value.probability, value.subjectRankPlus1].allSatisfy({ $0.count == L + 1 }),
              value.meanSubject.count == LH, value.meanRelation.count == LH,
              value.circuitHeads.values.allSatisfy({ $0.count == HeadClass.allCases.count * L }),
              Set(value.circuitHeads.keys) == Set(value.circuitNodes.keys) else {
            throw OutputFileError(.wrongSize, reason: "the components of \(cell) do not fit \(L) layers × \(nHeads) heads")
        }
        grid.insertLabels(of: cell)
        topn.formUnion(value.circuitHeads.keys)
        cells[cell] = value
    }

    public subscript(cell: ResultCell) -> Cell? { cells[cell] }

    public mutating func removeCell(_ cell: ResultCell) { cells[cell] = nil }

    public mutating func merge(_ other: ComponentsTable) throws {
        guard nLayers == other.nLayers, nHeads == other.nHeads else {
            throw OutputFileError(.incompatibleTables, reason: "the components tables are of models with different layers or heads",
                                  hint: "merge only parts of one sweep over one model architecture")
        }
        var merged = self
        merged.grid = try grid.union(other.grid)
        merged.topn.formUnion(other.topn)
        try mergeCells(&merged.cells, other.cells, table: "components", hint: "a cell must be computed by one part of the sweep only")
        self = merged
    }

    static let lensMeasures: [(name: String, longName: String, value: (Cell) -> [Double])] = [
        (ResultName.logitLensRankPlus1Mean, "mean over the cell's entities of (0-based rank + 1) of the label's first token at the last position", { $0.rankPlus1 }),
        (ResultName.logitLensProbMean, "mean over the cell's entities of the label's first-token probability at the last position", { $0.probability }),
        (ResultName.minRankAtSubjectPlus1Mean, "mean over the cell's entities of (best label rank over the subject's positions + 1)", { $0.subjectRankPlus1 }),
    ]

    /// Writes the table to `url` atomically; the same table and provenance give the same file.
    public func write(to url: URL, provenance: Provenance, options: OutputWriteOptions = OutputWriteOptions()) throws {
        let layout = grid.layout
        let sizes = topn.sorted()
        let L = nLayers, H = nHeads, K = L + 1, NC = HeadClass.allCases.count
        let n = layout.count
        let g = ResultGrid.dimensions

        var nEntities = [Int](repeating: OutputFill.count, count: n)
        var lens = Self.lensMeasures.map { _ in [Double](repeating: .nan, count: n * K) }
        var meanS = [Double](repeating: .nan, count: n * L * H), meanR = meanS
        var classes = [String](repeating: "", count: n * L * H)
        var heads = [Int](repeating: OutputFill.count, count: n * sizes.count * NC * L)
        var nodes = [Int](repeating: OutputFill.count, count: n * sizes.count)
        let topnAt = positions(sizes)
        for (cell, v) in cells {
            let o = layout.offset(of: cell)
            nEntities[o] = v.nEntities
            for (m, measure) in Self.lensMeasures.enumerated() {
                for (k, x) in measure.value(v).enumerated() { lens[m][o * K + k] = x }
            }
            let cls = HeadRatios(meanSubject: v.meanSubject, meanRelation: v.meanRelation, nLayers: L, nHeads: H).classes
            for j in 0..<(L * H) { meanS[o * L * H + j] = v.meanSubject[j]; meanR[o * L * H + j] = v.meanRelation[j]; classes[o * L * H + j] = cls[j].rawValue }
            for (size, counts) in v.circuitHeads {
                let t = topnAt[size]!
                for (i, c) in counts.enumerated() { heads[(o * sizes.count + t) * NC * L + i] = c }
                nodes[o * sizes.count + t] = v.circuitNodes[size]!
            }
        }

        try OutputFileWriter.write(.components, to: url, provenance: provenance, options: options) { w, file in
            try layout.writeCoordinates(w, checkpoints: checkpoints)
            try w.stringCoordinate(ResultName.lens, ComponentAnalyzer.lensLabels(nLayers: L),
                                   describe("logit-lens point: residual entering block k ('k_pre'), then the last block's output ('final_post')"))
            try w.numericCoordinate(ResultName.layer, (0..<L).map { Int64($0) }, describe("layer", units: "1"))
            try w.numericCoordinate(ResultName.head, (0..<H).map { Int64($0) }, describe("attention head", units: "1"))
            try w.stringCoordinate(ResultName.headClassAxis, HeadClass.allCases.map(\.rawValue), describe("head class"))
            try w.numericCoordinate(ResultName.topn, sizes.map(Int64.init), describe(AxisNames.topn, units: "1"))
            func count(_ name: String, _ dims: [String], _ longName: String, _ values: [Int]) throws {
                try w.variable(name, type: .int64, dimensions: dims, gridRank: 4, fill: .value(Double(OutputFill.count)),
                               describe(longName, units: "1", [("comment", .text("-1 where not computed"))]))
                if !values.isEmpty { w.later { try file.write(values, to: name) } }
            }
            func real(_ name: String, _ dims: [String], _ longName: String, _ values: [Double]) throws {
                try w.variable(name, type: .double, dimensions: dims, gridRank: 4, fill: .nan, describe(longName, units: "1"))
                if !values.isEmpty { w.later { try file.write(values, to: name) } }
            }
            try count(ResultName.nEntities, g, "circuit samples of the cell analysed (one clean prompt each)", nEntities)
            for (m, measure) in Self.lensMeasures.enumerated() { try real(measure.name, g + [ResultName.lens], measure.longName, lens[m]) }
            try real(ResultName.headSubjectRatio, g + [ResultName.layer, ResultName.head], "mean over the cell's entities of the head's DLA share from the subject's positions", meanS)
            try real(ResultName.headRelationRatio, g + [ResultName.layer, ResultName.head], "mean over the cell's entities of the head's DLA share from the other positions (BOS excluded)", meanR)
            try w.stringVariable(ResultName.headClass, dimensions: g + [ResultName.layer, ResultName.head], n > 0 ? classes : [],
                                 describe("mover if |head_subject_ratio / head_relation_ratio| > 10, relation if < 0.1, else mixture ('' where not computed)"))
            try count(ResultName.circuitHeads, g + [ResultName.topn, ResultName.headClassAxis, ResultName.layer], "heads of the cell's top-n circuit per class (by this cell's head_class) and layer", heads)
            try count(ResultName.circuitNodes, g + [ResultName.topn], "nodes of the cell's top-n circuit (input, heads, MLPs, logits): the denominator of the class proportions", nodes)
        }
    }

    /// Reads a components.nc of a sweep back; a cell is present where `n_entities` is not -1.
    public static func read(from url: URL) throws -> ComponentsTable {
        let reader = try OutputFileReader(url: url, kind: .components)
        defer { reader.close() }
        let (layout, checkpoints) = try ResultGridLayout.read(reader)
        let sizes = try reader.integers(ResultName.topn).map { Int($0) }
        let L = try reader.length(ResultName.layer), H = try reader.length(ResultName.head), K = try reader.length(ResultName.lens), NC = try reader.length(ResultName.headClassAxis)
        guard K == L + 1, NC == HeadClass.allCases.count else {
            throw OutputFileError(.wrongSize, path: url.path, reason: "lens has \(K) points and class \(NC) values for \(L) layers",
                                  hint: "give the components.nc written by dkc sweep")
        }
        let g = ResultGrid.dimensions
        let nEntities = try reader.values(ResultName.nEntities, dimensions: g, types: [.int64, .int32], as: Int.self)
        let lens = try lensMeasures.map { try reader.values($0.name, dimensions: g + [ResultName.lens], types: [.double], as: Double.self) }
        let meanS = try reader.values(ResultName.headSubjectRatio, dimensions: g + [ResultName.layer, ResultName.head], types: [.double], as: Double.self)
        let meanR = try reader.values(ResultName.headRelationRatio, dimensions: g + [ResultName.layer, ResultName.head], types: [.double], as: Double.self)
        let heads = try reader.values(ResultName.circuitHeads, dimensions: g + [ResultName.topn, ResultName.headClassAxis, ResultName.layer], types: [.int64], as: Int.self)
        let nodes = try reader.values(ResultName.circuitNodes, dimensions: g + [ResultName.topn], types: [.int64], as: Int.self)

        var table = ComponentsTable(nLayers: L, nHeads: H)
        table.grid = ResultGrid(layout, checkpoints: checkpoints)
        table.declare(topn: sizes)
        for position in layout.allPositions {
            let o = layout.index.offset(position)
            guard nEntities[o] != OutputFill.count else { continue }
            var circuitHeads: [Int: [Int]] = [:], circuitNodes: [Int: Int] = [:]
            for (i, n) in sizes.enumerated() where nodes[o * sizes.count + i] != OutputFill.count {
                circuitNodes[n] = nodes[o * sizes.count + i]
                circuitHeads[n] = Array(heads[((o * sizes.count + i) * NC * L)..<((o * sizes.count + i + 1) * NC * L)])
            }
            table.cells[layout.cell(at: position)] = Cell(nEntities: nEntities[o], rankPlus1: Array(lens[0][(o * K)..<((o + 1) * K)]),
                                                          probability: Array(lens[1][(o * K)..<((o + 1) * K)]),
                                                          subjectRankPlus1: Array(lens[2][(o * K)..<((o + 1) * K)]),
                                                          meanSubject: Array(meanS[(o * L * H)..<((o + 1) * L * H)]),
                                                          meanRelation: Array(meanR[(o * L * H)..<((o + 1) * L * H)]),
                                                          circuitHeads: circuitHeads, circuitNodes: circuitNodes)
        }
        return table
    }
}
