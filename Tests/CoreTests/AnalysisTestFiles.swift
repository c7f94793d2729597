import Foundation
@testable import Core

/// Writes small scores.nc / circuits.nc / acquisition.nc files following docs/outputs.md
/// directly with NetCDFFile, so the analysis is tested against the documented layout rather than
/// against another part of dkc. A closure returning nil (or NaN) leaves that cell unwritten, as
/// an unfinished sweep leaves it: NaN for floats, the library's default fill for `in_circuit`.
struct SweepFixture {
    var steps: [Int64]
    var tasks: [String]
    var types: [String]
    var frequencies: [String]
    var topn: [Int64] = [5]
    var attributes: [String] = ["city", "company"]
    /// Node names (L = 2 layers of H = 2 heads unless replaced).
    var upstream: [String]
    var downstream: [String]

    init(steps: [Int64], tasks: [String], types: [String], frequencies: [String], layers: Int = 2, heads: Int = 2) {
        self.steps = steps; self.tasks = tasks; self.types = types; self.frequencies = frequencies
        var up = ["input"], down: [String] = []
        for l in 0..<layers {
            for h in 0..<heads { up.append("a\(l).h\(h)") }
            up.append("m\(l)")
            for x in ["q", "k", "v"] { for h in 0..<heads { down.append("a\(l).h\(h)<\(x)>") } }
            down.append("m\(l)")
        }
        down.append("logits")
        upstream = up
        downstream = down
    }

    var nU: Int { upstream.count }
    var nD: Int { downstream.count }

    /// Flat index of the edge "u->d" in the (upstream, downstream) matrix.
    func edge(_ name: String) -> Int {
        let parts = name.components(separatedBy: "->")
        return upstream.firstIndex(of: parts[0])! * nD + downstream.firstIndex(of: parts[1])!
    }

    /// An in_circuit mask holding the named edges.
    func mask(_ edges: [String]) -> [Int8] {
        var m = [Int8](repeating: 0, count: nU * nD)
        for e in edges { m[edge(e)] = 1 }
        return m
    }

    /// A score matrix: the named edges get their scores, every other entry `rest` (NaN by default).
    func scoreMatrix(_ scores: [String: Float], rest: Float = .nan) -> [Float] {
        var m = [Float](repeating: rest, count: nU * nD)
        for (e, s) in scores { m[edge(e)] = s }
        return m
    }

    private func common(_ f: NetCDFFile, cellDims: Bool = true) throws {
        try f.addDimension("checkpoint", length: steps.count)
        try f.addVariable("checkpoint", type: .int64, dimensions: ["checkpoint"])
        for (d, labels) in [("task", tasks), ("type", types), ("frequency", frequencies)] where cellDims || d != "task" {
            try f.addDimension(d, length: labels.count)
            try f.addVariable(d, type: .string, dimensions: [d])
        }
        try f.setAttribute("title", "synthetic test file")
        try f.setAttribute("source", "test fixture")
    }

    private func writeLabels(_ f: NetCDFFile, tasks withTasks: Bool = true) throws {
        try f.write(steps, to: "checkpoint")
        if withTasks { try f.write(tasks, to: "task") }
        try f.write(types, to: "type")
        try f.write(frequencies, to: "frequency")
    }

    private func graphVariables(_ f: NetCDFFile) throws {
        try f.addDimension("upstream", length: nU)
        try f.addDimension("downstream", length: nD)
        try f.addVariable("upstream", type: .string, dimensions: ["upstream"])
        try f.addVariable("downstream", type: .string, dimensions: ["downstream"])
    }

    /// scores.nc; `score(c, t, y, f)` gives a cell's (upstream, downstream) matrix or nil.
    func writeScores(_ path: String, score: (Int, Int, Int, Int) -> [Float]?) throws {
        let f = try NetCDFFile.create(path: path)
        try common(f)
        try graphVariables(f)
        let dims = ["checkpoint", "task", "type", "frequency", "upstream", "downstream"]
        try f.addVariable("score", type: .float, dimensions: dims, compression: NetCDFCompression(level: 1, shuffle: true),
                          chunkSizes: [1, 1, 1, 1, nU, nD], fill: .nan)
        try writeLabels(f)
        try f.write(upstream, to: "upstream")
        try f.write(downstream, to: "downstream")
        for c in steps.indices { for t in tasks.indices { for y in types.indices { for q in frequencies.indices {
            guard let m = score(c, t, y, q) else { continue }
            try f.write(m, to: "score", start: [c, t, y, q, 0, 0], count: [1, 1, 1, 1, nU, nD])
        } } } }
        try f.close()
    }

    /// What circuits.nc holds for one (checkpoint, task, type, frequency, topn) cell.
    struct CircuitCell {
        var mask: [Int8]
        var faithfulness: Double = 0.9
        var entropy: Double = .nan
        /// hits@10 for (target type, target frequency).
        var hits: (Int, Int) -> Double = { _, _ in .nan }
    }

    /// circuits.nc; `cell(c, t, y, f, k)` gives a cell or nil (not computed). `withNames: false`
    /// omits the upstream/downstream coordinate variables.
    /// `transplant`: source checkpoints and `value(s, c, t, y, f)` = (faithfulness, hits@10) of the
    /// source's circuit (the same at every top-n), written as circuits.nc's `transplant_*` variables.
    func writeCircuits(_ path: String, withNames: Bool = true,
                       transplant: (sources: [Int64], value: (Int, Int, Int, Int, Int) -> (Double, Double))? = nil,
                       cell: (Int, Int, Int, Int, Int) -> CircuitCell?) throws {
        let f = try NetCDFFile.create(path: path)
        try common(f)
        try f.addDimension("topn", length: topn.count)
        try f.addVariable("topn", type: .int64, dimensions: ["topn"])
        try f.addDimension("target_type", length: types.count)
        try f.addDimension("target_frequency", length: frequencies.count)
        try f.addVariable("target_type", type: .string, dimensions: ["target_type"])
        try f.addVariable("target_frequency", type: .string, dimensions: ["target_frequency"])
        if withNames { try graphVariables(f) } else {
            try f.addDimension("upstream", length: nU)
            try f.addDimension("downstream", length: nD)
        }
        let cellDims = ["checkpoint", "task", "type", "frequency", "topn"]
        for name in ["faithfulness", "n_edges", "n_nodes", "edge_entropy"] {
            try f.addVariable(name, type: .double, dimensions: cellDims, fill: .nan)
        }
        try f.addVariable("in_circuit", type: .int8, dimensions: cellDims + ["upstream", "downstream"],
                          compression: NetCDFCompression(level: 1, shuffle: true), chunkSizes: [1, 1, 1, 1, 1, nU, nD])
        try f.addVariable("hits_at_10", type: .double, dimensions: cellDims + ["target_type", "target_frequency"], fill: .nan)
        if let transplant {
            try f.addDimension("source_checkpoint", length: transplant.sources.count)
            try f.addVariable("source_checkpoint", type: .int64, dimensions: ["source_checkpoint"])
            for name in ["transplant_faithfulness", "transplant_hits_at_10"] {
                try f.addVariable(name, type: .double, dimensions: ["source_checkpoint"] + cellDims, fill: .nan)
            }
        }
        try writeLabels(f)
        if let transplant {
            try f.write(transplant.sources, to: "source_checkpoint")
            var faith: [Double] = [], hits: [Double] = []
            for s in transplant.sources.indices { for c in steps.indices { for t in tasks.indices { for y in types.indices {
                for q in frequencies.indices { for _ in topn.indices {
                    let (a, b) = transplant.value(s, c, t, y, q)
                    faith.append(a); hits.append(b)
                } }
            } } } }
            try f.write(faith, to: "transplant_faithfulness")
            try f.write(hits, to: "transplant_hits_at_10")
        }
        try f.write(topn, to: "topn")
        try f.write(types, to: "target_type")
        try f.write(frequencies, to: "target_frequency")
        if withNames {
            try f.write(upstream, to: "upstream")
            try f.write(downstream, to: "downstream")
        }
        for c in steps.indices { for t in tasks.indices { for y in types.indices { for q in frequencies.indices { for k in topn.indices {
            guard let cell = cell(c, t, y, q, k) else { continue }
            let at = [c, t, y, q, k]
            try f.write([cell.faithfulness], to: "faithfulness", start: at, count: [1, 1, 1, 1, 1])
            try f.write([Double(cell.mask.filter { $0 == 1 }.count)], to: "n_edges", start: at, count: [1, 1, 1, 1, 1])
            try f.write([cell.entropy], to: "edge_entropy", start: at, count: [1, 1, 1, 1, 1])
            try f.write(cell.mask, to: "in_circuit", start: at + [0, 0], count: [1, 1, 1, 1, 1, nU, nD])
            var hits: [Double] = []
            for ty in types.indices { for tf in frequencies.indices { hits.append(cell.hits(ty, tf)) } }
            try f.write(hits, to: "hits_at_10", start: at + [0, 0], count: [1, 1, 1, 1, 1, types.count, frequencies.count])
        } } } } }
        try f.close()
    }

    /// acquisition.nc; `value(name, c, a, y, f)` gives exact_match / hits_at_10 / hits_at_1
    /// (NaN: not computed). `permuted` stores hits_at_10 as (attribute, checkpoint, type, frequency)
    /// to check that readers go by dimension name.
    func writeAcquisition(_ path: String, permuted: Bool = false, value: (String, Int, Int, Int, Int) -> Double) throws {
        let f = try NetCDFFile.create(path: path)
        try common(f, cellDims: false)
        try f.addDimension("attribute", length: attributes.count)
        try f.addVariable("attribute", type: .string, dimensions: ["attribute"])
        let dims = ["checkpoint", "attribute", "type", "frequency"]
        for name in ["exact_match", "hits_at_1", "label_prob"] { try f.addVariable(name, type: .double, dimensions: dims, fill: .nan) }
        let hitsDims = permuted ? ["attribute", "checkpoint", "type", "frequency"] : dims
        try f.addVariable("hits_at_10", type: .double, dimensions: hitsDims, fill: .nan)
        try writeLabels(f, tasks: false)
        try f.write(attributes, to: "attribute")
        for name in ["exact_match", "hits_at_1", "hits_at_10"] {
            var values: [Double] = []
            let outer = name == "hits_at_10" && permuted
            for i in 0..<(outer ? attributes.count : steps.count) {
                for j in 0..<(outer ? steps.count : attributes.count) {
                    for y in types.indices { for q in frequencies.indices {
                        values.append(outer ? value(name, j, i, y, q) : value(name, i, j, y, q))
                    } }
                }
            }
            try f.write(values, to: name)
        }
        try f.close()
    }
}

extension SweepFixture {
    /// Per-entity results for acquisition.nc: each test entity's type and bucket (file order), and
    /// `correct(c, e, a)` ∈ {1, 0, −1}.
    struct EntityRows {
        var names: [String]
        var types: [String]
        var frequencies: [String]
        var correct: (Int, Int, Int) -> Int8
    }

    /// acquisition.nc with the variables of the query-accuracy change (outputs.md): `query_accuracy`
    /// next to `exact_match`, the `test_entity` dimension with its names, types and buckets,
    /// `query_correct` / `exact_correct`, and the `test_set` global attribute.
    func writeAcquisitionWithEntities(_ path: String, entities: EntityRows, testSet: String,
                                      value: (String, Int, Int, Int, Int) -> Double) throws {
        let f = try NetCDFFile.create(path: path)
        try f.addDimension("checkpoint", length: steps.count)
        try f.addVariable("checkpoint", type: .int64, dimensions: ["checkpoint"])
        for (d, n) in [("type", types.count), ("frequency", frequencies.count), ("attribute", attributes.count),
                       ("test_entity", entities.names.count)] {
            try f.addDimension(d, length: n)
            try f.addVariable(d, type: .string, dimensions: [d])
        }
        try f.addVariable("test_entity_type", type: .string, dimensions: ["test_entity"])
        try f.addVariable("test_entity_frequency", type: .string, dimensions: ["test_entity"])
        let dims = ["checkpoint", "attribute", "type", "frequency"]
        for name in ["exact_match", "hits_at_10", "query_accuracy"] { try f.addVariable(name, type: .double, dimensions: dims, fill: .nan) }
        for name in ["query_correct", "exact_correct"] {
            try f.addVariable(name, type: .int8, dimensions: ["checkpoint", "test_entity", "attribute"])
        }
        try f.setAttribute("title", "synthetic test file")
        try f.setAttribute("source", "test fixture")
        try f.setAttribute("test_set", testSet)
        try f.write(steps, to: "checkpoint")
        try f.write(types, to: "type")
        try f.write(frequencies, to: "frequency")
        try f.write(attributes, to: "attribute")
        try f.write(entities.names, to: "test_entity")
        try f.write(entities.types, to: "test_entity_type")
        try f.write(entities.frequencies, to: "test_entity_frequency")
        for name in ["exact_match", "hits_at_10", "query_accuracy"] {
            var values: [Double] = []
            for c in steps.indices { for a in attributes.indices { for y in types.indices { for q in frequencies.indices {
                values.append(value(name, c, a, y, q))
            } } } }
            try f.write(values, to: name)
        }
        var correct: [Int8] = []
        for c in steps.indices { for e in entities.names.indices { for a in attributes.indices { correct.append(entities.correct(c, e, a)) } } }
        try f.write(correct, to: "query_correct")
        try f.write(correct, to: "exact_correct")
        try f.close()
    }
}
