import Foundation
import Support
import Results

/// forgetting.nc, the cross-ratio figures and forgetting.md (docs/forgetting.md).
extension ForgettingCurves {
    // MARK: - Series over replay ratios

    /// Every sub-run's `pick` series placed on the common axes, with `replay_ratio` in front:
    /// dimensions `checkpoint`, `task`, `type`, `frequency`, `topn`, `parent_layer`, `lens` keep
    /// their meaning and are mapped by label; `perTopn` adds a `topn` dimension after `frequency`
    /// holding each analysis at its own top-n (for series computed at the analysed size only);
    /// otherwise only the sub-run's first analysis is read. NaN where a sub-run lacks a cell.
    func series(_ pick: (AnalysisResult) -> LabeledArray?, perTopn: Bool) -> LabeledArray? {
        guard let template = runs.lazy.flatMap(\.circuits).compactMap(pick).first else { return nil }
        var dimensions = ["replay_ratio"] + template.dimensions
        if perTopn, let f = dimensions.firstIndex(of: "frequency") { dimensions.insert("topn", at: f + 1) }
        let shape = dimensions.map { axisLength($0, template) }
        var out = LabeledArray(dimensions: dimensions, shape: shape)
        for (r, run) in runs.enumerated() {
            for result in perTopn ? run.circuits : Array(run.circuits.prefix(1)) {
                guard let source = pick(result) else { continue }
                let topnIndex = result.topn.flatMap { topn.firstIndex(of: $0) }
                if perTopn && topnIndex == nil && !topn.isEmpty { continue }
                let maps = source.dimensions.enumerated().map { d, name in indexMap(name, result, count: source.shape[d]) }
                var index = [Int](repeating: 0, count: source.shape.count)
                for value in source.values {
                    var target = [r]
                    var valid = true
                    for (d, name) in source.dimensions.enumerated() {
                        guard let mapped = maps[d][index[d]] else { valid = false; break }
                        target.append(mapped)
                        if perTopn && name == "frequency" { target.append(topnIndex ?? 0) }
                    }
                    if valid && target.count == shape.count { out.values[out.offset(target)] = value }
                    var d = index.count - 1
                    while d >= 0 { index[d] += 1; if index[d] < source.shape[d] { break }; index[d] = 0; d -= 1 }
                }
            }
        }
        return out
    }

    private func axisLength(_ name: String, _ template: LabeledArray) -> Int {
        switch name {
        case "replay_ratio": return runs.count
        case "checkpoint": return checkpoints.count
        case "task": return tasks.count
        case "type": return types.count
        case "frequency": return frequencies.count
        case "topn": return max(topn.count, 1)
        default: return template.shape[template.dimensions.firstIndex(of: name)!]
        }
    }

    /// Source index → index on the common axis (nil: not on it).
    private func indexMap(_ name: String, _ r: AnalysisResult, count: Int) -> [Int?] {
        switch name {
        case "checkpoint": return r.steps.map { checkpoints.firstIndex(of: $0) }
        case "task": return r.tasks.map { tasks.firstIndex(of: $0) }
        case "type": return r.types.map { types.firstIndex(of: $0) }
        case "frequency": return r.frequencies.map { frequencies.firstIndex(of: $0) }
        case "topn": return r.topnAxis.map { topn.firstIndex(of: $0) }
        case "parent_layer": return (0..<count).map { $0 < parentLayers ? $0 : nil }
        case "lens": return (0..<count).map { $0 < lens.count ? $0 : nil }
        default: return (0..<count).map { $0 }
        }
    }

    /// The circuit-side series of forgetting.nc: name, values, long name, units.
    func circuitSeries() -> [(String, LabeledArray, String, String)] {
        let items: [(String, LabeledArray?, String, String)] = [
            ("query_accuracy_study", series({ $0.fullQueryAccuracy }, perTopn: false),
             "full-model query accuracy, the study's rule (prediction equals the answer or is a substring of it), mean over attributes", "1"),
            ("query_accuracy_exact", series({ $0.fullExactMatch }, perTopn: false),
             "full-model exact match of greedy decoding, mean over attributes", "1"),
            ("faithfulness", series({ $0.faithfulness }, perTopn: true), "circuit faithfulness (circuit - corrupted) / (clean - corrupted)", "1"),
            ("edge_entropy", series({ $0.edgeEntropy }, perTopn: true), "entropy of |score| over the circuit's edges", "nat"),
            ("n_edges", series({ $0.nEdges }, perTopn: true), "edges in the circuit after pruning", "1"),
            ("jaccard_edges_initial", series({ $0.jaccardInitial }, perTopn: true),
             "Jaccard similarity of the circuit's edge set with the cell's circuit at the sub-run's first checkpoint (step 0: the continual model)", "1"),
            ("jaccard_nodes_initial", series({ $0.jaccardNodesInitial }, perTopn: true),
             "Jaccard similarity of the circuit's node set with the cell's circuit at the sub-run's first checkpoint", "1"),
            ("edge_activation_ratio", series({ $0.edgeActivationRatio }, perTopn: false),
             "kept edges whose parent lies in the layer / all graph edges whose parent lies there (input in layer 0)", "1"),
            ("lens_rank_plus1_mean", series({ $0.components?.lensRankPlus1 }, perTopn: false),
             "logit lens: mean over the cell's entities of the label's first-token rank + 1 at the lens point", "1"),
            ("lens_prob_mean", series({ $0.components?.lensProbability }, perTopn: false),
             "logit lens: mean over the cell's entities of the label's first-token probability at the lens point", "1"),
        ]
        return items.compactMap { name, array, longName, units in array.map { (name, $0, longName, units) } }
    }

    // MARK: - forgetting.nc

    /// forgetting.nc: the learning curves `first_token_accuracy(replay_ratio, step, type)`,
    /// `eval_loss(replay_ratio, step)`, their summaries (replay_ratio, type), and the circuit-side
    /// series of `circuitSeries()`, written atomically.
    public func write(to url: URL, commandLine: String) throws {
        var list = AnalysisWriter.VariableList()
        if runs.contains(where: { $0.log != nil }) { addLearningCurves(to: &list) }
        for (name, array, longName, units) in circuitSeries() {
            list.add(name, array, longName, units, [("comment", "from circuits/forget/replay_<r>/; NaN where the sub-run lacks the cell")])
        }
        let lengths: [String: Int] = ["replay_ratio": runs.count, "step": steps.count, "type": types.count, "checkpoint": checkpoints.count,
                                      "task": tasks.count, "frequency": frequencies.count, "topn": max(topn.count, 1),
                                      "parent_layer": parentLayers, "lens": lens.count]
        // A zero-length dimension would be unlimited in NetCDF: drop variables over one.
        let variables = list.variables.filter { v in v.dimensions.allSatisfy { (lengths[$0] ?? 0) > 0 } }
        let used = Set(variables.flatMap(\.dimensions)).union(["replay_ratio"])
        do {
            try NetCDFFile.writeAtomically(to: url) { file in
                for name in ["replay_ratio", "step", "checkpoint", "task", "type", "frequency", "topn", "parent_layer", "lens"] where used.contains(name) {
                    try file.addDimension(name, length: lengths[name]!)
                }
                try file.addVariable("replay_ratio", type: .double, dimensions: ["replay_ratio"])
                try file.setAttribute("long_name", "share of the forgetting texts replaced by (or added as) replayed continual texts", on: "replay_ratio")
                for (name, longName) in [("step", "optimizer step of the forget stage (0: before the first step)"),
                                         ("checkpoint", "forget-stage checkpoint step of the sub-run's sweep"),
                                         ("topn", "number of top-|score| edges kept before pruning"),
                                         ("parent_layer", "layer of an edge's upstream node (input counts in layer 0)")] where used.contains(name) {
                    try file.addVariable(name, type: .int64, dimensions: [name])
                    try file.setAttribute("long_name", longName, on: name)
                }
                for name in ["task", "type", "frequency", "lens"] where used.contains(name) {
                    try file.addVariable(name, type: .string, dimensions: [name])
                }
                if used.contains("lens") {
                    try file.setAttribute("long_name", "logit-lens point: residual entering block k ('k_pre'), then the last block's output ('final_post')", on: "lens")
                }
                for v in variables {
                    try file.addVariable(v.name, type: .double, dimensions: v.dimensions, compression: NetCDFCompression(level: 2, shuffle: true), fill: .nan)
                    try file.setAttribute("long_name", v.longName, on: v.name)
                    try file.setAttribute("units", v.units, on: v.name)
                    for (key, value) in v.extra { try file.setAttribute(key, value, on: v.name) }
                }
                try file.setAttribute("title", "dkc analysis: forgetting and replay")
                try file.setAttribute("source", DKCVersion.source)
                try file.setAttribute("history", "\(ISO8601DateFormatter().string(from: Date())) \(commandLine)")
                let inputs = runs.flatMap { run in (run.log.map { [$0.path] } ?? []) + (run.circuits.first.map { r in
                    [r.inputs.circuits, r.inputs.acquisition, r.inputs.components, r.inputs.scores].compactMap { $0 } } ?? []) }
                try file.setAttribute("inputs", inputs.joined(separator: "; "))
                if let plotTopn { try file.setAttribute("plotted_topn", "\(plotTopn)") }
                try file.write(runs.map(\.ratio), to: "replay_ratio")
                if used.contains("step") { try file.write(steps, to: "step") }
                if used.contains("checkpoint") { try file.write(checkpoints, to: "checkpoint") }
                if used.contains("topn") { try file.write(topn.isEmpty ? [0] : topn, to: "topn") }
                if used.contains("parent_layer") { try file.write((0..<parentLayers).map(Int64.init), to: "parent_layer") }
                for (name, labels) in [("task", tasks), ("type", types), ("frequency", frequencies), ("lens", lens)] where used.contains(name) {
                    try file.write(labels, to: name)
                }
                for v in variables { try file.write(v.values, to: v.name) }
            }
        } catch let error as AnalysisError {
            throw error
        } catch {
            throw AnalysisError.output(path: url.path, problem: "\(error)")
        }
    }

    /// The learning curves of the sub-runs' metrics.jsonl and their per-run summaries.
    private func addLearningCurves(to list: inout AnalysisWriter.VariableList) {
        var accuracy = LabeledArray(dimensions: ["replay_ratio", "step", "type"], shape: [runs.count, steps.count, types.count])
        var loss = LabeledArray(dimensions: ["replay_ratio", "step"], shape: [runs.count, steps.count])
        for (r, run) in runs.enumerated() {
            for (y, type) in types.enumerated() { for (s, v) in curve(run, type: type).enumerated() { accuracy[r, s, y] = v } }
            if let log = run.log { for (s, v) in along(log, log.evalLoss).enumerated() { loss[r, s] = v } }
        }
        list.add("first_token_accuracy", accuracy, "first-token attribute accuracy on the continual validation set, pooled over attributes", "1",
                 [("comment", "from train/forget/replay_<r>/metrics.jsonl; NaN where the run has no evaluation")])
        list.add("eval_loss", loss, "loss on the continual validation set", "nat")
        let perRun: [(String, String, (Summary) -> Double)] = [
            ("first_token_accuracy_initial", "first-token accuracy at the run's first evaluation (step 0: the continual model)", \.initial),
            ("first_token_accuracy_lowest", "lowest first-token accuracy over the run", \.lowest),
            ("first_token_accuracy_lowest_step", "first optimizer step at the lowest accuracy", { Double($0.lowestStep) }),
            ("first_token_accuracy_final", "first-token accuracy at the run's last evaluation", \.final),
            ("first_token_accuracy_final_step", "optimizer step of the last evaluation", { Double($0.finalStep) }),
            ("half_step", "first optimizer step with accuracy below half the initial (NaN: never)", { $0.halfStep.map(Double.init) ?? .nan }),
        ]
        for (name, longName, value) in perRun {
            var a = LabeledArray(dimensions: ["replay_ratio", "type"], shape: [runs.count, types.count])
            for (r, run) in runs.enumerated() { for (y, type) in types.enumerated() { a[r, y] = summary(run, type: type).map(value) ?? .nan } }
            list.add(name, a, longName, "1")
        }
    }

    // MARK: - Figures

    /// The mean of `a[r, c, task, y, frequency(, topn)]` over tasks and buckets, per checkpoint
    /// (`a` as `series` returns it; `k` the top-n index when it has that dimension).
    func meanOverCells(_ a: LabeledArray, run r: Int, type y: Int, k: Int?) -> [Double] {
        checkpoints.indices.map { c in
            var xs: [Double] = []
            for t in tasks.indices {
                for f in frequencies.indices { xs.append(k.map { a[r, c, t, y, f, $0] } ?? a[r, c, t, y, f]) }
            }
            return CircuitMetrics.finiteMean(xs)
        }
    }

    /// Query accuracy (study rule) of `type` in run `r`, mean over buckets, per checkpoint.
    func queryCurve(_ query: LabeledArray?, run r: Int, type y: Int) -> [Double] {
        guard let query else { return checkpoints.map { _ in .nan } }
        return checkpoints.indices.map { c in CircuitMetrics.finiteMean(frequencies.indices.map { query[r, c, y, $0] }) }
    }

    /// The figures of `analysis/forget/` (file names relative to it): first-token and query accuracy
    /// per type (a colour per ratio) and per ratio (a colour per type), and the circuit statistics at
    /// `plotTopn`, a colour per ratio and a dash per type.
    public func figures() -> [AnalysisFigure] {
        var out: [AnalysisFigure] = []
        let query = series({ $0.fullQueryAccuracy }, perTopn: false)
        let stepX = steps.map(Double.init), checkpointX = checkpoints.map(Double.init)
        func accuracyChart(_ file: String, _ title: String, _ series: [LineSeries], _ caption: String) -> AnalysisFigure {
            var chart = LineChart(title: title, xLabel: "forget stage (optimizer step)", yLabel: "accuracy", series: series.filter(\.hasPoints))
            chart.yDomain = 0...1
            chart.yPercent = true
            return AnalysisFigure(file: file, caption: caption, svg: chart.render())
        }
        // Run r's first-token (solid) and query accuracy (dashed) of type y, named `name`, in colour `colour`.
        func pair(_ r: Int, _ y: Int, _ name: String, _ colour: Int) -> [LineSeries] {
            [LineSeries(name: name + " first token", x: stepX, y: curve(runs[r], type: types[y]), color: SVG.color(colour)),
             LineSeries(name: name + " query", x: checkpointX, y: queryCurve(query, run: r, type: y), color: SVG.color(colour), dash: SVG.dash(1))]
        }
        for (y, type) in types.enumerated() {
            out.append(accuracyChart("first_token_\(AnalysisFigures.safe(type)).svg", "Forgetting \(type) knowledge",
                runs.indices.flatMap { pair($0, y, "replay \(runs[$0].label)", $0) },
                "First-token accuracy of \(type) knowledge on the continual validation set (solid, every evaluation) and the full model's " +
                "query accuracy on the continual test set (dashed, every checkpoint, the study's rule, mean over buckets), one colour per replay ratio."))
        }
        for (r, run) in runs.enumerated() {
            out.append(accuracyChart("replay_\(run.label).svg", "Forgetting with replay ratio \(run.label)",
                types.indices.flatMap { pair(r, $0, types[$0], $0) },
                "Replay ratio \(run.label): first-token accuracy (solid) and query accuracy (dashed) per type."))
        }
        guard let plotTopn, let k = topn.firstIndex(of: plotTopn) else { return out }
        let named = Dictionary(uniqueKeysWithValues: circuitSeries().map { ($0.0, $0.1) })
        let charts: [(String, String, String, String, Bool)] = [
            ("jaccard_edges_initial", "jaccard_edges.svg", "Edge overlap with the initial circuit", "Jaccard (edges)", true),
            ("jaccard_nodes_initial", "jaccard_nodes.svg", "Node overlap with the initial circuit", "Jaccard (nodes)", true),
            ("edge_entropy", "edge_entropy.svg", "Edge entropy while forgetting", "entropy (nat)", false),
            ("faithfulness", "faithfulness.svg", "Circuit faithfulness while forgetting", "faithfulness", false),
        ]
        for (name, file, title, yLabel, unit) in charts {
            guard let a = named[name] else { continue }
            var lines: [LineSeries] = []
            for (r, run) in runs.enumerated() {
                for (y, type) in types.enumerated() {
                    lines.append(LineSeries(name: "replay \(run.label) · \(type)", x: checkpointX, y: meanOverCells(a, run: r, type: y, k: k),
                                            color: SVG.color(r), dash: SVG.dash(y)))
                }
            }
            var chart = LineChart(title: "\(title) (top-\(plotTopn))", xLabel: "forget stage (checkpoint step)", yLabel: yLabel,
                                  series: lines.filter(\.hasPoints))
            if unit { chart.yDomain = 0...1 }
            out.append(AnalysisFigure(file: file, caption: "\(title): top-\(plotTopn) circuits, mean over tasks and buckets, " +
                "one colour per replay ratio and one dash per type; each sub-run's full analysis is in replay_<r>/.", svg: chart.render()))
        }
        return out
    }

    // MARK: - forgetting.md

    /// forgetting.md: the learning-curve table and sentences, then the circuits' table and sentences.
    public func markdown() -> String {
        func pct(_ x: Double) -> String { x.isNaN ? "–" : String(format: "%.1f %%", 100 * x) }
        var out = ["# Forgetting and replay", "",
                   "First-token accuracy on the continual validation set during the forget stage (docs/forgetting.md), from "
                   + "`train/forget/replay_<r>/metrics.jsonl`. Step 0 is the continual model; \"half\" is the first step below half of it.", "",
                   "| type | replay | step 0 | lowest (step) | end (step) | half |", "| --- | --- | --- | --- | --- | --- |"]
        for type in types {
            for run in runs {
                guard let s = summary(run, type: type) else { continue }
                out.append("| \(type) | \(run.label) | \(pct(s.initial)) | \(pct(s.lowest)) (\(s.lowestStep)) | \(pct(s.final)) (\(s.finalStep)) | \(s.halfStep.map(String.init) ?? "never") |")
            }
        }
        out.append("")
        for type in types {
            let rows = runs.compactMap { run in summary(run, type: type).map { (run, $0) } }
            guard let none = rows.first, let most = rows.last else { continue }
            var sentence = "**\(type)**: without replay (ratio \(none.0.label)) the accuracy goes from \(pct(none.1.initial)) to "
                + "\(pct(none.1.final)) at step \(none.1.finalStep)"
            sentence += none.1.halfStep.map { ", below half of its start from step \($0)" } ?? ", never below half of its start"
            if rows.count > 1 {
                sentence += "; with replay \(most.0.label) it ends at \(pct(most.1.final)) (lowest \(pct(most.1.lowest)) at step \(most.1.lowestStep))"
                let kept = most.1.initial > 0 ? most.1.final / most.1.initial : .nan
                let keptNone = none.1.initial > 0 ? none.1.final / none.1.initial : .nan
                sentence += String(format: ": it keeps %.0f %% of the starting accuracy against %.0f %% without replay.", 100 * kept, 100 * keptNone)
            } else {
                sentence += "."
            }
            out.append(sentence)
            out.append("")
        }
        out += circuitMarkdown()
        return out.joined(separator: "\n")
    }

    /// The circuits' section: per type and ratio, the first and last checkpoint of the sub-run's sweep
    /// (means over tasks and buckets, at `plotTopn`).
    func circuitMarkdown() -> [String] {
        guard !checkpoints.isEmpty else { return [] }
        func pct(_ x: Double) -> String { x.isNaN ? "–" : String(format: "%.1f %%", 100 * x) }
        func num(_ x: Double) -> String { x.isNaN ? "–" : String(format: "%.3f", x) }
        let named = Dictionary(uniqueKeysWithValues: circuitSeries().map { ($0.0, $0.1) })
        let query = named["query_accuracy_study"]
        let k = plotTopn.flatMap { topn.firstIndex(of: $0) }
        var out = ["## Circuits", "",
                   "From each sub-run's sweep (`circuits/forget/replay_<r>/`)" + (plotTopn.map { ", top-\($0) circuits" } ?? "")
                   + ", means over tasks and frequency buckets, at the sub-run's first and last checkpoint. Query accuracy is the full "
                   + "model's on the continual test set (the study's rule); Jaccard compares with the circuit at the first checkpoint "
                   + "(the continual model's). Each sub-run's full analysis is in `analysis/forget/replay_<r>/`.", "",
                   "| type | replay | checkpoints | query accuracy | faithfulness | Jaccard edges | Jaccard nodes | edge entropy |",
                   "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        var sentences: [String] = []
        for (y, type) in types.enumerated() {
            var ends: [(label: String, query: Double, edges: Double)] = []
            for (r, run) in runs.enumerated() where !run.circuits.isEmpty {
                let present = checkpoints.indices.filter { c in run.circuits[0].steps.contains(checkpoints[c]) }
                guard let first = present.first, let last = present.last else { continue }
                func span(_ series: [Double]) -> (Double, Double) { (series[first], series[last]) }
                func cells(_ name: String) -> [Double]? {
                    guard let a = named[name] else { return nil }
                    return meanOverCells(a, run: r, type: y, k: k)
                }
                let q = span(queryCurve(query, run: r, type: y))
                let f = cells("faithfulness").map(span), e = cells("edge_entropy").map(span)
                let je = cells("jaccard_edges_initial").map(span), jn = cells("jaccard_nodes_initial").map(span)
                out.append("| \(type) | \(run.label) | \(checkpoints[first]) → \(checkpoints[last]) | \(pct(q.0)) → \(pct(q.1)) | "
                           + "\(f.map { "\(num($0.0)) → \(num($0.1))" } ?? "–") | \(je.map { num($0.1) } ?? "–") | \(jn.map { num($0.1) } ?? "–") | "
                           + "\(e.map { "\(num($0.0)) → \(num($0.1))" } ?? "–") |")
                ends.append((run.label, q.1, je?.1 ?? .nan))
            }
            if let none = ends.first, let most = ends.last, ends.count > 1 {
                sentences.append("**\(type)** circuits: at the end, the circuit without replay shares \(num(none.edges)) of its edges (Jaccard) "
                    + "with the initial one and the full model answers \(pct(none.query)) of the queries; with replay \(most.label), "
                    + "\(num(most.edges)) and \(pct(most.query)).")
            }
        }
        out.append("")
        for s in sentences { out.append(s); out.append("") }
        return out
    }
}
