import Foundation
import Support

/// Circuits to and from the study's JSON layout (EAP-IG `Graph.to_json` / `from_json`), and to Graphviz DOT.
extension Circuit {
    /// The study's JSON: `{"cfg": {"n_layers", "n_heads", "parallel_attn_mlp"}, "nodes": {name: in_graph},
    /// "edges": {name: {"score", "in_graph"}}}`, nodes in node order and edges in insertion order, floats
    /// written as Python writes them (shortest round-trip form of the float32 score widened to double;
    /// non-finite as `NaN` / `Infinity`, which Python's json reads).
    public func jsonString() -> String {
        var s = "{\"cfg\": {\"n_layers\": \(graph.nLayers), \"n_heads\": \(graph.nHeads), \"parallel_attn_mlp\": false}, \"nodes\": {"
        for (i, node) in graph.nodes.enumerated() {
            if i > 0 { s += ", " }
            s += "\"\(node.name)\": \(nodeInGraph[i])"
        }
        s += "}, \"edges\": {"
        for (e, edge) in graph.edges.enumerated() {
            if e > 0 { s += ", " }
            s += "\"\(edge.name)\": {\"score\": \(Self.pythonFloat(Double(scores[e]))), \"in_graph\": \(edgeInGraph[e])}"
        }
        s += "}}"
        return s
    }

    /// Writes `jsonString()` to `url`.
    public func writeJSON(to url: URL) throws {
        do {
            try Data(jsonString().utf8).write(to: url, options: .atomic)
        } catch {
            throw AttributionError(item: url.path, problem: "cannot be written: \(error.localizedDescription)",
                                   fix: "check that the folder exists and is writable")
        }
    }

    /// Reads a circuit in the study's JSON layout; `source` names the file in error messages.
    /// A `null` score becomes NaN. Names the file misses keep their defaults (in the graph, score 0).
    public init(json data: Data, source: String) throws {
        func bad(_ problem: String, _ fix: String) -> AttributionError {
            AttributionError(item: source, problem: problem, fix: fix)
        }
        let root: JSONValue
        do { root = try JSONValue(parsing: data) } catch {
            throw bad("is not valid JSON (\(error))", "give a graph written by dkc or by EAP-IG's Graph.to_json")
        }
        guard let cfg = root["cfg"], cfg.isObject else {
            throw bad("has no \"cfg\" object", "give a graph written by dkc or by EAP-IG's Graph.to_json")
        }
        guard let nl = cfg["n_layers"]?.intValue, let nh = cfg["n_heads"]?.intValue, nl >= 1, nh >= 1 else {
            throw bad("cfg needs positive integers \"n_layers\" and \"n_heads\"", "fix the cfg object")
        }
        if cfg["parallel_attn_mlp"]?.boolValue == true {
            throw bad("cfg.parallel_attn_mlp is true", "dkc models GPT-2, whose attention and MLP run in sequence")
        }
        let graph = AttributionGraph(nLayers: nl, nHeads: nh)
        self.init(graph: graph, edgeScores: [Float](repeating: 0, count: graph.edges.count))
        if let nodes = root["nodes"]?.objectValue {
            for (name, value) in nodes {
                guard let i = graph.nodeIndex(named: name) else {
                    throw bad("names node \"\(name)\", which a graph of \(nl) layers × \(nh) heads does not have", "check cfg and the node names")
                }
                guard let flag = value.boolValue else { throw bad("node \"\(name)\": in_graph is not true/false", "fix the value") }
                nodeInGraph[i] = flag
            }
        }
        guard let edges = root["edges"]?.objectValue else {
            throw bad("has no \"edges\" object", "give a graph written by dkc or by EAP-IG's Graph.to_json")
        }
        for (name, value) in edges {
            guard let e = graph.edgeIndex(named: name) else {
                throw bad("names edge \"\(name)\", which a graph of \(nl) layers × \(nh) heads does not have", "check cfg and the edge names")
            }
            guard value.isObject else { throw bad("edge \"\(name)\" is not an object", "write {\"score\": …, \"in_graph\": …}") }
            if let score = value["score"]?.doubleValue {
                scores[e] = Float(score)
            } else if value["score"] == nil || value["score"] == .null {
                scores[e] = .nan
            } else {
                throw bad("edge \"\(name)\": score is not a number", "fix the value")
            }
            if let flag = value["in_graph"]?.boolValue { edgeInGraph[e] = flag }
        }
    }

    /// Reads a circuit JSON file.
    public init(jsonFile url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw AttributionError(item: url.path, problem: "cannot be read (\(error.localizedDescription))", fix: "check the path")
        }
        try self.init(json: data, source: url.path)
    }

    /// Graphviz DOT of the circuit (nodes and edges in the graph), drawn as the study draws it: boxes, edge
    /// colour by the input fed (q magenta, k green, v blue; other edges black, red when the score is
    /// negative), pen width max(0.6, 5 · (|s| − min|s|) / (max|s| − min|s|)) with min and max over all edges
    /// (|s| itself when they are equal). Node fill colours come from the Pastel2 palette by node kind.
    public func dot(name: String = "circuit") -> String {
        let palette = ["#b3e2cd", "#fdcdac", "#cbd5e8", "#f4cae4", "#e6f5c9", "#fff2ae", "#f1e2cc", "#cccccc"]
        var s = "digraph \"\(name)\" {\n"
        s += "  graph [bgcolor=\"white\", overlap=\"false\", splines=\"true\", layout=\"dot\"];\n"
        s += "  node [shape=\"box\", style=\"filled, rounded\", color=\"black\", fontname=\"Helvetica\"];\n"
        for (i, node) in graph.nodes.enumerated() where nodeInGraph[i] {
            let fill: String
            switch node {
            case .input: fill = palette[0]
            case let .head(l, _): fill = palette[2 + (l % 2) * 2]
            case .mlp: fill = palette[1]
            case .logits: fill = palette[5]
            }
            s += "  \"\(node.name)\" [fillcolor=\"\(fill)\"];\n"
        }
        let magnitudes = scores.map { abs($0) }.filter { !$0.isNaN }
        let lo = magnitudes.min() ?? 0, hi = magnitudes.max() ?? 0
        for (e, edge) in graph.edges.enumerated() where edgeInGraph[e] {
            let score = scores[e].isNaN ? 0 : scores[e]
            let normalised = hi != lo ? (abs(score) - lo) / (hi - lo) : abs(score)
            let width = max(0.6, Double(normalised) * 5.0)
            let color: String
            switch edge.qkv {
            case .q: color = "#FF00FF"
            case .k: color = "#00FF00"
            case .v: color = "#0000FF"
            case nil: color = score < 0 ? "#FF0000" : "#000000"
            }
            s += "  \"\(graph.nodes[edge.parent].name)\" -> \"\(graph.nodes[edge.child].name)\" [penwidth=\"\(width)\", color=\"\(color)\", tooltip=\"\(edge.name) \(scores[e])\"];\n"
        }
        s += "}\n"
        return s
    }

    /// A double as Python's `repr` writes it (shortest round-trip digits; NaN / Infinity for JSON).
    static func pythonFloat(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x > 0 ? "Infinity" : "-Infinity" }
        return x.description
    }
}
