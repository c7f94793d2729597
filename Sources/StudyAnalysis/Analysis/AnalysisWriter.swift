import Foundation
import Support
import Numerics
import Results

/// Writes analysis.nc: every series of an `AnalysisResult` with named dimensions, so
/// `xarray.open_dataset("analysis.nc").jaccard_final.sel(task="city", type="new")` works.
///
/// Dimensions: `checkpoint` (step, int64), `task`, `type`, `frequency` (string coordinates),
/// `layer` (int64: −1 = embed, 0 … L−1, with `layer_name`), `node` (upstream node names).
/// Float variables are double with `_FillValue` NaN; a variable whose part of the analysis was
/// skipped is absent. Global attributes as docs/outputs.md requires of every file.
public enum AnalysisWriter {
    /// One variable to write: name, dimensions, values (C order), and its attributes.
    struct Variable {
        let name: String
        let dimensions: [String]
        let values: [Double]
        let longName: String
        let units: String
        var extra: [(String, String)] = []
    }

    public static func write(_ r: AnalysisResult, to url: URL, commandLine: String) throws {
        let axes = Axes(r)
        var variables = seriesVariables(r) + firstTokenVariables(r, axes) + phaseShiftVariables(r) + thresholdVariables(r)
            + componentVariables(r)
        let lengths = dimensionLengths(r, axes)
        // A zero-length dimension would be unlimited in NetCDF: drop variables over one.
        variables = variables.filter { v in v.dimensions.allSatisfy { (lengths[$0] ?? 0) > 0 } }
        let used = Set(variables.flatMap(\.dimensions)).union(["checkpoint"])

        do {
            try NetCDFFile.writeAtomically(to: url) { file in
                try defineCoordinates(file, used: used, lengths: lengths)
                for v in variables {
                    try file.addVariable(v.name, type: .double, dimensions: v.dimensions,
                                         compression: NetCDFCompression(level: 2, shuffle: true), fill: .nan)
                    try file.setAttribute("long_name", v.longName, on: v.name)
                    try file.setAttribute("units", v.units, on: v.name)
                    for (key, value) in v.extra { try file.setAttribute(key, value, on: v.name) }
                }
                try globalAttributes(file, r, commandLine: commandLine)
                try writeCoordinates(file, r, axes, used: used)
                for v in variables { try file.write(v.values, to: v.name) }
            }
        } catch let error as AnalysisError {
            throw error
        } catch {
            throw AnalysisError.output(path: url.path, problem: "\(error)")
        }
    }

    /// Variables being collected; `add` skips a series that was not computed.
    struct VariableList {
        private(set) var variables: [Variable] = []

        mutating func add(_ name: String, _ array: LabeledArray?, _ longName: String, _ units: String = "1", _ extra: [(String, String)] = []) {
            guard let array else { return }
            variables.append(Variable(name: name, dimensions: array.dimensions, values: array.values,
                                      longName: longName, units: units, extra: extra))
        }

        mutating func append(_ variable: Variable) { variables.append(variable) }

        static func += (list: inout VariableList, more: [Variable]) { list.variables += more }
    }

    /// The axes that are not the result's own: the first-token evaluations of every stage one after
    /// another, and one `attribute` axis (acquisition.nc's attributes, then any only metrics.jsonl names).
    struct Axes {
        let evaluations: [(stage: String, step: Int64)]
        let attributes: [String]

        init(_ r: AnalysisResult) {
            evaluations = r.firstToken.flatMap { log in log.steps.map { (log.stage, $0) } }
            var attributes = r.attributes
            for log in r.firstToken { for a in log.attributes where !attributes.contains(a) { attributes.append(a) } }
            self.attributes = attributes
        }
    }

    /// The series over checkpoints and cells: acquisition, circuits, topology, layers, cross-frequency tests.
    static func seriesVariables(_ r: AnalysisResult) -> [Variable] {
        var list = VariableList()
        let mean = [("cell_methods", "attribute: mean")]
        list.add("full_exact_match", r.fullExactMatch, "full-model exact match of greedy decoding, mean over attributes", "1", mean)
        list.add("full_hits_at_10", r.fullHitsAt10, "full-model share of test entities whose label ranks in the top 10, mean over attributes", "1", mean)
        list.add("full_hits_at_1", r.fullHitsAt1, "full-model share of test entities whose label ranks first, mean over attributes", "1", mean)
        list.add("full_query_accuracy", r.fullQueryAccuracy,
            "full-model query accuracy (prediction equals the answer or is a substring of it), mean over attributes", "1", mean)
        list.add("query_accuracy_by_attribute", r.queryAccuracyByAttribute, "full-model query accuracy per attribute")
        list.add("exact_match_by_attribute", r.exactMatchByAttribute, "full-model exact match of greedy decoding per attribute")
        list.add("entity_heatmap", r.entityHeatmap, "correct query answers per group of 5 results in file order (the study's per-entity heat map)",
            "1", [("comment", "N >= 1000 results: items floor(j*N/1000), j = 0..999, groups of 5 -> 200 cells; " +
                   "N < 1000: every result once, groups of 5 -> ceil(N/5) cells; NaN: not computed")])
        list.add("circuit_hits_at_10", r.circuitHitsAt10, "hits@10 of the circuit on its own cell's test entities (zero-ablated)")
        list.add("faithfulness", r.faithfulness, "circuit faithfulness (circuit - corrupted) / (clean - corrupted)")
        list.add("edge_entropy", r.edgeEntropy, "entropy of |score| over the circuit's edges", "nat")
        list.add("n_edges", r.nEdges, "edges in the circuit after pruning")
        list.add("jaccard_final", r.jaccardFinal, "Jaccard similarity of the circuit's edge set with the cell's final circuit")
        list.add("jaccard_previous", r.jaccardPrevious, "Jaccard similarity of the circuit's edge set with the previous checkpoint's present")
        list.add("edge_share", r.edgeShare, "share of the circuit's edges whose upstream node lies in the layer")
        list.add("score_share", r.scoreShare, "share of the circuit's |score| mass on edges whose upstream node lies in the layer")
        list.add("mean_layer", r.meanLayer, "|score|-weighted mean layer of the circuit edges' upstream nodes (embed = -1)")
        list.add("mean_layer_by_count", r.meanLayerByCount, "mean layer of the circuit edges' upstream nodes (embed = -1)")
        list.add("mean_layer_by_bucket", r.meanLayerByBucket, "mean upstream layer over the circuits of every task (|score|-weighted when scores exist)")
        list.add("edge_share_all", r.edgeShareAll, "share of all circuits' edges by upstream layer")
        list.add("score_share_all", r.scoreShareAll, "share of all circuits' |score| mass by upstream layer")
        list.add("mean_layer_all", r.meanLayerAll, "|score|-weighted mean upstream layer over all circuits (embed = -1)")
        list.add("mean_layer_by_count_all", r.meanLayerByCountAll, "mean upstream layer over all circuits' edges (embed = -1)")
        list.add("node_presence", r.nodePresence, "share of the cell's checkpoints whose circuit contains the node")
        list.add("jaccard_final_by_type", r.jaccardFinalByType, "similarity to the final circuit, mean over tasks and buckets")
        list.add("edge_activation_ratio", r.edgeActivationRatio,
            "kept edges whose parent lies in the layer / all graph edges whose parent lies there (input in layer 0)", "1",
            [("comment", "the study's edge activation ratio (docs/analyze.md); every top-n of circuits.nc")])
        list.add("edges_in_circuit_by_parent_layer", r.edgesInCircuitByParentLayer, "kept edges whose parent lies in the layer (input in layer 0)")
        if !r.edgesByParentLayer.isEmpty {
            list.add("edges_by_parent_layer", LabeledArray(dimensions: ["parent_layer"], shape: [r.edgesByParentLayer.count], values: r.edgesByParentLayer),
                "edges of the full graph whose parent lies in the layer (input in layer 0)")
        }
        list.add("edge_activation_ratio_all", r.edgeActivationRatioAll, "edge activation ratio at the analysed top-n, mean over every cell present")
        list.add("jaccard_nodes_final", r.jaccardNodesFinal,
            "Jaccard similarity of the circuit's node set (endpoints of kept edges plus logits) with the cell's final circuit's")
        list.add("jaccard_nodes_previous", r.jaccardNodesPrevious,
            "Jaccard similarity of the circuit's node set with the previous checkpoint's present", "1",
            [("comment", "dkc's own addition; the study compares with the final circuit only")])
        list.add("jaccard_initial", r.jaccardInitial, "Jaccard similarity of the circuit's edge set with the cell's initial (first present) circuit")
        list.add("jaccard_nodes_initial", r.jaccardNodesInitial,
            "Jaccard similarity of the circuit's node set with the cell's initial (first present) circuit's")
        list.add("cross_frequency_hits_at_10", r.crossFrequencyHitsAt10,
            "hits@10 of the (frequency) cell's circuit on test entities of the target bucket, target type = the cell's type")
        list.add("cross_frequency_hits_at_10_by_source", r.crossFrequencyBySource,
            "cross-frequency circuit hits@10, mean over tasks and types (the study's figure: mean over the two types)")
        return list.variables
    }

    /// First-token accuracy along `evaluation` (the stages' metrics.jsonl), pooled and per attribute.
    static func firstTokenVariables(_ r: AnalysisResult, _ axes: Axes) -> [Variable] {
        let evaluations = axes.evaluations, ftAttributes = axes.attributes
        guard !evaluations.isEmpty else { return [] }
        var list = VariableList()
        var overall = LabeledArray(dimensions: ["evaluation", "type"], shape: [evaluations.count, r.types.count])
        var split = LabeledArray(dimensions: ["evaluation", "type", "attribute"], shape: [evaluations.count, r.types.count, ftAttributes.count])
        var i0 = 0
        for log in r.firstToken {
            for (y, type) in r.types.enumerated() {
                for i in log.steps.indices {
                    overall[i0 + i, y] = log.overall[type]?[i] ?? .nan
                    for (a, attribute) in ftAttributes.enumerated() { split[i0 + i, y, a] = log.byAttribute[type]?[attribute]?[i] ?? .nan }
                }
            }
            i0 += log.steps.count
        }
        let source = [("comment", "from the stages' metrics.jsonl evaluation lines; x axis evaluation_step, not the checkpoint axis")]
        list.add("first_token_accuracy", overall, "first-token attribute accuracy on the validation texts, pooled over attributes", "1", source)
        list.add("first_token_accuracy_by_attribute", split, "first-token attribute accuracy on the validation texts, per attribute", "1", source)
        return list.variables
    }

    /// The phase shift per cell and per type (the study's two-segment fit), and dkc's estimate per type
    /// × similarity curve.
    static func phaseShiftVariables(_ r: AnalysisResult) -> [Variable] {
        var list = VariableList()
        let cellShape = [r.tasks.count, r.types.count, r.frequencies.count]
        if !r.phaseShift.isEmpty {
            var fits = [PhaseShiftFit?](repeating: nil, count: cellShape.reduce(1, *))
            for (cell, fit) in r.phaseShift { fits[(cell.task * r.types.count + cell.type) * r.frequencies.count + cell.frequency] = fit }
            list += phaseVariables(fits, dimensions: ["task", "type", "frequency"], suffix: "")
            var final = [Double](repeating: .nan, count: fits.count)
            for (cell, step) in r.finalStep { final[(cell.task * r.types.count + cell.type) * r.frequencies.count + cell.frequency] = Double(step) }
            list.append(Variable(name: "final_step", dimensions: ["task", "type", "frequency"], values: final,
                                 longName: "step of the checkpoint whose circuit is the cell's final one", units: "1"))
        }
        if !r.phaseShiftByType.isEmpty {
            list += phaseVariables(r.types.map { r.phaseShiftByType[$0] }, dimensions: ["type"], suffix: "_by_type")
        }

        // dkc's phase-shift estimate, per type × similarity curve.
        if !r.phaseShiftEstimates.isEmpty {
            let curves = PhaseShiftEstimator.curves
            func v(_ name: String, _ longName: String, _ value: (PhaseShiftEstimate) -> Double) {
                var values: [Double] = []
                for type in r.types {
                    let list = r.phaseShiftEstimates[type]
                    for k in curves.indices { values.append(list.map { value($0[k]) } ?? .nan) }
                }
                list.append(Variable(name: name, dimensions: ["type", "similarity_curve"], values: values, longName: longName,
                                     units: "1", extra: [("comment", "dkc's own addition; docs/analyze.md")]))
            }
            v("phase_estimate_step", "checkpoint step of a supported break (NaN: not supported)") { $0.step }
            v("phase_estimate_candidate_step", "best break of the mean curve, supported or not") { $0.fit.breakX ?? .nan }
            v("phase_estimate_supported", "1 when the break is supported (fit test passed and enough bootstrap resamples agree), else 0") {
                $0.supported ? 1 : 0
            }
            v("phase_estimate_bootstrap_share", "share of bootstrap resamples over cells whose fit finds a break") { $0.bootstrapShare }
            v("phase_estimate_step_low", "5th percentile of the break step over bootstrap resamples with a break") { $0.low }
            v("phase_estimate_step_high", "95th percentile of the break step over bootstrap resamples with a break") { $0.high }
            v("phase_estimate_improvement", "relative SSE improvement of two segments over one on the mean curve") { $0.fit.improvement }
            v("phase_estimate_threshold", "improvement needed") { $0.fit.threshold }
            v("phase_estimate_cells", "cells averaged and resampled") { Double($0.cells) }
        }
        return list.variables
    }

    /// The first checkpoint step at which a curve reaches the threshold, per type × bucket.
    static func thresholdVariables(_ r: AnalysisResult) -> [Variable] {
        var list = VariableList()
        func firstSteps(_ name: String, _ longName: String, _ series: (Int, Int) -> [Double]) {
            var values: [Double] = []
            for y in r.types.indices { for f in r.frequencies.indices { values.append(r.firstStep(series(y, f)).map(Double.init) ?? .nan) } }
            list.append(Variable(name: name, dimensions: ["type", "frequency"], values: values, longName: longName, units: "1",
                                 extra: [("threshold", String(r.options.threshold)), ("comment", "NaN: never reached")]))
        }
        if let a = r.fullHitsAt10, !r.types.isEmpty, !r.frequencies.isEmpty {
            firstSteps("first_step_full_hits_at_10", "first checkpoint step where full-model hits@10 reaches the threshold") { y, f in a.series(y, f) }
            list.append(Variable(name: "first_step_full_hits_at_10_by_type", dimensions: ["type"],
                                 values: r.types.indices.map { r.firstStep(r.meanOverBuckets(a, type: $0)).map(Double.init) ?? .nan },
                                 longName: "first checkpoint step where full-model hits@10, mean over buckets, reaches the threshold",
                                 units: "1", extra: [("threshold", String(r.options.threshold)), ("comment", "NaN: never reached")]))
        }
        if let a = r.fullExactMatch, !r.types.isEmpty, !r.frequencies.isEmpty {
            firstSteps("first_step_full_exact_match", "first checkpoint step where full-model exact match reaches the threshold") { y, f in a.series(y, f) }
        }
        if let a = r.circuitHitsAt10, !r.types.isEmpty, !r.frequencies.isEmpty {
            firstSteps("first_step_circuit_hits_at_10", "first checkpoint step where circuit hits@10 (mean over tasks) reaches the threshold") { y, f in
                r.meanOverTasks(a, type: y, frequency: f)
            }
        }
        return list.variables
    }

    /// The length of every dimension analysis.nc may use.
    static func dimensionLengths(_ r: AnalysisResult, _ axes: Axes) -> [String: Int] {
        return ["checkpoint": r.steps.count, "task": r.tasks.count, "type": r.types.count,
                "frequency": r.frequencies.count, "layer": r.layers.count,
                "node": r.graph?.upstream.count ?? 0, "topn": r.topnAxis.count,
                "parent_layer": r.edgesByParentLayer.count, "target_frequency": r.frequencies.count,
                "evaluation": axes.evaluations.count, "attribute": axes.attributes.count,
                "entity_cell": r.entityHeatmap?.shape[2] ?? 0,
                "similarity_curve": PhaseShiftEstimator.curves.count,
                "lens": r.components?.lens.count ?? 0, "class": r.components?.classes.count ?? 0,
                "head_layer": r.components?.headLayers.count ?? 0,
                "component_topn": r.components?.componentTopn.count ?? 0,
                "source_checkpoint": r.transplant?.sources.count ?? 0]
    }

    /// Defines the dimensions in `used` and their coordinate variables.
    static func defineCoordinates(_ file: NetCDFFile, used: Set<String>, lengths: [String: Int]) throws {
        for d in ["checkpoint", "task", "type", "frequency", "layer", "node", "topn", "parent_layer", "target_frequency",
                  "evaluation", "attribute", "entity_cell", "similarity_curve",
                  "lens", "class", "head_layer", "component_topn", "source_checkpoint"] where used.contains(d) {
            try file.addDimension(d, length: lengths[d]!)
        }
        try file.addVariable("checkpoint", type: .int64, dimensions: ["checkpoint"])
        try file.setAttribute("long_name", "training step of the checkpoint", on: "checkpoint")
        try file.setAttribute("units", "1", on: "checkpoint")
        for d in ["task", "type", "frequency", "node", "target_frequency", "attribute", "similarity_curve", "lens", "class"] where used.contains(d) {
            try file.addVariable(d, type: .string, dimensions: [d])
        }
        for d in ["topn", "parent_layer", "head_layer", "component_topn", "source_checkpoint"] where used.contains(d) {
            try file.addVariable(d, type: .int64, dimensions: [d])
        }
        if used.contains("parent_layer") {
            try file.setAttribute("long_name", "layer of the edge's parent; input (the token embedding) counts in layer 0", on: "parent_layer")
        }
        if used.contains("topn") { try file.setAttribute("long_name", "circuit size: the top-n edges by |score|", on: "topn") }
        if used.contains("lens") {
            try file.setAttribute("long_name", "logit-lens point: residual entering block k ('k_pre'), then the last block's output ('final_post')", on: "lens")
        }
        if used.contains("head_layer") { try file.setAttribute("long_name", "layer of the attention heads (components.nc's layer)", on: "head_layer") }
        if used.contains("component_topn") { try file.setAttribute("long_name", "circuit size of components.nc (its topn)", on: "component_topn") }
        if used.contains("source_checkpoint") {
            try file.setAttribute("long_name", "training step of the checkpoint whose circuit is transplanted", on: "source_checkpoint")
        }
        if used.contains("evaluation") {
            try file.addVariable("evaluation_step", type: .int64, dimensions: ["evaluation"])
            try file.setAttribute("long_name", "optimizer step of the evaluation within its stage", on: "evaluation_step")
            try file.addVariable("evaluation_stage", type: .string, dimensions: ["evaluation"])
            try file.setAttribute("long_name", "training stage of the evaluation (folder under train/)", on: "evaluation_stage")
        }
        if used.contains("layer") {
            try file.addVariable("layer", type: .int64, dimensions: ["layer"])
            try file.setAttribute("long_name", "layer of the upstream node; -1 is the token embedding (input)", on: "layer")
            try file.addVariable("layer_name", type: .string, dimensions: ["layer"])
        }
    }

    /// Writes the coordinate values of the dimensions in `used`.
    static func writeCoordinates(_ file: NetCDFFile, _ r: AnalysisResult, _ axes: Axes, used: Set<String>) throws {
        try file.write(r.steps, to: "checkpoint")
        if used.contains("task") { try file.write(r.tasks, to: "task") }
        if used.contains("type") { try file.write(r.types, to: "type") }
        if used.contains("frequency") { try file.write(r.frequencies, to: "frequency") }
        if used.contains("node") { try file.write(r.graph!.upstream, to: "node") }
        if used.contains("target_frequency") { try file.write(r.frequencies, to: "target_frequency") }
        if used.contains("similarity_curve") { try file.write(PhaseShiftEstimator.curves, to: "similarity_curve") }
        if used.contains("attribute") { try file.write(axes.attributes, to: "attribute") }
        if used.contains("topn") { try file.write(r.topnAxis, to: "topn") }
        if let c = r.components {
            if used.contains("lens") { try file.write(c.lens, to: "lens") }
            if used.contains("class") { try file.write(c.classes, to: "class") }
            if used.contains("head_layer") { try file.write(c.headLayers, to: "head_layer") }
            if used.contains("component_topn") { try file.write(c.componentTopn, to: "component_topn") }
        }
        if let t = r.transplant, used.contains("source_checkpoint") { try file.write(t.sources, to: "source_checkpoint") }
        if used.contains("parent_layer") { try file.write((0..<r.edgesByParentLayer.count).map(Int64.init), to: "parent_layer") }
        if used.contains("evaluation") {
            try file.write(axes.evaluations.map(\.1), to: "evaluation_step")
            try file.write(axes.evaluations.map(\.0), to: "evaluation_stage")
        }
        if used.contains("layer") {
            try file.write(r.layers.map(Int64.init), to: "layer")
            try file.write(r.layers.map(GraphNames.layerName), to: "layer_name")
        }
    }

    /// The phase-shift numbers of a list of fits (nil: no curve) as variables over `dimensions`.
    static func phaseVariables(_ fits: [PhaseShiftFit?], dimensions: [String], suffix: String) -> [Variable] {
        func v(_ name: String, _ longName: String, _ value: (PhaseShiftFit) -> Double) -> Variable {
            Variable(name: name + suffix, dimensions: dimensions, values: fits.map { $0.map(value) ?? .nan },
                     longName: longName, units: "1")
        }
        return [
            v("phase_shift_step", "checkpoint step of the phase shift (NaN: none)") { $0.isShift ? $0.breakX! : .nan },
            v("phase_shift_candidate_step", "best breakpoint of the two-segment fit, shift or not") { $0.breakX ?? .nan },
            v("phase_shift_improvement", "relative SSE improvement of two segments over one") { $0.improvement },
            v("phase_shift_threshold", "improvement needed for a phase shift") { $0.threshold },
            v("phase_shift_p_value", "Monte-Carlo p-value of the improvement under a straight line plus noise") { $0.pValue },
            v("phase_shift_sse_two_segments", "residual sum of squares of the continuous two-segment fit") { $0.sseTwoSegments },
            v("phase_shift_sse_one_segment", "residual sum of squares of one line") { $0.sseOneSegment },
            v("phase_shift_slope_before", "slope before the break, per training step") { $0.slopeBefore },
            v("phase_shift_slope_after", "slope after the break, per training step") { $0.slopeAfter },
        ]
    }

    static func globalAttributes(_ file: NetCDFFile, _ r: AnalysisResult, commandLine: String) throws {
        let created = ISO8601DateFormatter().string(from: Date())
        try file.setAttribute("title", "dkc analysis: how knowledge circuits evolve across checkpoints")
        try file.setAttribute("source", DKCVersion.source)
        try file.setAttribute("history", "\(created) \(commandLine)")
        try file.setAttribute("config", configJSON(r))
        try file.setAttribute("mpi_ranks", Int32(1))
        try file.setAttribute("blas_threads", Int32(BLAS.threads))
        try file.setAttribute("created", created)
        if let topn = r.topn { try file.setAttribute("topn", topn) }
        if let testSet = r.testSet { try file.setAttribute("test_set", testSet) }
        try file.setAttribute("threshold", r.options.threshold)
        try file.setAttribute("inputs", [r.inputs.scores, r.inputs.circuits, r.inputs.acquisition].compactMap { $0 }
            .map { "\($0) (\(r.inputSources[$0] ?? "unknown"))" }.joined(separator: "; "))
        try file.setAttribute("layer_convention", "an edge belongs to its upstream node's layer; input (the token embedding) is layer -1")
    }

    /// The options and inputs as JSON (sorted keys).
    static func configJSON(_ r: AnalysisResult) -> String {
        struct Config: Encodable { let options: AnalysisOptions; let inputs: AnalysisInputPaths }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(Config(options: r.options, inputs: r.inputs))) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
