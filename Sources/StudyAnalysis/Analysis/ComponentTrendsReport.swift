import Foundation

extension AnalysisWriter {
    /// analysis.nc variables of the logit lens, head classes and transplant curves (docs/analyze.md).
    static func componentVariables(_ r: AnalysisResult) -> [Variable] {
        var out: [Variable] = []
        func add(_ name: String, _ a: LabeledArray, _ longName: String, _ extra: [(String, String)] = []) {
            out.append(Variable(name: name, dimensions: a.dimensions, values: a.values, longName: longName, units: "1", extra: extra))
        }
        if let c = r.components {
            add("logit_lens_rank_plus1", c.lensRankPlus1, "mean over the cell's entities of the label's first-token rank + 1 at the lens point (components.nc)")
            add("logit_lens_prob", c.lensProbability, "mean over the cell's entities of the label's first-token probability at the lens point (components.nc)")
            add("logit_lens_first_rank10", c.lensFirstRank10, "index into lens of the first point whose mean rank + 1 is at most 10",
                [("comment", "from the cell's mean rank (per-entity ranks are not in the sweep file); NaN: never or no data")])
            add("head_class_share", c.headClassShare, "heads of the class in the circuit divided by the circuit's node-set size (the study's proportion)")
            add("circuit_heads_by_layer", c.circuitHeadsByLayer, "heads of the circuit per class and layer (components.nc circuit_heads)")
            add("head_class_share_all", c.headClassShareAll, "head_class_share at the analysed top-n, mean over every cell present",
                [("component_topn", String(c.componentTopn.isEmpty ? 0 : c.componentTopn[c.topnIndex]))])
        }
        if let t = r.transplant {
            let topn = [("topn", r.topn.map(String.init) ?? "")]
            add("transplant_faithfulness", t.faithfulness, "faithfulness of the source checkpoint's circuit on the checkpoint's model (circuits.nc)", topn)
            add("transplant_hits_at_10", t.hitsAt10, "hits@10 of the source checkpoint's circuit, zero-ablated, on the checkpoint's model (circuits.nc)", topn)
            let bucket = topn + [("frequency", r.frequencies[t.frequency])]
            add("transplant_faithfulness_curve", t.faithfulnessCurve, "transplant_faithfulness in the bucket, mean over tasks and types", bucket)
            add("transplant_hits_at_10_curve", t.hitsAt10Curve, "transplant_hits_at_10 in the bucket, mean over tasks and types", bucket)
            out.append(Variable(name: "own_circuit_faithfulness_curve", dimensions: ["checkpoint"], values: t.ownFaithfulness,
                                longName: "each checkpoint's own circuit: faithfulness in the bucket, mean over tasks and types", units: "1", extra: bucket))
            out.append(Variable(name: "own_circuit_hits_at_10_curve", dimensions: ["checkpoint"], values: t.ownHitsAt10,
                                longName: "each checkpoint's own circuit: hits@10 in the bucket, mean over tasks and types", units: "1", extra: bucket))
        }
        return out
    }
}

/// Figures and report paragraphs of the logit lens, head classes and transplant (docs/analyze.md).
public enum ComponentTrendsReport {
    static func f2(_ x: Double) -> String { x.isNaN ? "n/a" : String(format: "%.2f", x) }

    public static func figures(_ r: AnalysisResult) -> [AnalysisFigure] {
        var figures: [AnalysisFigure] = []
        if let c = r.components, let t = c.mapTask, let y = c.mapType, let f = c.mapFrequency, c.lensRankPlus1.hasValues {
            let K = c.lens.count, nC = r.steps.count
            var values = [Double](repeating: .nan, count: nC * K)
            for i in 0..<nC { for k in 0..<K { values[i * K + k] = c.lensRankPlus1[i, t, y, f, k] } }
            let top = max(values.filter { !$0.isNaN }.max() ?? 1, 1)
            let map = HeatMap(title: "Logit lens: mean answer rank + 1, \(r.tasks[t])/\(r.types[y])/\(r.frequencies[f])",
                              rows: nC, columns: K, values: values, rowTicks: HeatMap.ticks(r.steps.map(String.init)),
                              columnTicks: HeatMap.ticks(c.lens), xLabel: "lens point", yLabel: "checkpoint (training step)",
                              colorLabel: "mean rank + 1", scale: .sequential(lower: 1, upper: max(top, 10)))
            figures.append(AnalysisFigure(file: "components_logit_lens_rank.svg",
                                          caption: "Mean rank + 1 of the answer's first token at each logit-lens point, per checkpoint (components.nc).",
                                          svg: map.render()))
        }
        if let c = r.components, c.headClassShareAll.hasValues {
            let x = r.steps.map(Double.init)
            var series = c.classes.indices.map { LineSeries(name: "\(c.classes[$0]) (all cells)", x: x, y: c.headClassShareAll.series($0), color: SVG.color($0), dash: SVG.dash(1)) }
            if let t = c.mapTask, let y = c.mapType, let f = c.mapFrequency {
                series += c.classes.indices.map { k in
                    LineSeries(name: "\(c.classes[k]) (\(r.tasks[t])/\(r.types[y])/\(r.frequencies[f]))", x: x,
                               y: r.steps.indices.map { c.headClassShare[$0, t, y, f, c.topnIndex, k] }, color: SVG.color(k))
                }
            }
            series = series.filter(\.hasPoints)
            figures.append(AnalysisFigures.chart(r, "components_head_classes.svg", "Head classes in the circuits",
                                                 "class count ÷ circuit nodes (mean over cells)", series, percent: true,
                                                 caption: "Share of the circuit's node set that is a head of each class, per checkpoint: the study's cell (solid) and the mean over every cell (dashed) (components.nc)."))
        }
        if let t = r.transplant {
            let x = r.steps.map(Double.init)
            for (name, curve, own, what) in [("topology_transplant_hits_at_10.svg", t.hitsAt10Curve, t.ownHitsAt10, "hits@10"),
                                             ("topology_transplant_faithfulness.svg", t.faithfulnessCurve, t.ownFaithfulness, "faithfulness")] {
                var series = t.sources.indices.map { s in
                    LineSeries(name: "circuit of \(t.sources[s])", x: x, y: r.steps.indices.map { curve[s, $0] }, color: SVG.color(s))
                }
                series.append(LineSeries(name: "own circuit", x: x, y: own, color: "#444444", dash: SVG.dash(1)))
                series = series.filter(\.hasPoints)
                guard !series.isEmpty else { continue }
                figures.append(AnalysisFigures.chart(r, name, "Transplanted circuits: \(what)",
                                                     "\(what) (\(r.frequencies[t.frequency]), mean over tasks and types)", series,
                                                     percent: what == "hits@10",
                                                     caption: "\(what) of each source checkpoint's circuit on every checkpoint's model, and of each " +
                                                        "checkpoint's own circuit (circuits.nc transplant variables)."))
            }
        }
        return figures
    }

    /// Report paragraphs (markdown lines), one list per section.
    public static func sections(_ r: AnalysisResult) -> [[String]] {
        var out: [[String]] = []
        if let c = r.components {
            var lines = ["### Logit lens and head classes (components.nc)", ""]
            if let t = c.mapTask, let y = c.mapType, let f = c.mapFrequency {
                let cell = "\(r.tasks[t])/\(r.types[y])/\(r.frequencies[f])"
                let points = r.steps.indices.map { c.lensFirstRank10[$0, t, y, f] }
                let present = points.indices.filter { !c.lensRankPlus1[$0, t, y, f, 0].isNaN }
                func name(_ v: Double) -> String { v.isNaN ? "none" : c.lens[Int(v)] }
                if let a = present.first, let b = present.last {
                    let (pa, pb) = (points[a], points[b])
                    let trend: String
                    if pa.isNaN && pb.isNaN { trend = "no checkpoint reaches a mean rank + 1 of 10 or better" }
                    else if pa.isNaN { trend = "the answer only reaches the top 10 at the last checkpoint" }
                    else if pb.isNaN { trend = "the answer leaves the top 10 by the last checkpoint" }
                    else if pb < pa { trend = "it moves earlier (deep to shallow), as the study reports" }
                    else if pb > pa { trend = "it moves later: the data do not show the study's deep-to-shallow shift" }
                    else { trend = "it does not move: the data do not show the study's deep-to-shallow shift" }
                    lines.append("For \(cell), the first lens point where the mean answer rank + 1 is at most 10 is \(name(pa)) at step " +
                                 "\(r.steps[a]) and \(name(pb)) at step \(r.steps[b]): \(trend). It is computed from the cell's mean rank, " +
                                 "because per-entity ranks are not in the sweep file.")
                    lines.append("")
                }
            }
            if let t = c.mapTask, let y = c.mapType, let f = c.mapFrequency {
                let n = c.topnIndex
                let share = { (i: Int, k: Int) in c.headClassShare[i, t, y, f, n, k] }
                let present = r.steps.indices.filter { !share($0, 0).isNaN }
                if let a = present.first, let b = present.last {
                    let parts = c.classes.indices.map { k -> String in
                        let (x, z) = (share(a, k), share(b, k))
                        if f2(x) == f2(z) { return "\(c.classes[k]) share stays at \(f2(x))" }
                        return "\(c.classes[k]) share \(z > x ? "rises" : "falls") from \(f2(x)) to \(f2(z))"
                    }
                    lines.append("Head classes in the \(r.tasks[t])/\(r.types[y])/\(r.frequencies[f]) circuit (top-\(c.componentTopn[n]), " +
                                 "class count ÷ node-set size, the study's proportion), step \(r.steps[a]) to step \(r.steps[b]): " +
                                 parts.joined(separator: "; ") + ".")
                    if let m = c.classes.firstIndex(of: "mover"), let rel = c.classes.firstIndex(of: "relation") {
                        let (x, z) = (share(a, m) + share(a, rel), share(b, m) + share(b, rel))
                        lines.append("Mover and relation heads together: \(f2(x)) at the first checkpoint, \(f2(z)) at the last" +
                                     (z > x ? " (more specialised heads in the circuit)." : z < x ? " (fewer specialised heads in the circuit)." : " (no change)."))
                    }
                }
            }
            out.append(lines)
        }
        if let t = r.transplant {
            var lines = ["### Transplanted circuits (circuits.nc)", ""]
            let bucket = r.frequencies[t.frequency]
            for (s, source) in t.sources.enumerated() {
                guard let own = r.steps.firstIndex(of: source) else { continue }
                let later = (own + 1..<r.steps.count).filter { !t.hitsAt10Curve[s, $0].isNaN || !t.faithfulnessCurve[s, $0].isNaN }
                guard !later.isEmpty else { continue }
                let faith = CircuitMetrics.finiteMean(later.map { t.faithfulnessCurve[s, $0] })
                let hits = CircuitMetrics.finiteMean(later.map { t.hitsAt10Curve[s, $0] })
                let ownFaith = CircuitMetrics.finiteMean(later.map { t.ownFaithfulness[$0] })
                let ownHits = CircuitMetrics.finiteMean(later.map { t.ownHitsAt10[$0] })
                lines.append("The circuit of checkpoint \(source) keeps faithfulness \(f2(faith)) and hits@10 \(f2(hits)) on the \(later.count) " +
                             "later checkpoint(s) (mean, \(bucket) bucket, mean over tasks and types); their own circuits: faithfulness " +
                             "\(f2(ownFaith)), hits@10 \(f2(ownHits)).")
            }
            lines.append("")
            lines.append("The study finds that circuits found after the phase shift perform on later checkpoints nearly as well as their own " +
                         "circuits, while earlier ones do not; compare the gaps above.")
            out.append(lines)
        }
        return out
    }
}
