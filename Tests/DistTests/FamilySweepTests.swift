import Foundation
import XCTest
import Core

/// `dkc sweep` on a Llama run folder (docs/model-families.md): a data set generated with the Llama fixture's
/// tokenizer.json and two checkpoints of the fixture's shape (its trained weights, and a random initialisation),
/// swept with acquisition and component analysis on 1 and 2 ranks under mpirun with identical files.
final class FamilySweepTests: XCTestCase {
    private static var root: URL?

    override class func tearDown() {
        if let root { try? FileManager.default.removeItem(at: root) }
        root = nil
        super.tearDown()
    }

    /// The template run folder: `data/` (1,500 entities, 12 circuit entities per cell, city only) and
    /// `train/continual/checkpoints/checkpoint-{10,20}`.
    private static func template() throws -> URL {
        if let root { return root.appendingPathComponent("template") }
        let model = Paths.fixtures.appendingPathComponent("llama/model")
        guard FileManager.default.fileExists(atPath: model.appendingPathComponent("tokenizer.json").path) else {
            throw missingFixtures(model.path)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-famsweep-\(UUID().uuidString)")
        let template = dir.appendingPathComponent("template")
        try FileManager.default.createDirectory(at: template, withIntermediateDirectories: true)
        let data = try DataConfig.load(file: nil, overrides: ["n_entities=1500", "test_per_cell=2", "circuit_n=12", "test_set=independent",
                                                             "validation_size=10", "tasks=[\"city\"]", "tokenizer=\(model.path)",
                                                             "model_name=TinyLlama_v1.1", "model_type=llama"])
        try DataGeneration.run(config: data, out: template.appendingPathComponent("data"), force: false) { try TokenizerLoader.load(directory: $0) }
        let tokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"].map { model.appendingPathComponent($0) }
        let checkpoints = template.appendingPathComponent("train/continual/checkpoints")
        try FamilyCheckpoint.save(try FamilyCheckpoint.load(folder: model), to: checkpoints.appendingPathComponent("checkpoint-10"), extraFiles: tokenizerFiles)
        let random = FamilyArena(layout: FamilyLayout(config: try ModelConfig.load(from: model.appendingPathComponent("config.json"))))
        random.initialize(seed: 7)
        try FamilyCheckpoint.save(random, to: checkpoints.appendingPathComponent("checkpoint-20"), extraFiles: tokenizerFiles)
        root = dir
        return template
    }

    private func run(_ name: String) throws -> URL {
        let template = try Self.template()
        let run = template.deletingLastPathComponent().appendingPathComponent(name)
        try? FileManager.default.removeItem(at: run)
        try FileManager.default.copyItem(at: template, to: run)
        return run
    }

    private func sweep(_ run: URL, ranks: Int?, _ settings: [String]) throws -> Launch.Result {
        let args = ["sweep", "--config", "tiny", "--set", "run_dir=\(run.path)", "--set", "tasks=[\"city\"]"] + settings.flatMap { ["--set", $0] }
        return try Launch.run(try Launch.executable("dkc"), args, ranks: ranks, timeout: 600)
    }

    func testLlamaSweepGivesTheSameFilesOnOneAndTwoRanks() throws {
        var tables: [(ScoresTable, CircuitsTable, AcquisitionTable, ComponentsTable)] = []
        for ranks in [1, 2] {
            let run = try run("ranks\(ranks)")
            let r = try sweep(run, ranks: ranks == 1 ? nil : ranks, ["components=true", "acquisition=true", "topn=[10, 100]"])
            XCTAssertEqual(r.status, 0, "R=\(ranks): " + r.stdout + r.stderr)
            let out = run.appendingPathComponent("circuits")
            let scores = try ScoresTable.read(from: out.appendingPathComponent("scores.nc"))
            let circuits = try CircuitsTable.read(from: out.appendingPathComponent("circuits.nc"))
            XCTAssertEqual(scores.cells.count, 12, "2 checkpoints × city × 2 types × 3 buckets")
            XCTAssertEqual(scores.edges, try ModelConfig.load(from: run.appendingPathComponent("train/continual/checkpoints/checkpoint-10/config.json")).attributionGraph.edgeLayout,
                           "the Llama graph (32 heads, 2 layers) in scores.nc")
            XCTAssertTrue(scores.cells.values.allSatisfy { $0.scores.contains { !$0.isNaN && $0 != 0 } }, "every cell has nonzero scores (Llama labels without a leading space differ)")
            let acquisition = try AcquisitionTable.read(from: out.appendingPathComponent("acquisition.nc"))
            XCTAssertEqual(acquisition.checkpoints.paths.keys.sorted(), [10, 20])
            let components = try ComponentsTable.read(from: out.appendingPathComponent("components.nc"))
            XCTAssertEqual(components.cells.count, 12, "component analysis of every cell")
            tables.append((scores, circuits, acquisition, components))
        }
        let (s1, c1, a1, k1) = tables[0], (s2, c2, a2, k2) = tables[1]
        XCTAssertEqual(k1.cells, k2.cells, "R=2: components.nc")
        XCTAssertEqual(a1.cells, a2.cells, "R=2: acquisition.nc's table")
        XCTAssertEqual(a1.entityResults, a2.entityResults, "R=2: per-entity results")
        // The trained checkpoint answers some birthdays (for Llama a birthday's first token is the lone ▁): its hits@10 is not 0.
        XCTAssertTrue(a1.cells.contains { $0.key.checkpoint == 10 && $0.key.attribute == "birthday" && $0.value.hitsAt10 > 0 },
                      "the trained Llama checkpoint ranks some birthday labels in its top 10")
        XCTAssertEqual(Set(s1.cells.keys), Set(s2.cells.keys))
        for (cell, value) in s1.cells {
            XCTAssertEqual(s2.cells[cell]!.scores.map(\.bitPattern), value.scores.map(\.bitPattern), "R=2 \(cell): scores")
        }
        XCTAssertEqual(c1.cells, c2.cells, "R=2: circuits")
        // The two checkpoints are different models: their scores differ.
        let trained = s1.cells.first { $0.key.checkpoint == 10 }!, other = s1.cells[ResultCell(checkpoint: 20, task: trained.key.task, type: trained.key.type,
                                                                                             frequency: trained.key.frequency)]!
        XCTAssertTrue(trained.value.scores.map(\.bitPattern) != other.scores.map(\.bitPattern), "the two checkpoints' scores differ")
    }

    /// `dkc data generate` with a family's tokenizer and `model_type = "llama"`: labels without a leading space,
    /// label ids their first Llama token, corrupted names of the clean name's Llama token count.
    func testLlamaCircuitDataFollowTheFamily() throws {
        let template = try Self.template()
        let tok = try TokenizerLoader.load(directory: Paths.fixtures.appendingPathComponent("llama/model"))
        let file = template.appendingPathComponent("data/circuit_12/TinyLlama_v1.1/city.jsonl")
        let records = try CircuitSample.read(file)
        XCTAssertGreaterThan(records.count, 20)
        for r in records {
            XCTAssertFalse(r.cleanLabel.hasPrefix(" "), r.cleanLabel)
            XCTAssertEqual(r.cleanLabelIndex, tok.encode(r.cleanLabel).first)
            XCTAssertEqual(r.corruptedLabelIndex, tok.encode(r.corruptedLabel).first)
            XCTAssertNotEqual(r.cleanLabelIndex, 259, "not the bare '▁▁' piece a leading space would give")
            XCTAssertEqual(tok.encode(r.cleanSubject).count, tok.encode(r.corruptedSubject).count, r.cleanSubject)
        }
        let manifest = try JSONValue(parsing: Data(contentsOf: template.appendingPathComponent("data/manifest.json")))
        XCTAssertEqual(manifest["model_type"]?.stringValue, "llama")
    }

}
