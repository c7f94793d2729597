import Foundation

/// Edge scores as EAP-IG stores them: one dense float32 matrix [nForward, nBackward], row-major, rows =
/// upstream nodes (forward index), columns = downstream inputs (backward index). Only entries with
/// `graph.isEdge(forward:backward:)` are edges; the others are 0 here (NaN in NetCDF files).
public struct ScoreMatrix: Sendable, Equatable {
    public let nForward: Int
    public let nBackward: Int
    /// Row-major values, count nForward · nBackward.   // (nForward, nBackward)
    public var values: [Float]

    /// A zero matrix shaped for `graph`.
    public init(graph: AttributionGraph) {
        self.init(nForward: graph.nForward, nBackward: graph.nBackward)
    }

    public init(nForward: Int, nBackward: Int, values: [Float]? = nil) {
        self.nForward = nForward
        self.nBackward = nBackward
        if let values {
            precondition(values.count == nForward * nBackward, "score matrix needs \(nForward)×\(nBackward) values")
            self.values = values
        } else {
            self.values = [Float](repeating: 0, count: nForward * nBackward)
        }
    }

    /// Wraps `values` after checking the shape against `graph`; `source` names the data for the message.
    public init(graph: AttributionGraph, values: [Float], source: String) throws {
        guard values.count == graph.nForward * graph.nBackward else {
            throw AttributionError(item: source,
                                   problem: "has \(values.count) scores, the graph of \(graph.nLayers) layers × \(graph.nHeads) heads needs \(graph.nForward)×\(graph.nBackward) = \(graph.nForward * graph.nBackward)",
                                   fix: "use scores computed for this model's shape")
        }
        self.init(nForward: graph.nForward, nBackward: graph.nBackward, values: values)
    }

    public subscript(f: Int, b: Int) -> Float {
        get { values[f * nBackward + b] }
        set { values[f * nBackward + b] = newValue }
    }

    /// The score of every edge of `graph`, in edge insertion order.
    public func edgeScores(_ graph: AttributionGraph) -> [Float] {
        precondition(nForward == graph.nForward && nBackward == graph.nBackward, "score matrix does not fit the graph")
        return graph.edges.map { values[$0.forward * nBackward + $0.backward] }
    }

    /// The matrix holding `scores` (one per edge, in edge insertion order) and 0 elsewhere.
    public init(graph: AttributionGraph, edgeScores scores: [Float]) {
        precondition(scores.count == graph.edges.count, "one score per edge")
        self.init(graph: graph)
        for (e, edge) in graph.edges.enumerated() { values[edge.forward * nBackward + edge.backward] = scores[e] }
    }

    /// Multiplies every entry by `factor` (normalisation).
    public mutating func scale(by factor: Float) {
        for i in values.indices { values[i] *= factor }
    }

    /// Sets every entry that is not an edge of `graph` to 0.
    public mutating func zeroNonEdges(_ graph: AttributionGraph) {
        for b in 0..<nBackward {
            for f in graph.backwardPrevIndex[b]..<nForward { values[f * nBackward + b] = 0 }
        }
    }

    /// ‖a − b‖_F / ‖b‖_F, accumulated in double: the parity measure for score matrices.
    public static func relativeFrobenius(_ a: ScoreMatrix, _ b: ScoreMatrix) -> Double {
        precondition(a.values.count == b.values.count, "shapes differ")
        var num = 0.0, den = 0.0
        for i in a.values.indices {
            let d = Double(a.values[i]) - Double(b.values[i])
            num += d * d
            den += Double(b.values[i]) * Double(b.values[i])
        }
        return den > 0 ? (num / den).squareRoot() : num.squareRoot()
    }

    /// max |a − b| over all entries.
    public static func maxAbsDifference(_ a: ScoreMatrix, _ b: ScoreMatrix) -> Double {
        precondition(a.values.count == b.values.count, "shapes differ")
        var m = 0.0
        for i in a.values.indices { m = max(m, abs(Double(a.values[i]) - Double(b.values[i]))) }
        return m
    }
}
