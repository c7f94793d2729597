import ArgumentParser
import Core
import DistCircuits
import Foundation

/// `dkc evaluate`: the circuits of one scores cell, evaluated and tested (the study's `circuit_eval.py`).
struct Evaluate: ResultCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate the top-n circuits of one scores cell: faithfulness, size, entropy, and their test on other entities.",
        discussion: """
        Picks the cell of --scores for --task (and --type, --frequency, --checkpoint when the file holds \
        several), keeps the top-n edges by |score| for every --topn and prunes dead nodes. On the circuit \
        records of --data (filtered like the cell) it computes the clean and corrupted baselines once and \
        each circuit's patched performance; on every type × bucket of --test-data it computes the \
        zero-ablated probability and rank of each entity's label (hits@1, hits@10). Writes circuits.nc \
        and, with --predictions, one JSON line per test entity and circuit in the study's form.

        Example:
          dkc evaluate --model run/train/continual/checkpoints/checkpoint-500 --scores scores.nc \\
              --data run/data/circuit_300/gpt2/city.jsonl --test-data run/data/test.jsonl --task city \\
              --topn 10,50,200 --out circuits.nc --predictions predictions.jsonl
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Scores written by dkc discover or dkc sweep.") var scores: String
    @Option(help: "Circuit records (circuit_<n>/<model>/<task>.jsonl).") var data: String
    @Option(name: .customLong("test-data"), help: "Test entities (test.jsonl).") var testData: String
    @Option(help: "The task.") var task: CircuitTask
    @Option(help: "Entity type of the cell (default: the scores cell's).") var type: String?
    @Option(help: "Frequency bucket of the cell (default: the scores cell's).") var frequency: String?
    @Option(help: "Checkpoint step of the scores cell, when the file holds several.") var checkpoint: Int64?
    @Option(help: "Circuit sizes, comma-separated (e.g. 10,50,200).", transform: CircuitSizes.init(parsing:)) var topn: CircuitSizes
    @Option(name: .customLong("batch-size"), help: "Samples per batch (default: the scores' batch size).") var batchSize: Int?
    @Option(name: .customLong("faithfulness-min-denominator"), help: "Faithfulness is NaN when |clean − corrupted| is below this.")
    var faithfulnessMinDenominator = 1e-6
    @OptionGroup var output: ResultOutputOptions<CircuitsFileKind>

    func run(model modelURL: URL, output outURL: URL, side predictionsURL: URL?) throws {
        let sizes = topn.values
        let scoresURL = try existingPath(scores, option: "--scores")
        let dataURL = try existingPath(data, option: "--data")
        let testURL = try existingPath(testData, option: "--test-data")

        let loaded = try loadCircuitModel(modelURL)
        let step = loaded.step
        let runner = CellRunner(loaded)
        let table = try ScoresTable.read(from: scoresURL)
        guard table.edges == runner.edgeLayout else {
            throw CircuitsError(item: "--scores", problem: "\(scoresURL.path) was computed for another graph than the model's (\(runner.graph.nLayers) layers × \(runner.graph.nHeads) heads)",
                                fix: "use scores of this model's architecture")
        }
        let (cell, scoreValues) = try pickScoresCell(table, task: task.rawValue, type: type, frequency: frequency, checkpoint: checkpoint,
                                                     modelStep: step, source: scoresURL.path)
        let options = CellOptions(attribution: AttributionOptions(), batchSize: batchSize ?? table.attributes.batchSize, topn: sizes)
        try options.validate(source: "options")

        let buckets = try FrequencyBuckets.forData(at: dataURL)
        let filter = try CellFilter(type: cell.type, frequency: cell.frequency, buckets: buckets)
        let tok = try loadCircuitTokenizer(option: modelOptions.tokenizer, model: modelURL)
        let pairs = try CircuitSample.pairs(try CircuitSample.read(dataURL), filter: filter, task: task, encoder: tok, source: dataURL.path)
        let testBuckets = try FrequencyBuckets.forData(at: testURL)
        let targets = TestTarget.all(try TestEntities.read(testURL), buckets: testBuckets)
        guard !targets.isEmpty else {
            throw CircuitsError(item: "--test-data", problem: "no entity of \(testURL.path) falls in \(testBuckets.source)", fix: "give the test.jsonl of this data set")
        }
        let matrix = ScoreMatrix(nForward: table.edges.nForward, nBackward: table.edges.nBackward,
                                 values: zip(scoreValues, table.edges.isEdge).map { $1 == 1 ? $0 : 0 })

        let progress = ProgressLine()
        let result = try runner.evaluate(scores: matrix, pairs: pairs, targets: targets, task: task, encoder: tok, options: options,
                                         keepPredictions: predictionsURL != nil) { p in
            progress.update(p.phase.rawValue, done: p.done, total: p.total)
        }
        progress.finish()

        var circuits = CircuitsTable(edges: runner.edgeLayout, faithfulnessMinDenominator: faithfulnessMinDenominator)
        try circuits.addCheckpoint(step: step, path: modelOptions.model)
        let outCell = ResultCell(checkpoint: step, task: task.rawValue, type: cell.type, frequency: cell.frequency)
        try circuits.set(outCell, result.cell)
        var provenance = try commandProvenance([
            ("model", .string(modelURL.path)), ("scores", .string(scoresURL.path)), ("data", .string(dataURL.path)),
            ("test_data", .string(testURL.path)), ("task", .string(task.rawValue)), ("type", .string(cell.type)),
            ("frequency", .string(cell.frequency)), ("scores_checkpoint", .int(Int(cell.checkpoint))),
            ("topn", .array(sizes.map { .int($0) })), ("batch_size", .int(options.batchSize)),
            ("faithfulness_min_denominator", .double(faithfulnessMinDenominator)),
        ])
        provenance.testSet = DataManifest.testSet(forData: testURL)
        try circuits.write(to: outURL, provenance: provenance)
        if let predictionsURL { try writePredictions(result.predictions, task: task, family: loaded.config.family, to: predictionsURL) }

        print("wrote \(outURL.path): \(pairs.count) samples, clean \(fmt(result.cell.cleanBaseline)), corrupted \(fmt(result.cell.corruptedBaseline))")
        for n in sizes {
            guard let c = result.cell.circuits[n], let f = circuits.faithfulness(outCell, topn: n) else { continue }
            let hits = c.targets.sorted { ($0.key.type, $0.key.frequency) < ($1.key.type, $1.key.frequency) }.map { "\($0.key.type)/\($0.key.frequency) \(fmt($0.value.hitsAt10))" }
            print("  top-\(n): \(c.nEdges) edges, \(c.nNodes) nodes, faithfulness \(fmt(f.value)), hits@10 " + (hits.isEmpty ? "(empty circuit)" : hits.joined(separator: ", ")))
        }
    }

    private func fmt(_ x: Double) -> String { String(format: "%.4g", x) }

    /// One line per test entity and circuit: the study's prediction rows (`ground_truth`, `clean_label`,
    /// `token_prob` as a one-element list, `token_rank`, the entity's fields) with `topn` first and the
    /// target's type and bucket last. `clean_label` is the label text with the family's leading space (none for Llama).
    private func writePredictions(_ rows: [TestPrediction], task: CircuitTask, family: ModelFamily, to url: URL) throws {
        var out: [UInt8] = []
        for r in rows {
            var members: [(String, JSONValue)] = [
                ("topn", .int(r.topn)), ("ground_truth", .string(r.groundTruth)), ("clean_label", .string((family.circuitLabelHasLeadingSpace ? " " : "") + r.groundTruth)),
                ("token_prob", .array([.double(r.probability)])), ("token_rank", .int(r.rank)),
            ]
            members += r.entity.fields.map { ($0.0, JSONValue.string($0.1)) }
            members += [("target_type", .string(r.targetType)), ("target_frequency", .string(r.targetFrequency))]
            out += Array(JSONValue.object(members).compactText.utf8)
            out.append(0x0A)
        }
        do { try Data(out).write(to: url, options: .atomic) } catch {
            throw CircuitsError(item: "--predictions", problem: "cannot write \(url.path): \(error.localizedDescription)", exitCode: 1)
        }
    }
}
