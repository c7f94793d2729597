import Foundation
import Results

/// The three files `dkc analyze` reads; any may be absent (its part of the analysis is skipped).
public struct AnalysisInputPaths: Equatable, Codable, Sendable {
    public var scores: String?
    public var circuits: String?
    public var acquisition: String?
    /// components.nc (logit lens, head classes); absent in older runs.
    public var components: String?
    /// Training stages' `metrics.jsonl` files (first-token accuracy); the stage is the file's folder name.
    public var metrics: [String] = []
    /// Files of a run folder that were looked for and not found (the report lists them).
    public var notFound: [String] = []

    public init(scores: String? = nil, circuits: String? = nil, acquisition: String? = nil, metrics: [String] = [],
                notFound: [String] = []) {
        self.scores = scores; self.circuits = circuits; self.acquisition = acquisition; self.metrics = metrics
        self.notFound = notFound
    }

    /// The stage name of a metrics file: its folder's name.
    public static func stage(ofMetrics path: String) -> String {
        URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
    }

    /// `<run>/circuits/{scores,circuits,acquisition,components}.nc` (those that exist), each replaced by an
    /// explicit path when given. Explicit paths must exist; at least one file must be found.
    /// Metrics files: `metrics` when given (each must exist), else every `<run>/train/<stage>/metrics.jsonl`.
    public static func resolve(run: String?, scores: String?, circuits: String?,
                               acquisition: String?, metrics: [String] = [], components: String? = nil) throws -> AnalysisInputPaths {
        let fm = FileManager.default
        var paths = AnalysisInputPaths()
        func pick(_ explicit: String?, _ option: String, _ name: String) throws -> String? {
            if let explicit {
                guard fm.fileExists(atPath: explicit) else { throw AnalysisError.missingFile(option: option, path: explicit) }
                return explicit
            }
            guard let run else { return nil }
            let path = URL(fileURLWithPath: run).appendingPathComponent("circuits").appendingPathComponent(name).path
            if fm.fileExists(atPath: path) { return path }
            paths.notFound.append(path)
            return nil
        }
        paths.scores = try pick(scores, "--scores", "scores.nc")
        paths.circuits = try pick(circuits, "--circuits", "circuits.nc")
        paths.acquisition = try pick(acquisition, "--acquisition", "acquisition.nc")
        paths.components = try pick(components, "--components", "components.nc")
        for path in metrics where !fm.fileExists(atPath: path) { throw AnalysisError.missingFile(option: "--metrics", path: path) }
        paths.metrics = !metrics.isEmpty ? metrics : run.map { FirstTokenLog.stageFiles(run: $0).map(\.path) } ?? []
        guard paths.scores != nil || paths.circuits != nil || paths.acquisition != nil || !paths.metrics.isEmpty else {
            throw AnalysisError.noInputs(run == nil ? "no file given"
                                         : "none of \(paths.notFound.joined(separator: ", ")) exists")
        }
        return paths
    }
}

/// Checkpoint steps of one file, checked for repeats, with a lookup from step to index.
struct AnalysisCheckpointAxis {
    let steps: [Int64]
    let index: [Int64: Int]

    init(_ file: AnalysisInputFile) throws {
        steps = try file.integers(ResultName.checkpoint)
        var index: [Int64: Int] = [:]
        for (i, s) in steps.enumerated() {
            if index[s] != nil {
                throw AnalysisError.layout(file: file.path, object: "variable 'checkpoint'",
                                           problem: "step \(s) appears twice (two training stages in one sweep?); " +
                                               "analyse the checkpoints of one stage at a time")
            }
            index[s] = i
        }
        self.index = index
    }
}

/// acquisition.nc: full-model knowledge by checkpoint × attribute × type × frequency.
struct AcquisitionSource {
    let file: AnalysisInputFile
    let checkpoints: AnalysisCheckpointAxis
    let attributes: [String], types: [String], frequencies: [String]
    /// (checkpoint, attribute, type, frequency); nil when the file lacks the variable.
    let exactMatch: LabeledArray?, hitsAt10: LabeledArray?, hitsAt1: LabeledArray?
    /// (checkpoint, attribute, type, frequency): the study's query accuracy; nil in older files.
    let queryAccuracy: LabeledArray?
    /// Per test entity × attribute results; nil in older files.
    let entities: EntityResults?
    /// Global attribute `test_set`: "circuit" (test people are the circuit people) or "independent".
    let testSet: String?

    init(path: String) throws {
        file = try AnalysisInputFile(path: path)
        checkpoints = try AnalysisCheckpointAxis(file)
        attributes = try file.labels(ResultName.attribute)
        types = try file.labels(ResultName.entityType)
        frequencies = try file.labels(ResultName.frequency)
        let order = [ResultName.checkpoint, ResultName.attribute, ResultName.entityType, ResultName.frequency]
        let f = file
        func optional(_ name: String) throws -> LabeledArray? { f.has(name) ? try f.array(name, order: order) : nil }
        exactMatch = try optional(ResultName.exactMatch)
        hitsAt10 = try optional(ResultName.hitsAt10)
        hitsAt1 = try optional(ResultName.hitsAt1)
        queryAccuracy = try optional(ResultName.queryAccuracy)
        testSet = file.globalText("test_set")
        if f.has(ResultName.queryCorrect), f.has(ResultName.testEntityType), f.has(ResultName.testEntityFrequency) {
            let entityTypes = try f.strings(ResultName.testEntityType, over: ResultName.testEntity)
            let entityFrequencies = try f.strings(ResultName.testEntityFrequency, over: ResultName.testEntity)
            let order = [ResultName.checkpoint, ResultName.testEntity, ResultName.attribute]
            let query = try f.rawSlice(ResultName.queryCorrect, fixed: [:], trailing: order, as: Int8.self)
            let exact = f.has(ResultName.exactCorrect) ? try f.rawSlice(ResultName.exactCorrect, fixed: [:], trailing: order, as: Int8.self) : nil
            guard entityTypes.count == entityFrequencies.count,
                  query.count == checkpoints.steps.count * entityTypes.count * attributes.count else {
                throw AnalysisError.layout(file: path, object: "variables 'query_correct', 'test_entity_type'",
                                           problem: "sizes disagree with the test_entity and attribute dimensions")
            }
            entities = EntityResults(types: entityTypes, frequencies: entityFrequencies, nAttributes: attributes.count,
                                     queryCorrect: query, exactCorrect: exact)
        } else {
            entities = nil
        }
        guard exactMatch != nil || hitsAt10 != nil else {
            throw AnalysisError.layout(file: path, object: "variables 'exact_match', 'hits_at_10'", problem: "both missing")
        }
    }
}

/// circuits.nc: circuits (at the selected top-n) and their evaluation by checkpoint × task × type × frequency.
struct CircuitsSource {
    let file: AnalysisInputFile
    let checkpoints: AnalysisCheckpointAxis
    let tasks: [String], types: [String], frequencies: [String]
    /// The `topn` values (nil without a `topn` variable) and the index chosen.
    let topnValues: [Int64]?
    let topnIndex: Int
    /// Length of the `topn` dimension.
    let topnCount: Int
    let targetTypes: [String]?, targetFrequencies: [String]?
    let upstream: [String]?, downstream: [String]?
    let nUpstream: Int, nDownstream: Int
    /// `is_edge` (upstream, downstream): which pairs the sweep's graph has (sequential or parallel
    /// blocks); nil in files without it.
    let isEdge: [Int8]?
    /// (checkpoint, task, type, frequency) at the chosen top-n; nil when absent.
    let faithfulness: LabeledArray?, nEdges: LabeledArray?, edgeEntropy: LabeledArray?
    /// (checkpoint, task, type, frequency, target_type, target_frequency) at the chosen top-n.
    let hitsAt10: LabeledArray?
    /// (checkpoint, task, type, frequency, topn): `n_edges` at every top-n; nil when absent.
    let nEdgesByTopn: LabeledArray?

    /// `topn`: the circuit size to analyse (nil: the largest in the file).
    init(path: String, topn: Int?) throws {
        file = try AnalysisInputFile(path: path)
        checkpoints = try AnalysisCheckpointAxis(file)
        tasks = try file.labels(ResultName.task)
        types = try file.labels(ResultName.entityType)
        frequencies = try file.labels(ResultName.frequency)
        guard let nTopn = file.dimensionLength(ResultName.topn), nTopn > 0 else {
            throw AnalysisError.layout(file: path, object: "dimension 'topn'", problem: "missing or empty")
        }
        topnCount = nTopn
        topnValues = file.has(ResultName.topn) ? try file.integers(ResultName.topn) : nil
        if let topn {
            guard let values = topnValues else {
                throw AnalysisError.option(name: "--topn", problem: "\(path) has no 'topn' variable to select \(topn) from; omit --topn")
            }
            guard let i = values.firstIndex(of: Int64(topn)) else {
                throw AnalysisError.option(name: "--topn \(topn)",
                                           problem: "\(path) evaluated top-n \(values.map(String.init).joined(separator: ", ")); pick one of them")
            }
            topnIndex = i
        } else {
            topnIndex = topnValues.map { v in v.indices.max { v[$0] < v[$1] }! } ?? nTopn - 1
        }
        targetTypes = file.has(ResultName.targetType) ? try file.labels(ResultName.targetType) : nil
        targetFrequencies = file.has(ResultName.targetFrequency) ? try file.labels(ResultName.targetFrequency) : nil
        upstream = file.has(ResultName.upstream) ? try file.labels(ResultName.upstream) : nil
        downstream = file.has(ResultName.downstream) ? try file.labels(ResultName.downstream) : nil
        let inCircuit = try file.info(ResultName.inCircuit)
        func length(_ d: String) throws -> Int {
            guard let i = inCircuit.dimensions.firstIndex(of: d) else {
                throw AnalysisError.layout(file: path, object: "variable 'in_circuit'", problem: "has no dimension '\(d)'")
            }
            return inCircuit.shape[i]
        }
        nUpstream = try length(ResultName.upstream)
        nDownstream = try length(ResultName.downstream)
        isEdge = file.has(ResultName.isEdge)
            ? try file.rawSlice(ResultName.isEdge, fixed: [:], trailing: [ResultName.upstream, ResultName.downstream], as: Int8.self) : nil

        let cell = [ResultName.checkpoint, ResultName.task, ResultName.entityType, ResultName.frequency]
        let fixed = [ResultName.topn: topnIndex]
        let f = file
        func scalar(_ name: String) throws -> LabeledArray? {
            guard f.has(name) else { return nil }
            let values = try f.slice(name, fixed: fixed, trailing: cell)
            return LabeledArray(dimensions: cell, shape: cell.map { f.dimensionLength($0)! }, values: values)
        }
        faithfulness = try scalar(ResultName.faithfulness)
        nEdges = try scalar(ResultName.nEdges)
        nEdgesByTopn = f.has(ResultName.nEdges) ? try f.array(ResultName.nEdges, order: cell + [ResultName.topn]) : nil
        edgeEntropy = try scalar(ResultName.edgeEntropy)
        if f.has(ResultName.hitsAt10), targetTypes != nil, targetFrequencies != nil {
            let dims = cell + [ResultName.targetType, ResultName.targetFrequency]
            let values = try f.slice(ResultName.hitsAt10, fixed: fixed, trailing: dims)
            hitsAt10 = LabeledArray(dimensions: dims, shape: dims.map { f.dimensionLength($0)! }, values: values)
        } else {
            hitsAt10 = nil
        }
    }

    /// The chosen top-n, when the file names it.
    var topn: Int64? { topnValues?[topnIndex] }

    /// The `in_circuit` matrix (upstream, downstream) of one cell; nil when the cell was not
    /// computed (an entry outside 0/1, i.e. a fill value, or `n_edges` NaN).
    /// `topn`: an index of the `topn` dimension other than the chosen one (nil: the chosen one).
    func inCircuit(checkpoint c: Int, task t: Int, type y: Int, frequency f: Int, topn k: Int? = nil) throws -> [Int8]? {
        let k = k ?? topnIndex
        if let nEdgesByTopn, nEdgesByTopn[c, t, y, f, k].isNaN { return nil }
        let mask = try file.rawSlice(ResultName.inCircuit, fixed: [ResultName.checkpoint: c, ResultName.task: t, ResultName.entityType: y, ResultName.frequency: f, ResultName.topn: k],
                                     trailing: [ResultName.upstream, ResultName.downstream], as: Int8.self)
        return mask.allSatisfy({ $0 == 0 || $0 == 1 }) ? mask : nil
    }
}

/// scores.nc: edge scores by checkpoint × task × type × frequency.
struct ScoresSource {
    let file: AnalysisInputFile
    let checkpoints: AnalysisCheckpointAxis
    let taskIndex: [String: Int], typeIndex: [String: Int], frequencyIndex: [String: Int]
    let upstream: [String]?, downstream: [String]?
    let nUpstream: Int, nDownstream: Int
    /// Values of `score` that mark an unwritten entry (besides NaN).
    private let scoreFills: Set<Float>

    init(path: String) throws {
        file = try AnalysisInputFile(path: path)
        checkpoints = try AnalysisCheckpointAxis(file)
        let f = file
        func lookup(_ name: String) throws -> [String: Int] {
            Dictionary(try f.labels(name).enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
        }
        taskIndex = try lookup(ResultName.task)
        typeIndex = try lookup(ResultName.entityType)
        frequencyIndex = try lookup(ResultName.frequency)
        upstream = file.has(ResultName.upstream) ? try file.labels(ResultName.upstream) : nil
        downstream = file.has(ResultName.downstream) ? try file.labels(ResultName.downstream) : nil
        let score = try file.info(ResultName.score)
        guard let u = score.dimensions.firstIndex(of: ResultName.upstream), let d = score.dimensions.firstIndex(of: ResultName.downstream) else {
            throw AnalysisError.layout(file: path, object: "variable 'score'", problem: "lacks the upstream and downstream dimensions")
        }
        nUpstream = score.shape[u]
        nDownstream = score.shape[d]
        scoreFills = Set(file.fillValues(ResultName.score, score.type).map(Float.init))
    }

    /// The score matrix (upstream, downstream) of a cell named by step and labels; nil when the
    /// file lacks the cell or holds no finite score for it. Non-edges are NaN.
    func scores(step: Int64, task: String, type: String, frequency: String) throws -> [Float]? {
        guard let c = checkpoints.index[step], let t = taskIndex[task], let y = typeIndex[type],
              let f = frequencyIndex[frequency] else { return nil }
        var m = try file.rawSlice(ResultName.score, fixed: [ResultName.checkpoint: c, ResultName.task: t, ResultName.entityType: y, ResultName.frequency: f],
                                  trailing: [ResultName.upstream, ResultName.downstream], as: Float.self)
        var any = false
        for i in m.indices {
            if scoreFills.contains(m[i]) { m[i] = .nan } else if !m[i].isNaN { any = true }
        }
        return any ? m : nil
    }
}
