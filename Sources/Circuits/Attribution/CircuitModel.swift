import Foundation
import Models

/// The instrumented model of a checkpoint folder, chosen by its config.json (`ModelConfig`): GPT-2 →
/// `InstrumentedGPT2`, Llama and Phi → `InstrumentedFamily`. The one way circuit discovery, evaluation and the
/// sweep load a model (docs/model-families.md, "Circuits on the families").
public final class CircuitModel: @unchecked Sendable {
    public let model: any InstrumentedModel
    public let config: ModelConfig
    /// The training step of the `checkpoint-<step>` folder last loaded, else 0.
    public private(set) var step: Int64

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

    /// Reads another checkpoint of the same shape into the loaded parameters (no allocation). A folder whose
    /// config.json describes another model is a `CheckpointError` naming it.
    public func reload(folder: URL) throws {
        let other = try ModelConfig.load(from: folder.appendingPathComponent(HFCheckpoint.configFileName))
        func shape(_ c: ModelConfig) -> [Int] {
            [ModelFamily.allCases.firstIndex(of: c.family)!, c.numLayers, c.numHeads, c.numKVHeads, c.hiddenSize, c.intermediateSize,
             c.vocabSize, c.maxPositions]
        }
        guard shape(other) == shape(config) else {
            throw CheckpointError(file: folder.appendingPathComponent(HFCheckpoint.configFileName),
                                  problem: "describes another model shape than the checkpoint loaded first",
                                  fix: "every checkpoint of one sweep must have the same config.json")
        }
        if let gpt2 = model as? InstrumentedGPT2 {
            try HFCheckpoint.load(folder: folder, into: gpt2.parameters)
            gpt2.refreshFoldedBiases()
        } else if let family = model as? InstrumentedFamily {
            try FamilyCheckpoint.loadWeights(from: folder.appendingPathComponent(HFCheckpoint.weightsFileName), into: family.parameters)
            family.refreshFoldedBiases()
        }
        step = checkpointStep(of: folder) ?? 0
    }
}

extension ModelConfig {
    /// The EAP-IG graph of the family as the study's TransformerLens builds it: sequential blocks (GPT-2, Llama)
    /// or parallel ones (Phi: attention and MLP read the same block input).
    public var attributionGraph: AttributionGraph {
        AttributionGraph(nLayers: numLayers, nHeads: numHeads, parallel: family == .phi)
    }

    /// Multiply-add FLOPs (2 per multiply-add) per token and layer of the block's matrix products: the q / k / v
    /// projections (K and V at the grouped width), the output projection and the MLP (three products for
    /// Llama's SwiGLU, two otherwise). GPT-2: 24·C².
    public var blockMatmulFlopsPerToken: Double {
        let C = Double(hiddenSize), KV = Double(kvSize)
        let attention = 2 * C * (C + 2 * KV) + 2 * C * C
        return attention + mlpMatmulFlopsPerToken
    }

    /// The MLP's part of `blockMatmulFlopsPerToken`: three products of C × F for Llama's SwiGLU, two otherwise.
    public var mlpMatmulFlopsPerToken: Double { Double(family == .llama ? 3 : 2) * 2 * Double(hiddenSize) * Double(intermediateSize) }
}

/// The training step of a checkpoint folder named `checkpoint-<step>` (Hugging Face Trainer names), else nil.
public func checkpointStep(of folder: URL) -> Int64? {
    let name = folder.standardizedFileURL.lastPathComponent
    guard name.hasPrefix("checkpoint-") else { return nil }
    return Int64(name.dropFirst("checkpoint-".count))
}
