import Foundation

/// One SVG figure of the analysis: file name (no folder), what it shows, and the document.
public struct AnalysisFigure {
    public let file: String
    public let caption: String
    public let svg: String
}

/// Draws the analysis as SVG figures. A figure whose data is absent is not drawn.
///
/// Conventions: one line per type × bucket, the bucket's colour and the type's dash pattern
/// (first type solid, second dashed); circuit quantities are averaged over tasks first; the
/// x axis is the checkpoint's training step.
public enum AnalysisFigures {
    public static func make(_ r: AnalysisResult) -> [AnalysisFigure] {
        var figures = performanceFigures(r)
        figures += entityHeatmaps(r)
        figures += crossFrequencyFigures(r)
        figures += firstTokenFigures(r)
        figures += ComponentTrendsReport.figures(r)
        figures += faithfulnessFigures(r)
        figures += topologyFigures(r)
        figures += componentFigures(r)
        figures += activationFigures(r)
        if let graph = r.graph {
            for map in r.finalMaps { figures.append(finalMap(map, graph: graph)) }
        }
        return figures
    }

    /// Acquisition: the full model's hits@10, exact match and query accuracy, the circuit's hits@10.
    static func performanceFigures(_ r: AnalysisResult) -> [AnalysisFigure] {
        var figures: [AnalysisFigure] = []
        let threshold = ChartMarker(value: r.options.threshold, label: percent(r.options.threshold), color: "#777777")
        if let a = r.fullHitsAt10, a.hasValues {
            figures.append(chart(r, "acquisition_full_hits_at_10.svg", "Full model: hits@10 on test entities",
                                 "hits@10 (mean over \(r.attributes.count) attributes)", bucketSeries(r) { y, f in r.steps.indices.map { a[$0, y, f] } },
                                 domain: 0...1, percent: true, horizontal: [threshold],
                                 caption: "Full-model hits@10 per checkpoint, by type × frequency bucket (acquisition.nc)."))
        }
        if let a = r.fullExactMatch, a.hasValues {
            figures.append(chart(r, "acquisition_full_exact_match.svg", "Full model: exact match of greedy decoding",
                                 "exact match (mean over \(r.attributes.count) attributes)", bucketSeries(r) { y, f in r.steps.indices.map { a[$0, y, f] } },
                                 domain: 0...1, percent: true, horizontal: [threshold],
                                 caption: "Full-model exact match per checkpoint, by type × frequency bucket (acquisition.nc)."))
        }
        if let a = r.circuitHitsAt10, a.hasValues {
            figures.append(chart(r, "acquisition_circuit_hits_at_10.svg", "Circuit: hits@10 on its own cell's test entities",
                                 "hits@10 (mean over tasks)", bucketSeries(r) { r.meanOverTasks(a, type: $0, frequency: $1) },
                                 domain: 0...1, percent: true, horizontal: [threshold],
                                 caption: "Hits@10 of the circuit (top-\(r.topn.map(String.init) ?? "?"), zero-ablated) per checkpoint (circuits.nc)."))
        }
        if let a = r.fullQueryAccuracy, a.hasValues {
            figures.append(chart(r, "acquisition_query_accuracy.svg", "Full model: query accuracy on test entities",
                                 "query accuracy (mean over \(r.attributes.count) attributes)", bucketSeries(r) { y, f in r.steps.indices.map { a[$0, y, f] } },
                                 domain: 0...1, percent: true, horizontal: [threshold],
                                 caption: "The study's query accuracy (greedy answer equals the label or is a substring of it) per checkpoint, " +
                                    "by type × frequency bucket (acquisition.nc)."))
        }
        return figures
    }

    /// Circuit faithfulness per checkpoint.
    static func faithfulnessFigures(_ r: AnalysisResult) -> [AnalysisFigure] {
        var figures: [AnalysisFigure] = []
        if let a = r.faithfulness, a.hasValues {
            figures.append(chart(r, "faithfulness.svg", "Circuit faithfulness", "faithfulness (mean over tasks)",
                                 bucketSeries(r) { r.meanOverTasks(a, type: $0, frequency: $1) },
                                 horizontal: [ChartMarker(value: 1, label: "whole model", color: "#777777")],
                                 caption: "Faithfulness (circuit − corrupted) / (clean − corrupted) per checkpoint (circuits.nc)."))
        }

        return figures
    }

    /// Topology: Jaccard similarities of edge and node sets, edge entropy, the phase-shift fit.
    static func topologyFigures(_ r: AnalysisResult) -> [AnalysisFigure] {
        var figures: [AnalysisFigure] = []
        let shifts = r.types.compactMap { type -> ChartMarker? in
            guard let fit = r.phaseShiftByType[type], fit.isShift, let x = fit.breakX else { return nil }
            return ChartMarker(value: x, label: "\(type): phase shift at \(Int64(x))", color: "#444444")
        }
        if let a = r.jaccardFinal, a.hasValues {
            figures.append(chart(r, "topology_jaccard_final.svg", "Circuit similarity to the final circuit",
                                 "Jaccard similarity (mean over tasks)", bucketSeries(r) { r.meanOverTasks(a, type: $0, frequency: $1) },
                                 domain: 0...1, vertical: shifts,
                                 caption: "Jaccard similarity of each checkpoint's edge set with the final checkpoint's."))
        }
        if let a = r.jaccardPrevious, a.hasValues {
            figures.append(chart(r, "topology_jaccard_previous.svg", "Circuit similarity to the previous checkpoint's",
                                 "Jaccard similarity (mean over tasks)", bucketSeries(r) { r.meanOverTasks(a, type: $0, frequency: $1) },
                                 domain: 0...1, caption: "Jaccard similarity of each checkpoint's edge set with the previous checkpoint's."))
        }
        if let a = r.jaccardNodesFinal, a.hasValues {
            figures.append(chart(r, "topology_jaccard_nodes_final.svg", "Node-set similarity to the final circuit",
                                 "Jaccard similarity of node sets (mean over tasks)", bucketSeries(r) { r.meanOverTasks(a, type: $0, frequency: $1) },
                                 domain: 0...1, caption: "Jaccard similarity of each checkpoint's node set (endpoints of kept edges plus logits) " +
                                    "with the final checkpoint's; 1 at the final checkpoint by construction (the study plots the others)."))
        }
        if let a = r.jaccardNodesPrevious, a.hasValues {
            figures.append(chart(r, "topology_jaccard_nodes_previous.svg", "Node-set similarity to the previous checkpoint's (dkc's addition)",
                                 "Jaccard similarity of node sets (mean over tasks)", bucketSeries(r) { r.meanOverTasks(a, type: $0, frequency: $1) },
                                 domain: 0...1, caption: "Jaccard similarity of each checkpoint's node set with the previous checkpoint's (not in the study)."))
        }
        if let a = r.edgeEntropy, a.hasValues {
            figures.append(chart(r, "topology_edge_entropy.svg", "Edge-score entropy of the circuit", "entropy (nats, mean over tasks)",
                                 bucketSeries(r) { r.meanOverTasks(a, type: $0, frequency: $1) },
                                 caption: "Entropy of the |score| distribution over the circuit's edges; falling = fewer edges carry the score."))
        }
        if let byType = r.jaccardFinalByType, byType.hasValues {
            var series: [LineSeries] = []
            for (y, type) in r.types.enumerated() where byType.series(y).contains(where: { !$0.isNaN }) {
                let color = SVG.color(y)
                series.append(LineSeries(name: "\(type): similarity to final", x: r.steps.map(Double.init), y: byType.series(y), color: color))
                if let fit = r.phaseShiftByType[type], fit.isShift {
                    series.append(LineSeries(name: "\(type): two-segment fit", x: fit.segmentX, y: fit.segmentY, color: color,
                                             dash: "6 4", width: 1.5, markers: false))
                }
            }
            figures.append(chart(r, "phase_shift.svg", "Phase shift: formation → optimisation",
                                 "Jaccard similarity to final (mean over tasks and buckets)", series, domain: 0...1, vertical: shifts,
                                 caption: "Similarity to the final circuit per type with the continuous two-segment fit; the break is the phase shift."))
        }

        return figures
    }

    /// Components: the mean layer of circuit edges, edge and |score| shares by upstream layer.
    static func componentFigures(_ r: AnalysisResult) -> [AnalysisFigure] {
        var figures: [AnalysisFigure] = []
        if let a = r.meanLayerByBucket, a.hasValues {
            var series = bucketSeries(r) { y, f in r.steps.indices.map { a[$0, y, f] } }
            let all = r.meanLayerAll ?? r.meanLayerByCountAll
            if let all { series.append(LineSeries(name: "all circuits", x: r.steps.map(Double.init), y: all.values, color: "#111111", width: 3)) }
            let weighted = r.meanLayerAll != nil
            figures.append(chart(r, "components_mean_layer.svg", "Mean layer of circuit edges (falling = deep → shallow)",
                                 weighted ? "|score|-weighted mean upstream layer (embed = −1)" : "mean upstream layer (embed = −1)", series,
                                 caption: "Mean layer of the circuit edges' upstream nodes, \(weighted ? "weighted by |score|" : "by edge count")."))
        }
        if let e = r.edgeShareAll, e.hasValues {
            figures.append(layerMap(r, e, "components_edge_share.svg", "Share of circuit edges by upstream layer", "edge share",
                                    "Share of all circuits' edges whose upstream node lies in each layer, per checkpoint."))
        }
        if let s = r.scoreShareAll, s.hasValues {
            figures.append(layerMap(r, s, "components_score_share.svg", "Share of |score| mass by upstream layer", "|score| share",
                                    "Share of the circuits' |score| mass on edges leaving each layer, per checkpoint."))
        }
        return figures
    }

    /// One series per type × bucket; `values(type, frequency)` gives the y over `r.steps`.
    static func bucketSeries(_ r: AnalysisResult, _ values: (Int, Int) -> [Double]) -> [LineSeries] {
        var out: [LineSeries] = []
        for y in r.types.indices {
            for f in r.frequencies.indices {
                let s = LineSeries(name: "\(r.types[y]) · \(r.frequencies[f])", x: r.steps.map(Double.init), y: values(y, f),
                                   color: SVG.color(f), dash: SVG.dash(y))
                if s.hasPoints { out.append(s) }
            }
        }
        return out
    }

    static func chart(_ r: AnalysisResult, _ file: String, _ title: String, _ yLabel: String, _ series: [LineSeries],
                      domain: ClosedRange<Double>? = nil, percent: Bool = false, horizontal: [ChartMarker] = [],
                      vertical: [ChartMarker] = [], xLabel: String = "checkpoint (training step)", caption: String) -> AnalysisFigure {
        var chart = LineChart(title: title, xLabel: xLabel, yLabel: yLabel, series: series)
        chart.yDomain = domain
        chart.yPercent = percent
        chart.horizontalMarkers = horizontal
        chart.verticalMarkers = vertical
        return AnalysisFigure(file: file, caption: caption, svg: chart.render())
    }

    /// A (checkpoint, layer) share as a heat map: deepest layer on top, embed at the bottom.
    static func layerMap(_ r: AnalysisResult, _ a: LabeledArray, _ file: String, _ title: String, _ colorLabel: String,
                         _ caption: String) -> AnalysisFigure {
        let layers = r.layers
        let rows = layers.count, columns = r.steps.count
        var values = [Double](repeating: .nan, count: rows * columns)
        for (row, slot) in (0..<rows).reversed().enumerated() {
            for c in 0..<columns { values[row * columns + c] = a[c, slot] }
        }
        let top = NiceScale.nice(values.filter { !$0.isNaN }.max() ?? 1, round: false)
        var map = HeatMap(title: title, rows: rows, columns: columns, values: values,
                          rowTicks: HeatMap.ticks(layers.reversed().map(GraphNames.layerName)),
                          columnTicks: HeatMap.ticks(r.steps.map(String.init), limit: 30),
                          xLabel: "checkpoint (training step)", yLabel: "upstream layer", colorLabel: colorLabel,
                          scale: .sequential(lower: 0, upper: min(1, top)))
        map.colorPercent = true
        return AnalysisFigure(file: file, caption: caption, svg: map.render())
    }

    /// The final circuit's edge scores, upstream × downstream, with layer separators. The colour
    /// saturates at the 98th percentile of |score| so that a few large scores do not wash out the rest.
    static func finalMap(_ m: FinalCircuitMap, graph: GraphNames) -> AnalysisFigure {
        let rows = graph.upstream.count, columns = graph.downstream.count
        let values = m.scores.map(Double.init)
        var background = [Bool](repeating: false, count: rows * columns)
        for u in 0..<rows { for d in 0..<columns { background[u * columns + d] = graph.isEdge(upstream: u, downstream: d) } }
        let magnitudes = values.filter { !$0.isNaN }.map(abs).sorted()
        let limit = magnitudes.isEmpty ? 1 : magnitudes[min(magnitudes.count - 1, Int(0.98 * Double(magnitudes.count)))]
        func downstreamLayer(_ d: Int) -> Int { graph.downstreamNode[d].map { graph.upstreamLayer[$0] } ?? graph.nLayers }
        let rowStarts = (1..<rows).filter { graph.upstreamLayer[$0] != graph.upstreamLayer[$0 - 1] }
        let columnStarts = (1..<columns).filter { downstreamLayer($0) != downstreamLayer($0 - 1) }
        // Large graphs: one label per layer block, at its middle.
        func blockTicks(_ starts: [Int], count: Int, label: (Int) -> String) -> [(index: Int, label: String)] {
            let bounds = [0] + starts + [count]
            return zip(bounds, bounds.dropFirst()).map { a, b in ((a + b - 1) / 2, label(a)) }
        }
        let rowTicks = rows <= 40 ? HeatMap.ticks(graph.upstream)
            : blockTicks(rowStarts, count: rows) { $0 == 0 ? "input" : "L\(graph.upstreamLayer[$0])" }
        let columnTicks = columns <= 60 ? HeatMap.ticks(graph.downstream, limit: 60)
            : blockTicks(columnStarts, count: columns) { d in graph.downstreamNode[d] == nil ? "logits" : "L\(downstreamLayer(d))" }
        let clipped = magnitudes.last.map { $0 > limit } ?? false
        var map = HeatMap(title: "Final circuit \(m.task)/\(m.type)/\(m.frequency) at step \(m.step): edge scores",
                          rows: rows, columns: columns, values: values, rowTicks: rowTicks, columnTicks: columnTicks,
                          xLabel: "downstream input, by layer (grey: edge outside the circuit)", yLabel: "upstream node, by layer",
                          colorLabel: clipped ? "edge score (clipped)" : "edge score", scale: .diverging(limit: limit > 0 ? limit : 1))
        map.background = background
        map.rowSeparators = rowStarts
        map.columnSeparators = columnStarts
        return AnalysisFigure(file: "final_circuit_\(safe(m.task))_\(safe(m.type))_\(safe(m.frequency)).svg",
                              caption: "Edge scores of the final circuit (\(m.task), \(m.type), \(m.frequency), step \(m.step)); " +
                                "rows are upstream nodes, columns downstream inputs, grouped by layer" +
                                (clipped ? "; colours saturate at the 98th percentile of |score|." : "."),
                              svg: map.render())
    }

    static func percent(_ x: Double) -> String {
        let v = x * 100
        return v == v.rounded() ? "\(Int(v)) %" : String(format: "%.1f %%", v)
    }

    /// A label made safe for a file name.
    static func safe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
    }

    // MARK: - Additions of issue 14 (docs/analyze.md)

    /// The study's cross-frequency figure (per target bucket, one line per source bucket, mean over
    /// tasks and types) and, per type, a heat map source bucket × (checkpoint, target bucket).
    static func crossFrequencyFigures(_ r: AnalysisResult) -> [AnalysisFigure] {
        guard let bySource = r.crossFrequencyBySource, bySource.hasValues, let cross = r.crossFrequencyHitsAt10 else { return [] }
        var out: [AnalysisFigure] = []
        let nF = r.frequencies.count, nC = r.steps.count
        for (q, target) in r.frequencies.enumerated() {
            let series = r.frequencies.indices.map { f in
                LineSeries(name: "circuit of \(r.frequencies[f])", x: r.steps.map(Double.init), y: bySource.series(f, q), color: SVG.color(f))
            }.filter(\.hasPoints)
            guard !series.isEmpty else { continue }
            out.append(chart(r, "acquisition_cross_frequency_\(safe(target)).svg", "Circuits tested on \(target)-frequency entities",
                             "circuit hits@10 (mean over tasks and types)", series, domain: 0...1, percent: true,
                             caption: "Hits@10 of each source bucket's circuit on the test entities of the \(target) bucket " +
                                "(target type = source type; mean over tasks and the two types; circuits.nc)."))
        }
        for (y, type) in r.types.enumerated() {
            var values = [Double](repeating: .nan, count: nF * nC * nF)
            for f in 0..<nF { for c in 0..<nC { for q in 0..<nF {
                values[f * nC * nF + c * nF + q] = CircuitMetrics.finiteMean(r.tasks.indices.map { cross[c, $0, y, f, q] })
            } } }
            guard values.contains(where: { !$0.isNaN }) else { continue }
            let columnLabels = r.steps.flatMap { step in r.frequencies.map { "\(step) · \($0)" } }
            var map = HeatMap(title: "Cross-frequency circuit hits@10, \(type)", rows: nF, columns: nC * nF, values: values,
                              rowTicks: HeatMap.ticks(r.frequencies.map { "circuit of \($0)" }),
                              columnTicks: HeatMap.ticks(columnLabels, limit: 60),
                              xLabel: "checkpoint step · target bucket", yLabel: "source bucket", colorLabel: "hits@10",
                              scale: .sequential(lower: 0, upper: 1))
            map.colorPercent = true
            map.columnSeparators = (1..<max(1, nC)).map { $0 * nF }
            out.append(AnalysisFigure(file: "acquisition_cross_frequency_map_\(safe(type)).svg",
                                      caption: "Hits@10 of each source bucket's \(type) circuit (rows) on the \(type) test entities of each " +
                                        "target bucket, per checkpoint (column groups); mean over tasks.", svg: map.render()))
        }
        return out
    }

    /// The study's per-entity heat map, one per type: rows = checkpoints, columns = groups of 5 results.
    static func entityHeatmaps(_ r: AnalysisResult) -> [AnalysisFigure] {
        guard let map = r.entityHeatmap, map.hasValues else { return [] }
        let nC = r.steps.count, width = map.shape[2]
        var out: [AnalysisFigure] = []
        for (y, type) in r.types.enumerated() {
            var values = [Double](repeating: .nan, count: nC * width)
            for c in 0..<nC { for i in 0..<width { values[c * width + i] = map[c, y, i] } }
            guard values.contains(where: { !$0.isNaN }) else { continue }
            var m = HeatMap(title: "Correct attributes per entity group, \(type)", rows: nC, columns: width, values: values,
                            rowTicks: HeatMap.ticks(r.steps.map(String.init), limit: 30),
                            columnTicks: HeatMap.ticks((0..<width).map(String.init), limit: 20),
                            xLabel: "group of 5 results (file order)", yLabel: "checkpoint (training step)", colorLabel: "#correct attributes",
                            scale: .sequential(lower: 0, upper: 5))
            m.colorPercent = false
            out.append(AnalysisFigure(file: "acquisition_entities_\(safe(type)).svg",
                                      caption: "Per-entity query results of \(type) test entities: each cell sums 5 consecutive 0/1 results " +
                                        "(see docs/analyze.md for the sampling rule), per checkpoint.", svg: m.render()))
        }
        return out
    }

    /// First-token accuracy by optimizer step, per stage: pooled per type, and per attribute.
    static func firstTokenFigures(_ r: AnalysisResult) -> [AnalysisFigure] {
        var out: [AnalysisFigure] = []
        for log in r.firstToken where !log.steps.isEmpty {
            let x = log.steps.map(Double.init)
            let pooled = log.types.enumerated().map { y, type in
                LineSeries(name: type, x: x, y: log.overall[type] ?? [], color: SVG.color(y))
            }.filter(\.hasPoints)
            if !pooled.isEmpty {
                out.append(chart(r, "acquisition_first_token_\(safe(log.stage)).svg", "First-token accuracy, \(log.stage) stage",
                                 "first-token accuracy (pooled over attributes)", pooled, domain: 0...1, percent: true,
                                 xLabel: "optimizer step (\(log.stage) stage)",
                                 caption: "First-token attribute accuracy on the validation texts at each evaluation of the \(log.stage) " +
                                    "stage, new vs revised entities (\(log.path))."))
            }
            var split: [LineSeries] = []
            for (y, type) in log.types.enumerated() {
                for (a, attribute) in log.attributes.enumerated() {
                    let s = LineSeries(name: "\(type) · \(attribute)", x: x, y: log.byAttribute[type]?[attribute] ?? [],
                                       color: SVG.color(a), dash: SVG.dash(y))
                    if s.hasPoints { split.append(s) }
                }
            }
            if !split.isEmpty {
                out.append(chart(r, "acquisition_first_token_by_attribute_\(safe(log.stage)).svg",
                                 "First-token accuracy per attribute, \(log.stage) stage", "first-token accuracy", split,
                                 domain: 0...1, percent: true, xLabel: "optimizer step (\(log.stage) stage)",
                                 caption: "First-token accuracy per attribute (colour) and type (dash) at each evaluation of the \(log.stage) stage."))
            }
        }
        return out
    }

    /// The edge activation ratio as heat maps checkpoint × parent layer (layer 0 includes input):
    /// mean over every cell, and the study's cell (heat-map task, first type, heat-map bucket).
    static func activationFigures(_ r: AnalysisResult) -> [AnalysisFigure] {
        guard let all = r.edgeActivationRatioAll, all.hasValues, let ratio = r.edgeActivationRatio else { return [] }
        let nP = all.shape[1], nC = r.steps.count
        let topnLabel = r.topn.map { "top-\($0)" } ?? "the analysed top-n"
        func map(_ value: (Int, Int) -> Double, file: String, title: String, caption: String) -> AnalysisFigure? {
            var values = [Double](repeating: .nan, count: nP * nC)
            for (row, l) in (0..<nP).reversed().enumerated() { for c in 0..<nC { values[row * nC + c] = value(c, l) } }
            guard values.contains(where: { !$0.isNaN }) else { return nil }
            var m = HeatMap(title: title, rows: nP, columns: nC, values: values,
                            rowTicks: HeatMap.ticks((0..<nP).reversed().map { $0 == 0 ? "0 (+input)" : String($0) }),
                            columnTicks: HeatMap.ticks(r.steps.map(String.init), limit: 30),
                            xLabel: "checkpoint (training step)", yLabel: "parent layer", colorLabel: "activation ratio",
                            scale: .sequential(lower: 0, upper: 1))
            m.colorPercent = true
            return AnalysisFigure(file: file, caption: caption, svg: m.render())
        }
        var out: [AnalysisFigure] = []
        if let f = map({ all[$0, $1] }, file: "components_edge_activation_ratio.svg",
                       title: "Edge activation ratio by layer (\(topnLabel), all circuits)",
                       caption: "Share of the graph's edges leaving each layer that the circuit keeps (\(topnLabel)), mean over every cell; " +
                        "input counts in layer 0. A shift of the mass to lower rows over checkpoints is the deep-to-shallow shift.") {
            out.append(f)
        }
        let t = r.options.heatmapTask.flatMap { r.tasks.firstIndex(of: $0) } ?? (r.tasks.isEmpty ? nil : 0)
        let y = r.types.firstIndex(of: "new") ?? (r.types.isEmpty ? nil : 0)
        let q = r.options.heatmapFrequency.flatMap { r.frequencies.firstIndex(of: $0) } ?? r.frequencies.firstIndex(of: "high")
            ?? (r.frequencies.isEmpty ? nil : 0)
        let k = r.topn.flatMap { r.topnAxis.firstIndex(of: $0) } ?? r.topnAxis.count - 1
        if let t, let y, let q, k >= 0 {
            let cell = "\(r.tasks[t])/\(r.types[y])/\(r.frequencies[q])"
            if let f = map({ ratio[$0, t, y, q, k, $1] }, file: "components_edge_activation_ratio_\(safe(r.tasks[t]))_\(safe(r.types[y]))_\(safe(r.frequencies[q])).svg",
                           title: "Edge activation ratio by layer, \(cell) (\(topnLabel))",
                           caption: "The study's figure for \(cell): edge activation ratio per parent layer and checkpoint (the study " +
                            "shows rows 0 … L−2; all rows here).") {
                out.append(f)
            }
        }
        return out
    }
}
