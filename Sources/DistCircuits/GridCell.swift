/// One cell of the sweep: a checkpoint, a task, an entity type and a frequency bucket.
public struct GridCell: Hashable, Codable, Sendable, CustomStringConvertible {
    public let checkpoint: Int
    public let task: String
    public let type: String
    public let frequency: String

    public init(checkpoint: Int, task: String, type: String, frequency: String) {
        self.checkpoint = checkpoint; self.task = task; self.type = type; self.frequency = frequency
    }

    public var description: String { "checkpoint \(checkpoint) × \(task) × \(type) × \(frequency)" }
}
