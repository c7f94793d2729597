import Foundation

/// Full-model knowledge acquisition per checkpoint × attribute × type × frequency: the contents
/// of acquisition.nc, independent of how it was computed (pipeline.md §5).
///
/// - Cells can be set in any order; a cell not set is missing (NaN, or -1 for `n_entities`).
///   Checkpoints are written by step, labels by the canonical orders given at `init`.
/// - `merge` unions disjoint parts; merged parts write the same file as the table built at once.
/// - Equality is NaN-aware.
///
/// File layout (chunks one checkpoint each: acquisition runs once per checkpoint):
///
///     checkpoint(checkpoint) int64, checkpoint_path(checkpoint), attribute(attribute), type(type), frequency(frequency) string
///     exact_match, hits_at_1, hits_at_10, label_prob (checkpoint, attribute, type, frequency) double
///     n_entities (checkpoint, attribute, type, frequency) int64, fill -1
public struct AcquisitionTable: MergeableTable, Equatable, Sendable {
    public static let tableName = "acquisition"
    /// One computed cell.
    public struct Result: Equatable, Sendable {
        /// Share of entities whose greedy continuation, cut at the first ".", equals the value.
        public var exactMatch: Double
        /// Share of entities whose label's first token has rank < 1 and < 10 at the last prompt position.
        public var hitsAt1: Double
        public var hitsAt10: Double
        /// Mean probability of the label's first token.
        public var labelProb: Double
        /// Test entities behind these numbers.
        public var nEntities: Int

        public init(exactMatch: Double, hitsAt1: Double, hitsAt10: Double, labelProb: Double, nEntities: Int) {
            self.exactMatch = exactMatch; self.hitsAt1 = hitsAt1; self.hitsAt10 = hitsAt10
            self.labelProb = labelProb; self.nEntities = nEntities
        }

        public static func == (a: Result, b: Result) -> Bool {
            sameValue(a.exactMatch, b.exactMatch) && sameValue(a.hitsAt1, b.hitsAt1)
                && sameValue(a.hitsAt10, b.hitsAt10) && sameValue(a.labelProb, b.labelProb) && a.nEntities == b.nEntities
        }
    }

    public private(set) var checkpoints = CheckpointAxis()
    public private(set) var attributes: LabelAxis
    public private(set) var types: LabelAxis
    public private(set) var frequencies: LabelAxis
    public private(set) var cells: [AcquisitionCell: Result] = [:]

    public init(attributeOrder: [String] = OutputLabels.attributes, typeOrder: [String] = OutputLabels.types,
                frequencyOrder: [String] = OutputLabels.frequencies) {
        attributes = LabelAxis(canonicalOrder: attributeOrder)
        types = LabelAxis(canonicalOrder: typeOrder)
        frequencies = LabelAxis(canonicalOrder: frequencyOrder)
    }

    /// Adds a checkpoint (its step and folder). Cells can only refer to known checkpoints.
    public mutating func addCheckpoint(step: Int64, path: String) throws {
        try checkpoints.insert(step: step, path: path)
    }

    /// Adds labels that have no cell yet, so the file's axes cover the whole planned grid.
    public mutating func declare(attributes: [String] = [], types: [String] = [], frequencies: [String] = []) {
        self.attributes.insert(contentsOf: attributes)
        self.types.insert(contentsOf: types)
        self.frequencies.insert(contentsOf: frequencies)
    }

    /// Sets (or replaces) a cell.
    public mutating func set(_ cell: AcquisitionCell, _ result: Result) throws {
        guard checkpoints.contains(cell.checkpoint) else {
            throw OutputFileError(.unknownCheckpoint(cell.checkpoint), reason: "cell \(cell) refers to checkpoint step \(cell.checkpoint), which the table does not know",
                                  hint: "call addCheckpoint(step:path:) first")
        }
        guard result.nEntities >= 0 else {
            throw OutputFileError(.invalidArgument, reason: "n_entities of \(cell) is \(result.nEntities); it must be at least 0")
        }
        attributes.insert(cell.attribute); types.insert(cell.type); frequencies.insert(cell.frequency)
        cells[cell] = result
    }

    /// The cell, or nil when it is missing.
    public subscript(cell: AcquisitionCell) -> Result? { cells[cell] }

    /// Adds `other`'s checkpoints, labels and cells; a cell present in both must hold the same values.
    public mutating func merge(_ other: AcquisitionTable) throws {
        var merged = self
        try merged.checkpoints.formUnion(other.checkpoints)
        merged.attributes.formUnion(other.attributes)
        merged.types.formUnion(other.types)
        merged.frequencies.formUnion(other.frequencies)
        try mergeCells(&merged.cells, other.cells, table: "acquisition", hint: "a checkpoint must be evaluated by one part of the sweep only")
        self = merged
    }

    static let gridDimensions = ["checkpoint", "attribute", "type", "frequency"]
    static let measures: [(name: String, longName: String, value: (Result) -> Double)] = [
        ("exact_match", "share of entities whose greedy continuation, cut at the first '.', equals the value", { $0.exactMatch }),
        ("hits_at_1", "share of entities whose label's first token has rank < 1 at the last prompt position", { $0.hitsAt1 }),
        ("hits_at_10", "share of entities whose label's first token has rank < 10 at the last prompt position", { $0.hitsAt10 }),
        ("label_prob", "mean probability of the label's first token at the last prompt position", { $0.labelProb }),
    ]

    /// Writes the table to `url` atomically; the same table and provenance give the same file.
    public func write(to url: URL, provenance: Provenance, options: OutputWriteOptions = OutputWriteOptions()) throws {
        let compression = try options.compression()
        let previous = options.keepHistory ? OutputFileHeader.existing(at: url, kind: .acquisition) : nil
        let header = OutputFileHeader.make(kind: .acquisition, provenance: provenance, previous: previous)
        let steps = checkpoints.steps
        let labels = [attributes.sorted, types.sorted, frequencies.sorted]
        let grid = GridIndex(shape: [steps.count] + labels.map(\.count))
        let dims = Self.gridDimensions

        var columns = Self.measures.map { _ in [Double](repeating: .nan, count: grid.count) }
        var nEntities = [Int](repeating: OutputFill.count, count: grid.count)
        let at = (positions(steps), positions(labels[0]), positions(labels[1]), positions(labels[2]))
        for (cell, result) in cells {
            let o = grid.offset([at.0[cell.checkpoint]!, at.1[cell.attribute]!, at.2[cell.type]!, at.3[cell.frequency]!])
            for (m, measure) in Self.measures.enumerated() { columns[m][o] = measure.value(result) }
            nEntities[o] = result.nEntities
        }

        try NetCDFFile.writeAtomically(to: url) { file in
            let w = OutputFileWriter(file, compression: compression)
            try header.write(to: file)
            try w.checkpointCoordinates(checkpoints)
            try w.stringCoordinate("attribute", labels[0], describe(AxisNames.attribute))
            try w.stringCoordinate("type", labels[1], describe(AxisNames.type))
            try w.stringCoordinate("frequency", labels[2], describe(AxisNames.frequency))
            for (m, measure) in Self.measures.enumerated() {
                try w.variable(measure.name, type: .double, dimensions: dims, gridRank: 1, fill: .nan,
                               describe(measure.longName, units: "1"))
                if grid.count > 0 { w.later { try file.write(columns[m], to: measure.name) } }
            }
            try w.variable("n_entities", type: .int64, dimensions: dims, gridRank: 1, fill: .value(Double(OutputFill.count)),
                           describe("test entities in the cell", units: "1", [("comment", .text("-1 where not computed"))]))
            if grid.count > 0 { w.later { try file.write(nEntities, to: "n_entities") } }
            try w.finish()
        }
    }

    /// Reads an acquisition.nc back; a cell is present where `n_entities` is not -1.
    public static func read(from url: URL) throws -> AcquisitionTable {
        let reader = try OutputFileReader(url: url, kind: .acquisition)
        defer { reader.close() }
        let (steps, checkpoints) = try reader.checkpoints()
        let labels = [try reader.labels("attribute"), try reader.labels("type"), try reader.labels("frequency")]
        let dims = gridDimensions
        let columns = try measures.map { try reader.values($0.name, dimensions: dims, types: [.double, .float], as: Double.self) }
        let nEntities = try reader.values("n_entities", dimensions: dims, types: [.int64, .int32], as: Int.self)

        var table = AcquisitionTable(attributeOrder: labels[0], typeOrder: labels[1], frequencyOrder: labels[2])
        table.checkpoints = checkpoints
        table.declare(attributes: labels[0], types: labels[1], frequencies: labels[2])
        let grid = GridIndex(shape: [steps.count] + labels.map(\.count))
        for c in steps.indices {
            for a in labels[0].indices {
                for y in labels[1].indices {
                    for f in labels[2].indices {
                        let o = grid.offset([c, a, y, f])
                        guard nEntities[o] != OutputFill.count else { continue }
                        table.cells[AcquisitionCell(checkpoint: steps[c], attribute: labels[0][a], type: labels[1][y], frequency: labels[2][f])] =
                            Result(exactMatch: columns[0][o], hitsAt1: columns[1][o], hitsAt10: columns[2][o],
                                   labelProb: columns[3][o], nEntities: nEntities[o])
                    }
                }
            }
        }
        return table
    }
}
