import Circuits

/// Circuit evaluations of every computed grid cell: the contents of circuits.nc, independent of
/// how they were computed.
///
/// A cell (checkpoint × task × type × frequency) is the source cell whose scores chose the
/// circuits. It holds its two baselines and, per top-n, one evaluated circuit; each circuit holds
/// its test on other entities per target type × target frequency. Anything not set is missing
/// (NaN, or -1 for counts and masks, in the file).
///
/// - Cells can be set in any order; labels, top-n values and checkpoints are sets, sorted when
///   the file is written (checkpoints and top-n ascending, labels by the canonical orders).
/// - Faithfulness is derived, never stored in the table: (circuit − corrupted) / (clean −
///   corrupted), NaN when |clean − corrupted| < `faithfulnessMinDenominator`.
/// - `merge` unions disjoint parts; merged parts write the same file as the table built at once.
/// - Equality is NaN-aware.
public struct CircuitsTable: MergeableTable, ResultGridTable, Equatable, Sendable {
    public static let tableName = "circuit"
    /// Target type × target frequency of a circuit test.
    public struct Target: Hashable, Sendable {
        public var type: String
        public var frequency: String
        public init(type: String, frequency: String) { self.type = type; self.frequency = frequency }
    }

    /// A circuit tested on other entities, every edge outside it zero-ablated.
    public struct TargetResult: Equatable, Sendable {
        /// Mean probability of the label's first token.
        @NaNEqual public var labelProb: Double
        /// Mean rank of the label's first token (0 = top).
        @NaNEqual public var labelRankMean: Double
        /// Share of entities whose label token has rank < 1 and < 10.
        @NaNEqual public var hitsAt1: Double
        @NaNEqual public var hitsAt10: Double
        /// Test entities behind these numbers.
        public var nTest: Int

        public init(labelProb: Double, labelRankMean: Double, hitsAt1: Double, hitsAt10: Double, nTest: Int) {
            self.labelProb = labelProb; self.labelRankMean = labelRankMean
            self.hitsAt1 = hitsAt1; self.hitsAt10 = hitsAt10; self.nTest = nTest
        }
    }

    /// One circuit (one top-n), after pruning.
    public struct Circuit: Equatable, Sendable {
        /// Mean logit difference with the circuit patched in.
        @NaNEqual public var performance: Double
        /// Edges and nodes kept (nodes count `input` and `logits`).
        public var nEdges: Int
        public var nNodes: Int
        /// Entropy of |score| over the kept edges, nats (float32, as computed).
        @NaNEqual public var edgeEntropy: Float
        /// 1 for a kept edge, else 0. (n_forward, n_backward)
        public var inCircuit: [Int8]
        /// The circuit's tests on other entities.
        public var targets: [Target: TargetResult]

        public init(performance: Double, nEdges: Int, nNodes: Int, edgeEntropy: Float, inCircuit: [Int8],
                    targets: [Target: TargetResult] = [:]) {
            self.performance = performance; self.nEdges = nEdges; self.nNodes = nNodes
            self.edgeEntropy = edgeEntropy; self.inCircuit = inCircuit; self.targets = targets
        }
    }

    /// A cell's circuits on one model with the model's two baselines: `Cell` (the cell's own circuits, `Circuit`)
    /// and `Transplant` (a source checkpoint's circuits on another model, `TransplantCircuit`).
    public struct Evaluated<Result: Equatable & Sendable>: Equatable, Sendable {
        /// Mean logit difference on the clean and on the corrupted prompts.
        @NaNEqual public var cleanBaseline: Double
        @NaNEqual public var corruptedBaseline: Double
        /// Circuits by top-n.
        public var circuits: [Int: Result]

        public init(cleanBaseline: Double, corruptedBaseline: Double, circuits: [Int: Result] = [:]) {
            self.cleanBaseline = cleanBaseline; self.corruptedBaseline = corruptedBaseline; self.circuits = circuits
        }
    }

    /// One source cell.
    public typealias Cell = Evaluated<Circuit>

    public let edges: EdgeLayout
    /// Faithfulness is NaN when |clean − corrupted| is below this (the `faithfulness` attribute
    /// `faithfulness_min_denominator`).
    public let faithfulnessMinDenominator: Double
    /// Checkpoints and labels of the cells (and transplants) set or declared.
    public internal(set) var grid: ResultGrid
    public internal(set) var topn: Set<Int> = []
    public private(set) var targetTypes: LabelAxis
    public private(set) var targetFrequencies: LabelAxis
    public private(set) var cells: [ResultCell: Cell] = [:]
    /// Circuits of source checkpoints evaluated on other checkpoints' models (CircuitsTable+Transplant.swift).
    public internal(set) var transplants: [TransplantKey: Transplant] = [:]
    public internal(set) var transplantSources: Set<Int64> = []

    /// An empty table. Target axes use the type and frequency orders.
    public init(edges: EdgeLayout, faithfulnessMinDenominator: Double = 1e-6,
                taskOrder: [String] = OutputLabels.tasks, typeOrder: [String] = OutputLabels.types,
                frequencyOrder: [String] = OutputLabels.frequencies) {
        self.edges = edges
        self.faithfulnessMinDenominator = faithfulnessMinDenominator
        grid = ResultGrid(taskOrder: taskOrder, typeOrder: typeOrder, frequencyOrder: frequencyOrder)
        targetTypes = LabelAxis(canonicalOrder: typeOrder)
        targetFrequencies = LabelAxis(canonicalOrder: frequencyOrder)
    }

    /// Adds a checkpoint (its step and folder). Cells can only refer to known checkpoints.
    public mutating func addCheckpoint(step: Int64, path: String) throws {
        try grid.addCheckpoint(step: step, path: path)
    }

    /// Adds axis values that have no cell yet, so the file covers the whole planned grid.
    public mutating func declare(tasks: [String] = [], types: [String] = [], frequencies: [String] = [],
                                 topn: [Int] = [], targetTypes: [String] = [], targetFrequencies: [String] = []) throws {
        if let bad = topn.first(where: { $0 < 0 }) {
            throw OutputFileError(.invalidArgument, reason: "top-n \(bad) is negative")
        }
        grid.declare(tasks: tasks, types: types, frequencies: frequencies)
        self.topn.formUnion(topn)
        self.targetTypes.insert(contentsOf: targetTypes)
        self.targetFrequencies.insert(contentsOf: targetFrequencies)
    }

    /// Sets (or replaces) a whole cell. Every circuit's `inCircuit` must be (n_forward,
    /// n_backward) of 0 and 1, with 1 only on edges; counts must be at least 0.
    public mutating func set(_ cell: ResultCell, _ value: Cell) throws {
        try grid.requireCheckpoint(of: cell, "cell \(cell)")
        for (n, circuit) in value.circuits {
            let what = "the top-\(n) circuit of \(cell)"
            guard n >= 0 else { throw OutputFileError(.invalidArgument, reason: "\(what): top-n is negative") }
            guard circuit.inCircuit.count == edges.isEdge.count else {
                throw OutputFileError(.wrongSize, reason: "\(what) has \(circuit.inCircuit.count) in_circuit entries; the table needs \(edges.nForward) × \(edges.nBackward) = \(edges.isEdge.count)")
            }
            for i in circuit.inCircuit.indices where circuit.inCircuit[i] != 0 {
                guard circuit.inCircuit[i] == 1, edges.isEdge[i] == 1 else {
                    throw OutputFileError(.invalidArgument, reason: "\(what) marks (\(edges.upstream[i / edges.nBackward]), \(edges.downstream[i % edges.nBackward])) with \(circuit.inCircuit[i]); in_circuit holds 1 only on edges")
                }
            }
            guard circuit.nEdges >= 0, circuit.nNodes >= 0, circuit.targets.values.allSatisfy({ $0.nTest >= 0 }) else {
                throw OutputFileError(.invalidArgument, reason: "\(what) has a negative count (n_edges, n_nodes or n_test)")
            }
        }
        grid.insertLabels(of: cell)
        for (n, circuit) in value.circuits {
            topn.insert(n)
            for target in circuit.targets.keys {
                targetTypes.insert(target.type); targetFrequencies.insert(target.frequency)
            }
        }
        cells[cell] = value
    }

    /// The cell, or nil when it is missing.
    public subscript(cell: ResultCell) -> Cell? { cells[cell] }

    /// Removes a cell (it becomes missing); its labels stay on the axes.
    public mutating func removeCell(_ cell: ResultCell) { cells[cell] = nil }

    /// (circuit − corrupted, clean − corrupted, faithfulness) of a cell's top-n circuit, or nil
    /// when the circuit is missing. Faithfulness is NaN when |clean − corrupted| is below
    /// `faithfulnessMinDenominator`, is 0, or either term is NaN.
    public func faithfulness(_ cell: ResultCell, topn n: Int) -> (numerator: Double, denominator: Double, value: Double)? {
        guard let value = cells[cell], let circuit = value.circuits[n] else { return nil }
        let numerator = circuit.performance - value.corruptedBaseline
        let denominator = Self.denominator(value)
        return (numerator, denominator, Self.faithfulness(numerator, denominator, faithfulnessMinDenominator))
    }

    static func denominator(_ cell: Cell) -> Double { cell.cleanBaseline - cell.corruptedBaseline }

    static func faithfulness(_ numerator: Double, _ denominator: Double, _ minimum: Double) -> Double {
        abs(denominator) >= minimum && denominator != 0 ? numerator / denominator : .nan
    }

    /// Adds `other`'s checkpoints, axis values and cells. Both tables must share edges and
    /// `faithfulnessMinDenominator`; a cell present in both must hold the same values.
    public mutating func merge(_ other: CircuitsTable) throws {
        try edges.requireSameGraph(as: other.edges, table: "circuit")
        guard faithfulnessMinDenominator == other.faithfulnessMinDenominator else {
            throw OutputFileError(.incompatibleTables, reason: "the circuit tables use different faithfulness_min_denominator values (\(faithfulnessMinDenominator) and \(other.faithfulnessMinDenominator))",
                                  hint: "merge only parts of one sweep run with one configuration")
        }
        var merged = self
        merged.grid = try grid.union(other.grid)
        merged.topn.formUnion(other.topn)
        merged.targetTypes.formUnion(other.targetTypes)
        merged.targetFrequencies.formUnion(other.targetFrequencies)
        try mergeCells(&merged.cells, other.cells, table: "circuit", hint: "a cell must be computed by one part of the sweep only")
        merged.transplantSources.formUnion(other.transplantSources)
        try mergeCells(&merged.transplants, other.transplants, table: "circuit transplant", hint: "a transplant must be computed by one run only")
        self = merged
    }

    /// Rebuilds a table from its parts (the reader's entry point).
    init(edges: EdgeLayout, faithfulnessMinDenominator: Double, grid: ResultGrid, topn: Set<Int>,
         targetTypes: LabelAxis, targetFrequencies: LabelAxis, cells: [ResultCell: Cell]) {
        self.edges = edges; self.faithfulnessMinDenominator = faithfulnessMinDenominator; self.grid = grid
        self.topn = topn; self.targetTypes = targetTypes; self.targetFrequencies = targetFrequencies
        self.cells = cells
    }
}
