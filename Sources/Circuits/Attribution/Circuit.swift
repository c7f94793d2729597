import Foundation

/// A scored graph with a circuit marked in it: per edge a float32 score and an in-graph flag, per node an
/// in-graph flag (EAP-IG's `Graph` after attribution). A fresh circuit has every node and edge in the graph;
/// `applyTopN`, `applyThreshold`, `applyGreedy` and `pruneDeadNodes` (CircuitSelection.swift) choose one.
public struct Circuit: Sendable {
    public let graph: AttributionGraph
    /// One score per edge, in edge insertion order.
    public var scores: [Float]
    /// Whether each edge is in the circuit, in edge insertion order.
    public var edgeInGraph: [Bool]
    /// Whether each node is in the circuit, in node order (`graph.nodes`).
    public var nodeInGraph: [Bool]

    /// Every node and edge in the graph, with the scores of `matrix`.
    public init(graph: AttributionGraph, scores matrix: ScoreMatrix) {
        self.init(graph: graph, edgeScores: matrix.edgeScores(graph))
    }

    /// Every node and edge in the graph, with one score per edge in insertion order.
    public init(graph: AttributionGraph, edgeScores: [Float]) {
        precondition(edgeScores.count == graph.edges.count, "one score per edge")
        self.graph = graph
        scores = edgeScores
        edgeInGraph = [Bool](repeating: true, count: graph.edges.count)
        nodeInGraph = [Bool](repeating: true, count: graph.nodes.count)
    }

    /// Puts every node and edge back in the graph (`reset_nodes_and_edges`).
    public mutating func reset() {
        for i in edgeInGraph.indices { edgeInGraph[i] = true }
        for i in nodeInGraph.indices { nodeInGraph[i] = true }
    }

    /// Edges in the circuit (`count_included_edges`).
    public var edgeCount: Int { edgeInGraph.reduce(0) { $0 + ($1 ? 1 : 0) } }

    /// Nodes in the circuit, `input` and `logits` included (`count_included_nodes`).
    public var nodeCount: Int { nodeInGraph.reduce(0) { $0 + ($1 ? 1 : 0) } }

    /// Names of the edges in the circuit, in insertion order.
    public var keptEdgeNames: [String] { graph.edges.indices.filter { edgeInGraph[$0] }.map { graph.edges[$0].name } }

    /// Names of the nodes in the circuit, in node order.
    public var keptNodeNames: [String] { graph.nodes.indices.filter { nodeInGraph[$0] }.map { graph.nodes[$0].name } }

    /// Whether the circuit is empty: `logits` is not in it (then patching returns the corrupted run).
    public var isEmpty: Bool { !nodeInGraph[graph.logitsNode] }

    /// The scores as a dense matrix (0 where the pair is not an edge).
    public var scoreMatrix: ScoreMatrix { ScoreMatrix(graph: graph, edgeScores: scores) }

    /// Row-major [nForward, nBackward] flags: true where an edge is in the circuit (`edges_in_graph`).
    public var inGraphMask: [Bool] {
        var m = [Bool](repeating: false, count: graph.nForward * graph.nBackward)
        for (e, edge) in graph.edges.enumerated() where edgeInGraph[e] { m[edge.forward * graph.nBackward + edge.backward] = true }
        return m
    }

    /// Shannon entropy (natural log) of |score| normalised over the edges in the circuit, computed as the
    /// study does in float32: Σ|s| summed in edge order, p = |s| / Σ|s|, H = −Σ_{p>0} p · ln p with ln
    /// evaluated in double and rounded to float before the product (so 0 · ln 0 contributes nothing; all
    /// scores 0 gives 0). Nil when no edge is in the circuit.
    public func edgeEntropy() -> Float? {
        var total: Float = 0
        var any = false
        for e in scores.indices where edgeInGraph[e] {
            total += abs(scores[e])
            any = true
        }
        guard any else { return nil }
        var h: Float = 0
        for e in scores.indices where edgeInGraph[e] {
            let p = abs(scores[e]) / total
            if p > 0 { h += p * Float(Foundation.log(Double(p))) }
        }
        return h == 0 ? 0 : -h
    }
}
