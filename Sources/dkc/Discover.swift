import ArgumentParser
import Core
import DistCircuits
import Foundation

/// `dkc discover`: edge attribution scores of one cell (the study's `circuit_discovery.py`).
struct Discover: ResultCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attribution scores of every edge for one model × task × type × frequency (scores.nc).",
        discussion: """
        Reads the circuit records of --data (circuit_<n>/<model>/<task>.jsonl), keeps those of --type and \
        --frequency (bucket names from the manifest.json of the data set when one sits beside or above the \
        file, else low [1, 1], medium [2, 5], high [6, ∞)), builds the task's prompts and runs the \
        attribution method in batches of --batch-size. Writes scores.nc with one cell (checkpoint = the step \
        of a checkpoint-<step> folder, else 0) and, with --json, the study's graph JSON.

        Example:
          dkc discover --model run/train/continual/checkpoints/checkpoint-500 \\
              --data run/data/circuit_300/gpt2/city.jsonl --task city --type new --frequency high --out scores.nc
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Circuit records (circuit_<n>/<model>/<task>.jsonl).") var data: String
    @Option(help: "The task.") var task: CircuitTask
    @Option(help: "Entity type: new, revised or all.") var type = OutputLabels.all
    @Option(help: "Frequency bucket name (e.g. low, medium, high) or all.") var frequency = OutputLabels.all
    @Option(help: "Attribution method.") var method: AttributionMethod = .eapIG
    @Option(name: .customLong("ig-steps"), help: "Integration steps of the IG methods.") var igSteps = 5
    @Option(name: .customLong("batch-size"), help: "Samples per batch (scores scale with 1 / batch size, as the study's).") var batchSize = 64
    @OptionGroup var output: ResultOutputOptions<ScoresFileKind>

    func run(model modelURL: URL, output outURL: URL, side jsonURL: URL?) throws {
        let dataURL = try existingPath(data, option: "--data")
        // Discovery uses no circuit size; [1] only satisfies the check of the shared options.
        let options = CellOptions(attribution: AttributionOptions(method: method, igSteps: igSteps), batchSize: batchSize, topn: [1])
        try options.validate(source: "options")

        let buckets = try FrequencyBuckets.forData(at: dataURL)
        let filter = try CellFilter(type: type, frequency: frequency, buckets: buckets)
        let records = try CircuitSample.read(dataURL)
        let tok = try loadCircuitTokenizer(option: modelOptions.tokenizer, model: modelURL)
        let pairs = try CircuitSample.pairs(records, filter: filter, task: task, encoder: tok, source: dataURL.path)
        let loaded = try loadCircuitModel(modelURL)
        let step = loaded.step
        let runner = CellRunner(loaded)

        let progress = ProgressLine()
        let result = try runner.discover(pairs, options: options) { p in progress.update("discover", done: p.done, total: p.total) }
        progress.finish()

        var table = ScoresTable(edges: runner.edgeLayout, attributes: options.scoreAttributes)
        try table.addCheckpoint(step: step, path: modelOptions.model)
        try table.set(ResultCell(checkpoint: step, task: task.rawValue, type: filter.type, frequency: filter.frequency),
                      scores: result.scores.values, nSamples: result.nSamples, seconds: result.seconds)
        let provenance = try commandProvenance([
            ("model", .string(modelURL.path)), ("data", .string(dataURL.path)), ("task", .string(task.rawValue)),
            ("type", .string(filter.type)), ("frequency", .string(filter.frequency)), ("method", .string(method.rawValue)),
            ("ig_steps", .int(igSteps)), ("batch_size", .int(batchSize)),
        ])
        try table.write(to: outURL, provenance: provenance)
        if let jsonURL { try Circuit(graph: runner.graph, scores: result.scores).writeJSON(to: jsonURL) }
        print("wrote \(outURL.path): \(result.nSamples) samples (\(filter), \(buckets.source)), \(method.rawValue), "
              + String(format: "%.1f s, %.1f samples/s", result.seconds, Double(result.nSamples) / max(result.seconds, 1e-9)))
    }
}
