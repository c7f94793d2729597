import Foundation
import XCTest
@testable import Core
@testable import Results

/// scores.nc, circuits.nc, acquisition.nc: tables, writers, readers, merge, and what outside
/// readers (ncdump, xarray) see.
final class OutputFilesTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-outputs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func url(_ name: String) -> URL { folder.appendingPathComponent(name) }

    // MARK: - Fixtures built here

    /// The EAP-IG graph of a model with `layers` layers of `heads` heads, laid out as eap.md says.
    static func graph(layers L: Int = 2, heads H: Int = 2) throws -> EdgeLayout {
        var upstream = ["input"]
        var downstream: [String] = []
        var previous: [Int] = []   // per column: rows before it are its parents
        for l in 0..<L {
            upstream += (0..<H).map { "a\(l).h\($0)" } + ["m\(l)"]
            for x in ["q", "k", "v"] {
                for h in 0..<H { downstream.append("a\(l).h\(h)<\(x)>"); previous.append(1 + l * (H + 1)) }
            }
            downstream.append("m\(l)"); previous.append(1 + l * (H + 1) + H)
        }
        downstream.append("logits"); previous.append(upstream.count)
        let mask = upstream.indices.flatMap { r in previous.map { r < $0 } }
        return try EdgeLayout(upstream: upstream, downstream: downstream, isEdge: mask)
    }

    static let attributes = ScoreAttributes(method: "EAP-IG", igSteps: 5, metric: "logit_difference_loss",
                                            aggregation: "sum", batchSize: 8, normalisation: "reference")

    static func provenance(_ command: String = "dkc sweep --config configs/sweep/tiny.toml",
                           created: String = "2025-01-31T09:05:00Z") throws -> Provenance {
        try Provenance(commandLine: command, config: #"{"method":"EAP-IG","topn":[10,50]}"#, mpiRanks: 3,
                       blasThreads: 2, created: created, source: "dkc 0.1.0 (test)")
    }

    /// A deterministic score matrix for a cell, with junk (not NaN) where there is no edge.
    static func scores(_ edges: EdgeLayout, seed: Int) -> [Float] {
        (0..<edges.isEdge.count).map { i in Float((i * 37 + seed * 101) % 997) / 997 - 0.5 + Float(seed) }
    }

    static let cellsOrder: [ResultCell] = [
        ResultCell(checkpoint: 3000, task: "major", type: "revised", frequency: "high"),
        ResultCell(checkpoint: 1000, task: "city", type: "new", frequency: "high"),
        ResultCell(checkpoint: 2000, task: "city", type: "new", frequency: "high"),
        ResultCell(checkpoint: 1000, task: "company", type: "new", frequency: "low"),
        ResultCell(checkpoint: 3000, task: "city", type: "new", frequency: "high"),
    ]

    static func scoresTable(cells: [ResultCell], edges: EdgeLayout) throws -> ScoresTable {
        var table = ScoresTable(edges: edges, attributes: attributes)
        for step in [3000, 1000, 2000] as [Int64] { try table.addCheckpoint(step: step, path: "/run/train/base/checkpoints/checkpoint-\(step)") }
        table.declare(tasks: ["city", "company", "major"], types: ["new", "revised"], frequencies: ["high", "medium", "low"])
        for cell in cells {
            let seed = cellsOrder.firstIndex(of: cell)!
            try table.set(cell, scores: scores(edges, seed: seed), nSamples: 24 + seed, seconds: 1.5 * Double(seed + 1))
        }
        return table
    }

    static func circuitsTable(cells: [ResultCell], edges: EdgeLayout) throws -> CircuitsTable {
        var table = CircuitsTable(edges: edges, faithfulnessMinDenominator: 1e-3)
        for step in [3000, 1000, 2000] as [Int64] { try table.addCheckpoint(step: step, path: "/run/train/base/checkpoints/checkpoint-\(step)") }
        try table.declare(tasks: ["city", "company", "major"], types: ["new", "revised"], frequencies: ["high", "medium", "low"],
                          topn: [50, 10], targetTypes: ["new", "revised"], targetFrequencies: ["high", "low"])
        let edgeIndices = edges.isEdge.indices.filter { edges.isEdge[$0] == 1 }
        for cell in cells {
            let seed = cellsOrder.firstIndex(of: cell)!
            // Seed 3 has clean == corrupted: faithfulness must be NaN there.
            let clean = 2.0 + Double(seed), corrupted = seed == 3 ? clean : -1.0 + 0.25 * Double(seed)
            var value = CircuitsTable.Cell(cleanBaseline: clean, corruptedBaseline: corrupted)
            for n in seed == 0 ? [10] : [10, 50] {   // seed 0: only top-10 evaluated
                var mask = [Int8](repeating: 0, count: edges.isEdge.count)
                for i in edgeIndices.prefix(n / 5 + seed) { mask[i] = 1 }
                var circuit = CircuitsTable.Circuit(performance: 1.0 + Double(n) / 100 + Double(seed), nEdges: n / 5 + seed,
                                                    nNodes: 3 + seed, edgeEntropy: Float(n) / 7, inCircuit: mask)
                circuit.targets[.init(type: "new", frequency: "high")] =
                    .init(labelProb: 0.5 / Double(seed + 1), labelRankMean: 3.25, hitsAt1: 0.5, hitsAt10: 0.75 + Double(n) / 1000, nTest: 300)
                if seed != 2 {   // seed 2: one target missing
                    circuit.targets[.init(type: "revised", frequency: "low")] =
                        .init(labelProb: 0.125, labelRankMean: 40, hitsAt1: 0, hitsAt10: 0.25, nTest: 299)
                }
                value.circuits[n] = circuit
            }
            try table.set(cell, value)
        }
        return table
    }

    static let acquisitionCells: [AcquisitionCell] = [
        AcquisitionCell(checkpoint: 2000, attribute: "university", type: "revised", frequency: "low"),
        AcquisitionCell(checkpoint: 1000, attribute: "birthday", type: "new", frequency: "high"),
        AcquisitionCell(checkpoint: 1000, attribute: "city", type: "new", frequency: "high"),
        AcquisitionCell(checkpoint: 2000, attribute: "city", type: "new", frequency: "high"),
    ]

    static let testEntities = [AcquisitionTable.TestEntity(name: "Ann Bo Lee", type: "new", frequency: "high"),
                               AcquisitionTable.TestEntity(name: "Cy Dee", type: "revised", frequency: "low"),
                               AcquisitionTable.TestEntity(name: "Ed Fox", type: "new", frequency: "")]

    /// Per-entity results of the checkpoints of `acquisitionCells` (1000: city and birthday; 2000: city).
    static let entityResults: [Int64: AcquisitionTable.EntityResults] = [
        1000: .init(query: ["city": [1, 1, 0], "birthday": [0, 0, 1]], exact: ["city": [1, 0, 0], "birthday": [0, 0, 0]]),
        2000: .init(query: ["city": [1, 1, 1]], exact: ["city": [0, 1, 1]]),
    ]

    static func acquisitionTable(cells: [AcquisitionCell]) throws -> AcquisitionTable {
        var table = AcquisitionTable()
        for step in [2000, 1000] as [Int64] { try table.addCheckpoint(step: step, path: "/run/ckpt-\(step)") }
        table.declare(attributes: OutputLabels.attributes, types: ["new", "revised"], frequencies: ["high", "low"])
        try table.setTestEntities(testEntities)
        for cell in cells {
            let seed = Double(acquisitionCells.firstIndex(of: cell)!)
            try table.set(cell, .init(queryAccuracy: 0.5 + 0.1 * seed, exactMatch: 0.1 * seed, hitsAt1: 0.2 + 0.1 * seed, hitsAt10: 0.9,
                                      labelProb: 0.05 * seed, nEntities: 300 - Int(seed)))
        }
        for step in Set(cells.map(\.checkpoint)) { try table.setEntityResults(checkpoint: step, entityResults[step]!) }
        return table
    }

    // MARK: - Round trips

    func testScoresRoundTripKeepsPartialCellsAndMissingIsNaN() throws {
        let edges = try Self.graph()
        XCTAssertEqual(edges.nForward, 7)
        XCTAssertEqual(edges.nBackward, 15)
        XCTAssertEqual(edges.edgeCount, 1 * 6 + 3 * 1 + 4 * 6 + 6 * 1 + 7)
        let table = try Self.scoresTable(cells: Self.cellsOrder, edges: edges)
        let target = url("scores.nc")
        try table.write(to: target, provenance: try Self.provenance())
        let back = try ScoresTable.read(from: target)
        XCTAssertEqual(back, table)
        XCTAssertEqual(back.cells.count, 5)

        // Non-edges are NaN whatever was passed; edges keep their values bit for bit.
        let cell = Self.cellsOrder[1]
        let given = Self.scores(edges, seed: 1)
        let stored = try XCTUnwrap(back[cell]).scores
        for i in given.indices {
            if edges.isEdge[i] == 1 { XCTAssertEqual(stored[i].bitPattern, given[i].bitPattern) } else { XCTAssertTrue(stored[i].isNaN) }
        }

        // The file itself: sorted coordinates, missing cells NaN / -1.
        let file = try NetCDFFile.open(path: target.path)
        defer { try? file.close() }
        XCTAssertEqual(try file.read("checkpoint", as: Int64.self), [1000, 2000, 3000])
        XCTAssertEqual(try file.readStrings("checkpoint_path"), [1000, 2000, 3000].map { "/run/train/base/checkpoints/checkpoint-\($0)" })
        XCTAssertEqual(try file.readStrings("task"), ["city", "company", "major"])
        XCTAssertEqual(try file.readStrings("type"), ["new", "revised"])
        XCTAssertEqual(try file.readStrings("frequency"), ["low", "medium", "high"])
        XCTAssertEqual(try file.readStrings("upstream"), edges.upstream)
        XCTAssertEqual(try file.readStrings("downstream").last, "logits")
        XCTAssertEqual(try file.read("is_edge", as: Int8.self), edges.isEdge)
        // checkpoint 2000 × company × revised × medium was never computed.
        let missing = try file.read("score", as: Float.self, start: [1, 1, 1, 1, 0, 0], count: [1, 1, 1, 1, 7, 15])
        XCTAssertTrue(missing.allSatisfy(\.isNaN))
        let nSamples = try file.read("n_samples", as: Int.self)
        XCTAssertEqual(nSamples.filter { $0 != -1 }.count, 5)
        XCTAssertEqual(nSamples[GridIndex(shape: [3, 3, 2, 3]).offset([0, 0, 0, 2])], 25)   // 1000 city new high
        XCTAssertEqual(try file.read("seconds", as: Double.self).filter { !$0.isNaN }.count, 5)
    }

    func testScoresAttributesAndProvenance() throws {
        let table = try Self.scoresTable(cells: Array(Self.cellsOrder.prefix(2)), edges: try Self.graph())
        let target = url("scores.nc")
        try table.write(to: target, provenance: try Self.provenance())
        let file = try NetCDFFile.open(path: target.path)
        defer { try? file.close() }
        XCTAssertEqual(try file.textAttribute("title"), "dkc edge attribution scores")
        XCTAssertEqual(try file.textAttribute("source"), "dkc 0.1.0 (test)")
        XCTAssertEqual(try file.textAttribute("history"), "2025-01-31T09:05:00Z dkc sweep --config configs/sweep/tiny.toml")
        XCTAssertEqual(try file.textAttribute("config"), #"{"method":"EAP-IG","topn":[10,50]}"#)
        XCTAssertEqual(try file.numericAttribute("mpi_ranks", as: Int32.self), [3])
        XCTAssertEqual(try file.numericAttribute("blas_threads", as: Int32.self), [2])
        XCTAssertEqual(try file.textAttribute("created"), "2025-01-31T09:05:00Z")
        XCTAssertEqual(try file.textAttribute("dkc_file"), "scores")
        XCTAssertEqual(try file.textAttribute("method", of: "score"), "EAP-IG")
        XCTAssertEqual(try file.numericAttribute("ig_steps", of: "score", as: Int.self), [5])
        XCTAssertEqual(try file.textAttribute("metric", of: "score"), "logit_difference_loss")
        XCTAssertEqual(try file.textAttribute("aggregation", of: "score"), "sum")
        XCTAssertEqual(try file.numericAttribute("batch_size", of: "score", as: Int.self), [8])
        XCTAssertEqual(try file.textAttribute("normalisation", of: "score"), "reference")
        XCTAssertTrue(try file.textAttribute("sign_convention", of: "score").contains("corrupted - clean"))
        XCTAssertTrue(try file.textAttribute("hook_names", of: "upstream").contains("blocks.{l}.attn.hook_result"))
        XCTAssertTrue(try file.textAttribute("hook_names", of: "upstream").contains("hook_embed"))
        XCTAssertTrue(try file.textAttribute("hook_names", of: "downstream").contains("hook_q_input"))
        for variable in try file.variableNames() {
            XCTAssertTrue(file.hasAttribute("long_name", of: variable), "\(variable) lacks long_name")
            if try file.variable(variable).type != .string {
                XCTAssertTrue(file.hasAttribute("units", of: variable), "\(variable) lacks units")
            }
        }
        XCTAssertEqual(try file.textAttribute("units", of: "seconds"), "s")
        let header = try OutputFileHeader.read(from: target)
        XCTAssertEqual(header.kind, "scores")
        XCTAssertEqual(header.history.count, 1)
    }

    func testCircuitsRoundTripAndFaithfulness() throws {
        let edges = try Self.graph()
        let table = try Self.circuitsTable(cells: Self.cellsOrder, edges: edges)
        let target = url("circuits.nc")
        try table.write(to: target, provenance: try Self.provenance())
        let back = try CircuitsTable.read(from: target)
        XCTAssertEqual(back, table)
        XCTAssertEqual(back.topn, [10, 50])
        XCTAssertNil(back[Self.cellsOrder[0]]?.circuits[50])
        XCTAssertNil(back[Self.cellsOrder[2]]?.circuits[10]?.targets[.init(type: "revised", frequency: "low")])

        let file = try NetCDFFile.open(path: target.path)
        defer { try? file.close() }
        XCTAssertEqual(try file.read("topn", as: Int64.self), [10, 50])
        XCTAssertEqual(try file.readStrings("target_type"), ["new", "revised"])
        XCTAssertEqual(try file.readStrings("target_frequency"), ["low", "high"])
        XCTAssertEqual(try file.numericAttribute("faithfulness_min_denominator", of: "faithfulness", as: Double.self), [1e-3])
        let grid = GridIndex(shape: [3, 3, 2, 3, 2])
        let faithfulness = try file.read("faithfulness", as: Double.self)
        let numerator = try file.read("faithfulness_numerator", as: Double.self)
        let denominator = try file.read("faithfulness_denominator", as: Double.self)
        // 1000 × city × new × high is seed 1: clean 3, corrupted -0.75, top-50 performance 2.5.
        let o = grid.offset([0, 0, 0, 2, 1])
        XCTAssertEqual(numerator[o], 2.5 + 0.75)
        XCTAssertEqual(denominator[GridIndex(shape: [3, 3, 2, 3]).offset([0, 0, 0, 2])], 3.75)
        XCTAssertEqual(faithfulness[o], 3.25 / 3.75)
        XCTAssertEqual(table.faithfulness(Self.cellsOrder[1], topn: 50)?.value, 3.25 / 3.75)
        // Seed 3 (1000 × company × new × low) has clean == corrupted: NaN, numerator still stored.
        let flat = grid.offset([0, 1, 0, 0, 0])
        XCTAssertTrue(faithfulness[flat].isNaN)
        XCTAssertFalse(numerator[flat].isNaN)
        XCTAssertTrue(try XCTUnwrap(table.faithfulness(Self.cellsOrder[3], topn: 10)).value.isNaN)
        // Seed 0 (3000 × major × revised × high) lacks top-50: NaN / -1 there.
        let lacking = grid.offset([2, 2, 1, 2, 1])
        XCTAssertTrue(faithfulness[lacking].isNaN)
        XCTAssertEqual(try file.read("n_edges", as: Int.self)[lacking], -1)
        let mask = try file.read("in_circuit", as: Int8.self, start: [2, 2, 1, 2, 0, 0, 0], count: [1, 1, 1, 1, 2, 7, 15])
        XCTAssertEqual(Array(mask[105...]), [Int8](repeating: -1, count: 105))
        XCTAssertEqual(mask[..<105].filter { $0 == 1 }.count, 2)
        // A cell never computed: every in_circuit entry is the fill.
        XCTAssertEqual(Set(try file.read("in_circuit", as: Int8.self, start: [1, 1, 1, 1, 0, 0, 0], count: [1, 1, 1, 1, 2, 7, 15])), [-1])
        XCTAssertEqual(try file.read("n_test", as: Int.self).filter { $0 != -1 }.count, 5 * 2 * 2 - 1 * 2 - 1 * 2)
    }

    func testAcquisitionRoundTrip() throws {
        let table = try Self.acquisitionTable(cells: Self.acquisitionCells)
        let target = url("acquisition.nc")
        var provenance = try Self.provenance("dkc predict")
        provenance.testSet = "circuit"
        try table.write(to: target, provenance: provenance)
        let back = try AcquisitionTable.read(from: target)
        XCTAssertEqual(back, table)
        XCTAssertEqual(back.testEntities, Self.testEntities)
        XCTAssertEqual(back.entityResults, Self.entityResults)
        XCTAssertEqual(try OutputFileHeader.read(from: target).testSet, "circuit")
        let file = try NetCDFFile.open(path: target.path)
        defer { try? file.close() }
        XCTAssertEqual(try file.readStrings("attribute"), ["birthday", "city", "company", "major", "university"])
        XCTAssertEqual(try file.read("checkpoint", as: Int64.self), [1000, 2000])
        XCTAssertEqual(try file.read("n_entities", as: Int.self).filter { $0 != -1 }.sorted(), [297, 298, 299, 300])
        XCTAssertEqual(try file.read("exact_match", as: Double.self).filter { !$0.isNaN }.count, 4)
        XCTAssertEqual(try file.read("query_accuracy", as: Double.self).filter { !$0.isNaN }.count, 4)
        XCTAssertEqual(try file.variable("exact_match").chunkSizes, [1, 5, 2, 2])
        XCTAssertEqual(try file.textAttribute("test_set"), "circuit")

        // Per entity: (checkpoint, test_entity, attribute), attributes birthday, city, company, major, university.
        XCTAssertEqual(try file.readStrings("test_entity"), ["Ann Bo Lee", "Cy Dee", "Ed Fox"])
        XCTAssertEqual(try file.readStrings("test_entity_type"), ["new", "revised", "new"])
        XCTAssertEqual(try file.readStrings("test_entity_frequency"), ["high", "low", ""])
        let query = try file.variable("query_correct")
        XCTAssertEqual(query.type, .int8)
        XCTAssertEqual(query.dimensions, ["checkpoint", "test_entity", "attribute"])
        XCTAssertEqual(query.chunkSizes, [1, 3, 5])
        let q = try file.read("query_correct", as: Int8.self), x = try file.read("exact_correct", as: Int8.self)
        // checkpoint 1000: rows Ann, Cy, Ed; columns birthday, city, company, major, university.
        XCTAssertEqual(Array(q[0..<15]), [0, 1, -1, -1, -1, 0, 1, -1, -1, -1, 1, 0, -1, -1, -1])
        XCTAssertEqual(Array(x[0..<15]), [0, 1, -1, -1, -1, 0, 0, -1, -1, -1, 0, 0, -1, -1, -1])
        // checkpoint 2000: city only.
        XCTAssertEqual(Array(q[15...]), [-1, 1, -1, -1, -1, -1, 1, -1, -1, -1, -1, 1, -1, -1, -1])
        XCTAssertEqual(Array(x[15...]), [-1, 0, -1, -1, -1, -1, 1, -1, -1, -1, -1, 1, -1, -1, -1])

        // A table without test entities writes no test_entity axis and reads back without one.
        var plain = AcquisitionTable()
        try plain.addCheckpoint(step: 5, path: "/c")
        try plain.write(to: url("plain.nc"), provenance: try Self.provenance())
        XCTAssertEqual(try AcquisitionTable.read(from: url("plain.nc")), plain)
        XCTAssertNil(try OutputFileHeader.read(from: url("plain.nc")).testSet)
        let plainFile = try NetCDFFile.open(path: url("plain.nc").path)
        defer { try? plainFile.close() }
        XCTAssertFalse(plainFile.hasDimension("test_entity"))
    }

    func testAcquisitionPerEntityResultsAreChecked() throws {
        var table = AcquisitionTable()
        try table.addCheckpoint(step: 1, path: "/c")
        let results = AcquisitionTable.EntityResults(query: ["city": [1, 0, 1]], exact: ["city": [0, 0, 1]])
        XCTAssertThrowsError(try table.setEntityResults(checkpoint: 1, results), "results before the test entities")
        try table.setTestEntities(Self.testEntities)
        XCTAssertThrowsError(try table.setEntityResults(checkpoint: 2, results), "unknown checkpoint")
        XCTAssertThrowsError(try table.setEntityResults(checkpoint: 1, .init(query: ["city": [1, 0]], exact: ["city": [0, 0]])), "too few values")
        XCTAssertThrowsError(try table.setEntityResults(checkpoint: 1, .init(query: ["city": [1, 0, 2]], exact: ["city": [0, 0, 1]])), "not 0/1/-1")
        XCTAssertThrowsError(try table.setEntityResults(checkpoint: 1, .init(query: ["city": [1, 0, 1]], exact: [:])), "one rule missing")
        try table.setEntityResults(checkpoint: 1, results)
        XCTAssertThrowsError(try table.setTestEntities(Array(Self.testEntities.reversed())), "another test set")
        XCTAssertNoThrow(try table.setTestEntities(Self.testEntities))
        // Merging parts of different test sets fails.
        var other = AcquisitionTable()
        try other.setTestEntities(Array(Self.testEntities.prefix(2)))
        XCTAssertThrowsError(try table.merge(other)) { XCTAssertEqual(($0 as? OutputFileError)?.kind, .conflictingCell("test_entity")) }
        // Same checkpoint, different per-entity values: a conflict.
        var twin = AcquisitionTable()
        try twin.addCheckpoint(step: 1, path: "/c")
        try twin.setTestEntities(Self.testEntities)
        try twin.setEntityResults(checkpoint: 1, .init(query: ["city": [1, 1, 1]], exact: ["city": [0, 0, 1]]))
        XCTAssertThrowsError(try table.merge(twin)) { XCTAssertEqual(($0 as? OutputFileError)?.kind, .conflictingCell("1")) }
    }

    func testEmptyTablesWriteAndReadBack() throws {
        let edges = try Self.graph(layers: 1, heads: 1)
        let scores = ScoresTable(edges: edges, attributes: Self.attributes)
        try scores.write(to: url("s.nc"), provenance: try Self.provenance())
        XCTAssertEqual(try ScoresTable.read(from: url("s.nc")), scores)
        let circuits = CircuitsTable(edges: edges)
        try circuits.write(to: url("c.nc"), provenance: try Self.provenance())
        XCTAssertEqual(try CircuitsTable.read(from: url("c.nc")), circuits)
        let acquisition = AcquisitionTable()
        try acquisition.write(to: url("a.nc"), provenance: try Self.provenance())
        XCTAssertEqual(try AcquisitionTable.read(from: url("a.nc")), acquisition)
    }

    // MARK: - Storage

    func testChunkingAndCompression() throws {
        let edges = try Self.graph()
        let options = OutputWriteOptions(deflateLevel: 3)
        try Self.scoresTable(cells: Self.cellsOrder, edges: edges).write(to: url("scores.nc"), provenance: try Self.provenance(), options: options)
        try Self.circuitsTable(cells: Self.cellsOrder, edges: edges).write(to: url("circuits.nc"), provenance: try Self.provenance(), options: options)
        let deflate = NetCDFCompression(level: 3, shuffle: true)

        let scores = try NetCDFFile.open(path: url("scores.nc").path)
        defer { try? scores.close() }
        let score = try scores.variable("score")
        XCTAssertEqual(score.type, .float)
        XCTAssertEqual(score.dimensions, ["checkpoint", "task", "type", "frequency", "upstream", "downstream"])
        XCTAssertEqual(score.shape, [3, 3, 2, 3, 7, 15])
        XCTAssertEqual(score.chunkSizes, [1, 1, 1, 1, 7, 15])
        XCTAssertEqual(score.compression, deflate)
        XCTAssertEqual(try scores.variable("n_samples").chunkSizes, [1, 1, 1, 1])
        XCTAssertEqual(try scores.variable("n_samples").compression, deflate)
        XCTAssertEqual(try scores.variable("is_edge").compression, deflate)

        let circuits = try NetCDFFile.open(path: url("circuits.nc").path)
        defer { try? circuits.close() }
        let mask = try circuits.variable("in_circuit")
        XCTAssertEqual(mask.type, .int8)
        XCTAssertEqual(mask.chunkSizes, [1, 1, 1, 1, 2, 7, 15])
        XCTAssertEqual(mask.compression, deflate)
        XCTAssertEqual(try circuits.variable("label_prob").chunkSizes, [1, 1, 1, 1, 2, 2, 2])
        XCTAssertEqual(try circuits.variable("faithfulness").chunkSizes, [1, 1, 1, 1, 2])
        XCTAssertEqual(try circuits.variable("clean_baseline").compression, deflate)

        XCTAssertThrowsError(try Self.scoresTable(cells: [], edges: edges).write(to: url("x.nc"), provenance: try Self.provenance(),
                                                                                options: OutputWriteOptions(deflateLevel: 9)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("x.nc").path))
    }

    // MARK: - Merge

    func testMergedPartsEqualTheWholeTableAndWriteTheSameFile() throws {
        let edges = try Self.graph()
        let provenance = try Self.provenance()
        let first = Array(Self.cellsOrder[..<2]), second = Array(Self.cellsOrder[2...])

        let wholeScores = try Self.scoresTable(cells: Self.cellsOrder, edges: edges)
        let mergedScores = try ScoresTable.merged([try Self.scoresTable(cells: second, edges: edges),
                                                   try Self.scoresTable(cells: first, edges: edges)])
        XCTAssertEqual(mergedScores, wholeScores)
        try assertSameFile { try wholeScores.write(to: $0, provenance: provenance) }
                           and: { try mergedScores.write(to: $0, provenance: provenance) }

        let wholeCircuits = try Self.circuitsTable(cells: Self.cellsOrder, edges: edges)
        let mergedCircuits = try CircuitsTable.merged([try Self.circuitsTable(cells: first, edges: edges),
                                                       try Self.circuitsTable(cells: second, edges: edges)])
        XCTAssertEqual(mergedCircuits, wholeCircuits)
        try assertSameFile { try wholeCircuits.write(to: $0, provenance: provenance) }
                           and: { try mergedCircuits.write(to: $0, provenance: provenance) }

        let wholeAcquisition = try Self.acquisitionTable(cells: Self.acquisitionCells)
        var mergedAcquisition = try Self.acquisitionTable(cells: [Self.acquisitionCells[3], Self.acquisitionCells[0]])
        try mergedAcquisition.merge(try Self.acquisitionTable(cells: [Self.acquisitionCells[2], Self.acquisitionCells[1]]))
        XCTAssertEqual(mergedAcquisition, wholeAcquisition)
        try assertSameFile { try wholeAcquisition.write(to: $0, provenance: provenance) }
                           and: { try mergedAcquisition.write(to: $0, provenance: provenance) }

        // Parts that went through files (as a job array's parts do) merge to the same file too.
        try Self.scoresTable(cells: first, edges: edges).write(to: url("part-0.nc"), provenance: provenance)
        try Self.scoresTable(cells: second, edges: edges).write(to: url("part-1.nc"), provenance: provenance)
        let fromFiles = try ScoresTable.merged([try ScoresTable.read(from: url("part-0.nc")), try ScoresTable.read(from: url("part-1.nc"))])
        XCTAssertEqual(fromFiles, wholeScores)
        try assertSameFile { try wholeScores.write(to: $0, provenance: provenance) }
                           and: { try fromFiles.write(to: $0, provenance: provenance) }
    }

    /// Writes two files with the two closures and checks every dimension, variable and attribute,
    /// then the bytes.
    private func assertSameFile(_ a: (URL) throws -> Void, and b: (URL) throws -> Void,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let (x, y) = (url("same-a-\(UUID().uuidString).nc"), url("same-b-\(UUID().uuidString).nc"))
        try a(x)
        try b(y)
        let differences = try NetCDFContents(path: x.path).differences(from: try NetCDFContents(path: y.path))
        XCTAssertEqual(differences, [], file: file, line: line)
        let (bytesA, bytesB) = (try Data(contentsOf: x), try Data(contentsOf: y))
        let firstDifference = zip(bytesA, bytesB).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        XCTAssertTrue(bytesA == bytesB, "files differ byte-wise (\(bytesA.count) and \(bytesB.count) bytes, first difference at byte \(firstDifference.map(String.init) ?? "end"))",
                      file: file, line: line)
    }

    func testContentsComparisonFindsADifference() throws {
        let edges = try Self.graph()
        let provenance = try Self.provenance()
        var table = try Self.scoresTable(cells: Self.cellsOrder, edges: edges)
        try table.write(to: url("a.nc"), provenance: provenance)
        var scores = Self.scores(edges, seed: 4)
        scores[edges.isEdge.firstIndex(of: 1)!] += 1e-6
        try table.set(Self.cellsOrder[4], scores: scores, nSamples: 28, seconds: 7.5)
        try table.write(to: url("b.nc"), provenance: provenance)
        let differences = try NetCDFContents(path: url("a.nc").path).differences(from: try NetCDFContents(path: url("b.nc").path))
        XCTAssertEqual(differences.count, 1, "\(differences)")
        XCTAssertTrue(differences.first?.hasPrefix("values of 'score' differ at flat index") ?? false, "\(differences)")
        let other = try Provenance(commandLine: "dkc other", config: "{}", mpiRanks: 1, blasThreads: 1, created: "2025-02-01T00:00:00Z", source: "x")
        try table.write(to: url("c.nc"), provenance: other)
        XCTAssertEqual(try NetCDFContents(path: url("b.nc").path).differences(
            from: try NetCDFContents(path: url("c.nc").path),
            ignoringGlobalAttributes: ["history", "created", "config", "mpi_ranks", "blas_threads", "source"]), [])
    }

    func testMergeRejectsConflicts() throws {
        let edges = try Self.graph()
        var a = try Self.scoresTable(cells: [Self.cellsOrder[1]], edges: edges)
        var b = try Self.scoresTable(cells: [Self.cellsOrder[1]], edges: edges)
        try a.merge(b)   // the same values: fine
        try b.set(Self.cellsOrder[1], scores: Self.scores(edges, seed: 9), nSamples: 1, seconds: 1)
        XCTAssertThrowsError(try a.merge(b)) { error in
            XCTAssertEqual((error as? OutputFileError)?.kind, .conflictingCell(Self.cellsOrder[1].description))
        }
        var c = ScoresTable(edges: edges, attributes: Self.attributes)
        try c.addCheckpoint(step: 1000, path: "/elsewhere/checkpoint-1000")
        XCTAssertThrowsError(try a.merge(c)) { error in
            XCTAssertEqual((error as? OutputFileError)?.kind, .conflictingCheckpoint(1000))
            XCTAssertTrue("\(error)".contains("/elsewhere/checkpoint-1000"))
        }
        let other = ScoresTable(edges: try Self.graph(layers: 1, heads: 2), attributes: Self.attributes)
        XCTAssertThrowsError(try a.merge(other)) { XCTAssertEqual(($0 as? OutputFileError)?.kind, .incompatibleTables) }
        var attributes = Self.attributes
        attributes.batchSize = 64
        XCTAssertThrowsError(try a.merge(ScoresTable(edges: edges, attributes: attributes))) {
            XCTAssertEqual(($0 as? OutputFileError)?.kind, .incompatibleTables)
        }
        var circuits = CircuitsTable(edges: edges)
        XCTAssertThrowsError(try circuits.merge(CircuitsTable(edges: edges, faithfulnessMinDenominator: 0.5)))
    }

    // MARK: - Validation

    func testTablesRejectBadCells() throws {
        let edges = try Self.graph()
        var scores = ScoresTable(edges: edges, attributes: Self.attributes)
        let cell = Self.cellsOrder[1]
        XCTAssertThrowsError(try scores.set(cell, scores: Self.scores(edges, seed: 0), nSamples: 1, seconds: 1)) {
            XCTAssertEqual(($0 as? OutputFileError)?.kind, .unknownCheckpoint(1000))
        }
        try scores.addCheckpoint(step: 1000, path: "/c")
        XCTAssertThrowsError(try scores.set(cell, scores: [0, 1], nSamples: 1, seconds: 1)) {
            XCTAssertEqual(($0 as? OutputFileError)?.kind, .wrongSize)
        }
        XCTAssertThrowsError(try scores.set(cell, scores: Self.scores(edges, seed: 0), nSamples: -1, seconds: 1))

        var circuits = CircuitsTable(edges: edges)
        try circuits.addCheckpoint(step: 1000, path: "/c")
        var mask = [Int8](repeating: 0, count: edges.isEdge.count)
        mask[edges.isEdge.firstIndex(of: 0)!] = 1
        let bad = CircuitsTable.Cell(cleanBaseline: 1, corruptedBaseline: 0,
                                     circuits: [10: .init(performance: 1, nEdges: 1, nNodes: 2, edgeEntropy: 0, inCircuit: mask)])
        XCTAssertThrowsError(try circuits.set(cell, bad)) { XCTAssertTrue("\($0)".contains("only on edges"), "\($0)") }

        XCTAssertThrowsError(try EdgeLayout(upstream: ["input", "input"], downstream: ["logits"], isEdge: [true, true]))
        XCTAssertThrowsError(try EdgeLayout(upstream: ["input"], downstream: ["logits"], isEdge: [Int8(2)]))
        XCTAssertThrowsError(try Provenance(commandLine: "dkc", config: "not json", mpiRanks: 1, blasThreads: 1, created: "t", source: "s"))
    }

    // MARK: - History

    func testHistoryGetsOneLinePerCommand() throws {
        let table = try Self.acquisitionTable(cells: Self.acquisitionCells)
        let target = url("acquisition.nc")
        let sweep = try Self.provenance("dkc sweep", created: "2025-01-01T00:00:00Z")
        try table.write(to: target, provenance: sweep)
        try table.write(to: target, provenance: sweep)   // periodic rewrites by one command: one line
        XCTAssertEqual(try OutputFileHeader.read(from: target).history, ["2025-01-01T00:00:00Z dkc sweep"])
        let resumed = try Self.provenance("dkc sweep --resume", created: "2025-01-02T00:00:00Z")
        try table.write(to: target, provenance: resumed)
        let header = try OutputFileHeader.read(from: target)
        XCTAssertEqual(header.history, ["2025-01-01T00:00:00Z dkc sweep", "2025-01-02T00:00:00Z dkc sweep --resume"])
        XCTAssertEqual(header.created, "2025-01-01T00:00:00Z")
        try table.write(to: target, provenance: resumed, options: OutputWriteOptions(keepHistory: false))
        XCTAssertEqual(try OutputFileHeader.read(from: target).history, ["2025-01-02T00:00:00Z dkc sweep --resume"])
        // A file of another kind at the target passes no history on.
        let scores = ScoresTable(edges: try Self.graph(layers: 1, heads: 1), attributes: Self.attributes)
        try scores.write(to: target, provenance: try Self.provenance("dkc discover", created: "2025-01-03T00:00:00Z"))
        XCTAssertEqual(try OutputFileHeader.read(from: target).history, ["2025-01-03T00:00:00Z dkc discover"])
        XCTAssertEqual(try OutputFileHeader.read(from: target).created, "2025-01-03T00:00:00Z")
        // Only the file itself remains: the temporary name is gone.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["acquisition.nc"])
    }

    func testProvenanceQuotesTheCommandLine() throws {
        XCTAssertEqual(Provenance.quote(["dkc", "sweep", "--set", "tasks=[\"city\"]", "it's", ""]),
                       #"dkc sweep --set 'tasks=["city"]' 'it'\''s' ''"#)
        XCTAssertEqual(Provenance.timestamp(Date(timeIntervalSince1970: 86_400 + 61)), "1970-01-02T00:01:01Z")
        let p = try Provenance(arguments: ["dkc", "discover"], config: "{}", mpiRanks: 2, blasThreads: 1, created: Date(timeIntervalSince1970: 0))
        XCTAssertEqual(p.historyLine, "1970-01-01T00:00:00Z dkc discover")
        XCTAssertEqual(p.source, DKCVersion.source)
    }

    func testLabelOrder() {
        let axis = LabelAxis(["all", "12", "b", "high", "2", "low", "a"], canonicalOrder: ["low", "medium", "high"])
        XCTAssertEqual(axis.sorted, ["low", "high", "2", "12", "a", "all", "b"])
        var merged = LabelAxis(["x"], canonicalOrder: ["y", "x"])
        merged.formUnion(LabelAxis(["y", "z"], canonicalOrder: ["z"]))
        XCTAssertEqual(merged.sorted, ["y", "x", "z"])
    }

    // MARK: - Readers' errors

    func testReadersNameTheFileAndWhatIsMissing() throws {
        let edges = try Self.graph()
        let circuitsFile = url("circuits.nc")
        try Self.circuitsTable(cells: [Self.cellsOrder[1]], edges: edges).write(to: circuitsFile, provenance: try Self.provenance())
        XCTAssertThrowsError(try ScoresTable.read(from: circuitsFile)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(circuitsFile.path) && text.contains("circuits file, not a scores file"), text)
        }

        // A NetCDF file that is not a dkc file: the first missing dimension is named.
        let foreign = url("foreign.nc")
        try NetCDFFile.writeAtomically(to: foreign) { f in
            try f.addDimension("x", length: 2)
            try f.addVariable("x", type: .float, dimensions: ["x"])
        }
        XCTAssertThrowsError(try AcquisitionTable.read(from: foreign)) { error in
            XCTAssertEqual((error as? OutputFileError)?.kind, .missingDimension("checkpoint"))
            XCTAssertTrue("\(error)".contains(foreign.path), "\(error)")
        }

        // A scores file without its score variable: the variable is named.
        let broken = url("broken.nc")
        try NetCDFFile.writeAtomically(to: broken) { f in
            let w = OutputFileWriter(f, compression: NetCDFCompression())
            var axis = CheckpointAxis()
            try axis.insert(step: 1, path: "/c")
            try w.checkpointCoordinates(axis)
            for name in ["task", "type", "frequency"] { try w.stringCoordinate(name, ["all"], []) }
            try w.edgeCoordinates(edges)
            try w.finish()
        }
        XCTAssertThrowsError(try ScoresTable.read(from: broken)) { error in
            XCTAssertEqual((error as? OutputFileError)?.kind, .missingVariable("score"))
            XCTAssertTrue("\(error)".contains(broken.path) && "\(error)".contains("'score'"), "\(error)")
            XCTAssertEqual((error as? OutputFileError)?.exitCode, 65)
        }
        XCTAssertThrowsError(try ScoresTable.read(from: url("absent.nc"))) { error in
            XCTAssertTrue("\(error)".contains("absent.nc"), "\(error)")
        }
    }

    // MARK: - Outside readers

    func testNcdumpListsDimensionsAndVariables() throws {
        let ncdump = "/usr/bin/ncdump"
        guard FileManager.default.isExecutableFile(atPath: ncdump) else {
            throw XCTSkip("ncdump not found at \(ncdump): install netcdf-bin to run this test")
        }
        let edges = try Self.graph()
        try Self.scoresTable(cells: Self.cellsOrder, edges: edges).write(to: url("scores.nc"), provenance: try Self.provenance())
        try Self.circuitsTable(cells: Self.cellsOrder, edges: edges).write(to: url("circuits.nc"), provenance: try Self.provenance())
        try Self.acquisitionTable(cells: Self.acquisitionCells).write(to: url("acquisition.nc"), provenance: try Self.provenance())
        let expected: [String: [String]] = [
            "scores.nc": [
                "checkpoint = 3 ;", "task = 3 ;", "type = 2 ;", "frequency = 3 ;", "upstream = 7 ;", "downstream = 15 ;",
                "int64 checkpoint(checkpoint) ;", "string checkpoint_path(checkpoint) ;", "string task(task) ;",
                "string type(type) ;", "string frequency(frequency) ;", "string upstream(upstream) ;",
                "string downstream(downstream) ;", "byte is_edge(upstream, downstream) ;",
                "float score(checkpoint, task, type, frequency, upstream, downstream) ;",
                "score:_FillValue = NaNf ;", "score:_ChunkSizes = 1, 1, 1, 1, 7, 15 ;", "score:_Shuffle = \"true\" ;",
                "score:_DeflateLevel = 1 ;", "int64 n_samples(checkpoint, task, type, frequency) ;",
                "n_samples:_FillValue = -1LL ;", "score:coordinates = \"checkpoint_path\" ;", "double seconds(checkpoint, task, type, frequency) ;",
                ":title = ", ":source = ", ":history = ", ":config = ", ":mpi_ranks = 3 ;", ":blas_threads = 2 ;", ":created = ",
            ],
            "circuits.nc": [
                "topn = 2 ;", "target_type = 2 ;", "target_frequency = 2 ;", "int64 topn(topn) ;",
                "double clean_baseline(checkpoint, task, type, frequency) ;",
                "double corrupted_baseline(checkpoint, task, type, frequency) ;",
                "double circuit_performance(checkpoint, task, type, frequency, topn) ;",
                "double faithfulness(checkpoint, task, type, frequency, topn) ;",
                "faithfulness:faithfulness_min_denominator = 0.001 ;",
                "double faithfulness_numerator(checkpoint, task, type, frequency, topn) ;",
                "double faithfulness_denominator(checkpoint, task, type, frequency) ;",
                "int64 n_edges(checkpoint, task, type, frequency, topn) ;", "int64 n_nodes(checkpoint, task, type, frequency, topn) ;",
                "float edge_entropy(checkpoint, task, type, frequency, topn) ;",
                "byte in_circuit(checkpoint, task, type, frequency, topn, upstream, downstream) ;",
                "in_circuit:_FillValue = -1b ;",
                "double label_prob(checkpoint, task, type, frequency, topn, target_type, target_frequency) ;",
                "double label_rank_mean(checkpoint, task, type, frequency, topn, target_type, target_frequency) ;",
                "double hits_at_1(checkpoint, task, type, frequency, topn, target_type, target_frequency) ;",
                "double hits_at_10(checkpoint, task, type, frequency, topn, target_type, target_frequency) ;",
                "int64 n_test(checkpoint, task, type, frequency, topn, target_type, target_frequency) ;",
            ],
            "acquisition.nc": [
                "attribute = 5 ;", "string attribute(attribute) ;",
                "double query_accuracy(checkpoint, attribute, type, frequency) ;",
                "double exact_match(checkpoint, attribute, type, frequency) ;", "double hits_at_1(checkpoint, attribute, type, frequency) ;",
                "test_entity = 3 ;", "string test_entity(test_entity) ;", "string test_entity_type(test_entity) ;",
                "string test_entity_frequency(test_entity) ;", "byte query_correct(checkpoint, test_entity, attribute) ;",
                "byte exact_correct(checkpoint, test_entity, attribute) ;", "query_correct:_FillValue = -1b ;",
                "double hits_at_10(checkpoint, attribute, type, frequency) ;", "double label_prob(checkpoint, attribute, type, frequency) ;",
                "int64 n_entities(checkpoint, attribute, type, frequency) ;",
            ],
        ]
        for (name, lines) in expected {
            let (status, output) = try run(ncdump, ["-hs", url(name).path])
            XCTAssertEqual(status, 0, output)
            for line in lines { XCTAssertTrue(output.contains(line), "ncdump -hs \(name) lacks '\(line)':\n\(output)") }
        }
    }

    func testXarrayOpensTheFilesAndSelectsByLabel() throws {
        let (importStatus, importOutput) = try run("/usr/bin/env", ["python3", "-c", "import xarray, netCDF4"])
        guard importStatus == 0 else {
            throw XCTSkip("python3 with xarray and netCDF4 not available (run scripts/bootstrap --tests): \(importOutput)")
        }
        let edges = try Self.graph()
        let scores = try Self.scoresTable(cells: Self.cellsOrder, edges: edges)
        let circuits = try Self.circuitsTable(cells: Self.cellsOrder, edges: edges)
        let acquisition = try Self.acquisitionTable(cells: Self.acquisitionCells)
        try scores.write(to: url("scores.nc"), provenance: try Self.provenance())
        try circuits.write(to: url("circuits.nc"), provenance: try Self.provenance())
        try acquisition.write(to: url("acquisition.nc"), provenance: try Self.provenance())
        // Numbers travel as repr() text: Double(String) reads it exactly (JSON number parsing may not).
        let script = """
        import json, sys
        import xarray as xr
        folder = sys.argv[1]
        num = lambda x: repr(float(x))
        out = {}
        with xr.open_dataset(folder + "/scores.nc") as ds:
            cell = ds.sel(task="city", type="new", frequency="high")
            out["score"] = [num(cell.score.sel(checkpoint=c, upstream="m0", downstream="logits")) for c in (1000, 2000, 3000)]
            out["not_edge"] = num(cell.score.sel(checkpoint=1000, upstream="m1", downstream="a0.h0<q>"))
            out["n_samples"] = [num(v) for v in cell.n_samples.values]
            out["missing_n_samples"] = num(ds.n_samples.sel(checkpoint=2000, task="company", type="revised", frequency="medium"))
            out["dims"] = dict(ds.sizes)
            out["title"] = ds.attrs["title"]
            out["method"] = ds.score.attrs["method"]
            out["path"] = str(cell.score.sel(checkpoint=2000, upstream="input", downstream="logits").checkpoint_path.values)
        with xr.open_dataset(folder + "/circuits.nc") as ds:
            f = ds.faithfulness.sel(task="city", type="new", frequency="high", topn=50)
            out["faithfulness_checkpoints"] = [int(c) for c in f.checkpoint.values]
            out["faithfulness"] = [num(v) for v in f.values]
            out["missing_faithfulness"] = num(ds.faithfulness.sel(checkpoint=3000, task="major", type="revised", frequency="high", topn=50))
            out["label_prob"] = num(ds.label_prob.sel(checkpoint=2000, task="city", type="new", frequency="high", topn=10,
                                                      target_type="new", target_frequency="high"))
            out["in_circuit_sum"] = num(ds.in_circuit.sel(checkpoint=1000, task="city", type="new", frequency="high", topn=10).sum())
        with xr.open_dataset(folder + "/acquisition.nc") as ds:
            out["exact_match"] = num(ds.exact_match.sel(checkpoint=2000, attribute="university", type="revised", frequency="low"))
            out["query_accuracy"] = num(ds.query_accuracy.sel(checkpoint=2000, attribute="university", type="revised", frequency="low"))
            out["query_correct"] = int(ds.query_correct.sel(checkpoint=1000, test_entity="Ed Fox", attribute="birthday"))
            out["exact_correct"] = [int(v) for v in ds.exact_correct.sel(checkpoint=2000, attribute="city").values]
            out["entity_type"] = str(ds.test_entity_type.sel(test_entity="Cy Dee").values)
        print(json.dumps(out))
        """
        let (status, output) = try run("/usr/bin/env", ["python3", "-c", script, folder.path])
        XCTAssertEqual(status, 0, output)
        let last = output.split(separator: "\n").last.map(String.init) ?? ""   // warnings may precede it
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], output)
        func number(_ key: String) -> Double? { (json[key] as? String).flatMap(Double.init) }
        func numbers(_ key: String) -> [Double]? { (json[key] as? [String])?.compactMap(Double.init) }

        let m0 = edges.upstream.firstIndex(of: "m0")!, logits = edges.nBackward - 1
        let expectedScores = [1, 2, 4].map { Double(Self.scores(edges, seed: $0)[m0 * edges.nBackward + logits]) }
        XCTAssertEqual(numbers("score"), expectedScores)
        XCTAssertEqual(json["not_edge"] as? String, "nan")
        XCTAssertEqual(numbers("n_samples"), [25, 26, 28])
        XCTAssertEqual(json["missing_n_samples"] as? String, "nan")   // fill -1 decodes as missing
        XCTAssertEqual(json["dims"] as? [String: Int], ["checkpoint": 3, "task": 3, "type": 2, "frequency": 3, "upstream": 7, "downstream": 15])
        XCTAssertEqual(json["title"] as? String, "dkc edge attribution scores")
        XCTAssertEqual(json["method"] as? String, "EAP-IG")
        XCTAssertEqual(json["path"] as? String, "/run/train/base/checkpoints/checkpoint-2000")
        XCTAssertEqual(json["faithfulness_checkpoints"] as? [Int], [1000, 2000, 3000])
        let expectedFaithfulness = [1, 2, 4].map { circuits.faithfulness(Self.cellsOrder[$0], topn: 50)!.value }
        XCTAssertEqual(numbers("faithfulness"), expectedFaithfulness)
        XCTAssertEqual(json["missing_faithfulness"] as? String, "nan")
        XCTAssertEqual(number("label_prob"), 0.5 / 3)
        XCTAssertEqual(number("in_circuit_sum"), Double(10 / 5 + 1))
        XCTAssertEqual(number("exact_match"), 0)
        XCTAssertEqual(number("query_accuracy"), 0.5)
        XCTAssertEqual(json["query_correct"] as? Int, 1)
        XCTAssertEqual(json["exact_correct"] as? [Int], [0, 1, 1])
        XCTAssertEqual(json["entity_type"] as? String, "revised")
    }

    /// Runs a program, returning its exit status and its stdout and stderr together.
    private func run(_ program: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}
