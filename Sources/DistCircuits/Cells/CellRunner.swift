import Foundation
import Core

/// Settings of one cell's circuit discovery and evaluation.
public struct CellOptions: Sendable, Equatable {
    public var attribution: AttributionOptions
    /// Samples per batch, for attribution and evaluation alike (the study uses one batch size for both).
    public var batchSize: Int
    /// Circuit sizes evaluated (top-n edges by |score|).
    public var topn: [Int]

    public init(attribution: AttributionOptions = AttributionOptions(), batchSize: Int = 64, topn: [Int] = [8000]) {
        self.attribution = attribution
        self.batchSize = batchSize
        self.topn = topn
    }

    /// Checks the settings; `source` says where they came from (an option list or config keys).
    public func validate(source: String) throws {
        try attribution.validate(source: source)
        guard batchSize >= 1 else { throw CircuitsError(item: "\(source): batch_size", problem: "is \(batchSize)", fix: "use at least 1") }
        guard !topn.isEmpty, topn.allSatisfy({ $0 >= 1 }) else {
            throw CircuitsError(item: "\(source): topn", problem: "is \(topn)", fix: "give one or more circuit sizes ≥ 1")
        }
        guard Set(topn).count == topn.count else { throw CircuitsError(item: "\(source): topn", problem: "lists a size twice: \(topn)") }
    }

    /// The `score` attributes of scores.nc for these settings.
    public var scoreAttributes: ScoreAttributes {
        let m = attribution.metric
        let metric = "\(m.kind.rawValue)(loss=\(m.loss ? "True" : "False"), mean=\(attribution.normalisation == .study ? "True" : "False"))"
        return ScoreAttributes(method: attribution.method.rawValue, igSteps: attribution.method.usesSteps ? attribution.igSteps : 1,
                               metric: metric, aggregation: attribution.aggregation.rawValue, batchSize: batchSize,
                               normalisation: attribution.normalisation.rawValue)
    }
}

/// Test entities of one target type × bucket, tested on every circuit of a cell.
public struct TestTarget: Sendable {
    public var type: String
    public var frequency: String
    public var entities: [Entity]

    public init(type: String, frequency: String, entities: [Entity]) {
        self.type = type; self.frequency = frequency; self.entities = entities
    }

    /// Every type × bucket that holds at least one of `entities`: types new then revised, buckets in the
    /// data's order; entities in file order. Entities outside every bucket are left out.
    public static func all(_ entities: [Entity], buckets: FrequencyBuckets) -> [TestTarget] {
        EntityType.allCases.flatMap { type in
            buckets.buckets.compactMap { b -> TestTarget? in
                let kept = entities.filter { $0.type == type && b.contains($0.frequency) }
                return kept.isEmpty ? nil : TestTarget(type: type.rawValue, frequency: b.name, entities: kept)
            }
        }
    }
}

/// One test entity's result under one circuit (a row of the study's prediction file).
public struct TestPrediction: Sendable {
    public var topn: Int
    public var targetType: String
    public var targetFrequency: String
    public var entity: Entity
    /// The attribute's value; its label is the first token of " " + value, or of the value for Llama
    /// (`ModelFamily.circuitLabelHasLeadingSpace`).
    public var groundTruth: String
    public var probability: Double
    public var rank: Int
}

/// Where a cell's work stands, for progress displays: `done` of `total` samples of `phase`.
public struct CellProgress: Sendable {
    public enum Phase: String, Sendable { case discover, evaluate, test }
    public var phase: Phase
    public var done: Int
    public var total: Int
}

/// Scores of one cell.
public struct CellDiscovery: Sendable {
    public var scores: ScoreMatrix
    public var nSamples: Int
    /// Wall time of the attribution.
    public var seconds: Double
}

/// The evaluation of one cell: baselines, every circuit and its tests, as circuits.nc stores them.
public struct CellEvaluation: Sendable {
    public var cell: CircuitsTable.Cell
    /// Per-entity results of the tests, when asked for.
    public var predictions: [TestPrediction]
    public var seconds: Double
}

/// The one code path of `dkc discover`, `dkc evaluate` and every cell of `dkc sweep`: attribution on a
/// cell's circuit samples, then for every top-n the study's `run_eval` (baselines computed once per cell,
/// then the patched circuit) and `run_test` on every target (zero-ablated label probability and rank).
///
/// Circuits: top-n by |score| (stable, edge order breaks ties), then pruned once (a second prune changes
/// nothing on this graph). A circuit that is empty after pruning keeps its performance (the corrupted run)
/// but has no tests (the study's `run_test` fails on it): its targets are left missing.
///
/// Any family runs through it (`InstrumentedModel`; `CircuitModel.load` picks the model from config.json); the
/// test labels follow the family's convention (`ModelFamily.circuitLabelHasLeadingSpace`).
public final class CellRunner: @unchecked Sendable {
    public let model: any InstrumentedModel
    /// The model's family: it decides the test labels' leading space.
    public let family: ModelFamily
    private let evaluator: CircuitEvaluator
    private var attribution: EdgeAttribution?
    /// When set, the wall time of each phase of `discover` and `evaluate` is added to it under the names of
    /// `CellRunner.phases` (for `dkc bench cell`); nil costs nothing.
    public var phaseTimer: PhaseTimer?

    /// The phases a `phaseTimer` receives, in the order a cell runs them: edge attribution, circuit selection
    /// (top-n and pruning), the clean and corrupted baselines, the patched circuit forwards (faithfulness),
    /// the zero-ablation tests on the target cells.
    public static let phases = ["attribution", "selection", "baselines", "faithfulness", "tests"]

    private func timed<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
        guard let t = phaseTimer else { return try body() }
        return try t.measure(phase, body)
    }

    public init(model: any InstrumentedModel, family: ModelFamily) {
        self.model = model
        self.family = family
        evaluator = CircuitEvaluator(model: model)
    }

    /// A GPT-2 cell runner.
    public convenience init(model: InstrumentedGPT2) { self.init(model: model, family: .gpt2) }

    /// The cell runner of a loaded checkpoint.
    public convenience init(_ loaded: CircuitModel) { self.init(model: loaded.model, family: loaded.config.family) }

    public var graph: AttributionGraph { model.graph }

    /// The edge layout of every result file of this model.
    public var edgeLayout: EdgeLayout { graph.edgeLayout }

    /// Attribution scores of `pairs` in batches of `options.batchSize` (the study's scores, run in length-ordered batches).
    public func discover(_ pairs: [PromptPair], options: CellOptions, progress: ((CellProgress) -> Void)? = nil) throws -> CellDiscovery {
        guard !pairs.isEmpty else {
            throw CircuitsError(item: "attribution data", problem: "has no samples", fix: "check the task, type and frequency filters")
        }
        let start = Date()
        let engine: EdgeAttribution
        if let a = attribution, a.options == options.attribution {
            engine = a
            engine.reset()
        } else {
            engine = try EdgeAttribution(model: model, options: options.attribution)
            attribution = engine
        }
        try timed("attribution") {
            try engine.accumulate(pairs: pairs, batchSize: options.batchSize) { done in
                progress?(CellProgress(phase: .discover, done: done, total: pairs.count))
            }
        }
        // The attribution buffers (the largest of a cell) are not held while the cell is evaluated.
        engine.releaseBuffers()
        return CellDiscovery(scores: engine.scores(), nSamples: engine.sampleCount, seconds: Date().timeIntervalSince(start))
    }

    /// The circuits of `scores` for every `options.topn`, evaluated on `pairs` and tested on `targets`
    /// (prompts of `task`). `keepPredictions` also returns one row per test entity and circuit.
    public func evaluate(scores: ScoreMatrix, pairs: [PromptPair], targets: [TestTarget], task: CircuitTask,
                         encoder: TextEncoder, options: CellOptions, keepPredictions: Bool = false,
                         progress: ((CellProgress) -> Void)? = nil) throws -> CellEvaluation {
        let circuits: [Circuit] = timed("selection") {
            options.topn.map { n in
                var c = Circuit(graph: graph, scores: scores)
                c.applyTopN(n)
                c.pruneDeadNodes()
                return c
            }
        }
        return try evaluate(circuits: circuits, pairs: pairs, targets: targets, task: task, encoder: encoder, options: options,
                            keepPredictions: keepPredictions, progress: progress)
    }

    /// `evaluate(scores:…)` for circuits already chosen, one per `options.topn` in that order (a circuit
    /// transplant evaluates another checkpoint's circuits this way).
    public func evaluate(circuits: [Circuit], pairs: [PromptPair], targets: [TestTarget], task: CircuitTask,
                         encoder: TextEncoder, options: CellOptions, keepPredictions: Bool = false,
                         progress: ((CellProgress) -> Void)? = nil) throws -> CellEvaluation {
        guard !pairs.isEmpty else {
            throw CircuitsError(item: "evaluation data", problem: "has no samples", fix: "check the task, type and frequency filters")
        }
        precondition(circuits.count == options.topn.count, "one circuit per top-n")
        let start = Date()
        let sizes = options.topn

        let (clean, corrupted, performance) = try faithfulnessRuns(circuits: circuits, pairs: pairs, options: options, progress: progress)
        let (tests, order) = try testPrompts(targets: targets, task: task, encoder: encoder)
        let allPrompts = order.map { tests[$0.0].1[$0.1] }, allLabels = order.map { tests[$0.0].2[$0.1] }
        let totalTests = allPrompts.count * circuits.filter { !$0.isEmpty }.count
        var testsDone = 0
        var cell = CircuitsTable.Cell(cleanBaseline: CircuitEvaluator.mean(clean), corruptedBaseline: CircuitEvaluator.mean(corrupted))
        var predictions: [TestPrediction] = []
        for (i, c) in circuits.enumerated() {
            var targetResults: [CircuitsTable.Target: CircuitsTable.TargetResult] = [:]
            if !c.isEmpty {
                let before = testsDone
                let sorted = try timed("tests") {
                    try evaluator.test(c, prompts: allPrompts, labels: allLabels, batchSize: options.batchSize) { done in
                        progress?(CellProgress(phase: .test, done: before + done, total: totalTests))
                    }
                }
                testsDone += allPrompts.count
                var perTarget = tests.map { [(probability: Double, rank: Int)](repeating: (0, 0), count: $0.1.count) }
                for (k, (t, e)) in order.enumerated() { perTarget[t][e] = sorted[k] }
                for ((t, _, _), out) in zip(tests, perTarget) {
                    let stats = LabelStatistics(probabilities: out.map(\.probability), ranks: out.map(\.rank))
                    targetResults[CircuitsTable.Target(type: t.type, frequency: t.frequency)] = CircuitsTable.TargetResult(
                        labelProb: stats.meanProbability, labelRankMean: stats.meanRank, hitsAt1: stats.hitsAt1,
                        hitsAt10: stats.hitsAt10, nTest: stats.count)
                    if keepPredictions {
                        for (e, r) in zip(t.entities, out) {
                            predictions.append(TestPrediction(topn: sizes[i], targetType: t.type, targetFrequency: t.frequency, entity: e,
                                                              groundTruth: e.value(of: task), probability: r.probability, rank: r.rank))
                        }
                    }
                }
            }
            cell.circuits[sizes[i]] = CircuitsTable.Circuit(
                performance: CircuitEvaluator.mean(performance[i]), nEdges: c.edgeCount, nNodes: c.nodeCount,
                edgeEntropy: c.edgeEntropy() ?? .nan, inCircuit: c.inCircuitMask, targets: targetResults)
        }
        // Nor are the evaluation buffers held while the next cell is discovered.
        evaluator.releaseBuffers()
        return CellEvaluation(cell: cell, predictions: predictions, seconds: Date().timeIntervalSince(start))
    }

    /// run_eval: the clean and corrupted baselines once per batch, then each circuit patched in (the corrupted run
    /// of a batch is made once, with the baselines, and shared by every circuit). Per-sample values.
    private func faithfulnessRuns(circuits: [Circuit], pairs: [PromptPair], options: CellOptions,
                                  progress: ((CellProgress) -> Void)?) throws -> ([Float], [Float], [[Float]]) {
        let n = pairs.count
        var clean = [Float](repeating: 0, count: n), corrupted = [Float](repeating: 0, count: n)
        var performance = [[Float]](repeating: [Float](repeating: 0, count: n), count: circuits.count)
        var done = 0
        try model.forEachLengthOrderedBatch(of: pairs, batchSize: options.batchSize, weightedByBatch: false,
                                            reserving: evaluator.reserve(for:)) { indices, batch in
            let base = timed("baselines") { evaluator.baselinesKeepingCorruptedRun(batch) }
            for (k, i) in indices.enumerated() { (clean[i], corrupted[i]) = (base.clean[k], base.corrupted[k]) }
            timed("faithfulness") {
                for (j, c) in circuits.enumerated() {
                    let values = evaluator.keptRunPerformance(c, batch, more: j + 1 < circuits.count)
                    for (k, i) in indices.enumerated() { performance[j][i] = values[k] }
                }
            }
            done += indices.count
            progress?(CellProgress(phase: .evaluate, done: done, total: n))
        }
        return (clean, corrupted, performance)
    }

    /// run_test's prompts and labels of every target, encoded once, and the order they run in: every target's
    /// prompts together, sorted by length (stable), so batches carry little padding; a prompt's result does not
    /// depend on its batch (padded keys are masked). `order[k]` = (target, entity).
    private func testPrompts(targets: [TestTarget], task: CircuitTask, encoder: TextEncoder) throws
        -> (tests: [(TestTarget, [[Int]], [Int])], order: [(Int, Int)]) {
        let tests = targets.map { t -> (TestTarget, [[Int]], [Int]) in
            (t, t.entities.map { encoder.encode(task.prompt(subject: $0.fullName)) },
             t.entities.map { $0.labelToken(task: task, encoder: encoder, leadingSpace: family.circuitLabelHasLeadingSpace) ?? -1 })
        }
        for (t, _, labels) in tests {
            if let bad = labels.firstIndex(of: -1) {
                throw CircuitsError(item: "test entity '\(t.entities[bad].fullName)'", problem: "has an empty \(task.rawValue)",
                                    fix: "regenerate the test set")
            }
        }
        let entries = tests.indices.flatMap { t in tests[t].1.indices.map { (t, $0) } }
        // One length-ordered batch of all entries is their stable order by prompt length.
        let sorted = try PromptBatch.lengthOrderedBatches(lengths: entries.map { tests[$0.0].1[$0.1].count },
                                                          batchSize: max(1, entries.count), weightedByBatch: false)
        return (tests, sorted.flatMap { $0 }.map { entries[$0] })
    }
}
