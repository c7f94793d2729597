import Foundation

/// Choosing a circuit from scores, exactly as EAP-IG's `Graph` does it (apply_topn, apply_threshold,
/// apply_greedy, prune_dead_nodes). NaN scores rank below every number.
extension Circuit {
    /// The ranking key of a score: |s| when `absolute`, else s; NaN becomes −∞ so it ranks last.
    @inline(__always)
    static func key(_ s: Float, absolute: Bool) -> Float {
        if s.isNaN { return -.infinity }
        return absolute ? abs(s) : s
    }

    /// Edge indices sorted by descending key, ties in insertion order (Python's stable `sorted(…, reverse=True)`).
    public static func ranked(_ scores: [Float], absolute: Bool) -> [Int] {
        let keys = scores.map { key($0, absolute: absolute) }
        return scores.indices.sorted { a, b in
            keys[a] != keys[b] ? keys[a] > keys[b] : a < b
        }
    }

    /// Keeps the `n` edges of largest |score| (or score when not `absolute`), ties broken by insertion
    /// order; a node is in the circuit iff it touches a kept edge (`apply_topn`; prune afterwards).
    public mutating func applyTopN(_ n: Int, absolute: Bool = true) {
        precondition(n >= 0, "top-n needs n ≥ 0")
        for i in nodeInGraph.indices { nodeInGraph[i] = false }
        let order = Self.ranked(scores, absolute: absolute)
        for (rank, e) in order.enumerated() {
            let keep = rank < n
            edgeInGraph[e] = keep
            if keep {
                nodeInGraph[graph.edges[e].parent] = true
                nodeInGraph[graph.edges[e].child] = true
            }
        }
    }

    /// Keeps edges with |score| ≥ `threshold` (score ≥ threshold when not `absolute`); every node stays in
    /// the graph until pruning (`apply_threshold`). NaN scores are never kept.
    public mutating func applyThreshold(_ threshold: Float, absolute: Bool = true) {
        for i in nodeInGraph.indices { nodeInGraph[i] = true }
        for e in scores.indices {
            edgeInGraph[e] = absolute ? abs(scores[e]) >= threshold : scores[e] >= threshold
        }
    }

    /// Greedy search from `logits` (`apply_greedy`): start with `logits` only, then `n` times take the
    /// candidate edge of largest key, add it and, if its parent was not yet in the circuit, add the parent
    /// and make the parent's incoming edges candidates. Candidates of equal key are taken in the order they
    /// became candidates (earlier batches first, within a batch insertion order; the reference orders a
    /// batch by a Python set, which is not deterministic across processes). Stops early when no candidate
    /// is left. With `reset` false the current circuit is extended instead (candidates: edges whose child is in it).
    public mutating func applyGreedy(_ n: Int, absolute: Bool = true, reset: Bool = true) {
        precondition(n >= 0, "greedy search needs n ≥ 0")
        if reset {
            for i in nodeInGraph.indices { nodeInGraph[i] = false }
            for i in edgeInGraph.indices { edgeInGraph[i] = false }
            nodeInGraph[graph.logitsNode] = true
        }
        var heap = CandidateHeap()
        var batch = 0
        func push(_ edgeList: [Int]) {
            let sorted = edgeList.enumerated().sorted { a, b in
                let ka = Self.key(scores[a.element], absolute: absolute), kb = Self.key(scores[b.element], absolute: absolute)
                return ka != kb ? ka > kb : a.offset < b.offset
            }
            for (pos, item) in sorted.enumerated() {
                heap.push(.init(key: Self.key(scores[item.element], absolute: absolute), batch: batch, position: pos, edge: item.element))
            }
            batch += 1
        }
        push(graph.edges.indices.filter { nodeInGraph[graph.edges[$0].child] })
        var remaining = n
        while remaining > 0, let top = heap.pop() {
            remaining -= 1
            edgeInGraph[top.edge] = true
            let parent = graph.edges[top.edge].parent
            if !nodeInGraph[parent] {
                nodeInGraph[parent] = true
                push(graph.parentEdges[parent])
            }
        }
    }

    /// Removes dead nodes as the study does, one pass each way (`prune_dead_nodes`): `logits` is in iff it
    /// has a kept parent edge; walking nodes from last to first (skipping `logits`), a node with a kept child
    /// edge is in, any other node leaves and its parent edges are dropped; then walking first to last, a
    /// node other than `input` that is in but has no kept parent edge leaves and its child edges are
    /// dropped. Returns whether anything changed. On this DAG one call reaches the fixed point.
    @discardableResult
    public mutating func pruneDeadNodes() -> Bool {
        let before = (edgeInGraph, nodeInGraph)
        let logits = graph.logitsNode
        nodeInGraph[logits] = graph.parentEdges[logits].contains { edgeInGraph[$0] }
        for node in stride(from: graph.nodes.count - 1, through: 0, by: -1) where node != logits {
            if graph.childEdges[node].contains(where: { edgeInGraph[$0] }) {
                nodeInGraph[node] = true
            } else {
                nodeInGraph[node] = false
                for e in graph.parentEdges[node] { edgeInGraph[e] = false }
            }
        }
        for node in graph.nodes.indices where node != 0 {
            if nodeInGraph[node] && !graph.parentEdges[node].contains(where: { edgeInGraph[$0] }) {
                nodeInGraph[node] = false
                for e in graph.childEdges[node] { edgeInGraph[e] = false }
            }
        }
        return before.0 != edgeInGraph || before.1 != nodeInGraph
    }
}

/// A max-heap of greedy-search candidates: larger key first, then earlier batch, then earlier position.
struct CandidateHeap {
    struct Item {
        let key: Float
        let batch: Int
        let position: Int
        let edge: Int

        func before(_ o: Item) -> Bool {
            if key != o.key { return key > o.key }
            if batch != o.batch { return batch < o.batch }
            return position < o.position
        }
    }

    private var items: [Item] = []

    mutating func push(_ item: Item) {
        items.append(item)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard items[i].before(items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Item? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < items.count, items[l].before(items[best]) { best = l }
                if r < items.count, items[r].before(items[best]) { best = r }
                if best == i { break }
                items.swapAt(i, best)
                i = best
            }
        }
        return top
    }
}
