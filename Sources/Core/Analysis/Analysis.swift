import Foundation

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
            do { return try GraphNames(upstream: up, downstream: down) } catch let e as GraphNamesError {
                throw AnalysisError.layout(file: path, object: "variables 'upstream', 'downstream'", problem: e.problem)
            }
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

    // MARK: - Topology and components

    /// `scoreCellsRead` collects "step/task/type/frequency" of the score cells read (found or not).
    static func topology(_ source: CircuitsSource, scores: ScoresSource?, into result: inout AnalysisResult,
                         scoreCellsRead: inout Set<String>) throws {
        guard let graph = result.graph else { return }
        let nC = result.steps.count, nT = result.tasks.count, nY = result.types.count, nF = result.frequencies.count
        let nL = graph.nLayers + 1, nN = graph.upstream.count
        let cellDims = ["checkpoint", "task", "type", "frequency"]
        let cellShape = [nC, nT, nY, nF]
        func cellArray() -> LabeledArray { LabeledArray(dimensions: cellDims, shape: cellShape) }
        var faithfulness = cellArray(), entropy = cellArray(), nEdges = cellArray(), hits = cellArray()
        var jFinal = cellArray(), jPrevious = cellArray(), meanLayer = cellArray(), meanLayerByCount = cellArray()
        var edgeShare = LabeledArray(dimensions: cellDims + ["layer"], shape: cellShape + [nL])
        var scoreShare = edgeShare
        var presence = LabeledArray(dimensions: ["task", "type", "frequency", "node"], shape: [nT, nY, nF, nN])
        var byBucket = [LayerProfile](repeating: .zero(layers: graph.nLayers, withScores: false), count: nC * nY * nF)
        var byCheckpoint = [LayerProfile](repeating: .zero(layers: graph.nLayers, withScores: false), count: nC)
        var scoresMissing = 0
        let nK = source.topnCount, nP = graph.nLayers
        var ratio = LabeledArray(dimensions: cellDims + ["topn", "parent_layer"], shape: cellShape + [nK, nP])
        var kept = ratio
        var nodesFinal = cellArray(), nodesPrevious = cellArray()
        var jInitial = cellArray(), nodesInitial = cellArray()
        var cross = LabeledArray(dimensions: cellDims + ["target_frequency"], shape: cellShape + [nF])

        if let t = result.options.heatmapTask, !source.tasks.contains(t) {
            throw AnalysisError.option(name: "--heatmap-task \(t)", problem: "circuits.nc has tasks \(source.tasks.joined(separator: ", "))")
        }
        if let f = result.options.heatmapFrequency, !source.frequencies.contains(f) {
            throw AnalysisError.option(name: "--heatmap-frequency \(f)",
                                       problem: "circuits.nc has buckets \(source.frequencies.joined(separator: ", "))")
        }
        let mapTask = result.options.heatmapTask ?? source.tasks.first
        let mapFrequency = result.options.heatmapFrequency ?? (source.frequencies.contains("high") ? "high" : source.frequencies.first)

        for (t, task) in source.tasks.enumerated() {
            for (y, type) in source.types.enumerated() {
                for (f, frequency) in source.frequencies.enumerated() {
                    let cell = CellIndex(task: result.tasks.firstIndex(of: task)!, type: result.types.firstIndex(of: type)!,
                                         frequency: result.frequencies.firstIndex(of: frequency)!)
                    let (rt, ry, rf) = (cell.task, cell.type, cell.frequency)
                    var circuitsByStep: [(c: Int, edges: CircuitEdges)] = []
                    for (c, step) in result.steps.enumerated() {
                        guard let fc = source.checkpoints.index[step],
                              let mask = try source.inCircuit(checkpoint: fc, task: t, type: y, frequency: f) else {
                            result.missing.append(MissingCell(file: source.file.path, step: step, cell: "\(task)/\(type)/\(frequency)"))
                            continue
                        }
                        let matrix = try scores?.scores(step: step, task: task, type: type, frequency: frequency)
                        if scores != nil && matrix == nil { scoresMissing += 1 }
                        if matrix != nil { scoreCellsRead.insert("\(step)/\(task)/\(type)/\(frequency)") }
                        let edges = CircuitEdges(mask: mask, scores: matrix)
                        circuitsByStep.append((c, edges))

                        faithfulness[c, rt, ry, rf] = source.faithfulness?[fc, t, y, f] ?? .nan
                        let stored = source.edgeEntropy?[fc, t, y, f] ?? .nan
                        entropy[c, rt, ry, rf] = stored.isNaN ? edges.scores.map(CircuitMetrics.entropy) ?? .nan : stored
                        let count = source.nEdges?[fc, t, y, f] ?? .nan
                        nEdges[c, rt, ry, rf] = count.isNaN ? Double(edges.edges.count) : count
                        if let h = source.hitsAt10, let ty = source.targetTypes?.firstIndex(of: type),
                           let tf = source.targetFrequencies?.firstIndex(of: frequency) {
                            hits[c, rt, ry, rf] = h[fc, t, y, f, ty, tf]
                        }
                        if let h = source.hitsAt10, let ty = source.targetTypes?.firstIndex(of: type), let targets = source.targetFrequencies {
                            for (tf, target) in targets.enumerated() {
                                guard let q = result.frequencies.firstIndex(of: target) else { continue }
                                cross[c, rt, ry, rf, q] = h[fc, t, y, f, ty, tf]
                            }
                        }
                        for k in 0..<nK {
                            let m = k == source.topnIndex ? mask : try source.inCircuit(checkpoint: fc, task: t, type: y, frequency: f, topn: k)
                            guard let m else { continue }
                            let p = CircuitMetrics.layerProfile(CircuitEdges(mask: m), graph: graph)
                            let numerator = CircuitMetrics.keptEdgesByParentLayer(p)
                            let r = CircuitMetrics.edgeActivationRatio(p, graph: graph)
                            for l in 0..<nP { kept[c, rt, ry, rf, k, l] = numerator[l]; ratio[c, rt, ry, rf, k, l] = r[l] }
                        }
                        let profile = CircuitMetrics.layerProfile(edges, graph: graph)
                        let eShare = profile.edgeShare, sShare = profile.scoreShare
                        for l in 0..<nL {
                            edgeShare[c, rt, ry, rf, l] = eShare[l]
                            scoreShare[c, rt, ry, rf, l] = sShare?[l] ?? .nan
                        }
                        meanLayer[c, rt, ry, rf] = profile.meanLayer
                        meanLayerByCount[c, rt, ry, rf] = profile.meanLayerByCount
                        byBucket[(c * nY + ry) * nF + rf].add(profile)
                        byCheckpoint[c].add(profile)
                    }
                    guard let initial = circuitsByStep.first, let final = circuitsByStep.last else { continue }
                    result.finalStep[cell] = result.steps[final.c]
                    var counts = [Double](repeating: 0, count: nN)
                    let nodeSets = circuitsByStep.map { CircuitMetrics.nodeSet($0.edges, graph: graph) }
                    for (k, entry) in circuitsByStep.enumerated() {
                        jFinal[entry.c, rt, ry, rf] = CircuitMetrics.jaccard(entry.edges.edges, final.edges.edges)
                        nodesFinal[entry.c, rt, ry, rf] = CircuitMetrics.jaccard(nodeSets[k], nodeSets.last!)
                        jInitial[entry.c, rt, ry, rf] = CircuitMetrics.jaccard(entry.edges.edges, initial.edges.edges)
                        nodesInitial[entry.c, rt, ry, rf] = CircuitMetrics.jaccard(nodeSets[k], nodeSets[0])
                        if k > 0 {
                            jPrevious[entry.c, rt, ry, rf] = CircuitMetrics.jaccard(entry.edges.edges, circuitsByStep[k - 1].edges.edges)
                            nodesPrevious[entry.c, rt, ry, rf] = CircuitMetrics.jaccard(nodeSets[k], nodeSets[k - 1])
                        }
                        for (n, isIn) in CircuitMetrics.nodesPresent(entry.edges, graph: graph).enumerated() where isIn { counts[n] += 1 }
                    }
                    for n in 0..<nN { presence[rt, ry, rf, n] = counts[n] / Double(circuitsByStep.count) }
                    result.phaseShift[cell] = PhaseShift.fit(
                        x: circuitsByStep.map { Double(result.steps[$0.c]) }, y: circuitsByStep.map { jFinal[$0.c, rt, ry, rf] },
                        minImprovement: result.options.phaseMinImprovement, confidence: result.options.phaseConfidence,
                        simulations: result.options.phaseSimulations)
                    if task == mapTask, frequency == mapFrequency, let scores,
                       let matrix = try scores.scores(step: result.steps[final.c], task: task, type: type, frequency: frequency) {
                        var masked = [Float](repeating: .nan, count: matrix.count)
                        for e in final.edges.edges { masked[Int(e)] = matrix[Int(e)] }
                        result.finalMaps.append(FinalCircuitMap(task: task, type: type, frequency: frequency,
                                                                step: result.steps[final.c], scores: masked))
                    }
                }
            }
        }
        if scoresMissing > 0 {
            result.notes.append("\(scoresMissing) circuit(s) have no scores in scores.nc: their |score| shares and weighted mean layer are NaN.")
        }
        if scores == nil {
            result.notes.append("scores.nc not given: |score| shares, the weighted mean layer and the heat maps are skipped.")
        }
        if source.hitsAt10 == nil { result.notes.append("circuits.nc has no hits_at_10 (with target_type, target_frequency): circuit hits@10 is skipped.") }

        result.topnAxis = source.topnValues ?? (1...nK).map(Int64.init)
        result.edgeActivationRatio = ratio
        result.edgesInCircuitByParentLayer = kept
        result.edgesByParentLayer = CircuitMetrics.possibleEdgesByParentLayer(layers: graph.nLayers, heads: graph.nHeads)
        var ratioAll = LabeledArray(dimensions: ["checkpoint", "parent_layer"], shape: [nC, nP])
        for c in 0..<nC { for l in 0..<nP {
            ratioAll[c, l] = CircuitMetrics.finiteMean((0..<nT).flatMap { t in (0..<nY).flatMap { y in (0..<nF).map { ratio[c, t, y, $0, source.topnIndex, l] } } })
        } }
        result.edgeActivationRatioAll = ratioAll
        result.jaccardNodesFinal = nodesFinal
        result.jaccardInitial = jInitial
        result.jaccardNodesInitial = nodesInitial
        result.jaccardNodesPrevious = nodesPrevious
        if source.hitsAt10 != nil {
            result.crossFrequencyHitsAt10 = cross
            var bySource = LabeledArray(dimensions: ["checkpoint", "frequency", "target_frequency"], shape: [nC, nF, nF])
            for c in 0..<nC { for f in 0..<nF { for q in 0..<nF {
                bySource[c, f, q] = CircuitMetrics.finiteMean((0..<nT).flatMap { t in (0..<nY).map { cross[c, t, $0, f, q] } })
            } } }
            result.crossFrequencyBySource = bySource
        }
        result.faithfulness = faithfulness
        result.edgeEntropy = entropy
        result.nEdges = nEdges
        result.circuitHitsAt10 = source.hitsAt10 == nil ? nil : hits
        result.jaccardFinal = jFinal
        result.jaccardPrevious = jPrevious
        result.edgeShare = edgeShare
        result.scoreShare = scores == nil ? nil : scoreShare
        result.meanLayer = scores == nil ? nil : meanLayer
        result.meanLayerByCount = meanLayerByCount
        result.nodePresence = presence

        var bucketMean = LabeledArray(dimensions: ["checkpoint", "type", "frequency"], shape: [nC, nY, nF])
        for c in 0..<nC { for y in 0..<nY { for f in 0..<nF {
            let p = byBucket[(c * nY + y) * nF + f]
            bucketMean[c, y, f] = scores == nil ? p.meanLayerByCount : p.meanLayer
        } } }
        result.meanLayerByBucket = bucketMean
        var eAll = LabeledArray(dimensions: ["checkpoint", "layer"], shape: [nC, nL]), sAll = eAll
        var mAll = LabeledArray(dimensions: ["checkpoint"], shape: [nC]), mcAll = mAll
        for c in 0..<nC {
            let p = byCheckpoint[c]
            let e = p.edgeShare, s = p.scoreShare
            for l in 0..<nL { eAll[c, l] = e[l]; sAll[c, l] = s?[l] ?? .nan }
            mAll[c] = p.meanLayer
            mcAll[c] = p.meanLayerByCount
        }
        result.edgeShareAll = eAll
        result.scoreShareAll = scores == nil ? nil : sAll
        result.meanLayerAll = scores == nil ? nil : mAll
        result.meanLayerByCountAll = mcAll

        var byType = LabeledArray(dimensions: ["checkpoint", "type"], shape: [nC, nY])
        for y in 0..<nY {
            for c in 0..<nC {
                byType[c, y] = CircuitMetrics.finiteMean((0..<nT).flatMap { t in (0..<nF).map { jFinal[c, t, y, $0] } })
            }
            guard byType.series(y).contains(where: { !$0.isNaN }) else { continue }
            result.phaseShiftByType[result.types[y]] = PhaseShift.fit(
                x: result.steps.map(Double.init), y: byType.series(y), minImprovement: result.options.phaseMinImprovement,
                confidence: result.options.phaseConfidence, simulations: result.options.phaseSimulations)
        }
        result.jaccardFinalByType = byType

        // dkc's estimate: similarity to final without the reference point, and to the previous checkpoint.
        let x = result.steps.map(Double.init)
        for (y, type) in result.types.enumerated() {
            var finalCells: [[Double]] = [], previousCells: [[Double]] = []
            for t in 0..<nT {
                for f in 0..<nF {
                    let cell = CellIndex(task: t, type: y, frequency: f)
                    guard let finalStep = result.finalStep[cell] else { continue }
                    finalCells.append(result.steps.indices.map { c in result.steps[c] == finalStep ? .nan : jFinal[c, t, y, f] })
                    previousCells.append(jPrevious.series(t, y, f))
                }
            }
            guard !finalCells.isEmpty else { continue }
            let o = result.options
            result.phaseShiftEstimates[type] = zip(PhaseShiftEstimator.curves, [finalCells, previousCells]).map { curve, cells in
                PhaseShiftEstimator.estimate(x: x, cells: cells, curve: curve, resamples: o.phaseResamples, minSupport: o.phaseMinSupport,
                                             minImprovement: o.phaseMinImprovement, confidence: o.phaseConfidence,
                                             simulations: o.phaseSimulations)
            }
        }
    }

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
