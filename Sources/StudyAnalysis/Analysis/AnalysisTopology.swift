import Foundation

/// The circuit-side part of `dkc analyze` (docs/analyze.md, topology and components): every circuit of
/// circuits.nc read once, its statistics gathered per checkpoint, then per cell (similarity with the
/// final, initial and previous circuit, node presence, phase shift), then over cells.
extension Analysis {
    /// `scoreCellsRead` collects "step/task/type/frequency" of the score cells read (found or not).
    static func topology(_ source: CircuitsSource, scores: ScoresSource?, into result: inout AnalysisResult,
                         scoreCellsRead: inout Set<String>) throws {
        guard let graph = result.graph else { return }
        let map = try heatmapCell(source, result)
        var arrays = TopologyArrays(result, graph: graph, topnCount: source.topnCount)
        for (t, task) in source.tasks.enumerated() {
            for (y, type) in source.types.enumerated() {
                for (f, frequency) in source.frequencies.enumerated() {
                    let cell = CellIndex(task: result.tasks.firstIndex(of: task)!, type: result.types.firstIndex(of: type)!,
                                         frequency: result.frequencies.firstIndex(of: frequency)!)
                    var circuitsByStep: [(c: Int, edges: CircuitEdges)] = []
                    for (c, step) in result.steps.enumerated() {
                        guard let fc = source.checkpoints.index[step],
                              let mask = try source.inCircuit(checkpoint: fc, task: t, type: y, frequency: f) else {
                            result.missing.append(MissingCell(file: source.file.path, step: step, cell: "\(task)/\(type)/\(frequency)"))
                            continue
                        }
                        let matrix = try scores?.scores(step: step, task: task, type: type, frequency: frequency)
                        if scores != nil && matrix == nil { arrays.scoresMissing += 1 }
                        if matrix != nil { scoreCellsRead.insert("\(step)/\(task)/\(type)/\(frequency)") }
                        let edges = CircuitEdges(mask: mask, scores: matrix)
                        circuitsByStep.append((c, edges))
                        try arrays.addCircuit(edges, mask: mask, source: source, at: (fc, t, y, f), c: c, cell: cell, result: result)
                    }
                    guard let final = circuitsByStep.last else { continue }
                    result.finalStep[cell] = result.steps[final.c]
                    arrays.addCellSeries(circuitsByStep, cell: cell)
                    result.phaseShift[cell] = PhaseShift.fit(
                        x: circuitsByStep.map { Double(result.steps[$0.c]) }, y: circuitsByStep.map { arrays.jFinal[$0.c, cell.task, cell.type, cell.frequency] },
                        minImprovement: result.options.phaseMinImprovement, confidence: result.options.phaseConfidence,
                        simulations: result.options.phaseSimulations)
                    if task == map.task, frequency == map.frequency, let scores,
                       let matrix = try scores.scores(step: result.steps[final.c], task: task, type: type, frequency: frequency) {
                        var masked = [Float](repeating: .nan, count: matrix.count)
                        for e in final.edges.edges { masked[Int(e)] = matrix[Int(e)] }
                        result.finalMaps.append(FinalCircuitMap(task: task, type: type, frequency: frequency,
                                                                step: result.steps[final.c], scores: masked))
                    }
                }
            }
        }
        if arrays.scoresMissing > 0 {
            result.notes.append("\(arrays.scoresMissing) circuit(s) have no scores in scores.nc: their |score| shares and weighted mean layer are NaN.")
        }
        if scores == nil {
            result.notes.append("scores.nc not given: |score| shares, the weighted mean layer and the heat maps are skipped.")
        }
        if source.hitsAt10 == nil { result.notes.append("circuits.nc has no hits_at_10 (with target_type, target_frequency): circuit hits@10 is skipped.") }
        arrays.store(into: &result, source: source, withScores: scores != nil)
        phaseShiftByType(into: &result, jFinal: arrays.jFinal)
        phaseShiftEstimates(into: &result, jFinal: arrays.jFinal, jPrevious: arrays.jPrevious)
    }

    /// The task and bucket of the final-circuit heat maps: the options', else the first task and
    /// "high" (or the first bucket); an option naming a label circuits.nc lacks is an error.
    static func heatmapCell(_ source: CircuitsSource, _ result: AnalysisResult) throws -> (task: String?, frequency: String?) {
        if let t = result.options.heatmapTask, !source.tasks.contains(t) {
            throw AnalysisError.option(name: "--heatmap-task \(t)", problem: "circuits.nc has tasks \(source.tasks.joined(separator: ", "))")
        }
        if let f = result.options.heatmapFrequency, !source.frequencies.contains(f) {
            throw AnalysisError.option(name: "--heatmap-frequency \(f)",
                                       problem: "circuits.nc has buckets \(source.frequencies.joined(separator: ", "))")
        }
        return (result.options.heatmapTask ?? source.tasks.first,
                result.options.heatmapFrequency ?? (source.frequencies.contains("high") ? "high" : source.frequencies.first))
    }

    /// The phase shift of each type's similarity to the final circuit, mean over tasks and buckets.
    static func phaseShiftByType(into result: inout AnalysisResult, jFinal: LabeledArray) {
        let nC = result.steps.count, nT = result.tasks.count, nY = result.types.count, nF = result.frequencies.count
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
    }

    /// dkc's estimate: similarity to final without the reference point, and to the previous checkpoint.
    static func phaseShiftEstimates(into result: inout AnalysisResult, jFinal: LabeledArray, jPrevious: LabeledArray) {
        let x = result.steps.map(Double.init)
        for (y, type) in result.types.enumerated() {
            var finalCells: [[Double]] = [], previousCells: [[Double]] = []
            for t in result.tasks.indices {
                for f in result.frequencies.indices {
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
}

/// The per-circuit and per-cell series of the topology, on the result's axes (checkpoint, task,
/// type, frequency), filled circuit by circuit and then stored into the result with the means over cells.
struct TopologyArrays {
    let graph: GraphNames
    let nC: Int, nT: Int, nY: Int, nF: Int
    /// Layers with embed (L+1), upstream nodes, top-n sizes of circuits.nc, parent layers (L).
    let nL: Int, nN: Int, nK: Int, nP: Int
    var faithfulness, entropy, nEdges, hits: LabeledArray
    var jFinal, jPrevious, jInitial: LabeledArray
    var nodesFinal, nodesPrevious, nodesInitial: LabeledArray
    var meanLayer, meanLayerByCount: LabeledArray
    /// (checkpoint, task, type, frequency, layer).
    var edgeShare, scoreShare: LabeledArray
    /// (task, type, frequency, node).
    var presence: LabeledArray
    /// (checkpoint, task, type, frequency, topn, parent_layer).
    var ratio, kept: LabeledArray
    /// (checkpoint, task, type, frequency, target_frequency).
    var cross: LabeledArray
    /// Layer profiles summed per (checkpoint, type, frequency) and per checkpoint.
    var byBucket: [LayerProfile]
    var byCheckpoint: [LayerProfile]
    var scoresMissing = 0

    init(_ result: AnalysisResult, graph: GraphNames, topnCount: Int) {
        self.graph = graph
        nC = result.steps.count; nT = result.tasks.count; nY = result.types.count; nF = result.frequencies.count
        nL = graph.nLayers + 1; nN = graph.upstream.count; nK = topnCount; nP = graph.nLayers
        let dims = ["checkpoint", "task", "type", "frequency"], shape = [nC, nT, nY, nF]
        let cell = LabeledArray(dimensions: dims, shape: shape)
        faithfulness = cell; entropy = cell; nEdges = cell; hits = cell
        jFinal = cell; jPrevious = cell; jInitial = cell
        nodesFinal = cell; nodesPrevious = cell; nodesInitial = cell
        meanLayer = cell; meanLayerByCount = cell
        edgeShare = LabeledArray(dimensions: dims + ["layer"], shape: shape + [nL])
        scoreShare = edgeShare
        presence = LabeledArray(dimensions: ["task", "type", "frequency", "node"], shape: [nT, nY, nF, nN])
        ratio = LabeledArray(dimensions: dims + ["topn", "parent_layer"], shape: shape + [nK, nP])
        kept = ratio
        cross = LabeledArray(dimensions: dims + ["target_frequency"], shape: shape + [nF])
        byBucket = [LayerProfile](repeating: .zero(layers: graph.nLayers, withScores: false), count: nC * nY * nF)
        byCheckpoint = [LayerProfile](repeating: .zero(layers: graph.nLayers, withScores: false), count: nC)
    }

    /// One circuit: circuits.nc's numbers at `at` = (file checkpoint, task, type, frequency), its edge
    /// activation ratio at every top-n, and its layer profile, at result checkpoint `c` of `cell`.
    mutating func addCircuit(_ edges: CircuitEdges, mask: [Int8], source: CircuitsSource, at: (Int, Int, Int, Int), c: Int,
                             cell: CellIndex, result: AnalysisResult) throws {
        let (fc, t, y, f) = at
        let (rt, ry, rf) = (cell.task, cell.type, cell.frequency)
        let type = source.types[y], frequency = source.frequencies[f]
        faithfulness[c, rt, ry, rf] = source.faithfulness?[fc, t, y, f] ?? .nan
        let stored = source.edgeEntropy?[fc, t, y, f] ?? .nan
        entropy[c, rt, ry, rf] = stored.isNaN ? edges.scores.map(CircuitMetrics.entropy) ?? .nan : stored
        let count = source.nEdges?[fc, t, y, f] ?? .nan
        nEdges[c, rt, ry, rf] = count.isNaN ? Double(edges.edges.count) : count
        if let h = source.hitsAt10, let ty = source.targetTypes?.firstIndex(of: type) {
            if let tf = source.targetFrequencies?.firstIndex(of: frequency) { hits[c, rt, ry, rf] = h[fc, t, y, f, ty, tf] }
            for (tf, target) in (source.targetFrequencies ?? []).enumerated() {
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

    /// One cell's circuits over its checkpoints (ascending): Jaccard of edge and node sets with the
    /// final, initial and previous circuit, and how often each node is present.
    mutating func addCellSeries(_ circuitsByStep: [(c: Int, edges: CircuitEdges)], cell: CellIndex) {
        guard let initial = circuitsByStep.first, let final = circuitsByStep.last else { return }
        let (rt, ry, rf) = (cell.task, cell.type, cell.frequency)
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
    }

    /// Every series into `result`, with the means over cells (activation ratio at the analysed top-n,
    /// cross-frequency by source bucket, mean layers and shares per bucket and per checkpoint).
    func store(into result: inout AnalysisResult, source: CircuitsSource, withScores: Bool) {
        result.topnAxis = source.topnValues ?? (1...max(nK, 1)).prefix(nK).map(Int64.init)
        result.edgeActivationRatio = ratio
        result.edgesInCircuitByParentLayer = kept
        result.edgesByParentLayer = graph.edgesByParentLayer
        var ratioAll = LabeledArray(dimensions: ["checkpoint", "parent_layer"], shape: [nC, nP])
        for c in 0..<nC { for l in 0..<nP {
            ratioAll[c, l] = CircuitMetrics.finiteMean((0..<nT).flatMap { t in (0..<nY).flatMap { y in (0..<nF).map { ratio[c, t, y, $0, source.topnIndex, l] } } })
        } }
        result.edgeActivationRatioAll = ratioAll
        result.jaccardNodesFinal = nodesFinal
        result.jaccardNodesPrevious = nodesPrevious
        result.jaccardInitial = jInitial
        result.jaccardNodesInitial = nodesInitial
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
        result.scoreShare = withScores ? scoreShare : nil
        result.meanLayer = withScores ? meanLayer : nil
        result.meanLayerByCount = meanLayerByCount
        result.nodePresence = presence

        var bucketMean = LabeledArray(dimensions: ["checkpoint", "type", "frequency"], shape: [nC, nY, nF])
        for c in 0..<nC { for y in 0..<nY { for f in 0..<nF {
            let p = byBucket[(c * nY + y) * nF + f]
            bucketMean[c, y, f] = withScores ? p.meanLayer : p.meanLayerByCount
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
        result.scoreShareAll = withScores ? sAll : nil
        result.meanLayerAll = withScores ? mAll : nil
        result.meanLayerByCountAll = mcAll
    }
}
