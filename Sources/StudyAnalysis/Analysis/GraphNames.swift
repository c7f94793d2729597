import Foundation

/// The EAP-IG node and edge names of a circuit graph (docs/eap.md), as the analysis needs them:
/// which layer an upstream node lies in, which node a downstream input belongs to, which pairs are
/// edges. Sequential blocks (GPT-2, Llama): an MLP also reads its own layer's heads; parallel blocks
/// (Phi: attention and MLP read the same input): it does not.
///
/// Layer convention used by every analysis output: `input` (the token embedding) is layer −1,
/// named "embed"; head `aℓ.hh` and MLP `mℓ` are layer ℓ; `logits` reads after the last layer
/// and is never an upstream node.
public struct GraphNames: Equatable, Sendable {
    /// Upstream (forward-index) node names: `input`, `a0.h0`, …, `m0`, …  (n_forward)
    public let upstream: [String]
    /// Downstream (backward-index) input names: `a0.h0<q>`, …, `m0`, …, `logits`  (n_backward)
    public let downstream: [String]
    /// Layer of each upstream node (−1 for `input`).  (n_forward)
    public let upstreamLayer: [Int]
    /// Index into `upstream` of the node each downstream input feeds, nil for `logits`.  (n_backward)
    public let downstreamNode: [Int?]
    /// Number of transformer layers L (1 + the largest layer index seen).
    public let nLayers: Int
    /// Heads per layer H (the heads of layer 0).
    public var nHeads: Int { upstream.indices.filter { upstreamLayer[$0] == 0 && isHead($0) }.count }
    /// Whether attention and MLP of a block read the same input (Phi).
    public let parallel: Bool
    /// Edges of the graph whose upstream node lies in each layer 0 … L−1 (`input` counted in layer 0):
    /// the edge activation ratio's denominators.  (L)
    public let edgesByParentLayer: [Double]

    /// Parses the names; throws `problem` text (caller adds the file) for a name outside the grammar.
    public init(upstream: [String], downstream: [String], parallel: Bool = false) throws {
        var layers: [Int] = []
        var index: [String: Int] = [:]
        for (i, name) in upstream.enumerated() {
            guard let layer = GraphNames.layer(ofNode: name) else {
                throw GraphNamesError(problem: "upstream name '\(name)' is not `input`, `a<l>.h<h>` or `m<l>`")
            }
            layers.append(layer)
            index[name] = i
        }
        var nodes: [Int?] = []
        for name in downstream {
            let node = GraphNames.node(ofDownstream: name)
            if node == "logits" { nodes.append(nil); continue }
            guard let i = index[node] else {
                throw GraphNamesError(problem: "downstream name '\(name)' names no upstream node")
            }
            nodes.append(i)
        }
        self.upstream = upstream
        self.downstream = downstream
        self.upstreamLayer = layers
        self.downstreamNode = nodes
        self.nLayers = (layers.max() ?? -1) + 1
        self.parallel = parallel
        var counts = [Double](repeating: 0, count: nLayers)
        if nLayers > 0 {
            for u in upstream.indices {
                for d in downstream.indices where Self.isEdge(upstreamLayer: layers, downstreamNode: nodes, upstream: upstream,
                                                              parallel: parallel, u, d) {
                    counts[max(0, layers[u])] += 1
                }
            }
        }
        edgesByParentLayer = counts
    }

    /// The names docs/eap.md defines for L layers of H heads, in forward / backward index order.
    public static func standard(layers: Int, heads: Int, parallel: Bool = false) -> GraphNames {
        var up = ["input"]
        var down: [String] = []
        for l in 0..<layers {
            for h in 0..<heads { up.append("a\(l).h\(h)") }
            up.append("m\(l)")
            for x in ["q", "k", "v"] { for h in 0..<heads { down.append("a\(l).h\(h)<\(x)>") } }
            down.append("m\(l)")
        }
        down.append("logits")
        // The standard names always parse.
        return try! GraphNames(upstream: up, downstream: down, parallel: parallel)
    }

    /// The (L, H) that give `nForward = 1 + L(H+1)` and `nBackward = L(3H+1) + 1`, if any.
    public static func shape(nForward: Int, nBackward: Int) -> (layers: Int, heads: Int)? {
        // 3(nF − 1) − (nB − 1) = 3L(H+1) − L(3H+1) = 2L.
        let twiceL = 3 * (nForward - 1) - (nBackward - 1)
        guard twiceL > 0, twiceL % 2 == 0 else { return nil }
        let layers = twiceL / 2
        guard (nForward - 1) % layers == 0 else { return nil }
        let heads = (nForward - 1) / layers - 1
        guard heads >= 1, layers * (3 * heads + 1) + 1 == nBackward else { return nil }
        return (layers, heads)
    }

    /// −1 for `input`, ℓ for `aℓ.hh` and `mℓ`; nil for anything else (including `logits`).
    public static func layer(ofNode name: String) -> Int? {
        if name == "input" { return -1 }
        if name.hasPrefix("m"), let l = Int(name.dropFirst()), l >= 0 { return l }
        if name.hasPrefix("a") {
            let parts = name.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, let l = Int(parts[0]), l >= 0, parts[1].hasPrefix("h"),
                  let h = Int(parts[1].dropFirst()), h >= 0 else { return nil }
            return l
        }
        return nil
    }

    /// The node a downstream input belongs to: `a2.h3<q>` → `a2.h3`; `m1` → `m1`; `logits` → `logits`.
    public static func node(ofDownstream name: String) -> String {
        if let open = name.firstIndex(of: "<"), name.hasSuffix(">") { return String(name[..<open]) }
        return name
    }

    /// Whether (u, d) is an edge of the graph (docs/eap.md): every node feeds `logits`; a head input of
    /// layer ℓ reads nodes of earlier layers; MLP ℓ also reads the heads of its own layer unless the
    /// blocks are parallel.
    public func isEdge(upstream u: Int, downstream d: Int) -> Bool {
        Self.isEdge(upstreamLayer: upstreamLayer, downstreamNode: downstreamNode, upstream: upstream, parallel: parallel, u, d)
    }

    private static func isEdge(upstreamLayer: [Int], downstreamNode: [Int?], upstream: [String], parallel: Bool, _ u: Int, _ d: Int) -> Bool {
        guard let child = downstreamNode[d] else { return true }
        let lu = upstreamLayer[u], ld = upstreamLayer[child]
        if upstream[child].hasPrefix("a") { return lu < ld }
        return lu < ld || (!parallel && lu == ld && upstream[u].hasPrefix("a"))
    }

    /// The graph whose edges are exactly the 1s of `isEdge` (upstream × downstream, row-major): these
    /// names with sequential or with parallel blocks; nil when neither matches.
    public func matching(isEdge mask: [Int8]) -> GraphNames? {
        guard mask.count == upstream.count * downstream.count else { return nil }
        for candidate in [parallel, !parallel] {
            guard let g = try? GraphNames(upstream: upstream, downstream: downstream, parallel: candidate) else { continue }
            var same = true
            for u in upstream.indices where same {
                for d in downstream.indices where g.isEdge(upstream: u, downstream: d) != (mask[u * downstream.count + d] == 1) { same = false; break }
            }
            if same { return g }
        }
        return nil
    }

    /// Whether an upstream node is an attention head.
    public func isHead(_ upstreamIndex: Int) -> Bool { upstream[upstreamIndex].hasPrefix("a") }

    /// Name of a layer index as analysis outputs label it: "embed" for −1, else the number.
    public static func layerName(_ layer: Int) -> String { layer < 0 ? "embed" : String(layer) }

    /// The layers of the `layer` dimension of analysis.nc: −1 (embed), 0, …, L−1.
    public var layers: [Int] { Array(-1..<nLayers) }
}

/// A name outside the EAP-IG grammar; callers wrap it in an `AnalysisError` naming the file.
public struct GraphNamesError: Error, CustomStringConvertible {
    public let problem: String
    public var description: String { problem }
}
