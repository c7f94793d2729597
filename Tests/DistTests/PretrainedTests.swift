import Foundation
import XCTest
import Core
import DistTrain
import DistCircuits

/// The study's set-up with a downloaded model: continual pre-training starts from a Hugging Face folder
/// (the fixture model, written by transformers' save_pretrained), the revised people come from a names file,
/// the test people are the circuit people, and the sweep runs on the checkpoints it writes.
final class PretrainedTests: XCTestCase {
    func testContinualTrainingFromAHuggingFaceFolderThenSweep() throws {
        let model = Paths.fixtures.appendingPathComponent("model")
        let tokenizer = Paths.fixtures.appendingPathComponent("tokenizer")
        guard FileManager.default.fileExists(atPath: model.appendingPathComponent("model.safetensors").path),
              FileManager.default.fileExists(atPath: tokenizer.appendingPathComponent("vocab.json").path) else {
            throw missingFixtures(Paths.fixtures.path)
        }
        let run = try TrainFixture.temporaryFolder(self).appendingPathComponent("run")
        let dkc = try Launch.executable("dkc")

        // Data: 600 people, the 120 revised ones named by a file (the "real people" of a pretrained model).
        let names = run.deletingLastPathComponent().appendingPathComponent("revised-names.txt")
        try (["# people the model is assumed to know"] + (0..<160).map { "Known Person\($0)" }).joined(separator: "\n")
            .write(to: names, atomically: true, encoding: .utf8)
        let data = try DataConfig.load(file: nil, overrides: ["n_entities=600", "test_per_cell=10", "circuit_n=10", "validation_size=20",
                                                              "tasks=[\"city\"]", "tokenizer=\(tokenizer.path)", "revised_names=\(names.path)"])
        XCTAssertEqual(data.testSet, .circuit)
        try DataGeneration.run(config: data, out: run.appendingPathComponent("data"), force: false) { try GPT2Tokenizer(directory: $0) }

        // Continual training only, initialised from the model folder: 4 steps, a checkpoint and an evaluation every 2.
        let config = run.deletingLastPathComponent().appendingPathComponent("train.toml")
        try """
        stages = ["continual"]
        data_dir = "\(run.appendingPathComponent("data").path)"
        output_dir = "\(run.appendingPathComponent("train").path)"
        tokenizer = "\(tokenizer.path)"
        block_size = 64
        per_device_train_batch_size = 2
        gradient_accumulation_steps = 1
        per_device_eval_batch_size = 4
        learning_rate = 1e-3
        max_steps = 4
        save_strategy = "steps"
        save_steps = 2
        eval_strategy = "steps"
        eval_steps = 2
        logging_steps = 1
        [continual]
        init = "\(model.path)"
        """.write(to: config, atomically: true, encoding: .utf8)
        let train = try Launch.run(dkc, ["train", "--config", config.path, "--threads", "1"], ranks: 2,
                                   env: ["OPENBLAS_NUM_THREADS": "1"], timeout: 300)
        XCTAssertEqual(train.status, 0, train.stdout + train.stderr)
        XCTAssertTrue(train.stdout.contains(model.path), "the stage names the folder it starts from:\n\(train.stdout)")
        let checkpoints = TrainCheckpoint.list(in: run.appendingPathComponent("train/continual/checkpoints"))
        XCTAssertEqual(checkpoints.map(\.step), [2, 4])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("train/base").path), "no base stage")
        // The checkpoints have the pretrained model's shape (not the scratch defaults), and training moved its weights.
        let start = try HFCheckpoint.load(folder: model)
        let last = try HFCheckpoint.load(folder: checkpoints[1].url)
        XCTAssertEqual(last.config.nLayer, 2)
        XCTAssertEqual(last.config.nEmbd, 64)
        XCTAssertEqual(last.config.nPositions, 128)
        let a = start.views.wte, b = last.views.wte
        var moved = 0.0, norm = 0.0
        for i in 0..<(50257 * 64) { moved += Double(a[i] - b[i]) * Double(a[i] - b[i]); norm += Double(a[i]) * Double(a[i]) }
        XCTAssertGreaterThan(moved, 0, "training changed the embeddings")
        XCTAssertLessThan((moved / norm).squareRoot(), 0.5, "four steps at 1e-3 move a pretrained model a little, not re-initialise it")
        let metrics = try String(contentsOf: run.appendingPathComponent("train/continual/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONValue(parsing: String($0)) }
        XCTAssertEqual(metrics.filter { $0["eval_loss"] != nil }.compactMap { $0["step"]?.intValue }, [2, 4])

        // One cell swept on both checkpoints, with the acquisition of each.
        let sweep = try Launch.run(dkc, ["sweep", "--config", "tiny", "--set", "run_dir=\(run.path)", "--set", "tasks=[\"city\"]",
                                         "--set", "types=[\"new\"]", "--set", "frequencies=[\"high\"]", "--set", "tokenizer=\(tokenizer.path)"],
                                   ranks: 2, timeout: 300)
        XCTAssertEqual(sweep.status, 0, sweep.stdout + sweep.stderr)
        // 2 cells + 2 acquisitions + 4 transplants (sources first = middle and final, on both checkpoints).
        XCTAssertTrue(sweep.stdout.contains("done: 8 of 8 items"), sweep.stdout)
        let out = run.appendingPathComponent("circuits")
        let scores = try ScoresTable.read(from: out.appendingPathComponent("scores.nc"))
        XCTAssertEqual(Set(scores.cells.keys), Set(([2, 4] as [Int64]).map { ResultCell(checkpoint: $0, task: "city", type: "new", frequency: "high") }))
        XCTAssertTrue(scores.cells.values.allSatisfy { $0.nSamples > 0 && $0.scores.contains { !$0.isNaN && $0 != 0 } })
        let circuits = try CircuitsTable.read(from: out.appendingPathComponent("circuits.nc"))
        XCTAssertEqual(circuits.cells.count, 2)
        let acquisition = try AcquisitionTable.read(from: out.appendingPathComponent("acquisition.nc"))
        XCTAssertEqual(acquisition.testEntities.count, 60)
        XCTAssertEqual(Set(acquisition.entityResults.keys), [2, 4])
        XCTAssertTrue(acquisition.cells.values.allSatisfy { (0...1).contains($0.queryAccuracy) && $0.queryAccuracy >= $0.exactMatch })
        // Test people = circuit people: every circuit subject of the swept cell is a test person.
        let test = Set(acquisition.testEntities.map(\.name))
        let records = try CircuitSample.read(run.appendingPathComponent("data/circuit_10/gpt2/city.jsonl"))
        XCTAssertFalse(records.isEmpty)
        XCTAssertTrue(records.allSatisfy { test.contains($0.cleanSubject) })
        XCTAssertTrue(acquisition.testEntities.filter { $0.type == "revised" }.allSatisfy { $0.name.hasPrefix("Known Person") })
        for name in ["scores.nc", "circuits.nc", "acquisition.nc"] {
            XCTAssertEqual(try OutputFileHeader.read(from: out.appendingPathComponent(name)).testSet, "circuit", name)
        }
    }
}
