import Foundation

/// Full-model knowledge acquisition per checkpoint × attribute × type × frequency, and per test entity:
/// the contents of acquisition.nc, independent of how it was computed (docs/pipeline.md §5, docs/test-set.md).
///
/// - Cells can be set in any order; a cell not set is missing (NaN, or -1 for `n_entities`).
///   Checkpoints are written by step, labels by the canonical orders given at `init`.
/// - Per-entity results need the test entities first (`setTestEntities`, test.jsonl's order); an entry
///   not computed is -1.
/// - `merge` unions disjoint parts; merged parts write the same file as the table built at once.
/// - Equality is NaN-aware.
///
/// File layout (chunks one checkpoint each: acquisition runs once per checkpoint):
///
///     checkpoint(checkpoint) int64, checkpoint_path(checkpoint), attribute(attribute), type(type), frequency(frequency) string
///     query_accuracy, exact_match, hits_at_1, hits_at_10, label_prob (checkpoint, attribute, type, frequency) double
///     n_entities (checkpoint, attribute, type, frequency) int64, fill -1
///     test_entity(test_entity), test_entity_type(test_entity), test_entity_frequency(test_entity) string
///     query_correct, exact_correct (checkpoint, test_entity, attribute) int8, fill -1
/// (the test_entity variables only when the table has test entities).
public struct AcquisitionTable: MergeableTable, Equatable, Sendable {
    public static let tableName = "acquisition"

    /// One test entity: full name, type, and frequency bucket ("" when in none).
    public struct TestEntity: Equatable, Sendable {
        public var name: String
        public var type: String
        public var frequency: String

        public init(name: String, type: String, frequency: String) {
            self.name = name; self.type = type; self.frequency = frequency
        }
    }

    /// Per-entity results of one checkpoint: attribute → one value per test entity (1 correct, 0 wrong,
    /// -1 not computed), under the study's rule (`query`) and strictly (`exact`).
    public struct EntityResults: Equatable, Sendable {
        public var query: [String: [Int8]]
        public var exact: [String: [Int8]]

        public init(query: [String: [Int8]], exact: [String: [Int8]]) {
            self.query = query; self.exact = exact
        }
    }

    /// One computed cell.
    public struct Result: Equatable, Sendable {
        /// Share of entities whose greedy continuation, cut at the first ".", equals the value or is a
        /// substring of it (the study's rule; an empty prediction counts).
        @NaNEqual public var queryAccuracy: Double
        /// Share of entities whose greedy continuation, cut at the first ".", equals the value.
        @NaNEqual public var exactMatch: Double
        /// Share of entities whose label's first token has rank < 1 and < 10 at the last prompt position.
        @NaNEqual public var hitsAt1: Double
        @NaNEqual public var hitsAt10: Double
        /// Mean probability of the label's first token.
        @NaNEqual public var labelProb: Double
        /// Test entities behind these numbers.
        public var nEntities: Int

        public init(queryAccuracy: Double, exactMatch: Double, hitsAt1: Double, hitsAt10: Double, labelProb: Double, nEntities: Int) {
            self.queryAccuracy = queryAccuracy; self.exactMatch = exactMatch; self.hitsAt1 = hitsAt1; self.hitsAt10 = hitsAt10
            self.labelProb = labelProb; self.nEntities = nEntities
        }
    }

    public private(set) var checkpoints = CheckpointAxis()
    public private(set) var attributes: LabelAxis
    public private(set) var types: LabelAxis
    public private(set) var frequencies: LabelAxis
    public private(set) var cells: [AcquisitionCell: Result] = [:]
    /// The `test_entity` axis (test.jsonl's order); empty when no per-entity results are kept.
    public private(set) var testEntities: [TestEntity] = []
    /// Per-entity results by checkpoint step.
    public private(set) var entityResults: [Int64: EntityResults] = [:]

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

    /// Sets the `test_entity` axis; a table that has one accepts only the same list again.
    public mutating func setTestEntities(_ entities: [TestEntity]) throws {
        guard testEntities.isEmpty || testEntities == entities else {
            throw OutputFileError(.invalidArgument, reason: "the table's \(testEntities.count) test entities differ from the \(entities.count) given",
                                  hint: "per-entity results of one file must come from one test.jsonl; move the old acquisition.nc away if the test set changed")
        }
        testEntities = entities
    }

    /// Sets (or replaces) the per-entity results of a checkpoint: per attribute, one 1/0/-1 per test entity.
    public mutating func setEntityResults(checkpoint: Int64, _ results: EntityResults) throws {
        guard checkpoints.contains(checkpoint) else {
            throw OutputFileError(.unknownCheckpoint(checkpoint), reason: "per-entity results refer to checkpoint step \(checkpoint), which the table does not know",
                                  hint: "call addCheckpoint(step:path:) first")
        }
        guard !testEntities.isEmpty else {
            throw OutputFileError(.invalidArgument, reason: "per-entity results of checkpoint \(checkpoint) given before the test entities",
                                  hint: "call setTestEntities first")
        }
        for (name, columns) in [("query", results.query), ("exact", results.exact)] {
            for (attribute, values) in columns {
                guard values.count == testEntities.count, values.allSatisfy({ (-1...1).contains($0) }) else {
                    throw OutputFileError(.invalidArgument, reason: "\(name) results of checkpoint \(checkpoint), \(attribute): \(values.count) values "
                                          + "for \(testEntities.count) test entities, each must be 1, 0 or -1")
                }
            }
        }
        guard Set(results.query.keys) == Set(results.exact.keys) else {
            throw OutputFileError(.invalidArgument, reason: "per-entity results of checkpoint \(checkpoint) name different attributes for the two rules")
        }
        attributes.insert(contentsOf: Array(results.query.keys))
        entityResults[checkpoint] = results
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
        if !other.testEntities.isEmpty {
            guard merged.testEntities.isEmpty || merged.testEntities == other.testEntities else {
                throw OutputFileError(.conflictingCell(ResultName.testEntity), reason: "the acquisition tables list different test entities",
                                      hint: "the parts must use the same test.jsonl")
            }
            merged.testEntities = other.testEntities
        }
        try mergeCells(&merged.entityResults, other.entityResults, table: "acquisition per-entity",
                       hint: "a checkpoint must be evaluated by one part of the sweep only")
        self = merged
    }

    static let gridDimensions = [ResultName.checkpoint, ResultName.attribute, ResultName.entityType, ResultName.frequency]
    static let measures: [(name: String, longName: String, value: (Result) -> Double)] = [
        (ResultName.queryAccuracy, "share of entities whose greedy continuation, cut at the first '.', equals the value or is a substring of it "
            + "(the study's rule: an empty prediction counts)", { $0.queryAccuracy }),
        (ResultName.exactMatch, "share of entities whose greedy continuation, cut at the first '.', equals the value", { $0.exactMatch }),
        (ResultName.hitsAt1, "share of entities whose label's first token has rank < 1 at the last prompt position", { $0.hitsAt1 }),
        (ResultName.hitsAt10, "share of entities whose label's first token has rank < 10 at the last prompt position", { $0.hitsAt10 }),
        (ResultName.labelProb, "mean probability of the label's first token at the last prompt position", { $0.labelProb }),
    ]

    /// Writes the table to `url` atomically; the same table and provenance give the same file.
    public func write(to url: URL, provenance: Provenance, options: OutputWriteOptions = OutputWriteOptions()) throws {
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

        try OutputFileWriter.write(.acquisition, to: url, provenance: provenance, options: options) { w, file in
            try w.checkpointCoordinates(checkpoints)
            try w.stringCoordinate(ResultName.attribute, labels[0], describe(AxisNames.attribute))
            try w.stringCoordinate(ResultName.entityType, labels[1], describe(AxisNames.type))
            try w.stringCoordinate(ResultName.frequency, labels[2], describe(AxisNames.frequency))
            for (m, measure) in Self.measures.enumerated() {
                try w.variable(measure.name, type: .double, dimensions: dims, gridRank: 1, fill: .nan,
                               describe(measure.longName, units: "1"))
                if grid.count > 0 { w.later { try file.write(columns[m], to: measure.name) } }
            }
            try w.variable(ResultName.nEntities, type: .int64, dimensions: dims, gridRank: 1, fill: .value(Double(OutputFill.count)),
                           describe("test entities in the cell", units: "1", [("comment", .text("-1 where not computed"))]))
            if grid.count > 0 { w.later { try file.write(nEntities, to: ResultName.nEntities) } }
            if !testEntities.isEmpty { try writeEntities(w, steps: steps, attributes: labels[0]) }
        }
    }

    static let entityDimensions = [ResultName.checkpoint, ResultName.testEntity, ResultName.attribute]
    static let entityMeasures: [(name: String, longName: String, value: (EntityResults) -> [String: [Int8]])] = [
        (ResultName.queryCorrect, "1 where the entity's greedy continuation, cut at the first '.', equals the value or is a substring of it "
            + "(the study's rule), else 0", { $0.query }),
        (ResultName.exactCorrect, "1 where the entity's greedy continuation, cut at the first '.', equals the value, else 0", { $0.exact }),
    ]

    /// The `test_entity` coordinates and the per-entity variables, (checkpoint, test_entity, attribute).
    private func writeEntities(_ w: OutputFileWriter, steps: [Int64], attributes: [String]) throws {
        try w.stringCoordinate(ResultName.testEntity, testEntities.map(\.name), describe("test entity (full name), test.jsonl's order"))
        try w.stringVariable(ResultName.testEntityType, dimensions: [ResultName.testEntity], testEntities.map(\.type), describe("entity type of the test entity"))
        try w.stringVariable(ResultName.testEntityFrequency, dimensions: [ResultName.testEntity], testEntities.map(\.frequency),
                             describe("frequency bucket of the test entity ('' when in no bucket)"))
        let grid = GridIndex(shape: [steps.count, testEntities.count, attributes.count])
        for measure in Self.entityMeasures {
            var values = [Int8](repeating: OutputFill.flag, count: grid.count)
            for (c, step) in steps.enumerated() {
                guard let r = entityResults[step] else { continue }
                let columns = measure.value(r)
                for (a, attribute) in attributes.enumerated() {
                    guard let column = columns[attribute] else { continue }
                    for (e, v) in column.enumerated() { values[grid.offset([c, e, a])] = v }
                }
            }
            try w.variable(measure.name, type: .int8, dimensions: Self.entityDimensions, gridRank: 1, fill: .value(Double(OutputFill.flag)),
                           describe(measure.longName, units: "1", [("comment", .text("-1 where not computed"))]))
            if grid.count > 0 { w.later { try w.file.write(values, to: measure.name) } }
        }
    }

    /// Reads an acquisition.nc back; a cell is present where `n_entities` is not -1.
    public static func read(from url: URL) throws -> AcquisitionTable {
        let reader = try OutputFileReader(url: url, kind: .acquisition)
        defer { reader.close() }
        let (steps, checkpoints) = try reader.checkpoints()
        let labels = [try reader.labels(ResultName.attribute), try reader.labels(ResultName.entityType), try reader.labels(ResultName.frequency)]
        let dims = gridDimensions
        // query_accuracy is absent from files written before it existed: NaN there.
        let columns = try measures.map { m -> [Double] in
            guard m.name != ResultName.queryAccuracy || reader.file.hasVariable(m.name) else { return [] }
            return try reader.values(m.name, dimensions: dims, types: [.double, .float], as: Double.self)
        }
        let nEntities = try reader.values(ResultName.nEntities, dimensions: dims, types: [.int64, .int32], as: Int.self)

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
                            Result(queryAccuracy: columns[0].isEmpty ? .nan : columns[0][o], exactMatch: columns[1][o], hitsAt1: columns[2][o],
                                   hitsAt10: columns[3][o], labelProb: columns[4][o], nEntities: nEntities[o])
                    }
                }
            }
        }
        if reader.file.hasDimension(ResultName.testEntity) {
            table.testEntities = try readEntities(reader)
            let n = table.testEntities.count, nA = labels[0].count
            let edims = entityDimensions
            let values = try entityMeasures.map { try reader.values($0.name, dimensions: edims, types: [.int8], as: Int8.self) }
            let grid = GridIndex(shape: [steps.count, n, nA])
            for (c, step) in steps.enumerated() where n > 0 && nA > 0 {
                var columns = [[String: [Int8]]](repeating: [:], count: entityMeasures.count)
                for (a, attribute) in labels[0].enumerated() {
                    let column = values.map { v in (0..<n).map { v[grid.offset([c, $0, a])] } }
                    guard column.contains(where: { $0.contains { $0 != OutputFill.flag } }) else { continue }
                    for (m, values) in column.enumerated() {
                        guard values.allSatisfy({ (-1...1).contains($0) }) else {
                            throw OutputFileError(.wrongLayout(variable: entityMeasures[m].name), path: url.path,
                                                  reason: "variable '\(entityMeasures[m].name)' holds a value other than 1, 0 or -1 at checkpoint \(step), \(attribute)",
                                                  hint: "give an acquisition.nc written by dkc")
                        }
                        columns[m][attribute] = values
                    }
                }
                if !columns[0].isEmpty { table.entityResults[step] = EntityResults(query: columns[0], exact: columns[1]) }
            }
        }
        return table
    }

    /// The `test_entity` axis of a file: names, types and buckets.
    private static func readEntities(_ reader: OutputFileReader) throws -> [TestEntity] {
        let n = try reader.length(ResultName.testEntity)
        for name in [ResultName.testEntity, ResultName.testEntityType, ResultName.testEntityFrequency] {
            try reader.require(name, dimensions: [ResultName.testEntity], types: [.string])
        }
        guard n > 0 else { return [] }
        let names = try reader.file.readStrings(ResultName.testEntity), types = try reader.file.readStrings(ResultName.testEntityType)
        let buckets = try reader.file.readStrings(ResultName.testEntityFrequency)
        return (0..<n).map { TestEntity(name: names[$0], type: types[$0], frequency: buckets[$0]) }
    }
}
