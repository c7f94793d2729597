import Foundation
import Results

/// components.nc as `dkc analyze` reads it (docs/analyze.md, Finding 3): per-cell logit-lens
/// means and the circuit's heads per class and layer, by dimension name.
struct ComponentsSource {
    let file: AnalysisInputFile
    let checkpoints: AnalysisCheckpointAxis
    let tasks: [String], types: [String], frequencies: [String]
    /// Lens points ("0_pre" … "final_post"), head classes, layers 0 … L−1, circuit sizes.
    let lens: [String], classes: [String], layers: [Int64], topn: [Int64]
    /// (checkpoint, task, type, frequency, lens)
    let rankPlus1: LabeledArray, probability: LabeledArray
    /// (checkpoint, task, type, frequency, topn, class, layer) and (checkpoint, task, type, frequency, topn); NaN where not computed.
    let circuitHeads: LabeledArray, circuitNodes: LabeledArray

    init(path: String) throws {
        file = try AnalysisInputFile(path: path)
        checkpoints = try AnalysisCheckpointAxis(file)
        tasks = try file.labels(ResultName.task); types = try file.labels(ResultName.entityType); frequencies = try file.labels(ResultName.frequency)
        lens = try file.labels(ResultName.lens); classes = try file.labels(ResultName.headClassAxis)
        layers = try file.integers(ResultName.layer); topn = try file.integers(ResultName.topn)
        guard lens.count == layers.count + 1 else {
            throw AnalysisError.layout(file: path, object: "dimension 'lens'",
                                       problem: "has \(lens.count) points for \(layers.count) layers; expected layers + 1 (give the components.nc of dkc sweep)")
        }
        let g = [ResultName.checkpoint, ResultName.task, ResultName.entityType, ResultName.frequency]
        rankPlus1 = try file.array(ResultName.logitLensRankPlus1Mean, order: g + [ResultName.lens])
        probability = try file.array(ResultName.logitLensProbMean, order: g + [ResultName.lens])
        circuitHeads = try file.array(ResultName.circuitHeads, order: g + [ResultName.topn, ResultName.headClassAxis, ResultName.layer])
        circuitNodes = try file.array(ResultName.circuitNodes, order: g + [ResultName.topn])
    }
}

/// What `dkc analyze` derives from components.nc (docs/analyze.md). Axes: the analysis's
/// checkpoint, task, type, frequency; `lens`, `classes`, `headLayers` (0 … L−1) and
/// `componentTopn` from components.nc.
public struct ComponentTrends: Sendable {
    public var lens: [String] = []
    public var classes: [String] = []
    public var headLayers: [Int64] = []
    public var componentTopn: [Int64] = []
    /// Index into `componentTopn` of the size the summaries use (circuits.nc's analysed top-n if
    /// components.nc has it, else the largest).
    public var topnIndex = 0
    /// (checkpoint, task, type, frequency, lens): mean answer rank + 1 and mean probability.
    public var lensRankPlus1: LabeledArray
    public var lensProbability: LabeledArray
    /// (checkpoint, task, type, frequency): index into `lens` of the first point whose mean rank + 1
    /// is ≤ 10 (NaN: never, or no data). Computed from the cell's mean rank: per-entity ranks are
    /// not in the sweep file.
    public var lensFirstRank10: LabeledArray
    /// (checkpoint, task, type, frequency, component_topn, class): class count ÷ circuit node-set size.
    public var headClassShare: LabeledArray
    /// (checkpoint, task, type, frequency, component_topn, class, head_layer): circuit heads per class and layer.
    public var circuitHeadsByLayer: LabeledArray
    /// (checkpoint, class): `headClassShare` at `topnIndex`, mean over every cell present.
    public var headClassShareAll: LabeledArray

    /// The (task, type, frequency) the lens heat map and sentence use: city/new/high when present.
    public var mapTask: Int?, mapType: Int?, mapFrequency: Int?

    /// First index where `values` ≤ 10 (NaN-free values only); nil if none.
    public static func firstRank10(_ values: [Double]) -> Int? { values.firstIndex { !$0.isNaN && $0 <= 10 } }

    static func compute(_ s: ComponentsSource, _ r: AnalysisResult) -> ComponentTrends {
        let nC = r.steps.count, nT = r.tasks.count, nY = r.types.count, nF = r.frequencies.count
        let K = s.lens.count, NC = s.classes.count, L = s.layers.count, N = s.topn.count
        let g = [ResultName.checkpoint, ResultName.task, ResultName.entityType, ResultName.frequency], shape = [nC, nT, nY, nF]
        var t = ComponentTrends(lensRankPlus1: LabeledArray(dimensions: g + [ResultName.lens], shape: shape + [K]),
                                lensProbability: LabeledArray(dimensions: g + [ResultName.lens], shape: shape + [K]),
                                lensFirstRank10: LabeledArray(dimensions: g, shape: shape),
                                headClassShare: LabeledArray(dimensions: g + ["component_topn", ResultName.headClassAxis], shape: shape + [N, NC]),
                                circuitHeadsByLayer: LabeledArray(dimensions: g + ["component_topn", ResultName.headClassAxis, "head_layer"], shape: shape + [N, NC, L]),
                                headClassShareAll: LabeledArray(dimensions: [ResultName.checkpoint, ResultName.headClassAxis], shape: [nC, NC]))
        t.lens = s.lens; t.classes = s.classes; t.headLayers = s.layers; t.componentTopn = s.topn
        t.topnIndex = r.topn.flatMap { s.topn.firstIndex(of: $0) } ?? (s.topn.indices.max { s.topn[$0] < s.topn[$1] } ?? 0)
        var present: [[Int]] = Array(repeating: [], count: nC)   // flat cell offsets present per checkpoint
        for (fc, step) in s.checkpoints.steps.enumerated() {
            guard let c = r.steps.firstIndex(of: step) else { continue }
            for (ft, task) in s.tasks.enumerated() {
                for (fy, type) in s.types.enumerated() {
                    for (ff, frequency) in s.frequencies.enumerated() {
                        guard let rt = r.tasks.firstIndex(of: task), let ry = r.types.firstIndex(of: type),
                              let rf = r.frequencies.firstIndex(of: frequency) else { continue }
                        let ranks = (0..<K).map { s.rankPlus1[fc, ft, fy, ff, $0] }
                        for k in 0..<K {
                            t.lensRankPlus1[c, rt, ry, rf, k] = ranks[k]
                            t.lensProbability[c, rt, ry, rf, k] = s.probability[fc, ft, fy, ff, k]
                        }
                        if ranks.contains(where: { !$0.isNaN }) {
                            t.lensFirstRank10[c, rt, ry, rf] = firstRank10(ranks).map(Double.init) ?? .nan
                        }
                        var any = false
                        for n in 0..<N {
                            let nodes = s.circuitNodes[fc, ft, fy, ff, n]
                            for cl in 0..<NC {
                                var total = 0.0
                                for l in 0..<L {
                                    let v = s.circuitHeads[fc, ft, fy, ff, n, cl, l]
                                    t.circuitHeadsByLayer[c, rt, ry, rf, n, cl, l] = v
                                    total += v
                                }
                                t.headClassShare[c, rt, ry, rf, n, cl] = nodes.isNaN || nodes <= 0 ? .nan : total / nodes
                            }
                            if n == t.topnIndex && !nodes.isNaN && nodes > 0 { any = true }
                        }
                        if any { present[c].append(t.headClassShare.offset([c, rt, ry, rf, t.topnIndex, 0])) }
                    }
                }
            }
        }
        for c in 0..<nC {
            for cl in 0..<NC { t.headClassShareAll[c, cl] = CircuitMetrics.finiteMean(present[c].map { t.headClassShare.values[$0 + cl] }) }
        }
        t.mapTask = r.tasks.firstIndex(of: "city") ?? (r.tasks.isEmpty ? nil : 0)
        t.mapType = r.types.firstIndex(of: "new") ?? (r.types.isEmpty ? nil : 0)
        t.mapFrequency = r.frequencies.firstIndex(of: "high") ?? (r.frequencies.isEmpty ? nil : 0)
        return t
    }
}

/// The transplant curves of circuits.nc (docs/components.md): each source checkpoint's circuit
/// evaluated on every checkpoint's model, at the analysed top-n.
public struct TransplantTrends: Sendable {
    public var sources: [Int64] = []
    /// (source_checkpoint, checkpoint, task, type, frequency)
    public var faithfulness: LabeledArray
    public var hitsAt10: LabeledArray
    /// The bucket of the curves ("high" when present) and its index.
    public var frequency: Int
    /// (source_checkpoint, checkpoint): at `frequency`, mean over tasks and types (the study's figure).
    public var faithfulnessCurve: LabeledArray
    public var hitsAt10Curve: LabeledArray
    /// (checkpoint): each checkpoint's own circuit, same bucket and means; from the topology part.
    public var ownFaithfulness: [Double] = []
    public var ownHitsAt10: [Double] = []

    static func read(_ source: CircuitsSource, _ r: AnalysisResult) throws -> TransplantTrends? {
        let f = source.file
        guard f.has(ResultName.sourceCheckpoint), !r.frequencies.isEmpty else { return nil }
        let sources = try f.integers(ResultName.sourceCheckpoint)
        let order = [ResultName.sourceCheckpoint, ResultName.checkpoint, ResultName.task, ResultName.entityType, ResultName.frequency]
        let fixed = f.dimensionLength(ResultName.topn) == nil ? [:] : [ResultName.topn: source.topnIndex]
        let shape = [sources.count, source.checkpoints.steps.count, source.tasks.count, source.types.count, source.frequencies.count]
        let faith = LabeledArray(dimensions: order, shape: shape, values: try f.slice(ResultName.transplantFaithfulness, fixed: fixed, trailing: order))
        let hits = LabeledArray(dimensions: order, shape: shape, values: try f.slice(ResultName.transplantHitsAt10, fixed: fixed, trailing: order))
        let nS = sources.count, nC = r.steps.count, nT = r.tasks.count, nY = r.types.count, nF = r.frequencies.count
        let bucket = r.frequencies.firstIndex(of: "high") ?? 0
        var t = TransplantTrends(sources: sources,
                                 faithfulness: LabeledArray(dimensions: order, shape: [nS, nC, nT, nY, nF]),
                                 hitsAt10: LabeledArray(dimensions: order, shape: [nS, nC, nT, nY, nF]), frequency: bucket,
                                 faithfulnessCurve: LabeledArray(dimensions: [ResultName.sourceCheckpoint, ResultName.checkpoint], shape: [nS, nC]),
                                 hitsAt10Curve: LabeledArray(dimensions: [ResultName.sourceCheckpoint, ResultName.checkpoint], shape: [nS, nC]))
        for s in 0..<nS {
            for (fc, step) in source.checkpoints.steps.enumerated() {
                guard let c = r.steps.firstIndex(of: step) else { continue }
                for (ft, task) in source.tasks.enumerated() {
                    for (fy, type) in source.types.enumerated() {
                        for (ff, frequency) in source.frequencies.enumerated() {
                            let rt = r.tasks.firstIndex(of: task)!, ry = r.types.firstIndex(of: type)!, rf = r.frequencies.firstIndex(of: frequency)!
                            t.faithfulness[s, c, rt, ry, rf] = faith[s, fc, ft, fy, ff]
                            t.hitsAt10[s, c, rt, ry, rf] = hits[s, fc, ft, fy, ff]
                        }
                    }
                }
            }
        }
        func cellMean(_ value: (Int, Int) -> Double) -> Double {
            CircuitMetrics.finiteMean((0..<nT).flatMap { task in (0..<nY).map { value(task, $0) } })
        }
        for s in 0..<nS {
            for c in 0..<nC {
                t.faithfulnessCurve[s, c] = cellMean { t.faithfulness[s, c, $0, $1, bucket] }
                t.hitsAt10Curve[s, c] = cellMean { t.hitsAt10[s, c, $0, $1, bucket] }
            }
        }
        t.ownFaithfulness = (0..<nC).map { c in r.faithfulness.map { a in cellMean { a[c, $0, $1, bucket] } } ?? .nan }
        t.ownHitsAt10 = (0..<nC).map { c in r.circuitHitsAt10.map { a in cellMean { a[c, $0, $1, bucket] } } ?? .nan }
        return t
    }
}
