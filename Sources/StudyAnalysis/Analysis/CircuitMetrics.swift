import Foundation

/// A circuit as the analysis sees it: the kept edges as flat indices u · n_backward + d into the
/// (upstream, downstream) score matrix, ascending, with their scores when scores.nc has them.
public struct CircuitEdges: Equatable, Sendable {
    /// Flat edge indices, strictly ascending.
    public var edges: [Int32]
    /// `scores[i]` is the float32 score of `edges[i]` (NaN when unknown); nil without scores.nc.
    public var scores: [Float]?

    public init(edges: [Int32], scores: [Float]? = nil) {
        precondition(scores == nil || scores!.count == edges.count, "CircuitEdges: one score per edge")
        self.edges = edges
        self.scores = scores
    }

    /// The kept edges of an `in_circuit` matrix (upstream, downstream), in C order.
    public init(mask: [Int8], scores matrix: [Float]? = nil) {
        var edges: [Int32] = []
        for (i, flag) in mask.enumerated() where flag == 1 { edges.append(Int32(i)) }
        self.edges = edges
        self.scores = matrix.map { m in edges.map { m[Int($0)] } }
    }
}

/// Edges and |score| mass of a circuit split by the layer of each edge's upstream node.
public struct LayerProfile: Equatable, Sendable {
    /// Number of circuit edges whose upstream node lies in each layer; index 0 is "embed" (−1).  (L+1)
    public var edgeCount: [Double]
    /// Σ|score| over those edges; nil without scores.  (L+1)
    public var scoreMass: [Double]?

    /// Share of edges per layer (NaN for an empty circuit).  (L+1)
    public var edgeShare: [Double] { CircuitMetrics.normalised(edgeCount) }
    /// Share of |score| mass per layer (NaN when the mass is 0 or unknown).  (L+1)
    public var scoreShare: [Double]? { scoreMass.map(CircuitMetrics.normalised) }

    /// Σ |s_e| · layer(u_e) / Σ |s_e| with `input` at −1: the |score|-weighted mean layer.
    public var meanLayer: Double {
        guard let scoreMass else { return .nan }
        return CircuitMetrics.weightedMeanLayer(scoreMass)
    }
    /// The same with every edge weighing 1.
    public var meanLayerByCount: Double { CircuitMetrics.weightedMeanLayer(edgeCount) }

    /// Adds another circuit's counts (aggregating the circuits of several cells). The mass
    /// aggregates over the circuits that have scores only; it stays nil until one has.
    public mutating func add(_ other: LayerProfile) {
        precondition(other.edgeCount.count == edgeCount.count, "LayerProfile: layer counts differ")
        for i in edgeCount.indices { edgeCount[i] += other.edgeCount[i] }
        if let more = other.scoreMass {
            scoreMass = zip(scoreMass ?? [Double](repeating: 0, count: more.count), more).map { $0 + $1 }
        }
    }

    public static func zero(layers: Int, withScores: Bool) -> LayerProfile {
        LayerProfile(edgeCount: [Double](repeating: 0, count: layers + 1),
                     scoreMass: withScores ? [Double](repeating: 0, count: layers + 1) : nil)
    }
}

/// The numbers the analysis computes from circuits: pure functions with hand-checkable contracts.
public enum CircuitMetrics {
    /// |A ∩ B| / |A ∪ B| of two ascending edge lists; NaN when both are empty (undefined).
    public static func jaccard(_ a: [Int32], _ b: [Int32]) -> Double {
        var i = 0, j = 0, common = 0
        while i < a.count && j < b.count {
            if a[i] == b[j] { common += 1; i += 1; j += 1 } else if a[i] < b[j] { i += 1 } else { j += 1 }
        }
        let union = a.count + b.count - common
        return union == 0 ? .nan : Double(common) / Double(union)
    }

    /// Edge-score entropy (docs/eap.md): p_e = |s_e| / Σ|s|, H = −Σ p_e ln p_e with 0 · ln 0 = 0,
    /// natural log. NaN for an empty circuit, a zero total, or a NaN score. Sums in double.
    public static func entropy(_ scores: [Float]) -> Double {
        var total = 0.0
        for s in scores {
            guard !s.isNaN else { return .nan }
            total += Double(abs(s))
        }
        guard total > 0 else { return .nan }
        var h = 0.0
        for s in scores where s != 0 {
            let p = Double(abs(s)) / total
            h -= p * log(p)
        }
        return h
    }

    /// Edges (and |score| mass) by upstream layer. A NaN score counts as an edge but adds no mass.
    public static func layerProfile(_ circuit: CircuitEdges, graph: GraphNames) -> LayerProfile {
        let nBackward = graph.downstream.count
        var profile = LayerProfile.zero(layers: graph.nLayers, withScores: circuit.scores != nil)
        for (k, e) in circuit.edges.enumerated() {
            let slot = graph.upstreamLayer[Int(e) / nBackward] + 1
            profile.edgeCount[slot] += 1
            if let s = circuit.scores?[k], !s.isNaN { profile.scoreMass![slot] += Double(abs(s)) }
        }
        return profile
    }

    /// Which upstream nodes touch a kept edge, as the upstream node (parent) or as the node a
    /// downstream input belongs to (child; `logits` is not an upstream node).  (n_forward)
    public static func nodesPresent(_ circuit: CircuitEdges, graph: GraphNames) -> [Bool] {
        let nBackward = graph.downstream.count
        var present = [Bool](repeating: false, count: graph.upstream.count)
        for e in circuit.edges {
            present[Int(e) / nBackward] = true
            if let child = graph.downstreamNode[Int(e) % nBackward] { present[child] = true }
        }
        return present
    }

    /// Kept edges by parent layer with `input` in layer 0, from a profile whose slot 0 is `input`.  (L)
    public static func keptEdgesByParentLayer(_ profile: LayerProfile) -> [Double] {
        let c = profile.edgeCount
        guard c.count > 1 else { return [] }
        return (1..<c.count).map { slot in c[slot] + (slot == 1 ? c[0] : 0) }
    }

    /// The study's edge activation ratio per layer ℓ = 0 … L−1: kept edges whose parent is in ℓ ÷
    /// all graph edges whose parent is in ℓ (`input` in layer 0).  (L)
    public static func edgeActivationRatio(_ profile: LayerProfile, graph: GraphNames) -> [Double] {
        zip(keptEdgesByParentLayer(profile), graph.edgesByParentLayer).map { $1 > 0 ? $0 / $1 : .nan }
    }

    /// The circuit's node set as the study's notebook counts it after reading the saved graph
    /// back: every endpoint of a kept edge, plus `logits` always. Upstream nodes by their index,
    /// `logits` as index n_forward; ascending, for `jaccard`.
    public static func nodeSet(_ circuit: CircuitEdges, graph: GraphNames) -> [Int32] {
        var out: [Int32] = []
        for (n, isIn) in nodesPresent(circuit, graph: graph).enumerated() where isIn { out.append(Int32(n)) }
        out.append(Int32(graph.upstream.count))
        return out
    }

    /// Σ ℓ · r_ℓ / Σ r_ℓ over layers ℓ = 0 … L−1 of a per-layer ratio (NaN entries skipped):
    /// where along the depth a circuit's activated edges sit, 0 = first layer.
    public static func ratioCentre(_ ratios: [Double]) -> Double {
        var sum = 0.0, total = 0.0
        for (l, r) in ratios.enumerated() where r.isFinite { sum += Double(l) * r; total += r }
        return total > 0 ? sum / total : .nan
    }

    /// `values / Σ values`; NaN everywhere when the sum is not positive.
    public static func normalised(_ values: [Double]) -> [Double] {
        let total = values.reduce(0, +)
        guard total > 0 else { return values.map { _ in .nan } }
        return values.map { $0 / total }
    }

    /// Σ_k w_k · (k − 1) / Σ w_k for weights indexed by layer slot (slot 0 = layer −1).
    public static func weightedMeanLayer(_ weights: [Double]) -> Double {
        let total = weights.reduce(0, +)
        guard total > 0 else { return .nan }
        var sum = 0.0
        for (slot, w) in weights.enumerated() { sum += w * Double(slot - 1) }
        return sum / total
    }

    /// Mean of the finite values; NaN when there are none.
    public static func finiteMean<S: Sequence>(_ values: S) -> Double where S.Element == Double {
        var sum = 0.0, n = 0
        for v in values where v.isFinite { sum += v; n += 1 }
        return n == 0 ? .nan : sum / Double(n)
    }

    /// Index of the first value ≥ `threshold` (NaN never counts); nil when none reaches it.
    public static func firstReaching(_ values: [Double], threshold: Double) -> Int? {
        values.firstIndex { !$0.isNaN && $0 >= threshold }
    }
}
