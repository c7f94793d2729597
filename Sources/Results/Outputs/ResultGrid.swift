/// The grid the sweep's per-cell tables share (scores.nc, circuits.nc, components.nc): the
/// checkpoints and the task, type and frequency labels that cells have used or were declared.
///
/// The tables own the values of their cells; this type owns the bookkeeping of the axes —
/// a cell may refer only to a known checkpoint, its labels join the axes, and two parts of one
/// sweep merge by union — and `ResultGridLayout` places the axes in a file.
public struct ResultGrid: Equatable, Sendable {
    /// The dimensions of a grid variable, outermost first.
    static let dimensions = [ResultName.checkpoint, ResultName.task, ResultName.entityType, ResultName.frequency]

    public internal(set) var checkpoints = CheckpointAxis()
    public internal(set) var tasks: LabelAxis
    public internal(set) var types: LabelAxis
    public internal(set) var frequencies: LabelAxis

    /// An empty grid. The orders decide where known labels go in a file.
    public init(taskOrder: [String] = OutputLabels.tasks, typeOrder: [String] = OutputLabels.types,
                frequencyOrder: [String] = OutputLabels.frequencies) {
        tasks = LabelAxis(canonicalOrder: taskOrder)
        types = LabelAxis(canonicalOrder: typeOrder)
        frequencies = LabelAxis(canonicalOrder: frequencyOrder)
    }

    /// The grid a file describes: its label order becomes the canonical order.
    init(_ layout: ResultGridLayout, checkpoints: CheckpointAxis) {
        self.init(taskOrder: layout.labels[0], typeOrder: layout.labels[1], frequencyOrder: layout.labels[2])
        self.checkpoints = checkpoints
        declare(tasks: layout.labels[0], types: layout.labels[1], frequencies: layout.labels[2])
    }

    mutating func addCheckpoint(step: Int64, path: String) throws {
        try checkpoints.insert(step: step, path: path)
    }

    mutating func declare(tasks: [String], types: [String], frequencies: [String]) {
        self.tasks.insert(contentsOf: tasks)
        self.types.insert(contentsOf: types)
        self.frequencies.insert(contentsOf: frequencies)
    }

    /// Throws unless `cell`'s checkpoint is known; `what` names the thing being set ("cell",
    /// "transplant source_checkpoint=…") in the message.
    func requireCheckpoint(of cell: ResultCell, _ what: String) throws {
        guard checkpoints.contains(cell.checkpoint) else {
            throw OutputFileError(.unknownCheckpoint(cell.checkpoint),
                                  reason: "\(what) refers to checkpoint step \(cell.checkpoint), which the table does not know",
                                  hint: "call addCheckpoint(step:path:) first")
        }
    }

    /// Adds the cell's labels to the axes.
    mutating func insertLabels(of cell: ResultCell) {
        tasks.insert(cell.task); types.insert(cell.type); frequencies.insert(cell.frequency)
    }

    /// The union of both grids; throws when one checkpoint step has two folders.
    func union(_ other: ResultGrid) throws -> ResultGrid {
        var merged = self
        try merged.checkpoints.formUnion(other.checkpoints)
        merged.tasks.formUnion(other.tasks)
        merged.types.formUnion(other.types)
        merged.frequencies.formUnion(other.frequencies)
        return merged
    }

    /// The positions of the axes in a file (checkpoints ascending, labels sorted).
    var layout: ResultGridLayout {
        ResultGridLayout(steps: checkpoints.steps, labels: [tasks.sorted, types.sorted, frequencies.sorted])
    }
}

/// A table whose cells sit on a `ResultGrid` (scores, circuits, components): its axes, read
/// through the grid.
public protocol ResultGridTable {
    var grid: ResultGrid { get }
}

extension ResultGridTable {
    public var checkpoints: CheckpointAxis { grid.checkpoints }
    public var tasks: LabelAxis { grid.tasks }
    public var types: LabelAxis { grid.types }
    public var frequencies: LabelAxis { grid.frequencies }
}

/// Where a `ResultGrid`'s cells sit in a file: the position of each checkpoint and label along
/// the grid dimensions, and the flat (C-order) offset of a cell in a grid variable.
struct ResultGridLayout {
    let steps: [Int64]
    /// Task, type and frequency labels in file order.
    let labels: [[String]]
    let index: GridIndex
    private let stepAt: [Int64: Int]
    private let labelAt: [[String: Int]]

    init(steps: [Int64], labels: [[String]]) {
        self.steps = steps; self.labels = labels
        index = GridIndex(shape: [steps.count] + labels.map(\.count))
        stepAt = positions(steps)
        labelAt = labels.map { positions($0) }
    }

    /// Cells in the grid.
    var count: Int { index.count }

    /// The position of a cell whose checkpoint and labels are on the axes.
    func position(of cell: ResultCell) -> [Int] {
        [stepAt[cell.checkpoint]!, labelAt[0][cell.task]!, labelAt[1][cell.type]!, labelAt[2][cell.frequency]!]
    }

    func offset(of cell: ResultCell) -> Int { index.offset(position(of: cell)) }

    func cell(at position: [Int]) -> ResultCell {
        ResultCell(checkpoint: steps[position[0]], task: labels[0][position[1]], type: labels[1][position[2]],
                   frequency: labels[2][position[3]])
    }

    /// Every position, in file order (the offset of the n-th is n).
    var allPositions: [[Int]] {
        var all: [[Int]] = []
        all.reserveCapacity(count)
        for c in steps.indices {
            for t in labels[0].indices {
                for y in labels[1].indices {
                    for f in labels[2].indices { all.append([c, t, y, f]) }
                }
            }
        }
        return all
    }

    /// `cells` with their positions, in file order (so chunked writes go front to back).
    func inFileOrder<Value>(_ cells: [ResultCell: Value]) -> [(position: [Int], cell: ResultCell, value: Value)] {
        cells.map { (position(of: $0.key), $0.key, $0.value) }.sorted { index.offset($0.position) < index.offset($1.position) }
    }

    /// Writes the grid's coordinates: checkpoint and checkpoint_path, task, type, frequency.
    func writeCoordinates(_ w: OutputFileWriter, checkpoints: CheckpointAxis) throws {
        try w.checkpointCoordinates(checkpoints)
        try w.stringCoordinate(ResultName.task, labels[0], describe(AxisNames.task))
        try w.stringCoordinate(ResultName.entityType, labels[1], describe(AxisNames.type))
        try w.stringCoordinate(ResultName.frequency, labels[2], describe(AxisNames.frequency))
    }

    /// Reads the grid's coordinates from a result file.
    static func read(_ reader: OutputFileReader) throws -> (layout: ResultGridLayout, checkpoints: CheckpointAxis) {
        let (steps, checkpoints) = try reader.checkpoints()
        let labels = [try reader.labels(ResultName.task), try reader.labels(ResultName.entityType), try reader.labels(ResultName.frequency)]
        return (ResultGridLayout(steps: steps, labels: labels), checkpoints)
    }
}
