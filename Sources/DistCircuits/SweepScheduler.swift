import Core

/// Which item a rank gets next: items are grouped by checkpoint so that a rank loads a checkpoint once
/// for all the items it computes on it.
///
/// A rank gets the next item of the checkpoint it has loaded while that checkpoint has items left; else
/// the earliest checkpoint no other rank is working on; else it joins the checkpoint with the most items
/// left (earliest on ties). Within a checkpoint items go in plan order (acquisition first, the longest).
/// Items `ready` refuses (transplants whose source cells are not done yet) are passed over until it accepts them.
public struct SweepScheduler: Sendable {
    private var pending: [Int64: [SweepItem]]
    private let steps: [Int64]
    /// The checkpoint each rank last got an item of.
    public private(set) var loaded: [Int: Int64] = [:]

    /// `items` in plan order; those of one checkpoint keep their relative order.
    public init(items: [SweepItem]) {
        var pending: [Int64: [SweepItem]] = [:]
        for item in items { pending[item.checkpoint, default: []].append(item) }
        self.pending = pending
        steps = pending.keys.sorted()
    }

    public var remaining: Int { pending.values.reduce(0) { $0 + $1.count } }

    /// The next item for `rank`, or nil when none is left.
    public mutating func next(for rank: Int, ready: (SweepItem) -> Bool = { _ in true }) -> SweepItem? {
        if let s = loaded[rank], let item = take(s, ready) { return item }
        let open = steps.filter { pending[$0]?.contains(where: ready) ?? false }
        guard !open.isEmpty else { return nil }
        let busy = Set(loaded.filter { $0.key != rank }.values)
        let step = open.first { !busy.contains($0) }
            ?? open.max { a, b in pending[a]!.count != pending[b]!.count ? pending[a]!.count < pending[b]!.count : a > b }!
        loaded[rank] = step
        return take(step, ready)
    }

    private mutating func take(_ step: Int64, _ ready: (SweepItem) -> Bool) -> SweepItem? {
        guard var list = pending[step], let i = list.firstIndex(where: ready) else { return nil }
        let item = list.remove(at: i)
        pending[step] = list
        return item
    }
}
