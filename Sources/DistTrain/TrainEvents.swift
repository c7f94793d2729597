import Core
import Foundation

/// What training reports while it runs. The engine calls the observer on every rank with the same
/// events; the command shows them (on rank 0 only) as it sees fit: a live line on a terminal, plain
/// lines in a log.
public enum TrainEvent {
    /// A stage is about to take its first (or, resumed, its next) step.
    case stageStarted(StagePlan)
    /// A stage whose last checkpoint says it finished; nothing to do.
    case stageAlreadyComplete(stage: TrainStage, step: Int, checkpoint: URL)
    /// After every optimizer step.
    case step(StepProgress)
    /// A metrics line (training log or evaluation), as appended to metrics.jsonl.
    case metrics(stage: TrainStage, line: MetricsLine)
    case checkpointSaved(stage: TrainStage, step: Int, folder: URL)
    /// Something the user should know that is not an error (e.g. ranks re-synchronised).
    case notice(String)
    /// The stage ran to its last step.
    case stageFinished(stage: TrainStage, step: Int, checkpoint: URL, seconds: Double)
    /// A stop was requested (SIGTERM/SIGUSR1); the state is saved in `checkpoint`.
    case stopped(stage: TrainStage, step: Int, checkpoint: URL, signal: String)
}

/// The shape of one stage's training, known before its first step.
public struct StagePlan: Sendable {
    public let stage: TrainStage
    public let ranks: Int
    public let threads: Int
    public let trainBlocks: Int
    public let evalBlocks: Int
    public let blockSize: Int
    public let globalBatch: Int
    public let stepsPerEpoch: Int
    public let totalSteps: Int
    public let epochs: Int
    /// The step the stage starts from (0, or the resumed checkpoint's).
    public let startStep: Int
    /// The checkpoint resumed from, or where the weights came from.
    public let resumedFrom: URL?
    public let initDescription: String
    public let parameters: Int
    public let deterministic: Bool
}

/// One optimizer step, as the progress display needs it.
public struct StepProgress: Sendable {
    public let stage: TrainStage
    public let step: Int
    public let totalSteps: Int
    public let epoch: Double
    /// Mean loss over the global batch of this step.
    public let loss: Double
    public let learningRate: Double
    public let gradNorm: Double?
    /// Tokens per second over the current logging window (all ranks together).
    public let tokensPerSecond: Double
    /// Mean seconds per step since the stage (re)started, evaluation excluded.
    public let secondsPerStep: Double
    /// Estimated seconds to the end of the stage.
    public var etaSeconds: Double { secondsPerStep * Double(totalSteps - step) }
}

/// One metrics.jsonl line: key–value pairs in order, Hugging Face `log_history` names.
public struct MetricsLine: Sendable {
    public var values: [(String, Double)]
    public var step: Int

    public init(values: [(String, Double)], step: Int) {
        self.values = values
        self.step = step
    }

    public func value(_ key: String) -> Double? { values.first { $0.0 == key }?.1 }

    /// The JSON object: the values, then `step` (an integer), as HF appends it.
    public var json: JSONValue {
        .object(values.map { ($0.0, .double($0.1)) } + [("step", .int(step))])
    }
}
