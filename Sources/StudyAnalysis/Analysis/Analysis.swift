import Foundation
import Results

/// `dkc analyze`: how knowledge circuits evolve across checkpoints (docs/pipeline.md §7), from the
/// sweep's scores.nc, circuits.nc and acquisition.nc.
///
/// Definitions (the report repeats them):
/// - Full-model curves: acquisition.nc `exact_match`, `hits_at_10`, `hits_at_1`, averaged over
///   the selected attributes per (checkpoint, type, frequency).
/// - Circuit hits@10: circuits.nc `hits_at_10` at the chosen top-n with target type and
///   frequency equal to the cell's own.
/// - A cell's circuit: the edges with `in_circuit` = 1 at the chosen top-n. Its "final" circuit
///   is the one at the last checkpoint where the cell is present, its "initial" one the first
///   (the forgetting experiment compares with it); "previous" is the nearest earlier checkpoint
///   where it is present. Jaccard = |A ∩ B| / |A ∪ B| (NaN if both empty).
/// - Edge entropy and faithfulness: circuits.nc's; the entropy falls back to scores.nc's
///   scores of the circuit's edges when circuits.nc lacks it.
/// - Layers: an edge belongs to its upstream node's layer, `input` = −1 ("embed").
/// - Node presence: a node is in a circuit when it touches a kept edge.
public enum Analysis {
    /// Reads the inputs and computes every series. Missing cells are skipped and listed.
    public static func run(inputs: AnalysisInputPaths, options: AnalysisOptions = AnalysisOptions()) throws -> AnalysisResult {
        var result = AnalysisResult(options: options, inputs: inputs)
        let acquisition = try inputs.acquisition.map { try AcquisitionSource(path: $0) }
        let circuits = try inputs.circuits.map { try CircuitsSource(path: $0, topn: options.topn) }
        let scores = try inputs.scores.map { try ScoresSource(path: $0) }
        let components = try inputs.components.map { try ComponentsSource(path: $0) }
        for file in [acquisition?.file, circuits?.file, scores?.file, components?.file].compactMap({ $0 }) {
            result.inputSources[file.path] = file.globalText("source") ?? "unknown"
        }
        for path in inputs.notFound { result.notes.append("\(path) not found: its part of the analysis is skipped.") }
        result.firstToken = try inputs.metrics.map { try FirstTokenLog.read(path: $0, stage: AnalysisInputPaths.stage(ofMetrics: $0)) }

        // Axes: union of the inputs' labels and steps.
        func union(_ lists: [[String]?]) -> [String] {
            var out: [String] = []
            for list in lists.compactMap({ $0 }) { for x in list where !out.contains(x) { out.append(x) } }
            return out
        }
        result.tasks = union([circuits?.tasks, scores.map { sortedKeys($0.taskIndex) }, components?.tasks])
        result.types = union([circuits?.types, acquisition?.types, scores.map { sortedKeys($0.typeIndex) }, components?.types]
                             + result.firstToken.map(\.types))
        result.frequencies = union([circuits?.frequencies, acquisition?.frequencies, scores.map { sortedKeys($0.frequencyIndex) },
                                    components?.frequencies])
        var allSteps = Set<Int64>()
        for axis in [acquisition?.checkpoints, circuits?.checkpoints, scores?.checkpoints, components?.checkpoints].compactMap({ $0 }) {
            allSteps.formUnion(axis.steps)
        }
        result.steps = allSteps.sorted()
        guard !result.steps.isEmpty || !result.firstToken.isEmpty else {
            throw AnalysisError.noInputs("the input files hold no checkpoints")
        }
        result.graph = try graph(circuits: circuits, scores: scores)

        if let acquisition { try performance(acquisition, into: &result) }
        var scoreCellsRead = Set<String>()
        if let circuits {
            result.topn = circuits.topn
            try topology(circuits, scores: scores, into: &result, scoreCellsRead: &scoreCellsRead)
        } else {
            result.notes.append("circuits.nc not given: circuit hits@10, topology and components are skipped.")
        }
        if let scores { try listMissingScores(scores, into: &result, alreadyRead: scoreCellsRead) }
        if let components {
            result.components = ComponentTrends.compute(components, result)
        } else {
            result.notes.append("components.nc not given: the logit lens and head classes are skipped.")
        }
        if let circuits {
            result.transplant = try TransplantTrends.read(circuits, result)
            if result.transplant == nil { result.notes.append("circuits.nc has no transplant variables: the transplant curves are skipped.") }
        }
        result.reportSections += ComponentTrendsReport.sections(result)
        return result
    }

    private static func sortedKeys(_ index: [String: Int]) -> [String] {
        index.sorted { $0.value < $1.value }.map(\.key)
    }

    /// Node names from circuits.nc or scores.nc (which must agree), else derived from the sizes.
    static func graph(circuits: CircuitsSource?, scores: ScoresSource?) throws -> GraphNames? {
        if let c = circuits, let s = scores, c.nUpstream != s.nUpstream || c.nDownstream != s.nDownstream {
            throw AnalysisError.mismatch(files: [c.file.path, s.file.path],
                                         problem: "graph sizes \(c.nUpstream) × \(c.nDownstream) and \(s.nUpstream) × \(s.nDownstream)")
        }
        if let c = circuits, let s = scores, let a = c.upstream, let b = s.upstream, a != b {
            throw AnalysisError.mismatch(files: [c.file.path, s.file.path], problem: "upstream node names")
        }
        let named: [(String, [String]?, [String]?)] = [
            (circuits?.file.path ?? "", circuits?.upstream, circuits?.downstream),
            (scores?.file.path ?? "", scores?.upstream, scores?.downstream),
        ]
        for (path, up, down) in named {
            guard let up, let down else { continue }
            let names: GraphNames
            do { names = try GraphNames(upstream: up, downstream: down) } catch let e as GraphNamesError {
                throw AnalysisError.layout(file: path, object: "variables 'upstream', 'downstream'", problem: e.problem)
            }
            // Which pairs are edges (sequential or parallel blocks) as the sweep's graph had them.
            guard let mask = circuits?.isEdge else { return names }
            guard let graph = names.matching(isEdge: mask) else {
                throw AnalysisError.layout(file: circuits!.file.path, object: "variable 'is_edge'",
                                           problem: "matches neither a graph of sequential blocks nor one of parallel blocks over these node names")
            }
            return graph
        }
        guard let nU = circuits?.nUpstream ?? scores?.nUpstream, let nD = circuits?.nDownstream ?? scores?.nDownstream else {
            return nil
        }
        guard let shape = GraphNames.shape(nForward: nU, nBackward: nD) else {
            throw AnalysisError.layout(file: circuits?.file.path ?? scores!.file.path, object: "dimensions 'upstream', 'downstream'",
                                       problem: "\(nU) × \(nD) is no GPT-2 graph (1 + L(H+1) × L(3H+1) + 1) and no node names are stored")
        }
        return GraphNames.standard(layers: shape.layers, heads: shape.heads)
    }

    // MARK: - Performance

    static func performance(_ source: AcquisitionSource, into result: inout AnalysisResult) throws {
        let attributes = result.options.attributes ?? source.attributes
        for a in attributes where !source.attributes.contains(a) {
            throw AnalysisError.option(name: "--attributes \(a)",
                                       problem: "\(source.file.path) has attributes \(source.attributes.joined(separator: ", "))")
        }
        result.attributes = attributes
        let attributeIndices = attributes.map { source.attributes.firstIndex(of: $0)! }
        let dims = ["checkpoint", "type", "frequency"]
        let shape = [result.steps.count, result.types.count, result.frequencies.count]
        func average(_ array: LabeledArray?) -> LabeledArray? {
            guard let array else { return nil }
            var out = LabeledArray(dimensions: dims, shape: shape)
            for (c, step) in result.steps.enumerated() {
                guard let fc = source.checkpoints.index[step] else { continue }
                for (y, type) in source.types.enumerated() {
                    for (f, frequency) in source.frequencies.enumerated() {
                        let ry = result.types.firstIndex(of: type)!, rf = result.frequencies.firstIndex(of: frequency)!
                        out[c, ry, rf] = CircuitMetrics.finiteMean(attributeIndices.map { array[fc, $0, y, f] })
                    }
                }
            }
            return out
        }
        result.fullQueryAccuracy = average(source.queryAccuracy)
        result.testSet = source.testSet
        if source.queryAccuracy == nil {
            result.notes.append("\(source.file.path) has no query_accuracy (an older sweep): query accuracy is skipped.")
        }
        func byAttribute(_ array: LabeledArray?) -> LabeledArray? {
            guard let array else { return nil }
            var out = LabeledArray(dimensions: ["checkpoint", "attribute", "type", "frequency"],
                                   shape: [result.steps.count, attributes.count, result.types.count, result.frequencies.count])
            for (c, step) in result.steps.enumerated() {
                guard let fc = source.checkpoints.index[step] else { continue }
                for (a, fa) in attributeIndices.enumerated() {
                    for (y, type) in source.types.enumerated() {
                        for (f, frequency) in source.frequencies.enumerated() {
                            out[c, a, result.types.firstIndex(of: type)!, result.frequencies.firstIndex(of: frequency)!] = array[fc, fa, y, f]
                        }
                    }
                }
            }
            return out
        }
        result.queryAccuracyByAttribute = byAttribute(source.queryAccuracy)
        result.exactMatchByAttribute = byAttribute(source.exactMatch)
        if let entities = source.entities {
            let rowsByCell = result.steps.map { step in
                result.types.map { type in source.checkpoints.index[step].map { EntityResults.heatmapCells(entities.rows(checkpoint: $0, type: type)) } ?? [] }
            }
            let width = rowsByCell.flatMap { $0.map(\.count) }.max() ?? 0
            if width > 0 {
                var map = LabeledArray(dimensions: ["checkpoint", "type", "entity_cell"], shape: [result.steps.count, result.types.count, width])
                for (c, row) in rowsByCell.enumerated() { for (y, cells) in row.enumerated() { for (i, v) in cells.enumerated() { map[c, y, i] = v } } }
                result.entityHeatmap = map
            }
        } else {
            result.notes.append("\(source.file.path) has no per-entity results (query_correct): the per-entity heat map is skipped.")
        }
        result.fullExactMatch = average(source.exactMatch)
        result.fullHitsAt10 = average(source.hitsAt10)
        result.fullHitsAt1 = average(source.hitsAt1)

        let main = result.fullHitsAt10 ?? result.fullExactMatch!
        for (c, step) in result.steps.enumerated() {
            for type in source.types {
                for frequency in source.frequencies {
                    let y = result.types.firstIndex(of: type)!, f = result.frequencies.firstIndex(of: frequency)!
                    if main[c, y, f].isNaN {
                        result.missing.append(MissingCell(file: source.file.path, step: step, cell: "\(type)/\(frequency)"))
                    }
                }
            }
        }
    }

    // MARK: - Missing cells (the topology is in AnalysisTopology.swift)

    /// Score cells that scores.nc lacks, over its own labels and every step (cells found while
    /// analysing the circuits are not read again).
    static func listMissingScores(_ source: ScoresSource, into result: inout AnalysisResult, alreadyRead: Set<String>) throws {
        for step in result.steps {
            for task in sortedKeys(source.taskIndex) {
                for type in sortedKeys(source.typeIndex) {
                    for frequency in sortedKeys(source.frequencyIndex) {
                        if alreadyRead.contains("\(step)/\(task)/\(type)/\(frequency)") { continue }
                        if try source.scores(step: step, task: task, type: type, frequency: frequency) == nil {
                            result.missing.append(MissingCell(file: source.file.path, step: step, cell: "\(task)/\(type)/\(frequency)"))
                        }
                    }
                }
            }
        }
    }
}
