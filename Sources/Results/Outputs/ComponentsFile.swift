import Foundation
import Models
import StudyData
import Circuits

/// The component analysis of one cell (`dkc components`): per entity the logit lens and the DLA source
/// ratios, per head their means and class, and optionally the heads of the cell's circuits (docs/components.md).
///
/// File layout (components.nc of one cell):
///
///     entity(entity) string (clean subject), lens(lens) string ("0_pre" … "final_post"),
///     layer(layer), head(head) int64, class(class) string (mover, relation, mixture), topn(topn) int64
///     logit_lens_rank, min_rank_at_subject (entity, lens) int64; logit_lens_prob, subject_token_prob (entity, lens) double
///     dla_subject_ratio, dla_relation_ratio (entity, layer, head) double
///     head_subject_ratio, head_relation_ratio (layer, head) double; head_class (layer, head) string
///     circuit_heads (topn, class, layer) int64; circuit_nodes (topn) int64     [with circuits only]
public struct CellComponents: Sendable, Equatable {
    public var nLayers: Int
    public var nHeads: Int
    /// One name per entity (its clean subject), in data order.
    public var entities: [String]
    public var perEntity: [EntityComponents]
    /// Circuits analysed: top-n and their heads.
    public var circuits: [(topn: Int, heads: CircuitHeads)]

    public init(nLayers: Int, nHeads: Int, entities: [String], perEntity: [EntityComponents], circuits: [(topn: Int, heads: CircuitHeads)] = []) {
        precondition(entities.count == perEntity.count, "one result per entity")
        self.nLayers = nLayers; self.nHeads = nHeads; self.entities = entities; self.perEntity = perEntity; self.circuits = circuits
    }

    public var lensLabels: [String] { ComponentAnalyzer.lensLabels(nLayers: nLayers) }
    public var headRatios: HeadRatios { HeadRatios(perEntity, nLayers: nLayers, nHeads: nHeads) }
    public var lensMeans: LogitLensMeans { LogitLensMeans(perEntity, lensCount: nLayers + 1) }

    public static func == (a: CellComponents, b: CellComponents) -> Bool {
        a.nLayers == b.nLayers && a.nHeads == b.nHeads && a.entities == b.entities && a.perEntity == b.perEntity
            && a.circuits.map(\.topn) == b.circuits.map(\.topn) && a.circuits.map(\.heads) == b.circuits.map(\.heads)
    }

    /// Analyses `samples` (one cell's circuit samples) on `analyzer`'s model; with `scores`, also the heads of
    /// the top-n circuits for every n in `topn` (top-n by |score|, pruned once, as the evaluation makes them),
    /// classified by this cell's own head means.
    public static func analyze(_ samples: [CircuitSample], task: CircuitTask, analyzer: ComponentAnalyzer, tokenizer: any Tokenizer,
                               batchSize: Int, scores: ScoreMatrix? = nil, topn: [Int] = []) throws -> CellComponents {
        guard !samples.isEmpty else {
            throw AttributionError(item: "component data", problem: "has no samples", fix: "check the task, type and frequency filters")
        }
        let prompts = try samples.enumerated().map {
            try ComponentPrompt(sample: $1, task: task, tokenizer: tokenizer, family: analyzer.family, bos: analyzer.bos, index: $0)
        }
        let results = try analyzer.analyze(prompts, batchSize: batchSize)
        var cell = CellComponents(nLayers: analyzer.L, nHeads: analyzer.H, entities: samples.map(\.cleanSubject), perEntity: results)
        if let scores {
            let classes = cell.headRatios.classes
            cell.circuits = topn.map { n in
                var circuit = Circuit(graph: analyzer.graph, scores: scores)
                circuit.applyTopN(n)
                circuit.pruneDeadNodes()
                return (n, CircuitHeads(circuit: circuit, classes: classes))
            }
        }
        return cell
    }

    /// Writes the cell to `url` atomically.
    public func write(to url: URL, provenance: Provenance, options: OutputWriteOptions = OutputWriteOptions()) throws {
        let L = nLayers, H = nHeads, K = L + 1, E = entities.count
        let ratios = headRatios
        try OutputFileWriter.write(.components, to: url, provenance: provenance, options: options) { w, file in
            try w.stringCoordinate(ResultName.entity, entities, describe("entity (clean subject of the circuit sample), data order"))
            try w.stringCoordinate(ResultName.lens, lensLabels, describe("logit-lens point: residual entering block k ('k_pre'), then the last block's output ('final_post')"))
            try w.numericCoordinate(ResultName.layer, (0..<L).map { Int64($0) }, describe("layer", units: "1"))
            try w.numericCoordinate(ResultName.head, (0..<H).map { Int64($0) }, describe("attention head", units: "1"))
            let lens: [(String, String, [Double]?, [Int]?)] = [
                (ResultName.logitLensRank, "0-based rank of the label's first token at the last position (tokens with a larger lens logit)",
                 nil, perEntity.flatMap(\.rankLast)),
                (ResultName.logitLensProb, "probability of the label's first token at the last position", perEntity.flatMap(\.probLast), nil),
                (ResultName.subjectTokenProb, "probability of the subject's last token at the last position", perEntity.flatMap(\.subjectTokenProb), nil),
                (ResultName.minRankAtSubject, "minimum over the subject's positions of the label's 0-based rank there",
                 nil, perEntity.flatMap(\.minRankAtSubject)),
            ]
            for (name, longName, doubles, ints) in lens {
                if let doubles {
                    try w.variable(name, type: .double, dimensions: [ResultName.entity, ResultName.lens], gridRank: 0, fill: .nan, describe(longName, units: "1"))
                    if E > 0 { w.later { try file.write(doubles, to: name) } }
                } else if let ints {
                    try w.variable(name, type: .int64, dimensions: [ResultName.entity, ResultName.lens], gridRank: 0, fill: .value(Double(OutputFill.count)),
                                   describe(longName, units: "1"))
                    if E > 0 { w.later { try file.write(ints, to: name) } }
                }
            }
            precondition(K == lensLabels.count)
            for (name, longName, values) in [
                (ResultName.dlaSubjectRatio, "share of the head's direct logit attribution from the subject's positions", perEntity.flatMap(\.subjectRatio)),
                (ResultName.dlaRelationRatio, "share of the head's direct logit attribution from the other positions (BOS excluded)", perEntity.flatMap(\.relationRatio)),
            ] {
                try w.variable(name, type: .double, dimensions: [ResultName.entity, ResultName.layer, ResultName.head], gridRank: 0, fill: .nan, describe(longName, units: "1"))
                if E > 0 { w.later { try file.write(values, to: name) } }
            }
            for (name, longName, values) in [(ResultName.headSubjectRatio, "mean over the entities of dla_subject_ratio", ratios.meanSubject),
                                             (ResultName.headRelationRatio, "mean over the entities of dla_relation_ratio", ratios.meanRelation)] {
                try w.variable(name, type: .double, dimensions: [ResultName.layer, ResultName.head], gridRank: 0, fill: .nan, describe(longName, units: "1"))
                w.later { try file.write(values, to: name) }
            }
            try w.stringVariable(ResultName.headClass, dimensions: [ResultName.layer, ResultName.head], ratios.classes.map(\.rawValue),
                                 describe("mover if |head_subject_ratio / head_relation_ratio| > 10, relation if < 0.1, else mixture"))
            if !circuits.isEmpty {
                try w.stringCoordinate(ResultName.headClassAxis, HeadClass.allCases.map(\.rawValue), describe("head class"))
                try w.numericCoordinate(ResultName.topn, circuits.map { Int64($0.topn) }, describe(AxisNames.topn, units: "1"))
                try w.variable(ResultName.circuitHeads, type: .int64, dimensions: [ResultName.topn, ResultName.headClassAxis, ResultName.layer], gridRank: 1, fill: .value(Double(OutputFill.count)),
                               describe("heads of the circuit per class and layer", units: "1"))
                w.later { try file.write(self.circuits.flatMap { $0.heads.layerCounts.flatMap { $0 } }, to: ResultName.circuitHeads) }
                try w.variable(ResultName.circuitNodes, type: .int64, dimensions: [ResultName.topn], gridRank: 1, fill: .value(Double(OutputFill.count)),
                               describe("nodes of the circuit (input, heads, MLPs and logits): the denominator of the class proportions", units: "1"))
                w.later { try file.write(self.circuits.map(\.heads.nodeCount), to: ResultName.circuitNodes) }
            }
        }
    }
}
