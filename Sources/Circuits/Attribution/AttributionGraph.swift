import Foundation

/// Which of an attention head's three inputs an edge feeds. Each head reads its own copy of the residual
/// stream for its queries, keys and values (TransformerLens `hook_q_input`, `hook_k_input`, `hook_v_input`).
public enum QKV: Int, CaseIterable, Sendable {
    case q = 0, k = 1, v = 2

    /// "q", "k" or "v", as edge names write it (`a0.h1->a2.h3<q>`).
    public var letter: String { ["q", "k", "v"][rawValue] }

    public init?(letter: String) {
        switch letter {
        case "q": self = .q
        case "k": self = .k
        case "v": self = .v
        default: return nil
        }
    }
}

/// A node of the computational graph, named as EAP-IG names it: `input` (the token embedding, hook
/// `hook_embed`; the positional embedding belongs to no node), `a{l}.h{h}` (one attention head's output,
/// `blocks.l.attn.hook_result`, without bias), `m{l}` (an MLP's output, `blocks.l.hook_mlp_out`) and
/// `logits` (reads the final residual stream `blocks.{L-1}.hook_resid_post`, before LN_f).
public enum GraphNode: Hashable, Sendable {
    case input
    case head(layer: Int, head: Int)
    case mlp(layer: Int)
    case logits

    /// The node's EAP-IG name (a public interface: people paste these into papers).
    public var name: String {
        switch self {
        case .input: return "input"
        case let .head(l, h): return "a\(l).h\(h)"
        case let .mlp(l): return "m\(l)"
        case .logits: return "logits"
        }
    }

    /// The layer EAP-IG assigns the node (input 0, logits the last layer).
    public func layer(nLayers: Int) -> Int {
        switch self {
        case .input: return 0
        case let .head(l, _): return l
        case let .mlp(l): return l
        case .logits: return nLayers - 1
        }
    }
}

/// One edge: the output of `parent` added into one input of `child`. Indices refer to
/// `AttributionGraph.nodes`; `forward`/`backward` are its row and column in the score matrix.
public struct GraphEdge: Sendable, Equatable {
    /// Index of the upstream node in node order.
    public let parent: Int
    /// Index of the downstream node in node order.
    public let child: Int
    /// The head input it feeds when `child` is a head, else nil.
    public let qkv: QKV?
    /// Row of the score matrix: the parent's forward index.
    public let forward: Int
    /// Column of the score matrix: the child input's backward index.
    public let backward: Int
    /// `parent->child` or `parent->child<q|k|v>`.
    public let name: String
}

/// The EAP-IG graph of a model with `nLayers` blocks of `nHeads` heads (GPT-2, Llama; Phi with
/// `parallel`): nodes, edges in the study's insertion order, and the dense score-matrix layout.
///
/// Node order: `input`, then per layer ℓ the heads `aℓ.h0 … aℓ.h{H−1}` and the MLP `mℓ`, then `logits`.
/// Edge order (the tie-break order of top-n and the order of the JSON export): for each layer ℓ, for each
/// node u before layer ℓ, for each head h of ℓ, for q, k, v: u → aℓ.h<x>; then for each node u up to and
/// including layer ℓ's heads: u → mℓ; finally every node u → logits. Parallel blocks (attention and MLP
/// both read the block's input, Phi): an MLP's parents are the nodes before its layer only, and each such
/// u adds its q/k/v edges and then u → mℓ before the next u (docs/model-families.md).
///
/// Score matrix S[nForward, nBackward]: rows are upstream nodes (input 0, head h of layer ℓ at
/// 1 + ℓ(H+1) + h, MLP ℓ at 1 + ℓ(H+1) + H); columns are downstream inputs (head h of layer ℓ, input
/// q/k/v = j at ℓ(3H+1) + jH + h, MLP ℓ at ℓ(3H+1) + 3H, logits last). Column b's valid rows are those
/// below `backwardPrevIndex[b]`.
public struct AttributionGraph: Sendable {
    public let nLayers: Int
    public let nHeads: Int
    /// Whether attention and MLP of a block read the same input (the MLP's parents exclude its own layer's heads).
    public let parallel: Bool
    /// Rows of the score matrix: 1 + L(H+1).
    public let nForward: Int
    /// Columns of the score matrix: L(3H+1) + 1.
    public let nBackward: Int
    /// All nodes in node order.
    public let nodes: [GraphNode]
    /// All edges in insertion order.
    public let edges: [GraphEdge]
    /// Node names by forward index (`input`, `a0.h0`, …, `m0`, …).
    public let forwardNames: [String]
    /// Input names by backward index (`a0.h0<q>`, …, `m0`, …, `logits`).
    public let backwardNames: [String]
    /// For each column, the number of rows that feed it (rows below this index are edges).
    public let backwardPrevIndex: [Int]
    /// Edge indices of each node's incoming edges, in insertion order (indexed like `nodes`).
    public let parentEdges: [[Int]]
    /// Edge indices of each node's outgoing edges, in insertion order (indexed like `nodes`).
    public let childEdges: [[Int]]
    /// Node index of each forward row.
    public let forwardNode: [Int]
    /// Node index of each backward column.
    public let backwardNode: [Int]
    /// Edge index at [forward * nBackward + backward], -1 where the pair is not an edge.
    private let edgeAt: [Int32]
    private let nodeByName: [String: Int]
    private let edgeByName: [String: Int]

    /// The graph of a model with `nLayers` blocks and `nHeads` heads per block: sequential attention then
    /// MLP (GPT-2, Llama), or both reading the block's input when `parallel` (Phi).
    public init(nLayers: Int, nHeads: Int, parallel: Bool = false) {
        precondition(nLayers >= 1 && nHeads >= 1, "a graph needs at least one layer and one head")
        self.nLayers = nLayers
        self.nHeads = nHeads
        self.parallel = parallel
        let nF = 1 + nLayers * (nHeads + 1)
        let nB = nLayers * (3 * nHeads + 1) + 1
        nForward = nF
        nBackward = nB

        var nodes: [GraphNode] = [.input]
        for l in 0..<nLayers {
            for h in 0..<nHeads { nodes.append(.head(layer: l, head: h)) }
            nodes.append(.mlp(layer: l))
        }
        nodes.append(.logits)
        self.nodes = nodes
        // Node order equals forward order (logits last, with no row).
        forwardNode = Array(0..<nF)
        forwardNames = nodes[0..<nF].map(\.name)
        (backwardNames, backwardNode, backwardPrevIndex) = Self.backwardColumns(nLayers: nLayers, nHeads: nHeads, parallel: parallel)
        edges = Self.studyEdges(nodes: nodes, nLayers: nLayers, nHeads: nHeads, parallel: parallel)

        var parents = [[Int]](repeating: [], count: nodes.count)
        var children = [[Int]](repeating: [], count: nodes.count)
        var at = [Int32](repeating: -1, count: nF * nB)
        var byName: [String: Int] = [:]
        byName.reserveCapacity(edges.count)
        for (e, edge) in edges.enumerated() {
            parents[edge.child].append(e)
            children[edge.parent].append(e)
            at[edge.forward * nB + edge.backward] = Int32(e)
            byName[edge.name] = e
        }
        parentEdges = parents
        childEdges = children
        edgeAt = at
        edgeByName = byName
        nodeByName = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.name, $0) })
    }

    /// The index of node `n` in a graph of `nHeads` heads per layer (`nodes` order; logits after the forward rows).
    private static func nodeIndex(_ n: GraphNode, nHeads: Int, nForward: Int) -> Int {
        switch n {
        case .input: return 0
        case let .head(l, h): return 1 + l * (nHeads + 1) + h
        case let .mlp(l): return 1 + l * (nHeads + 1) + nHeads
        case .logits: return nForward
        }
    }

    /// Each backward column's name, node, and the number of forward rows that feed it.
    private static func backwardColumns(nLayers: Int, nHeads: Int, parallel: Bool) -> ([String], [Int], [Int]) {
        let nF = 1 + nLayers * (nHeads + 1)
        let nB = nLayers * (3 * nHeads + 1) + 1
        var names = [String](repeating: "", count: nB)
        var node = [Int](repeating: 0, count: nB)
        var prev = [Int](repeating: 0, count: nB)
        for l in 0..<nLayers {
            for j in QKV.allCases {
                for h in 0..<nHeads {
                    let b = headBackward(layer: l, head: h, qkv: j, nHeads: nHeads)
                    names[b] = "a\(l).h\(h)<\(j.letter)>"
                    node[b] = nodeIndex(.head(layer: l, head: h), nHeads: nHeads, nForward: nF)
                    prev[b] = 1 + l * (nHeads + 1)
                }
            }
            let b = mlpBackward(layer: l, nHeads: nHeads)
            names[b] = "m\(l)"
            node[b] = nodeIndex(.mlp(layer: l), nHeads: nHeads, nForward: nF)
            prev[b] = 1 + l * (nHeads + 1) + (parallel ? 0 : nHeads)
        }
        names[nB - 1] = "logits"
        node[nB - 1] = nF
        prev[nB - 1] = nF
        return (names, node, prev)
    }

    /// The edges in the study's insertion order: every node upstream of a block's heads (their q, k and v inputs),
    /// then of its MLP (after the heads, or beside them when `parallel`), then of the logits.
    private static func studyEdges(nodes: [GraphNode], nLayers: Int, nHeads: Int, parallel: Bool) -> [GraphEdge] {
        let nF = 1 + nLayers * (nHeads + 1)
        let nB = nLayers * (3 * nHeads + 1) + 1
        let index = { (n: GraphNode) in nodeIndex(n, nHeads: nHeads, nForward: nF) }
        var edges: [GraphEdge] = []
        func add(_ u: Int, _ child: Int, _ qkv: QKV?, _ b: Int) {
            let name = qkv.map { "\(nodes[u].name)->\(nodes[child].name)<\($0.letter)>" } ?? "\(nodes[u].name)->\(nodes[child].name)"
            edges.append(GraphEdge(parent: u, child: child, qkv: qkv, forward: u, backward: b, name: name))
        }
        var residual: [Int] = [0]
        for l in 0..<nLayers {
            for u in residual {
                for h in 0..<nHeads {
                    for j in QKV.allCases {
                        add(u, index(.head(layer: l, head: h)), j, headBackward(layer: l, head: h, qkv: j, nHeads: nHeads))
                    }
                }
                if parallel { add(u, index(.mlp(layer: l)), nil, mlpBackward(layer: l, nHeads: nHeads)) }
            }
            for h in 0..<nHeads { residual.append(index(.head(layer: l, head: h))) }
            if !parallel {
                for u in residual { add(u, index(.mlp(layer: l)), nil, mlpBackward(layer: l, nHeads: nHeads)) }
            }
            residual.append(index(.mlp(layer: l)))
        }
        for u in residual { add(u, nF, nil, nB - 1) }
        return edges
    }

    /// Number of edges: for GPT-2 small (12 × 12) 32,491.
    public var edgeCount: Int { edges.count }

    /// Column of head `head` of layer `layer`, input `qkv`: ℓ(3H+1) + jH + h.
    public static func headBackward(layer: Int, head: Int, qkv: QKV, nHeads: Int) -> Int {
        layer * (3 * nHeads + 1) + qkv.rawValue * nHeads + head
    }

    /// Column of MLP `layer`: ℓ(3H+1) + 3H.
    public static func mlpBackward(layer: Int, nHeads: Int) -> Int {
        layer * (3 * nHeads + 1) + 3 * nHeads
    }

    /// Row of head `head` of layer `layer`: 1 + ℓ(H+1) + h.
    public func headForward(layer: Int, head: Int) -> Int { 1 + layer * (nHeads + 1) + head }
    /// Row of MLP `layer`: 1 + ℓ(H+1) + H.
    public func mlpForward(layer: Int) -> Int { 1 + layer * (nHeads + 1) + nHeads }
    /// Column of a head input.
    public func headBackward(layer: Int, head: Int, qkv: QKV) -> Int {
        Self.headBackward(layer: layer, head: head, qkv: qkv, nHeads: nHeads)
    }
    /// Column of an MLP input.
    public func mlpBackward(layer: Int) -> Int { Self.mlpBackward(layer: layer, nHeads: nHeads) }
    /// Column of the logits (the final residual stream).
    public var logitsBackward: Int { nBackward - 1 }
    /// Index of the `logits` node in `nodes` (the last one).
    public var logitsNode: Int { nodes.count - 1 }

    /// Whether (row, column) is an edge.
    @inline(__always)
    public func isEdge(forward f: Int, backward b: Int) -> Bool { f < backwardPrevIndex[b] }

    /// The edge index at (row, column), or nil where the pair is not an edge.
    public func edgeIndex(forward f: Int, backward b: Int) -> Int? {
        let e = edgeAt[f * nBackward + b]
        return e < 0 ? nil : Int(e)
    }

    /// The index of the node called `name`, or nil.
    public func nodeIndex(named name: String) -> Int? { nodeByName[name] }

    /// The index of the edge called `name`, or nil.
    public func edgeIndex(named name: String) -> Int? { edgeByName[name] }

    /// The validity mask of the score matrix, row-major [nForward, nBackward]: true where the pair is an edge.
    public var edgeMask: [Bool] {
        var m = [Bool](repeating: false, count: nForward * nBackward)
        for e in edges { m[e.forward * nBackward + e.backward] = true }
        return m
    }

    /// TransformerLens hook of a backward column (the input the gradient is taken at, before LayerNorm).
    public func backwardHookName(_ b: Int) -> String {
        if b == nBackward - 1 { return "blocks.\(nLayers - 1).hook_resid_post" }
        let l = b / (3 * nHeads + 1), r = b % (3 * nHeads + 1)
        if r == 3 * nHeads { return "blocks.\(l).hook_mlp_in" }
        return "blocks.\(l).hook_\(QKV(rawValue: r / nHeads)!.letter)_input[head \(r % nHeads)]"
    }
}
