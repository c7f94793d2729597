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
