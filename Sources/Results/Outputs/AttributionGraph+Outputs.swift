import Circuits

/// The graph as the result files lay it out (`upstream`, `downstream`, `is_edge` of scores.nc and circuits.nc).
extension AttributionGraph {
    /// Forward names, backward names and the edge mask. The graph's names are unique and non-empty by
    /// construction, so building the layout cannot fail.
    public var edgeLayout: EdgeLayout {
        do {
            return try EdgeLayout(upstream: forwardNames, downstream: backwardNames, isEdge: edgeMask)
        } catch {
            preconditionFailure("the attribution graph's layout is invalid: \(error)")
        }
    }
}

extension Circuit {
    /// `in_circuit` of circuits.nc: 1 for a kept edge, row-major.   // (nForward, nBackward)
    public var inCircuitMask: [Int8] { inGraphMask.map { $0 ? 1 : 0 } }
}

extension Circuit {
    /// The circuit an `in_circuit` mask of circuits.nc stores (`inCircuitMask` read back): its edges, and as
    /// nodes the endpoints of those edges (what pruning leaves). Scores are 0.
    public init(graph: AttributionGraph, inCircuit mask: [Int8]) {
        precondition(mask.count == graph.nForward * graph.nBackward, "in_circuit must be [nForward, nBackward]")
        self.init(graph: graph, edgeScores: [Float](repeating: 0, count: graph.edges.count))
        for i in nodeInGraph.indices { nodeInGraph[i] = false }
        for (e, edge) in graph.edges.enumerated() {
            edgeInGraph[e] = mask[edge.forward * graph.nBackward + edge.backward] == 1
            if edgeInGraph[e] { nodeInGraph[edge.parent] = true; nodeInGraph[edge.child] = true }
        }
    }
}
