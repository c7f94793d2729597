import ArgumentParser
import Core
import DistCircuits
import Foundation

/// `dkc predict`: what the full model knows about the test entities (the study's `batch_predict.py`).
struct Predict: ResultCommand {
    static let configuration = CommandConfiguration(
        abstract: "Full-model knowledge acquisition: greedy answers to every attribute of every test entity (acquisition.nc).",
        discussion: """
        For each test entity and attribute (birthday, city, company, major, university) the task prompt is \
        decoded greedily for at most --max-new-tokens tokens; the text after the prompt, cut at the first \
        "." and stripped, is judged under the study's rule (query_accuracy: it equals the value or is a \
        substring of it, so an empty answer counts) and strictly (exact_match). Also the probability and \
        rank of the value's first token at the last prompt position (hits@1, hits@10). Results per \
        attribute × type × bucket (buckets from the data set's manifest.json, else low/medium/high), and \
        per test entity (query_correct, exact_correct over test_entity in test.jsonl's order). The file's \
        test_set attribute says whether the test people are the circuit people (the data's manifest.json).

        GPT-2, Llama and Phi folders (config.json's model_type). Prompts are encoded as the model's tokenizer \
        encodes them by default (Llama: <s> first), and the ranked label is the value's first token as the \
        family's circuit data writes it (Llama: without a leading space).

        Example:
          dkc predict --model run/train/continual/checkpoints/checkpoint-500 --test-data run/data/test.jsonl --out acquisition.nc
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .customLong("test-data"), help: "Test entities (test.jsonl).") var testData: String
    @Option(name: .customLong("max-new-tokens"), help: "Tokens generated at most per prompt (the study: 15).") var maxNewTokens = 15
    @Option(name: .customLong("batch-size"), help: "Prompts decoded together.") var batchSize = 64
    @OptionGroup var output: ResultOutputOptions<AcquisitionFileKind>

    func run(model modelURL: URL, output outURL: URL, side predictionsURL: URL?) throws {
        let testURL = try existingPath(testData, option: "--test-data")
        guard batchSize >= 1 else { throw CircuitsError(item: "--batch-size", problem: "is \(batchSize)", fix: "use at least 1") }
        guard maxNewTokens >= 1 else { throw CircuitsError(item: "--max-new-tokens", problem: "is \(maxNewTokens)", fix: "use at least 1 (the study: 15)") }

        let entities = try TestEntities.read(testURL)
        let buckets = try FrequencyBuckets.forData(at: testURL)
        let tok = try loadCircuitTokenizer(option: modelOptions.tokenizer, model: modelURL)
        let model = try CircuitModel.load(folder: modelURL)
        let step = model.step
        let decoder = KnowledgeAcquisition(circuitModel: model)

        let progress = ProgressLine()
        let started = Date()
        let rows = try Acquisition.predict(entities: entities, decoder: decoder, tokenizer: tok,
                                           options: .init(maxNewTokens: maxNewTokens, batchSize: batchSize)) { done, total in
            progress.update("predict", done: done, total: total, unit: "prompts")
        }
        progress.finish()
        let seconds = Date().timeIntervalSince(started)

        var table = AcquisitionTable()
        try table.addCheckpoint(step: step, path: modelOptions.model)
        table.declare(attributes: Acquisition.attributes.map(\.rawValue))
        for (cell, result) in Acquisition.summarize(rows, checkpoint: step, buckets: buckets) { try table.set(cell, result) }
        try table.setTestEntities(Acquisition.testEntityLabels(entities, buckets: buckets))
        try table.setEntityResults(checkpoint: step, try Acquisition.entityResults(rows, entities: entities))
        var provenance = try commandProvenance([
            ("model", .string(modelURL.path)), ("test_data", .string(testURL.path)),
            ("max_new_tokens", .int(maxNewTokens)), ("batch_size", .int(batchSize)),
        ])
        provenance.testSet = DataManifest.testSet(forData: testURL)
        try table.write(to: outURL, provenance: provenance)
        if let predictionsURL { try write(rows, to: predictionsURL) }
        let query = rows.filter(\.queryCorrect).count, exact = rows.filter(\.exactMatch).count
        print("wrote \(outURL.path): \(rows.count) prompts (\(entities.count) entities × \(Acquisition.attributes.count) attributes), "
              + "query accuracy \(query)/\(rows.count), exact match \(exact)/\(rows.count)" + String(format: ", %.1f s", seconds))
    }

    /// The study's prediction rows (`correct` under its rule, `ground_truth`, `prediction`, `output`, the
    /// entity's fields) plus `exact_match`, `attribute`, `label_prob` and `label_rank`.
    private func write(_ rows: [Acquisition.Prediction], to url: URL) throws {
        var out: [UInt8] = []
        for r in rows {
            var members: [(String, JSONValue)] = [
                ("correct", .int(r.queryCorrect ? 1 : 0)), ("exact_match", .int(r.exactMatch ? 1 : 0)), ("ground_truth", .string(r.groundTruth)),
                ("prediction", .string(r.prediction)), ("output", .string(r.continuation)),
            ]
            members += r.entity.fields.map { ($0.0, JSONValue.string($0.1)) }
            members += [("attribute", .string(r.attribute.rawValue)), ("label_prob", .double(r.labelProb)), ("label_rank", .int(r.labelRank))]
            out += Array(JSONValue.object(members).compactText.utf8)
            out.append(0x0A)
        }
        do { try Data(out).write(to: url, options: .atomic) } catch {
            throw CircuitsError(item: "--predictions", problem: "cannot write \(url.path): \(error.localizedDescription)", exitCode: 1)
        }
    }
}
