import Core
import Foundation

/// Computes sweep items on one rank, with the same code path as `dkc discover` / `evaluate` / `predict`.
///
/// A worker keeps one model (`CircuitModel`, any family): the first checkpoint allocates its parameters, every
/// later one is read into them (`CircuitModel.reload`), and a checkpoint already loaded is not read again, so a
/// rank handed several items of one checkpoint loads it once. Circuit records, test entities and their targets
/// are read once per rank.
public final class SweepWorker {
    public let plan: SweepPlan
    private let tokenizer: any Tokenizer
    private var loaded: CircuitModel?
    private var runner: CellRunner?
    private var analyzer: ComponentAnalyzer?
    private var decoder: KnowledgeAcquisition?
    private var loadedFolder: URL?
    private var records: [String: [CircuitSample]] = [:]
    private var testEntities: [Entity]?

    /// Seconds spent loading checkpoints and computing items since the last `takeTimes()`.
    private var loadSeconds = 0.0
    private var computeSeconds = 0.0

    public init(plan: SweepPlan, tokenizer: any Tokenizer) {
        self.plan = plan
        self.tokenizer = tokenizer
    }

    /// The tokenizer a sweep uses, by the one resolution rule (`TokenizerLoader.resolve`): the `tokenizer` key,
    /// else the first checkpoint's own files (tokenizer.json, or vocab.json + merges.txt), else GPT-2's.
    public static func tokenizer(for plan: SweepPlan) throws -> any Tokenizer {
        try TokenizerLoader.resolve(explicit: plan.config.tokenizer, model: plan.checkpoints[0].folder)
    }

    /// Loading and computing seconds since the last call, reset.
    public func takeTimes() -> (load: Double, compute: Double) {
        defer { loadSeconds = 0; computeSeconds = 0 }
        return (loadSeconds, computeSeconds)
    }

    /// Computes `item` on the checkpoint in `folder`; a transplant item needs its source circuits.
    public func run(_ item: SweepItem, folder: URL, sourceCircuits: [ResultCell: [Int: [Int8]]] = [:]) throws -> SweepItemResult {
        try load(folder)
        let start = Date()
        defer { computeSeconds += Date().timeIntervalSince(start) }
        switch item {
        case .cell(let cell):
            return .cell(cell, try compute(cell))
        case .acquisition(let step):
            let entities = try tests()
            let rows = try Acquisition.predict(entities: entities, decoder: decoder!, tokenizer: tokenizer,
                                               options: .init(maxNewTokens: plan.config.maxNewTokens, batchSize: plan.config.cell.batchSize))
            return .acquisition(checkpoint: step, Acquisition.summarize(rows, checkpoint: step, buckets: plan.data.buckets),
                                entities: try Acquisition.entityResults(rows, entities: entities), prompts: rows.count,
                                seconds: Date().timeIntervalSince(start))
        case let .transplant(source, step):
            var results: [ResultCell: CircuitsTable.Transplant] = [:]
            for (sourceCell, masks) in sourceCircuits {
                let cell = ResultCell(checkpoint: step, task: sourceCell.task, type: sourceCell.type, frequency: sourceCell.frequency)
                results[cell] = try transplant(masks, cell: cell)
            }
            return .transplant(source: source, checkpoint: step, results, seconds: Date().timeIntervalSince(start))
        }
    }

    /// The source circuits `masks` (top-n → in_circuit) on the loaded model: `run_eval` on the cell's samples
    /// and the zero-ablated test on the cell's own test entities (target = source cell).
    private func transplant(_ masks: [Int: [Int8]], cell: ResultCell) throws -> CircuitsTable.Transplant {
        let (task, filter, pairs) = try cellSamples(of: cell)
        let entities = try tests().filter { filter.accepts(type: $0.type.rawValue, frequency: $0.frequency) }
        let target = CircuitsTable.Target(type: cell.type, frequency: cell.frequency)
        let sizes = masks.keys.sorted()
        var options = plan.config.cell
        options.topn = sizes
        let evaluation = try runner!.evaluate(circuits: sizes.map { Circuit(graph: runner!.graph, inCircuit: masks[$0]!) }, pairs: pairs,
                                              targets: entities.isEmpty ? [] : [TestTarget(type: cell.type, frequency: cell.frequency, entities: entities)],
                                              task: task, encoder: tokenizer, options: options)
        var out = CircuitsTable.Transplant(cleanBaseline: evaluation.cell.cleanBaseline, corruptedBaseline: evaluation.cell.corruptedBaseline)
        for n in sizes {
            let c = evaluation.cell.circuits[n]!, test = c.targets[target]
            out.circuits[n] = CircuitsTable.TransplantCircuit(performance: c.performance, hitsAt10: test?.hitsAt10 ?? .nan, nTest: test?.nTest ?? OutputFill.count)
        }
        return out
    }

    /// The cell's task, its type × bucket filter and its circuit samples (the task's circuit file is read once).
    private func cellSamples(of cell: ResultCell) throws -> (CircuitTask, CellFilter, [PromptPair]) {
        let task = try CircuitTask.named(cell.task, option: "tasks")
        let file = plan.data.circuitFile(cell.task)
        if records[cell.task] == nil { records[cell.task] = try CircuitSample.read(file) }
        let filter = try CellFilter(type: cell.type, frequency: cell.frequency, buckets: plan.data.buckets,
                                    typeOption: "types", frequencyOption: "frequencies")
        let pairs = try CircuitSample.pairs(records[cell.task]!, filter: filter, task: task, encoder: tokenizer, source: file.path)
        return (task, filter, pairs)
    }

    private func compute(_ cell: ResultCell) throws -> CellOutcome {
        let (task, filter, pairs) = try cellSamples(of: cell)
        let targets = TestTarget.all(try tests(), buckets: plan.data.buckets)
        let options = plan.config.cell
        let discovery = try runner!.discover(pairs, options: options)
        let evaluation = try runner!.evaluate(scores: discovery.scores, pairs: pairs, targets: targets, task: task, encoder: tokenizer,
                                              options: options)
        var outcome = CellOutcome(scores: discovery.scores.values, nSamples: discovery.nSamples, discoverSeconds: discovery.seconds,
                                  evaluateSeconds: evaluation.seconds, circuits: evaluation.cell)
        if plan.config.components {
            // The same prompts' clean forwards, the circuits of the scores just found (docs/components.md).
            let start = Date()
            let samples = records[cell.task]!.filter { filter.accepts(type: $0.type, frequency: $0.frequency) }
            let result = try CellComponents.analyze(samples, task: task, analyzer: analyzer!, tokenizer: tokenizer, batchSize: options.batchSize,
                                                    scores: discovery.scores, topn: options.topn)
            outcome.components = ComponentsTable.Cell(result)
            outcome.componentsSeconds = Date().timeIntervalSince(start)
        }
        return outcome
    }

    private func tests() throws -> [Entity] {
        if let t = testEntities { return t }
        let t = try TestEntities.read(plan.data.testFile)
        testEntities = t
        return t
    }

    /// Makes `folder` the loaded checkpoint, reusing the parameters.
    private func load(_ folder: URL) throws {
        guard loadedFolder != folder else { return }
        let start = Date()
        defer { loadSeconds += Date().timeIntervalSince(start) }
        loadedFolder = nil
        if let loaded {
            try loaded.reload(folder: folder)
            analyzer?.refresh()
        } else {
            let m = try CircuitModel.load(folder: folder)
            loaded = m
            runner = CellRunner(m)
            decoder = KnowledgeAcquisition(circuitModel: m)
            analyzer = ComponentAnalyzer(circuitModel: m)
        }
        loadedFolder = folder
    }
}
