import Foundation

/// The instrumented model of a checkpoint folder, chosen by its config.json (`ModelConfig`): GPT-2 →
/// `InstrumentedGPT2`, Llama and Phi → `InstrumentedFamily`. The one way circuit discovery, evaluation and the
/// sweep load a model.
public struct CircuitModel: @unchecked Sendable {
    public let model: any InstrumentedModel
    public let config: ModelConfig
    /// The training step of a `checkpoint-<step>` folder, else 0.
    public let step: Int64

    public init(model: any InstrumentedModel, config: ModelConfig, step: Int64 = 0) {
        self.model = model; self.config = config; self.step = step
    }

    /// Reads `folder`'s config.json and weights (model.safetensors).
    /// - Throws: `CheckpointError` naming the file and field at fault.
    public static func load(folder: URL) throws -> CircuitModel {
        let config = try ModelConfig.load(from: folder.appendingPathComponent(HFCheckpoint.configFileName))
        let model: any InstrumentedModel
        switch config.family {
        case .gpt2: model = InstrumentedGPT2(parameters: try HFCheckpoint.load(folder: folder))
        case .llama, .phi: model = InstrumentedFamily(parameters: try FamilyCheckpoint.load(folder: folder))
        }
        return CircuitModel(model: model, config: config, step: checkpointStep(of: folder) ?? 0)
    }
}
