/// How the scores of a file were computed: the attributes of the `score` variable (docs/outputs.md).
/// Every cell of a table shares them; tables with different attributes do not merge.
public struct ScoreAttributes: Equatable, Sendable {
    /// "EAP", "EAP-IG", "clean-corrupted", ...
    public var method: String
    /// Integration steps m (1 for plain EAP).
    public var igSteps: Int
    /// The metric the gradients are taken of (e.g. the loss form of the logit difference).
    public var metric: String
    /// How scores are aggregated over positions and hidden units ("sum", the study's).
    public var aggregation: String
    /// Samples per batch: with the study's normalisation, scores scale with 1 / batch size.
    public var batchSize: Int
    /// How scores are normalised after all batches (the reference's, or per sample once).
    public var normalisation: String
    /// One sentence on what the sign of a score means.
    public var signConvention: String

    public static let defaultSignConvention =
        "score[u, v] estimates how much the metric (attribute 'metric') changes when edge u->v carries the "
        + "corrupted instead of the clean activation: (corrupted - clean output of u) times the gradient of the "
        + "metric at v's input, summed over samples, positions and hidden units, then normalised as "
        + "'normalisation' says; circuits keep the edges of largest |score|"

    public init(method: String, igSteps: Int, metric: String, aggregation: String, batchSize: Int,
                normalisation: String, signConvention: String = ScoreAttributes.defaultSignConvention) {
        self.method = method; self.igSteps = igSteps; self.metric = metric; self.aggregation = aggregation
        self.batchSize = batchSize; self.normalisation = normalisation; self.signConvention = signConvention
    }
}

/// Attribution scores of every computed grid cell: the contents of scores.nc, independent of how
/// they were computed.
///
/// - Cells (checkpoint × task × type × frequency) can be set in any order; a cell not set is
///   missing (NaN in the file). Labels and checkpoints are sets, sorted when the file is written
///   (checkpoints by step; labels by the canonical orders given at `init`, others after them).
/// - A cell's score matrix is (n_forward, n_backward) row-major over `edges`; entries that are
///   not edges are stored as NaN, whatever the caller passed there.
/// - `merge` unions disjoint parts (a job-array sweep); merged parts write the same file as the
///   table built at once.
/// - Equality is NaN-aware: NaN equals NaN, as in the file.
public struct ScoresTable: MergeableTable, ResultGridTable, Equatable, Sendable {
    public static let tableName = ResultName.score
    /// One computed cell.
    public struct Cell: Equatable, Sendable {
        /// Edge scores, NaN where not an edge. (n_forward, n_backward)
        public var scores: [Float]
        /// Samples attributed in the cell.
        public var nSamples: Int
        /// Wall time of the cell, seconds.
        public var seconds: Double

        public static func == (a: Cell, b: Cell) -> Bool {
            a.nSamples == b.nSamples && sameValue(a.seconds, b.seconds) && sameValues(a.scores, b.scores)
        }
    }

    public let edges: EdgeLayout
    public let attributes: ScoreAttributes
    /// Checkpoints and labels of the cells set or declared.
    public private(set) var grid: ResultGrid
    public private(set) var cells: [ResultCell: Cell] = [:]

    /// An empty table over `edges`. The orders decide where known labels go in the file.
    public init(edges: EdgeLayout, attributes: ScoreAttributes,
                taskOrder: [String] = OutputLabels.tasks, typeOrder: [String] = OutputLabels.types,
                frequencyOrder: [String] = OutputLabels.frequencies) {
        self.edges = edges
        self.attributes = attributes
        grid = ResultGrid(taskOrder: taskOrder, typeOrder: typeOrder, frequencyOrder: frequencyOrder)
    }

    /// Adds a checkpoint (its step and folder). Cells can only refer to known checkpoints.
    public mutating func addCheckpoint(step: Int64, path: String) throws {
        try grid.addCheckpoint(step: step, path: path)
    }

    /// Adds labels that have no cell yet, so the file's axes cover the whole planned grid.
    public mutating func declare(tasks: [String] = [], types: [String] = [], frequencies: [String] = []) {
        grid.declare(tasks: tasks, types: types, frequencies: frequencies)
    }

    /// Sets (or replaces) a cell. `scores`: (n_forward, n_backward); non-edges become NaN.
    public mutating func set(_ cell: ResultCell, scores: [Float], nSamples: Int, seconds: Double) throws {
        guard scores.count == edges.isEdge.count else {
            throw OutputFileError(.wrongSize, reason: "the score matrix of \(cell) has \(scores.count) entries; the table needs \(edges.nForward) × \(edges.nBackward) = \(edges.isEdge.count)")
        }
        guard nSamples >= 0 else {
            throw OutputFileError(.invalidArgument, reason: "n_samples of \(cell) is \(nSamples); it must be at least 0")
        }
        try grid.requireCheckpoint(of: cell, "cell \(cell)")
        var masked = scores
        edges.maskNonEdges(&masked)
        grid.insertLabels(of: cell)
        cells[cell] = Cell(scores: masked, nSamples: nSamples, seconds: seconds)
    }

    /// The cell, or nil when it is missing.
    public subscript(cell: ResultCell) -> Cell? { cells[cell] }

    /// Removes a cell (it becomes missing); its labels stay on the axes.
    public mutating func removeCell(_ cell: ResultCell) { cells[cell] = nil }

    /// Adds `other`'s checkpoints, labels and cells. Both tables must share edges and attributes;
    /// a cell present in both must hold the same values (NaN-aware).
    public mutating func merge(_ other: ScoresTable) throws {
        try edges.requireSameGraph(as: other.edges, table: ResultName.score)
        guard attributes == other.attributes else {
            throw OutputFileError(.incompatibleTables, reason: "the score tables were computed differently: \(attributes) vs \(other.attributes)",
                                  hint: "merge only parts of one sweep run with one configuration")
        }
        var merged = self
        merged.grid = try grid.union(other.grid)
        try mergeCells(&merged.cells, other.cells, table: ResultName.score, hint: "a cell must be computed by one part of the sweep only")
        self = merged
    }

    /// Rebuilds a table from its parts (the reader's entry point); no checks beyond the types'.
    init(edges: EdgeLayout, attributes: ScoreAttributes, grid: ResultGrid, cells: [ResultCell: Cell]) {
        self.edges = edges; self.attributes = attributes; self.grid = grid; self.cells = cells
    }
}
