import ArgumentParser
import Core
import DistCircuits
import Foundation

/// `dkc components`: the study's component analysis of one cell (`analyzer.py`, `analysis_component.py`).
struct Components: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Component analysis of one cell: logit lens, DLA source ratios, head classes, heads of its circuits (components.nc).",
        discussion: """
        One clean forward per circuit record of --data kept by --task, --type and --frequency (the task's \
        prompt with the clean subject, BOS first). Logit lens at every block input and after the last block \
        (the study's two final-LayerNorm passes): 0-based rank and probability of the label's first token at \
        the last position, probability of the subject's last token there, best label rank over the subject's \
        positions. Per head: the share of its direct logit attribution coming from the subject's positions \
        and from the other positions, their means over the cell's entities, and the head's class (mover if \
        |subject/relation| > 10, relation if < 0.1, else mixture). With --scores and --topn, the heads of each \
        top-n circuit per class and layer. GPT-2, Llama and Phi folders (config.json's model_type), with the \
        family's rules of the study's analyzer (Llama: the subject found by its tokens, only the final RMSNorm \
        in the lens; Phi: the unembedding bias). See docs/components.md.

        Example:
          dkc components --model run/train/continual/checkpoints/checkpoint-500 \\
              --data run/data/circuit_300/gpt2/city.jsonl --task city --type new --frequency high \\
              --scores scores.nc --topn 8000 --out components.nc
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Circuit records (circuit_<n>/<model>/<task>.jsonl).") var data: String
    @Option(help: "The task.") var task: CircuitTask
    @Option(help: "Entity type of the cell: new, revised or all.") var type = OutputLabels.all
    @Option(help: "Frequency bucket of the cell (a bucket of the data's manifest.json, or all).") var frequency = OutputLabels.all
    @Option(help: "Scores written by dkc discover or dkc sweep: also analyse the heads of the cell's circuits (needs --topn).") var scores: String?
    @Option(help: "Circuit sizes, comma-separated (e.g. 10,50,200), with --scores.", transform: CircuitSizes.init(parsing:))
    var topn: CircuitSizes?
    @Option(help: "Checkpoint step of the scores cell, when the file holds several.") var checkpoint: Int64?
    @Option(name: .customLong("batch-size"), help: "Prompts per forward.") var batchSize = 16
    @Option(help: "The components file to write (NetCDF).") var out: String

    func validate() throws {
        guard (scores == nil) == (topn == nil) else {
            let (given, missing) = scores == nil ? ("--topn", "--scores") : ("--scores", "--topn")
            throw ValidationError("\(given): is given without \(missing) (give both to analyse the circuits' heads, or neither)")
        }
    }

    func run() throws {
        try runReporting("components") {
            guard batchSize >= 1 else { throw CircuitsError(item: "--batch-size", problem: "is \(batchSize)", fix: "use at least 1") }
            let sizes = topn?.values ?? []
            let modelURL = try modelOptions.folder()
            let dataURL = try existingPath(data, option: "--data")
            let scoresURL = try scores.map { try existingPath($0, option: "--scores") }
            let outURL = try outputPath(out, option: "--out")

            let buckets = try FrequencyBuckets.forData(at: dataURL)
            let filter = try CellFilter(type: type, frequency: frequency, buckets: buckets)
            let all = try CircuitSample.read(dataURL)
            let samples = all.filter { filter.accepts(type: $0.type, frequency: $0.frequency) }
            guard !samples.isEmpty else {
                throw CircuitsError(item: "--data", problem: "no record of \(dataURL.path) has \(filter) (the file holds \(all.count) records)",
                                    fix: "choose another --type / --frequency, or check that the file belongs to this data set")
            }
            let tok = try loadCircuitTokenizer(option: modelOptions.tokenizer, model: modelURL)
            let loaded = try CircuitModel.load(folder: modelURL)
            let instrumented = loaded.model, step = loaded.step

            var matrix: ScoreMatrix?
            var scoresStep: Int64?
            if let scoresURL {
                let table = try ScoresTable.read(from: scoresURL)
                guard table.edges == instrumented.graph.edgeLayout else {
                    throw CircuitsError(item: "--scores", problem: "\(scoresURL.path) was computed for another graph than the model's (\(instrumented.graph.nLayers) layers × \(instrumented.graph.nHeads) heads)",
                                        fix: "use scores of this model's architecture")
                }
                let (cell, values) = try pickScoresCell(table, task: task.rawValue, type: type, frequency: frequency, checkpoint: checkpoint,
                                                        modelStep: step, source: scoresURL.path)
                scoresStep = cell.checkpoint
                matrix = ScoreMatrix(nForward: table.edges.nForward, nBackward: table.edges.nBackward,
                                     values: zip(values, table.edges.isEdge).map { $1 == 1 ? $0 : 0 })
            }

            let started = Date()
            let result = try CellComponents.analyze(samples, task: task, analyzer: ComponentAnalyzer(circuitModel: loaded), tokenizer: tok,
                                                    batchSize: batchSize, scores: matrix, topn: sizes)
            let seconds = Date().timeIntervalSince(started)
            var settings: [(String, JSONValue)] = [
                ("model", .string(modelURL.path)), ("data", .string(dataURL.path)), ("task", .string(task.rawValue)),
                ("type", .string(type)), ("frequency", .string(frequency)), ("batch_size", .int(batchSize)),
            ]
            if let scoresURL, let scoresStep {
                settings += [("scores", .string(scoresURL.path)), ("scores_checkpoint", .int(Int(scoresStep))), ("topn", .array(sizes.map { .int($0) }))]
            }
            try result.write(to: outURL, provenance: try commandProvenance(settings))

            let means = result.lensMeans, classes = result.headRatios.classes
            let counts = HeadClass.allCases.map { c in "\(classes.filter { $0 == c }.count) \(c.rawValue)" }
            print("wrote \(outURL.path): \(samples.count) entities" + String(format: ", %.1f s", seconds))
            print("  label rank + 1 (mean) by lens point: " + zip(result.lensLabels, means.rankPlus1).map { "\($0) \(String(format: "%.4g", $1))" }.joined(separator: ", "))
            print("  heads: " + counts.joined(separator: ", "))
            for (n, heads) in result.circuits {
                let parts = HeadClass.allCases.map { c in "\(heads.heads(of: c).count) \(c.rawValue)" }
                print("  top-\(n): \(heads.nodeCount) nodes, heads " + parts.joined(separator: ", "))
            }
        }
    }
}
