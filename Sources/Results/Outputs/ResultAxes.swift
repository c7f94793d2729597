/// The coordinates of the result files: cells of the sweep grid, the label axes (task, type,
/// frequency, attribute, ...), the checkpoint axis, and their canonical order.
///
/// Tables keep labels as sets and sort them only when a file is written, so cells can arrive in
/// any order and tables built from different parts of a sweep merge into the same file as the
/// table built at once.

/// The labels the study uses, in the order files list them unless a caller gives another.
public enum OutputLabels {
    /// Label of an axis that was not filtered (all types, all frequencies, ...).
    public static let all = "all"
    /// Circuit tasks, the study's order.
    public static let tasks = ["city", "company", "major"]
    /// Entity types.
    public static let types = ["new", "revised", all]
    /// Frequency buckets of the default data configuration, least frequent first.
    public static let frequencies = ["low", "medium", "high", all]
    /// Attributes the acquisition test asks for.
    public static let attributes = ["birthday", "city", "company", "major", "university"]
}

/// What the second coordinate of a result grid's cell is: the task (circuit grid) or the attribute asked for
/// (acquisition grid).
public protocol GridItem: Sendable { static var name: String { get } }
public enum TaskItem: GridItem { public static let name = "task" }
public enum AttributeItem: GridItem { public static let name = "attribute" }

/// One cell of a result grid: a checkpoint (by training step), an item (`Item`: a task or an attribute), an entity
/// type and a frequency bucket.
public struct GridCell<Item: GridItem>: Hashable, Sendable, CustomStringConvertible {
    public var checkpoint: Int64
    public var item: String
    public var type: String
    public var frequency: String

    public var description: String {
        "checkpoint=\(checkpoint) \(Item.name)=\(item) type=\(type) frequency=\(frequency)"
    }
}

/// One cell of the circuit grid: scores and circuit evaluations are stored per cell.
public typealias ResultCell = GridCell<TaskItem>

extension GridCell where Item == TaskItem {
    public init(checkpoint: Int64, task: String, type: String, frequency: String) { self.init(checkpoint: checkpoint, item: task, type: type, frequency: frequency) }
    public var task: String { get { item } set { item = newValue } }
}

/// One cell of the acquisition grid: the attribute asked for.
public typealias AcquisitionCell = GridCell<AttributeItem>

extension GridCell where Item == AttributeItem {
    public init(checkpoint: Int64, attribute: String, type: String, frequency: String) { self.init(checkpoint: checkpoint, item: attribute, type: type, frequency: frequency) }
    public var attribute: String { get { item } set { item = newValue } }
}

/// The labels of one string axis and the order a file lists them in.
///
/// `sorted`: first the labels named in `canonicalOrder`, in that order; then any other label,
/// integers numerically before other text, other text in Swift's (locale-independent) string
/// order. Two axes are equal when they hold the same labels in the same sorted order.
public struct LabelAxis: Equatable, Sendable {
    public private(set) var labels: Set<String>
    public private(set) var canonicalOrder: [String]

    public init<S: Sequence>(_ labels: S, canonicalOrder: [String] = []) where S.Element == String {
        self.labels = Set(labels)
        self.canonicalOrder = canonicalOrder
    }

    public init(canonicalOrder: [String] = []) { self.init([String](), canonicalOrder: canonicalOrder) }

    public var isEmpty: Bool { labels.isEmpty }
    public var count: Int { labels.count }
    public func contains(_ label: String) -> Bool { labels.contains(label) }

    public mutating func insert(_ label: String) { labels.insert(label) }

    public mutating func insert<S: Sequence>(contentsOf labels: S) where S.Element == String {
        self.labels.formUnion(labels)
    }

    /// Labels of both axes; the canonical order is this axis's, followed by the other's labels it lacks.
    public mutating func formUnion(_ other: LabelAxis) {
        labels.formUnion(other.labels)
        let known = Set(canonicalOrder)
        canonicalOrder += other.canonicalOrder.filter { !known.contains($0) }
    }

    /// The labels in file order (see the type's contract).
    public var sorted: [String] {
        var rank: [String: Int] = [:]
        for (i, label) in canonicalOrder.enumerated() where rank[label] == nil { rank[label] = i }
        return labels.sorted { a, b in
            switch (rank[a], rank[b]) {
            case let (x?, y?): return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return LabelAxis.naturalLess(a, b)
            }
        }
    }

    /// Integers (as text) numerically and before other text; other text in string order.
    static func naturalLess(_ a: String, _ b: String) -> Bool {
        switch (Int64(a), Int64(b)) {
        case let (x?, y?): return x != y ? x < y : a < b
        case (_?, nil): return true
        case (nil, _?): return false
        case (nil, nil): return a < b
        }
    }

    public static func == (lhs: LabelAxis, rhs: LabelAxis) -> Bool { lhs.sorted == rhs.sorted }
}

/// The checkpoints of a table: training step → checkpoint folder (as given). Files list them by
/// step, ascending. A step names one checkpoint: the same step with two folders is an error
/// (base and continual training both count steps from 0, so a sweep over both stages must keep
/// their steps apart).
public struct CheckpointAxis: Equatable, Sendable {
    public private(set) var paths: [Int64: String] = [:]

    public init() {}

    /// Adds a checkpoint; adding it again with the same folder does nothing.
    public mutating func insert(step: Int64, path: String) throws {
        if let known = paths[step], known != path {
            throw OutputFileError(.conflictingCheckpoint(step),
                                  reason: "checkpoint step \(step) is given as both '\(known)' and '\(path)'",
                                  hint: "one step must name one checkpoint folder; sweep the two training stages into separate files or give distinct steps")
        }
        paths[step] = path
    }

    public var isEmpty: Bool { paths.isEmpty }
    public var count: Int { paths.count }
    public func contains(_ step: Int64) -> Bool { paths[step] != nil }
    public func path(of step: Int64) -> String? { paths[step] }

    /// Steps in file order (ascending).
    public var steps: [Int64] { paths.keys.sorted() }

    /// Adds the other axis's checkpoints (an error if a step has two different folders).
    public mutating func formUnion(_ other: CheckpointAxis) throws {
        for step in other.steps { try insert(step: step, path: other.paths[step]!) }
    }
}

/// The nodes and edges every score matrix and circuit mask of a file is laid out over (docs/eap.md):
/// rows are upstream nodes in forward-index order (`input`, `a0.h0`, …, `m0`, …), columns are
/// downstream inputs in backward-index order (`a0.h0<q>`, …, `m0`, …, `logits`).
public struct EdgeLayout: Equatable, Sendable {
    /// Upstream node names. (n_forward)
    public let upstream: [String]
    /// Downstream input names. (n_backward)
    public let downstream: [String]
    /// 1 where (upstream, downstream) is an edge, else 0; row-major. (n_forward, n_backward)
    public let isEdge: [Int8]

    public var nForward: Int { upstream.count }
    public var nBackward: Int { downstream.count }
    /// Number of edges (entries of `isEdge` equal to 1).
    public var edgeCount: Int { isEdge.reduce(0) { $0 + Int($1) } }

    /// Checks the sizes, that names are unique and non-empty, and that the mask holds only 0 and 1.
    public init(upstream: [String], downstream: [String], isEdge: [Int8]) throws {
        guard !upstream.isEmpty, !downstream.isEmpty, isEdge.count == upstream.count * downstream.count else {
            throw OutputFileError(.wrongSize, reason: "an edge layout needs n_forward × n_backward mask entries; got \(isEdge.count) for \(upstream.count) upstream and \(downstream.count) downstream names")
        }
        for (axis, names) in [(ResultName.upstream, upstream), (ResultName.downstream, downstream)] {
            if let name = EdgeLayout.firstDuplicate(names) {
                throw OutputFileError(.duplicateCoordinate(dimension: axis), reason: "\(axis) name '\(name)' appears twice")
            }
            if names.contains("") {
                throw OutputFileError(.invalidArgument, reason: "an \(axis) name is empty")
            }
        }
        if let bad = isEdge.first(where: { $0 != 0 && $0 != 1 }) {
            throw OutputFileError(.invalidArgument, reason: "the edge mask holds \(bad); only 0 and 1 are allowed")
        }
        self.upstream = upstream; self.downstream = downstream; self.isEdge = isEdge
    }

    /// Same, from a Boolean mask. `isEdge`: (n_forward, n_backward)
    public init(upstream: [String], downstream: [String], isEdge: [Bool]) throws {
        try self.init(upstream: upstream, downstream: downstream, isEdge: isEdge.map { $0 ? 1 : 0 })
    }

    /// Sets every entry that is not an edge to NaN. `matrix`: (n_forward, n_backward)
    func maskNonEdges(_ matrix: inout [Float]) {
        precondition(matrix.count == isEdge.count)
        matrix.withUnsafeMutableBufferPointer { m in
            isEdge.withUnsafeBufferPointer { e in
                for i in 0..<m.count where e[i] == 0 { m[i] = .nan }
            }
        }
    }

    /// Throws unless `other` is the same graph: tables of two model architectures do not merge.
    /// `table` names the tables in the message ("score", "circuit").
    func requireSameGraph(as other: EdgeLayout, table: String) throws {
        guard self == other else {
            throw OutputFileError(.incompatibleTables, reason: "the \(table) tables have different graphs (upstream, downstream or is_edge differ)",
                                  hint: "merge only parts of one sweep over one model architecture")
        }
    }

    static func firstDuplicate(_ values: [String]) -> String? {
        var seen = Set<String>()
        for v in values where !seen.insert(v).inserted { return v }
        return nil
    }
}

/// NaN-aware equality used by the tables: two values are the same if they are equal or both NaN,
/// which is what a reader of the file sees. A record's scalar fields carry it as `@NaNEqual`, so the
/// record's `==` is synthesized; arrays compare with `sameValues`.
@inline(__always) func sameValue<F: BinaryFloatingPoint>(_ a: F, _ b: F) -> Bool { a == b || (a.isNaN && b.isNaN) }

func sameValues(_ a: [Float], _ b: [Float]) -> Bool {
    guard a.count == b.count else { return false }
    return a.withUnsafeBufferPointer { x in
        b.withUnsafeBufferPointer { y in
            for i in 0..<x.count where !sameValue(x[i], y[i]) { return false }
            return true
        }
    }
}

/// A measured value whose equality is NaN-aware (`sameValue`): the tables' records mark their floating-point
/// fields `@NaNEqual` and get a synthesized, NaN-aware `==`.
@propertyWrapper
public struct NaNEqual<Value: BinaryFloatingPoint & Sendable>: Equatable, Sendable {
    public var wrappedValue: Value
    public init(wrappedValue: Value) { self.wrappedValue = wrappedValue }
    public static func == (a: NaNEqual, b: NaNEqual) -> Bool { sameValue(a.wrappedValue, b.wrappedValue) }
}
