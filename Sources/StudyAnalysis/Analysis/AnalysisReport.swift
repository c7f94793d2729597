import Foundation
import Support

/// report.md: the three findings as one sentence each with their numbers, the figures, the
/// tables behind the sentences, the cells the inputs lack, and the definitions used.
public enum AnalysisReport {
    public static func markdown(_ r: AnalysisResult, figures: [AnalysisFigure]) -> String {
        var out: [String] = []
        out.append("# Knowledge circuits across checkpoints")
        out.append("")
        out.append("Written by \(DKCVersion.source) on \(ISO8601DateFormatter().string(from: Date())).")
        out.append("")
        out.append("| input | source |")
        out.append("| --- | --- |")
        for path in [r.inputs.scores, r.inputs.circuits, r.inputs.acquisition].compactMap({ $0 }) {
            out.append("| `\(path)` | \(r.inputSources[path] ?? "unknown") |")
        }
        for path in r.inputs.notFound { out.append("| `\(path)` | not found: skipped |") }
        out.append("")
        out.append("Checkpoints: \(r.steps.count) (\(stepList(r.steps))). " +
                   (r.topn.map { "Circuits: the top-\($0) edges. " } ?? "") +
                   (r.tasks.isEmpty ? "" : "Tasks: \(r.tasks.joined(separator: ", ")). ") +
                   "Types: \(r.types.joined(separator: ", ")). Frequency buckets: \(r.frequencies.joined(separator: ", ")).")
        out.append("")
        out.append("## Findings")
        out.append("")
        func more(_ extra: String?...) -> String { extra.compactMap { $0 }.map { " " + $0 }.joined() }
        let finding1 = performanceSentence(r) + more(firstTokenSentence(r), querySentence(r))
        let finding2 = topologySentence(r) + more(similaritySentence(r), estimateSentence(r))
        let finding3 = componentSentence(r) + more(activationSentence(r))
        out.append("The study's three findings, checked on this run: (1) acquiring knowledge depends on its relevance to what " +
                   "the model knew (revised before new), (2) circuits first form, then optimise, (3) the circuit edges that matter " +
                   "move from deep to shallow layers. Each line says plainly where this run does not show one.")
        out.append("")
        out.append("1. **Performance.** " + finding1)
        out.append("2. **Topology.** " + finding2)
        out.append("3. **Components.** " + finding3)
        out.append("")
        if !r.notes.isEmpty {
            for note in r.notes { out.append("- Note: \(note)") }
            out.append("")
        }

        func embed(_ prefix: String) {
            for f in figures where f.file.hasPrefix(prefix) {
                out.append("![\(f.caption)](\(f.file))")
                out.append("")
                out.append("*\(f.caption)*")
                out.append("")
            }
        }
        func heading(_ title: String) {
            out.append(title)
            out.append("")
        }
        heading("## 1. Performance: knowledge acquisition")
        embed("acquisition_")
        out += thresholdTable(r)
        out += queryTable(r)
        out += firstTokenTable(r)
        out += crossFrequencyTable(r)
        heading("## 2. Topology: circuit similarity, entropy, faithfulness")
        embed("topology_")
        embed("faithfulness")
        embed("phase_shift")
        out += phaseTable(r)
        out += similarityTable(r)
        heading("## 3. Components: layers and heads")
        embed("components_")
        out += activationTable(r)
        out += layerTable(r)
        out += headTable(r)
        for section in r.reportSections {
            out += section
            out.append("")
        }
        if figures.contains(where: { $0.file.hasPrefix("final_circuit_") }) {
            heading("## Final circuits")
            embed("final_circuit_")
        }
        heading("## Missing cells")
        out += missingList(r)
        heading("## Definitions")
        out += definitions(r)
        return out.joined(separator: "\n") + "\n"
    }

    // MARK: - Sentences

    static func performanceSentence(_ r: AnalysisResult) -> String {
        let level = AnalysisFigures.percent(r.options.threshold)
        let (array, what): (LabeledArray?, String) = r.fullHitsAt10 != nil
            ? (r.fullHitsAt10, "full-model hits@10 (mean over buckets and attributes)")
            : (r.fullExactMatch, "full-model exact match (mean over buckets and attributes)")
        guard let array, array.hasValues else {
            guard let c = r.circuitHitsAt10, c.hasValues else { return "No acquisition data: acquisition.nc was not given." }
            return sentence(r, typesSeries: r.types.indices.map { y in
                r.steps.indices.map { i in CircuitMetrics.finiteMean(r.tasks.indices.flatMap { t in r.frequencies.indices.map { c[i, t, y, $0] } }) }
            }, what: "circuit hits@10 (mean over tasks and buckets)", level: level)
        }
        return sentence(r, typesSeries: r.types.indices.map { r.meanOverBuckets(array, type: $0) }, what: what, level: level)
    }

    /// "Revised knowledge reaches 50 % <what> at checkpoint step N, new knowledge at step M."
    static func sentence(_ r: AnalysisResult, typesSeries: [[Double]], what: String, level: String) -> String {
        var parts: [String] = []
        for (y, series) in typesSeries.enumerated() where series.contains(where: { !$0.isNaN }) {
            let type = r.types[y]
            let best = series.indices.filter { !series[$0].isNaN }.max { series[$0] < series[$1] }!
            if let step = r.firstStep(series) {
                parts.append(parts.isEmpty ? "\(capitalised(type)) knowledge reaches \(level) \(what) at checkpoint step \(step)"
                             : "\(type) knowledge at step \(step)")
            } else {
                let best = "best \(AnalysisFigures.percent(series[best])) at step \(r.steps[best])"
                parts.append(parts.isEmpty ? "\(capitalised(type)) knowledge never reaches \(level) \(what) (\(best))"
                             : "\(type) knowledge never does (\(best))")
            }
        }
        return parts.isEmpty ? "No acquisition values in the inputs." : parts.joined(separator: ", ") + "."
    }

    static func topologySentence(_ r: AnalysisResult) -> String {
        guard !r.phaseShiftByType.isEmpty else { return "No circuits to compare: circuits.nc was not given or holds no cells." }
        let spacing = r.steps.count > 1 ? Double(r.steps.last! - r.steps.first!) / Double(r.steps.count - 1) : 1
        var shifts: [String] = [], nones: [String] = []
        for type in r.types {
            guard let fit = r.phaseShiftByType[type] else { continue }
            if fit.isShift, let x = fit.breakX {
                shifts.append("at checkpoint step \(Int64(x)) for \(type) knowledge (similarity to the final circuit rises " +
                              String(format: "%.3f per checkpoint before and %.3f after; two segments lower the error by %.0f %%)",
                                     fit.slopeBefore * spacing, fit.slopeAfter * spacing, 100 * fit.improvement))
            } else {
                nones.append("\(type) knowledge: \(fit.reasonNone ?? "no break")")
            }
        }
        let curve = "two-segment fit of the similarity to the final circuit, mean over tasks and buckets"
        if shifts.isEmpty {
            return "No phase shift from circuit formation to optimisation is found (\(curve)): " + nones.joined(separator: "; ") + "."
        }
        return "The phase shift from circuit formation to optimisation (\(curve)) comes " + shifts.joined(separator: "; ") +
            (nones.isEmpty ? "" : "; none for " + nones.joined(separator: "; ")) + "."
    }

    static func componentSentence(_ r: AnalysisResult) -> String {
        let weighted = r.meanLayerAll != nil && r.meanLayerAll!.hasValues
        guard let mean = weighted ? r.meanLayerAll : r.meanLayerByCountAll, mean.hasValues else {
            return "No circuits to analyse: circuits.nc was not given or holds no cells."
        }
        let present = mean.values.indices.filter { !mean.values[$0].isNaN }
        let first = present.first!, last = present.last!
        let a = mean.values[first], b = mean.values[last]
        let what = weighted ? "The |score|-weighted mean layer of circuit edges" : "The mean layer of circuit edges"
        var s: String
        if first == last {
            s = "\(what) is " + String(format: "%.2f", a) + " at the only checkpoint (step \(r.steps[first])), no trend to see"
        } else {
            let direction = b < a - 0.05 ? "falls" : b > a + 0.05 ? "rises" : "stays"
            s = "\(what) \(direction) from " + String(format: "%.2f", a) + " at step \(r.steps[first]) to " +
                String(format: "%.2f", b) + " at step \(r.steps[last])"
            s += direction == "falls" ? " (a deep-to-shallow shift)" : direction == "rises" ? " (no deep-to-shallow shift)" : " (no shift)"
        }
        let ranked = r.headsByPresence()
        let always = ranked.filter { $0.presence >= 1 }
        if always.count > 1 {
            s += "; \(always.count) heads are in the circuit at every checkpoint of every cell (" +
                always.prefix(6).map(\.name).joined(separator: ", ") + (always.count > 6 ? ", …)" : ")")
        } else {
            let heads = ranked.filter { $0.presence >= 0.5 }.prefix(5)
            if !heads.isEmpty {
                s += "; the heads in most checkpoints' circuits are " +
                    heads.map { "\($0.name) (\(AnalysisFigures.percent($0.presence)))" }.joined(separator: ", ")
            }
        }
        return s + "."
    }

    /// First-token accuracy of the last stage: new vs revised at its last evaluation (nil without metrics).
    static func firstTokenSentence(_ r: AnalysisResult) -> String? {
        guard let log = r.firstToken.last(where: { !$0.steps.isEmpty }) else { return nil }
        var parts: [String] = []
        for type in log.types {
            guard let series = log.overall[type], let i = series.lastIndex(where: { !$0.isNaN }) else { continue }
            let best = series.indices.filter { !series[$0].isNaN }.max { series[$0] < series[$1] }!
            parts.append("\(type) \(AnalysisFigures.percent(series[i])) at step \(log.steps[i]) (best \(AnalysisFigures.percent(series[best])))")
        }
        guard !parts.isEmpty else { return nil }
        var s = "First-token accuracy on the validation texts at the last evaluation of the \(log.stage) stage: " + parts.joined(separator: ", ")
        if let n = log.overall["new"]?.last(where: { !$0.isNaN }), let v = log.overall["revised"]?.last(where: { !$0.isNaN }) {
            s += abs(v - n) < 0.02 ? " — no difference between new and revised knowledge in this run"
                : v > n ? " — revised knowledge (related to what the model knew) is ahead" : " — new knowledge is ahead, unlike the study"
        }
        return s + "."
    }

    /// Query accuracy at the last checkpoint, new vs revised and by bucket.
    static func querySentence(_ r: AnalysisResult) -> String? {
        guard let a = r.fullQueryAccuracy, a.hasValues,
              let c = r.steps.indices.last(where: { c in r.types.indices.contains { y in r.frequencies.indices.contains { !a[c, y, $0].isNaN } } })
        else { return nil }
        var parts: [String] = []
        for (y, type) in r.types.enumerated() {
            let byBucket = r.frequencies.indices.compactMap { f in a[c, y, f].isNaN ? nil : "\(r.frequencies[f]) \(AnalysisFigures.percent(a[c, y, f]))" }
            if !byBucket.isEmpty { parts.append("\(type) " + byBucket.joined(separator: ", ")) }
        }
        var s = "Query accuracy at step \(r.steps[c]): " + parts.joined(separator: "; ")
        if let n = r.types.firstIndex(of: "new"), let v = r.types.firstIndex(of: "revised") {
            let mn = CircuitMetrics.finiteMean(r.frequencies.indices.map { a[c, n, $0] })
            let mv = CircuitMetrics.finiteMean(r.frequencies.indices.map { a[c, v, $0] })
            if mn.isFinite && mv.isFinite {
                s += abs(mv - mn) < 0.02 ? " (new and revised alike: the run does not show the relevance effect)"
                    : mv > mn ? " (revised ahead of new by \(AnalysisFigures.percent(mv - mn)) on average over buckets)"
                    : " (new ahead of revised: unlike the study)"
            }
        }
        if let t = r.testSet { s += "; test people: \(t == "circuit" ? "the circuit people" : t == "independent" ? "independent of the circuit people" : t)" }
        return s + "."
    }

    /// Node and edge similarity to the final circuit at the first checkpoint, and entropy trend.
    static func similaritySentence(_ r: AnalysisResult) -> String? {
        guard let e = r.jaccardFinal, let n = r.jaccardNodesFinal, e.hasValues, r.steps.count > 1 else { return nil }
        func firstMean(_ a: LabeledArray) -> (Int, Double)? {
            for c in r.steps.indices {
                let m = CircuitMetrics.finiteMean(r.cells.map { a[c, $0.task, $0.type, $0.frequency] })
                if !m.isNaN { return (c, m) }
            }
            return nil
        }
        guard let (c, je) = firstMean(e), let (_, jn) = firstMean(n) else { return nil }
        var s = "At step \(r.steps[c]) the circuits share " + String(format: "%.2f", jn) + " (Jaccard) of their node sets and " +
            String(format: "%.2f", je) + " of their edge sets with the final circuits (mean over cells)"
        s += jn > je + 0.05 ? ": the nodes settle before the edges." : "."
        if let h = r.edgeEntropy, h.hasValues {
            let series = r.steps.indices.map { c in CircuitMetrics.finiteMean(r.cells.map { h[c, $0.task, $0.type, $0.frequency] }) }
            if let a = series.firstIndex(where: { !$0.isNaN }), let b = series.lastIndex(where: { !$0.isNaN }), a != b {
                let d = series[b] - series[a]
                s += " Edge entropy " + (d < -0.01 ? "falls" : d > 0.01 ? "rises" : "stays flat") + " from " + String(format: "%.3f", series[a]) +
                    " to " + String(format: "%.3f", series[b]) + " nats" + (d < -0.01 ? " (fewer edges carry the score: optimisation)." : " (no sign of optimisation).")
            }
        }
        return s
    }

    /// dkc's break estimate per type on the two curves without a reference point.
    static func estimateSentence(_ r: AnalysisResult) -> String? {
        guard !r.phaseShiftEstimates.isEmpty else { return nil }
        var parts: [String] = []
        for type in r.types {
            guard let list = r.phaseShiftEstimates[type] else { continue }
            for e in list {
                let curve = e.curve == "previous" ? "similarity to the previous checkpoint" : "similarity to the final circuit without the final checkpoint"
                if e.supported {
                    parts.append("\(type), \(curve): break at step \(Int64(e.step)) (bootstrap over \(e.cells) cells: 90 % range " +
                                 "\(Int64(e.low))–\(Int64(e.high)), found by \(AnalysisFigures.percent(e.bootstrapShare)) of resamples)")
                } else {
                    parts.append("\(type), \(curve): not supported (\(e.reasonNone ?? "no break"))")
                }
            }
        }
        guard !parts.isEmpty else { return nil }
        return "dkc's own break estimate (not in the study; curves with no reference point, bootstrap over cells): " + parts.joined(separator: "; ") + "."
    }

    /// Where the activated edges sit along the depth at the first and last checkpoint.
    static func activationSentence(_ r: AnalysisResult) -> String? {
        guard let all = r.edgeActivationRatioAll, all.hasValues else { return nil }
        let nP = all.shape[1]
        let centres = r.steps.indices.map { c in CircuitMetrics.ratioCentre((0..<nP).map { all[c, $0] }) }
        guard let a = centres.firstIndex(where: { !$0.isNaN }), let b = centres.lastIndex(where: { !$0.isNaN }) else { return nil }
        func row(_ c: Int) -> String { (0..<nP).map { String(format: "%.2f", all[c, $0]) }.joined(separator: "/") }
        var s = "Edge activation ratio by parent layer 0…\(nP - 1) (mean over cells): \(row(a)) at step \(r.steps[a])"
        guard a != b else { return s + " (one checkpoint: no trend)." }
        s += " and \(row(b)) at step \(r.steps[b]); its depth centre Σℓ·r/Σr moves from " + String(format: "%.2f", centres[a]) +
            " to " + String(format: "%.2f", centres[b])
        let d = centres[b] - centres[a]
        s += d < -0.05 ? " (deep to shallow, as in the study)." : d > 0.05 ? " (shallow to deep: the run does not show the study's shift)."
            : " (no shift in this run)."
        return s
    }

    // MARK: - Tables

    static func queryTable(_ r: AnalysisResult) -> [String] {
        guard let q = r.queryAccuracyByAttribute, q.hasValues, let c = r.steps.indices.last(where: { c in
            r.attributes.indices.contains { a in r.types.indices.contains { y in r.frequencies.indices.contains { !q[c, a, y, $0].isNaN } } } })
        else { return [] }
        let em = r.exactMatchByAttribute
        var out = ["Query accuracy (exact match) per attribute at step \(r.steps[c])" +
                   (r.testSet.map { "; acquisition.nc test_set = \($0)" } ?? "") + ":", "",
                   "| type | bucket | " + r.attributes.joined(separator: " | ") + " |",
                   "| --- | --- |" + String(repeating: " --- |", count: r.attributes.count)]
        for y in r.types.indices {
            for f in r.frequencies.indices {
                let cells = r.attributes.indices.map { a in "\(pct(q[c, a, y, f])) (\(em.map { pct($0[c, a, y, f]) } ?? "—"))" }
                out.append("| \(r.types[y]) | \(r.frequencies[f]) | " + cells.joined(separator: " | ") + " |")
            }
        }
        return out + [""]
    }

    static func firstTokenTable(_ r: AnalysisResult) -> [String] {
        let logs = r.firstToken.filter { !$0.steps.isEmpty }
        guard !logs.isEmpty else { return [] }
        var out = ["First-token accuracy (metrics.jsonl evaluation lines) at the first and last evaluation of each stage:", "",
                   "| stage | type | attribute | first (step) | last (step) | best |", "| --- | --- | --- | --- | --- | --- |"]
        func cells(_ series: [Double], _ steps: [Int64]) -> String? {
            guard let a = series.firstIndex(where: { !$0.isNaN }), let b = series.lastIndex(where: { !$0.isNaN }) else { return nil }
            let best = series.filter { !$0.isNaN }.max()!
            return "\(pct(series[a])) (\(steps[a])) | \(pct(series[b])) (\(steps[b])) | \(pct(best))"
        }
        for log in logs {
            for type in log.types {
                if let c = cells(log.overall[type] ?? [], log.steps) { out.append("| \(log.stage) | \(type) | all | \(c) |") }
                for a in log.attributes {
                    if let c = cells(log.byAttribute[type]?[a] ?? [], log.steps) { out.append("| \(log.stage) | \(type) | \(a) | \(c) |") }
                }
            }
        }
        return out + [""]
    }

    static func crossFrequencyTable(_ r: AnalysisResult) -> [String] {
        guard let a = r.crossFrequencyBySource, a.hasValues,
              let c = r.steps.indices.last(where: { c in r.frequencies.indices.contains { f in r.frequencies.indices.contains { !a[c, f, $0].isNaN } } })
        else { return [] }
        var out = ["Cross-frequency circuit hits@10 at step \(r.steps[c]) (rows: the bucket whose circuit is tested; columns: the bucket " +
                   "of the test entities; target type = source type, mean over tasks and types):", "",
                   "| circuit of | " + r.frequencies.joined(separator: " | ") + " |",
                   "| --- |" + String(repeating: " --- |", count: r.frequencies.count)]
        for (f, source) in r.frequencies.enumerated() {
            out.append("| \(source) | " + r.frequencies.indices.map { pct(a[c, f, $0]) }.joined(separator: " | ") + " |")
        }
        return out + [""]
    }

    static func similarityTable(_ r: AnalysisResult) -> [String] {
        guard let e = r.jaccardFinal, let n = r.jaccardNodesFinal, let np = r.jaccardNodesPrevious, e.hasValues else { return [] }
        var out = ["Similarity per checkpoint, mean over cells (node sets include logits; \"previous\" is dkc's own addition):", "",
                   "| step | edges vs final | nodes vs final | nodes vs previous |", "| --- | --- | --- | --- |"]
        for c in r.steps.indices {
            func m(_ a: LabeledArray) -> Double { CircuitMetrics.finiteMean(r.cells.map { a[c, $0.task, $0.type, $0.frequency] }) }
            out.append("| \(r.steps[c]) | \(num(m(e))) | \(num(m(n))) | \(num(m(np))) |")
        }
        return out + [""]
    }

    static func activationTable(_ r: AnalysisResult) -> [String] {
        guard let all = r.edgeActivationRatioAll, all.hasValues, !r.edgesByParentLayer.isEmpty else { return [] }
        let nP = all.shape[1]
        var out = ["Edge activation ratio per parent layer (input in layer 0), \(r.topn.map { "top-\($0)" } ?? "analysed top-n"), mean over cells; " +
                   "graph edges per layer: \(r.edgesByParentLayer.map { String(Int($0)) }.joined(separator: ", ")):", "",
                   "| step | " + (0..<nP).map { "L\($0)" }.joined(separator: " | ") + " | centre |",
                   "| --- |" + String(repeating: " --- |", count: nP + 1)]
        for c in r.steps.indices {
            let row = (0..<nP).map { all[c, $0] }
            guard row.contains(where: { !$0.isNaN }) else { continue }
            out.append("| \(r.steps[c]) | " + row.map(num).joined(separator: " | ") + " | \(num(CircuitMetrics.ratioCentre(row))) |")
        }
        return out + [""]
    }

    static func thresholdTable(_ r: AnalysisResult) -> [String] {
        guard r.fullHitsAt10 != nil || r.fullExactMatch != nil || r.circuitHitsAt10 != nil else { return [] }
        var out = ["First checkpoint step reaching \(AnalysisFigures.percent(r.options.threshold)) (— never), and the value at the last checkpoint:", "",
                   "| type | bucket | full hits@10 | full exact match | circuit hits@10 |", "| --- | --- | --- | --- | --- |"]
        func cell(_ series: [Double]?) -> String {
            guard let series, let last = series.lastIndex(where: { !$0.isNaN }) else { return "n/a" }
            let first = r.firstStep(series).map(String.init) ?? "—"
            return "\(first) (\(AnalysisFigures.percent(series[last])))"
        }
        for y in r.types.indices {
            for f in r.frequencies.indices {
                let full = r.fullHitsAt10.map { $0.series(y, f) }, em = r.fullExactMatch.map { $0.series(y, f) }
                let circuit = r.circuitHitsAt10.map { r.meanOverTasks($0, type: y, frequency: f) }
                out.append("| \(r.types[y]) | \(r.frequencies[f]) | \(cell(full)) | \(cell(em)) | \(cell(circuit)) |")
            }
        }
        return out + [""]
    }

    static func phaseTable(_ r: AnalysisResult) -> [String] {
        guard !r.phaseShift.isEmpty || !r.phaseShiftByType.isEmpty else { return [] }
        var out = ["Phase shift of the similarity-to-final curve (slopes per training step; RMSE of the two-segment fit):", "",
                   "| curve | points | phase shift | best break | improvement | needed | p | RMSE | slope before | slope after |",
                   "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        func row(_ name: String, _ fit: PhaseShiftFit) -> String {
            let shift = fit.isShift ? "step \(Int64(fit.breakX!))" : "none: \(fit.reasonNone ?? "")"
            return "| \(name) | \(fit.n) | \(shift) | \(fit.breakX.map { String(Int64($0)) } ?? "—") | \(pct(fit.improvement)) | " +
                "\(pct(fit.threshold)) | \(num(fit.pValue)) | \(num(fit.rmseTwoSegments)) | \(num(fit.slopeBefore)) | \(num(fit.slopeAfter)) |"
        }
        for type in r.types { if let fit = r.phaseShiftByType[type] { out.append(row("\(type) (mean)", fit)) } }
        for cell in r.phaseShift.keys.sorted() { out.append(row(r.label(cell), r.phaseShift[cell]!)) }
        return out + [""]
    }

    static func layerTable(_ r: AnalysisResult) -> [String] {
        guard let m = r.meanLayerByBucket, m.hasValues else { return [] }
        var out = ["Mean upstream layer (embed = −1)\(r.meanLayer != nil ? ", |score|-weighted" : "") at the first and last checkpoint present:", "",
                   "| type | bucket | first | last | change |", "| --- | --- | --- | --- | --- |"]
        for y in r.types.indices {
            for f in r.frequencies.indices {
                let s = m.series(y, f)
                guard let a = s.firstIndex(where: { !$0.isNaN }), let b = s.lastIndex(where: { !$0.isNaN }) else { continue }
                out.append("| \(r.types[y]) | \(r.frequencies[f]) | \(num(s[a])) (step \(r.steps[a])) | \(num(s[b])) (step \(r.steps[b])) | " +
                           String(format: "%+.3f", s[b] - s[a]) + " |")
            }
        }
        return out + [""]
    }

    static func headTable(_ r: AnalysisResult) -> [String] {
        let heads = r.headsByPresence().prefix(15)
        guard !heads.isEmpty else { return [] }
        var out = ["Heads most often in the circuits (presence: share of a cell's checkpoints whose circuit contains the head, mean over cells):", "",
                   "| head | presence | cells where always present |", "| --- | --- | --- |"]
        for h in heads { out.append("| \(h.name) | \(AnalysisFigures.percent(h.presence)) | \(h.alwaysIn) of \(h.cells) |") }
        return out + [""]
    }

    static func missingList(_ r: AnalysisResult) -> [String] {
        guard !r.missing.isEmpty else { return ["None: every input holds every cell of its grid at every checkpoint.", ""] }
        var out = ["Cells an input lacks (skipped in every number above):", ""]
        var files: [String] = []
        for m in r.missing where !files.contains(m.file) { files.append(m.file) }
        for file in files {
            let rows = r.missing.filter { $0.file == file }
            var steps: [Int64] = []
            for m in rows where !steps.contains(m.step) { steps.append(m.step) }
            out.append("- `\(file)`: \(rows.count) cell(s)")
            for step in steps {
                let cells = rows.filter { $0.step == step }.map(\.cell)
                out.append("  - step \(step): \(cells.joined(separator: ", "))")
            }
        }
        return out + [""]
    }

    static func definitions(_ r: AnalysisResult) -> [String] {
        let o = r.options
        return [
            "- Full-model curves: acquisition.nc's `exact_match` and `hits_at_10`, mean over the attributes " +
                "\(r.attributes.isEmpty ? "(none)" : r.attributes.joined(separator: ", ")). Circuit hits@10: circuits.nc's " +
                "`hits_at_10` at top-\(r.topn.map(String.init) ?? "n") with the target type and bucket equal to the cell's own.",
            "- A cell's circuit is its edge set (`in_circuit` = 1) at that top-n. Its final circuit is the one at the last checkpoint " +
                "where the cell is present; the previous circuit is the one at the nearest earlier checkpoint present. Jaccard " +
                "similarity |A ∩ B| / |A ∪ B| (undefined, left empty, when both are empty). Curves over tasks are means of the present cells.",
            "- Edge entropy: circuits.nc's `edge_entropy` (−Σ p ln p with p = |score| / Σ|score| over the circuit's edges), " +
                "computed from scores.nc where circuits.nc lacks it.",
            "- Phase shift: continuous two-segment least-squares fit y = a + b·x + c·max(0, x − x_k), x = training step, with every " +
                "interior checkpoint tried as x_k. None when fewer than \(PhaseShift.minimumPoints) points, when one line fits " +
                "exactly, or when two segments lower the SSE of one line by less than max(\(pct(o.phaseMinImprovement)), the " +
                "\(pct(o.phaseConfidence)) quantile of the same improvement for a straight line plus Gaussian noise at the same " +
                "checkpoints, from \(o.phaseSimulations) seeded draws).",
            "- Phase-shift estimate (dkc's own addition): the same hinge fit on the mean over a type's cells of (a) similarity to the final " +
                "circuit without the final checkpoint, which is 1 by construction, and (b) similarity to the previous checkpoint; " +
                "\(o.phaseResamples) seeded bootstrap resamples of the cells give the 5–95 % range of the break. Supported only when the " +
                "mean curve passes the fit's test and at least \(pct(o.phaseMinSupport)) of the resamples find a break too.",
            "- Layers: an edge belongs to the layer of its upstream node; `input` (the token embedding) is layer −1 (\"embed\"), " +
                "heads aℓ.hh and MLPs mℓ layer ℓ. Shares are over the circuit's edges (count) and over their |score| (mass); the mean " +
                "layer is Σ|s|·layer / Σ|s|. Aggregates over cells add counts and masses before dividing.",
            "- Node presence: a node is in a circuit when it touches one of its edges (as parent, or as the node a child input belongs to).",
            "- Node-set Jaccard: the node set is every endpoint of a kept edge plus `logits` (as the study's notebook counts it after " +
                "reading the saved graph back). Similarity to the previous checkpoint is dkc's own addition.",
            "- Edge activation ratio (the study's): per parent layer ℓ, kept edges whose parent lies in ℓ ÷ all edges of the full graph " +
                "whose parent lies in ℓ, `input` counted in layer 0 (closed forms in docs/analyze.md), at every top-n of circuits.nc; " +
                "the depth centre is Σℓ·r_ℓ / Σr_ℓ.",
            "- Cross-frequency circuit hits@10: circuits.nc's `hits_at_10` of a cell's circuit with target type = the cell's type and " +
                "every target bucket; the figure per target bucket averages over tasks and the two types.",
            "- First-token accuracy: the stages' metrics.jsonl evaluation lines (`eval_first_token_accuracy_<type>` and `_<type>_<attribute>`), " +
                "by optimizer step within the stage, not on the checkpoint axis.",
            "- Heat maps of final circuits: task \(o.heatmapTask ?? "(first)"), bucket \(o.heatmapFrequency ?? "(high, else first)"), one per type; " +
                "colour = signed edge score, grey = edges of the graph outside the circuit, white = not an edge.",
        ] + [""]
    }

    // MARK: - Formatting

    static func stepList(_ steps: [Int64]) -> String {
        guard steps.count > 6 else { return "steps " + steps.map(String.init).joined(separator: ", ") }
        return "steps \(steps[0]), \(steps[1]), …, \(steps[steps.count - 1])"
    }

    static func pct(_ x: Double) -> String { x.isNaN ? "—" : String(format: "%.1f %%", 100 * x) }

    static func num(_ x: Double) -> String {
        guard !x.isNaN else { return "—" }
        return abs(x) >= 0.001 || x == 0 ? String(format: "%.3f", x) : String(format: "%.2e", x)
    }

    static func capitalised(_ s: String) -> String { s.prefix(1).uppercased() + s.dropFirst() }
}
