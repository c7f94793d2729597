import Foundation

/// The study's classes of attention heads by where their direct logit attribution comes from
/// (analysis notebook, docs/components.md): q = mean subject ratio ÷ mean relation ratio; **mover** if
/// |q| > 10, **relation** if |q| < 0.1, else **mixture** (the boundaries, and a 0/0 quotient, are mixture).
public enum HeadClass: String, CaseIterable, Sendable {
    case mover, relation, mixture

    /// Threshold of the classification (the notebook's `threshold = 10`).
    public static let threshold = 10.0

    public init(meanSubjectRatio s: Double, meanRelationRatio r: Double) {
        let q = abs(s / r)
        if q > Self.threshold { self = .mover } else if q < 1 / Self.threshold { self = .relation } else { self = .mixture }
    }
}

/// Per-head means of the DLA ratios over a set of prompts (one cell's entities) and the class of each head.
public struct HeadRatios: Sendable, Equatable {
    public let nLayers: Int, nHeads: Int
    /// Plain mean over the prompts, row-major [layer, head].   // (L·H)
    public var meanSubject: [Double]
    /// Plain mean over the prompts.   // (L·H)
    public var meanRelation: [Double]

    /// Means over `entities` (NaN where there are none).
    public init(_ entities: [EntityComponents], nLayers: Int, nHeads: Int) {
        self.nLayers = nLayers; self.nHeads = nHeads
        var s = [Double](repeating: 0, count: nLayers * nHeads), r = s
        for e in entities {
            for i in s.indices { s[i] += e.subjectRatio[i]; r[i] += e.relationRatio[i] }
        }
        let n = Double(entities.count)
        meanSubject = s.map { $0 / n }
        meanRelation = r.map { $0 / n }
    }

    public init(meanSubject: [Double], meanRelation: [Double], nLayers: Int, nHeads: Int) {
        precondition(meanSubject.count == nLayers * nHeads && meanRelation.count == nLayers * nHeads, "one mean per head")
        self.nLayers = nLayers; self.nHeads = nHeads
        self.meanSubject = meanSubject; self.meanRelation = meanRelation
    }

    /// Class of every head, row-major [layer, head].
    public var classes: [HeadClass] { zip(meanSubject, meanRelation).map { HeadClass(meanSubjectRatio: $0, meanRelationRatio: $1) } }
}

/// The heads of one circuit by class (notebook cells 34–39): heads whose node is in the circuit's node set
/// (endpoints of its kept edges, plus `logits`, which the study's saved graphs always count).
public struct CircuitHeads: Sendable, Equatable {
    /// Heads in the circuit as (layer, head), layer-major.
    public var heads: [(layer: Int, head: Int)]
    /// Class of each entry of `heads`.
    public var classes: [HeadClass]
    /// Size of the node set (input, heads, MLPs and logits).
    public var nodeCount: Int
    /// Heads per class and layer, classes in `HeadClass.allCases` order.   // (3, L)
    public var layerCounts: [[Int]]

    /// Heads of `circuit` classified by `classes` (row-major [layer, head]).
    public init(circuit: Circuit, classes: [HeadClass]) {
        let g = circuit.graph
        precondition(classes.count == g.nLayers * g.nHeads, "one class per head")
        var inSet = [Bool](repeating: false, count: g.nodes.count)
        for (e, edge) in g.edges.enumerated() where circuit.edgeInGraph[e] { inSet[edge.parent] = true; inSet[edge.child] = true }
        inSet[g.logitsNode] = true
        nodeCount = inSet.reduce(0) { $0 + ($1 ? 1 : 0) }
        var heads: [(layer: Int, head: Int)] = [], cls: [HeadClass] = []
        var counts = [[Int]](repeating: [Int](repeating: 0, count: g.nLayers), count: HeadClass.allCases.count)
        for (i, node) in g.nodes.enumerated() where inSet[i] {
            if case let .head(l, h) = node {
                let c = classes[l * g.nHeads + h]
                heads.append((l, h)); cls.append(c)
                counts[HeadClass.allCases.firstIndex(of: c)!][l] += 1
            }
        }
        self.heads = heads; self.classes = cls; layerCounts = counts
    }

    /// Heads of class `c` as (layer, head).
    public func heads(of c: HeadClass) -> [(layer: Int, head: Int)] { zip(heads, classes).filter { $0.1 == c }.map(\.0) }

    /// Class count ÷ node-set size (notebook cell 35).
    public func proportion(of c: HeadClass) -> Double { Double(heads(of: c).count) / Double(nodeCount) }

    public static func == (a: CircuitHeads, b: CircuitHeads) -> Bool {
        a.heads.map { [$0.layer, $0.head] } == b.heads.map { [$0.layer, $0.head] } && a.classes == b.classes
            && a.nodeCount == b.nodeCount && a.layerCounts == b.layerCounts
    }
}
