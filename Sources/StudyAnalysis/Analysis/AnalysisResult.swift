import Foundation

/// The choices `dkc analyze` exposes; every one has a default that reproduces the study's plots.
public struct AnalysisOptions: Equatable, Codable, Sendable {
    /// Circuit size to analyse (a value of circuits.nc's `topn`); nil: the largest evaluated.
    public var topn: Int?
    /// Level an acquisition curve must reach to count as acquired (hits@10 and exact match).
    public var threshold: Double
    /// Attributes of acquisition.nc averaged into the full-model curves; nil: all of them.
    public var attributes: [String]?
    /// Phase shift: smallest relative SSE improvement of two segments over one (see `PhaseShift`).
    public var phaseMinImprovement: Double
    /// Phase shift: the improvement must also beat this quantile of straight-line-plus-noise curves.
    public var phaseConfidence: Double
    /// Phase shift: Monte-Carlo draws for that quantile.
    public var phaseSimulations: Int
    /// Phase-shift estimate (`PhaseShiftEstimator`): bootstrap resamples over cells, and the share
    /// of them that must find a break for it to count as supported.
    public var phaseResamples: Int = 200
    public var phaseMinSupport: Double = 0.8
    /// Task and frequency bucket of the final-circuit heat maps (one per type); nil: the first
    /// task, and "high" if the sweep has it, else the first bucket.
    public var heatmapTask: String?
    public var heatmapFrequency: String?

    public init(topn: Int? = nil, threshold: Double = 0.5, attributes: [String]? = nil,
                phaseMinImprovement: Double = 0.10, phaseConfidence: Double = 0.95, phaseSimulations: Int = 2000,
                heatmapTask: String? = nil, heatmapFrequency: String? = nil) {
        self.topn = topn; self.threshold = threshold; self.attributes = attributes
        self.phaseMinImprovement = phaseMinImprovement; self.phaseConfidence = phaseConfidence
        self.phaseSimulations = phaseSimulations
        self.heatmapTask = heatmapTask; self.heatmapFrequency = heatmapFrequency
    }
}

/// A (task, type, frequency) cell by its indices into `AnalysisResult.tasks/types/frequencies`.
public struct CellIndex: Hashable, Comparable, Sendable {
    public let task: Int, type: Int, frequency: Int
    public init(task: Int, type: Int, frequency: Int) { self.task = task; self.type = type; self.frequency = frequency }
    public static func < (a: CellIndex, b: CellIndex) -> Bool {
        (a.task, a.type, a.frequency) < (b.task, b.type, b.frequency)
    }
}

/// A grid cell an input file should hold and does not (not computed yet, or never).
public struct MissingCell: Equatable, Sendable {
    /// The file's path.
    public let file: String
    /// The checkpoint step.
    public let step: Int64
    /// "city/new/high" (task/type/frequency) or "new/high" for acquisition.nc.
    public let cell: String
}

/// The scores of one final circuit, for the heat map.
public struct FinalCircuitMap: Sendable {
    public let task: String, type: String, frequency: String
    public let step: Int64
    /// (upstream, downstream): the score of every circuit edge, NaN elsewhere.
    public let scores: [Float]
}

/// Everything `dkc analyze` computes; written to analysis.nc, drawn, and summarised in report.md.
///
/// Arrays use NaN for "not available" (a missing cell, or a quantity undefined there). Axes:
/// `steps` (every checkpoint step found in any input, ascending), `tasks`, `types`, `frequencies`
/// (labels of the inputs, circuits.nc first), `layers` (−1 = embed, 0 … L−1).
public struct AnalysisResult: Sendable {
    public var options: AnalysisOptions
    public var inputs: AnalysisInputPaths
    /// The `source` attribute of each input file (path → "dkc x (commit)").
    public var inputSources: [String: String] = [:]
    public var steps: [Int64] = []
    public var tasks: [String] = [], types: [String] = [], frequencies: [String] = []
    /// Attributes averaged into the full-model curves.
    public var attributes: [String] = []
    /// The circuit size analysed (nil when circuits.nc is absent or does not name it).
    public var topn: Int64?
    public var graph: GraphNames?

    // MARK: Performance — (checkpoint, type, frequency), mean over `attributes`
    public var fullExactMatch: LabeledArray?
    public var fullHitsAt10: LabeledArray?
    public var fullHitsAt1: LabeledArray?
    // (checkpoint, task, type, frequency): the circuit tested on its own cell's entities
    public var circuitHitsAt10: LabeledArray?

    // MARK: Topology — (checkpoint, task, type, frequency)
    public var faithfulness: LabeledArray?
    public var edgeEntropy: LabeledArray?
    public var nEdges: LabeledArray?
    /// Jaccard similarity with the cell's final circuit (its last checkpoint present).
    public var jaccardFinal: LabeledArray?
    /// Jaccard similarity with the cell's circuit at the previous checkpoint present.
    public var jaccardPrevious: LabeledArray?
    /// Step of the checkpoint each cell's "final" circuit comes from.
    public var finalStep: [CellIndex: Int64] = [:]
    /// Phase shift of each cell's similarity-to-final curve.
    public var phaseShift: [CellIndex: PhaseShiftFit] = [:]
    /// (checkpoint, type): similarity to final averaged over tasks and buckets, and its phase shift.
    public var jaccardFinalByType: LabeledArray?
    public var phaseShiftByType: [String: PhaseShiftFit] = [:]
    /// dkc's phase-shift estimate per type, one per `PhaseShiftEstimator.curves` entry.
    public var phaseShiftEstimates: [String: [PhaseShiftEstimate]] = [:]

    // MARK: Components
    /// (checkpoint, task, type, frequency, layer): share of circuit edges / of |score| mass by upstream layer.
    public var edgeShare: LabeledArray?
    public var scoreShare: LabeledArray?
    /// (checkpoint, task, type, frequency): |score|-weighted and edge-count mean upstream layer.
    public var meanLayer: LabeledArray?
    public var meanLayerByCount: LabeledArray?
    /// (checkpoint, type, frequency): the same over the circuits of every task.
    public var meanLayerByBucket: LabeledArray?
    /// (checkpoint, layer) and (checkpoint): over every cell of the checkpoint.
    public var edgeShareAll: LabeledArray?
    public var scoreShareAll: LabeledArray?
    public var meanLayerAll: LabeledArray?
    public var meanLayerByCountAll: LabeledArray?
    /// (task, type, frequency, node): share of the cell's checkpoints whose circuit contains the node.
    public var nodePresence: LabeledArray?

    // MARK: Additions of issue 14 (docs/analyze.md)
    /// The `topn` axis of circuits.nc (its values; 1-based positions when it stores none).
    public var topnAxis: [Int64] = []
    /// (checkpoint, task, type, frequency, topn, parent_layer): the study's edge activation ratio,
    /// kept edges whose parent lies in layer ℓ ÷ all graph edges whose parent lies there (`input` in layer 0).
    public var edgeActivationRatio: LabeledArray?
    /// (checkpoint, task, type, frequency, topn, parent_layer): the numerator of that ratio.
    public var edgesInCircuitByParentLayer: LabeledArray?
    /// (parent_layer): the denominator, from the closed forms.
    public var edgesByParentLayer: [Double] = []
    /// (checkpoint, parent_layer): the activation ratio at the chosen top-n, mean over every cell present.
    public var edgeActivationRatioAll: LabeledArray?
    /// (checkpoint, task, type, frequency): Jaccard similarity of node sets (endpoints of kept
    /// edges plus `logits`) with the final circuit's and with the previous checkpoint's.
    public var jaccardNodesFinal: LabeledArray?
    public var jaccardNodesPrevious: LabeledArray?
    /// (checkpoint, task, type, frequency): Jaccard similarity of edge sets and of node sets with the
    /// cell's initial circuit (its first checkpoint present; the forgetting experiment's reference).
    public var jaccardInitial: LabeledArray?
    public var jaccardNodesInitial: LabeledArray?
    /// (checkpoint, task, type, frequency, target_frequency): circuit hits@10 of the source cell's
    /// circuit on the test entities of each target bucket, target type = the source's type.
    public var crossFrequencyHitsAt10: LabeledArray?
    /// (checkpoint, frequency, target_frequency): the same, mean over tasks and types (the study's figure).
    public var crossFrequencyBySource: LabeledArray?
    /// (checkpoint, type, frequency): the study's query accuracy, mean over `attributes`; nil when
    /// acquisition.nc lacks `query_accuracy` (older runs).
    public var fullQueryAccuracy: LabeledArray?
    /// (checkpoint, attribute, type, frequency): query accuracy and exact match per attribute.
    public var queryAccuracyByAttribute: LabeledArray?
    public var exactMatchByAttribute: LabeledArray?
    /// (checkpoint, type, entity_cell): the study's per-entity heat map ("#correct attributes" per
    /// group of 5 results); nil without `query_correct`.
    public var entityHeatmap: LabeledArray?
    /// acquisition.nc's `test_set` attribute ("circuit" or "independent"), when present.
    public var testSet: String?
    /// First-token accuracy per evaluation of each training stage (metrics.jsonl).
    public var firstToken: [FirstTokenLog] = []

    /// Logit lens and head classes from components.nc (docs/analyze.md); nil without it.
    public var components: ComponentTrends?
    /// Transplant curves from circuits.nc's `transplant_*` variables; nil when it has none.
    public var transplant: TransplantTrends?

    /// Extra report sections (markdown lines each, heading included) that other analyses add,
    /// printed after the components section (e.g. logit lens, head classes, transplant).
    public var reportSections: [[String]] = []

    /// Final-circuit heat maps (one per type for the chosen task and bucket).
    public var finalMaps: [FinalCircuitMap] = []
    /// Cells the inputs lack, per file.
    public var missing: [MissingCell] = []
    /// Things the report should say about the inputs (skipped parts, fallbacks).
    public var notes: [String] = []

    public init(options: AnalysisOptions, inputs: AnalysisInputPaths) {
        self.options = options
        self.inputs = inputs
    }

    /// The layer axis: −1 (embed), 0, …, L−1; empty without a graph.
    public var layers: [Int] { graph?.layers ?? [] }

    /// "city/new/high".
    public func label(_ cell: CellIndex) -> String {
        "\(tasks[cell.task])/\(types[cell.type])/\(frequencies[cell.frequency])"
    }

    /// Every (task, type, frequency) cell, in axis order.
    public var cells: [CellIndex] {
        tasks.indices.flatMap { t in types.indices.flatMap { y in frequencies.indices.map { CellIndex(task: t, type: y, frequency: $0) } } }
    }

    /// Per checkpoint, the mean over frequency buckets of a (checkpoint, type, frequency) array.
    public func meanOverBuckets(_ array: LabeledArray, type: Int) -> [Double] {
        steps.indices.map { c in CircuitMetrics.finiteMean(frequencies.indices.map { array[c, type, $0] }) }
    }

    /// Per checkpoint, the mean over tasks of a (checkpoint, task, type, frequency) array.
    public func meanOverTasks(_ array: LabeledArray, type: Int, frequency: Int) -> [Double] {
        steps.indices.map { c in CircuitMetrics.finiteMean(tasks.indices.map { array[c, $0, type, frequency] }) }
    }

    /// First checkpoint step where `series` (over `steps`) reaches the threshold; nil if never.
    public func firstStep(_ series: [Double]) -> Int64? {
        CircuitMetrics.firstReaching(series, threshold: options.threshold).map { steps[$0] }
    }

    /// Heads sorted by how often they are in the circuits: mean presence over cells with data,
    /// highest first (ties in node order). Each entry: (node name, mean presence, cells with presence 1).
    public func headsByPresence() -> [(name: String, presence: Double, alwaysIn: Int, cells: Int)] {
        guard let presence = nodePresence, let graph else { return [] }
        var rows: [(name: String, presence: Double, alwaysIn: Int, cells: Int)] = []
        for n in graph.upstream.indices where graph.isHead(n) {
            var values: [Double] = []
            for cell in cells {
                let v = presence[cell.task, cell.type, cell.frequency, n]
                if !v.isNaN { values.append(v) }
            }
            guard !values.isEmpty else { continue }
            rows.append((graph.upstream[n], values.reduce(0, +) / Double(values.count),
                         values.filter { $0 >= 1 }.count, values.count))
        }
        return rows.enumerated().sorted { a, b in
            a.element.presence != b.element.presence ? a.element.presence > b.element.presence : a.offset < b.offset
        }.map(\.element)
    }
}
