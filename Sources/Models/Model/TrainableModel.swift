import Foundation
import Numerics

/// A model `dkc train` steps data-parallel: GPT-2 (`GPT2`) or a Llama / Phi `FamilyModel`. Both keep their
/// parameters and gradients in one flat buffer each, tensor after tensor at the same offsets, so the
/// gradient reduction, AdamW and the replica checks work on pointers; the checkpoint goes through the
/// family's own Hugging Face layout (docs/model-families.md, "Training the families").
public protocol TrainableModel: AnyObject {
    /// The model's configuration (family, shape).
    var modelConfig: ModelConfig { get }
    /// Floats in the parameter (and gradient) buffer.
    var parameterCount: Int { get }
    var parameterBase: UnsafeMutablePointer<Float> { get }
    var gradientBase: UnsafeMutablePointer<Float> { get }
    /// Every tensor with its Hugging Face name, shape and offset, in buffer order (the optimizer state file).
    var parameterTensors: [ParameterLayout.Tensor] { get }
    /// AdamW's segments: the HF Trainer's decay set.
    var adamWSegments: [AdamW.Segment] { get }
    /// Workers of the model's own kernels.
    var threads: Int { get }

    func zeroGradients()
    /// Training forward: the mean next-token cross-entropy of `tokens` (B × T, every position real), ready for
    /// `backward`. `dropoutSeed` and `rowKeys` key the dropout masks where the family trains with dropout
    /// (GPT-2); nil seed: none.
    func trainingLoss(tokens: [Int], batch: Int, seqLen: Int, dropoutSeed: UInt64?, rowKeys: [UInt64]) throws -> Double
    /// Adds ∂(last training loss)/∂θ into the gradient buffer.
    func backward()
    /// Evaluation forward: the mean loss and a (B·T, V) buffer whose rows have the logits' argmax (valid until
    /// the next call); no backward follows.
    func evaluationLoss(tokens: [Int], batch: Int, seqLen: Int) throws -> (loss: Double, scores: UnsafePointer<Float>)
    /// Writes config.json, model.safetensors and `extraFiles` into `folder` (temporary name, then rename).
    func save(to folder: URL, extraFiles: [URL]) throws
    /// Reads a checkpoint folder of the same shape into the parameters; another shape is a named error.
    func load(folder: URL) throws
}

extension TrainableModel {
    /// A fresh AdamW over this model's parameters.
    public func makeOptimizer(_ config: AdamWConfig, threads: Int) -> AdamW {
        AdamW(segments: adamWSegments, count: parameterCount, config: config, threads: threads)
    }
}

extension GPT2: TrainableModel {
    public var modelConfig: ModelConfig { ModelConfig(gpt2: config) }
    public var parameterCount: Int { params.count }
    public var parameterBase: UnsafeMutablePointer<Float> { params.base }
    public var gradientBase: UnsafeMutablePointer<Float> { grads.base }
    public var parameterTensors: [ParameterLayout.Tensor] { params.layout.tensors }
    public var adamWSegments: [AdamW.Segment] { params.layout.tensors.map { AdamW.Segment(range: $0.range, decay: $0.decay) } }

    public func trainingLoss(tokens: [Int], batch: Int, seqLen: Int, dropoutSeed: UInt64?, rowKeys: [UInt64]) throws -> Double {
        let dropout = dropoutSeed.map { DropoutPlan(config: config, seed: $0, rowKeys: rowKeys) }
        return try forwardLoss(tokens: tokens, batch: batch, seqLen: seqLen, dropout: dropout)
    }

    public func evaluationLoss(tokens: [Int], batch: Int, seqLen: Int) throws -> (loss: Double, scores: UnsafePointer<Float>) {
        let loss = try forwardLoss(tokens: tokens, batch: batch, seqLen: seqLen, keepLogits: true)
        return (loss, UnsafePointer(acts.logits!))
    }

    public func save(to folder: URL, extraFiles: [URL]) throws { try HFCheckpoint.save(params, to: folder, extraFiles: extraFiles) }
    public func load(folder: URL) throws { try HFCheckpoint.load(folder: folder, into: params) }
}

extension FamilyModel: TrainableModel {
    public var modelConfig: ModelConfig { config }
    public var parameterCount: Int { params.count }
    public var parameterBase: UnsafeMutablePointer<Float> { params.base }
    public var gradientBase: UnsafeMutablePointer<Float> { grads.base }
    public var parameterTensors: [ParameterLayout.Tensor] { layout.tensors }
    public var adamWSegments: [AdamW.Segment] { layout.adamWSegments }

    /// Dropout as the config's `attention_dropout` (and Phi's `embd_pdrop`, `resid_pdrop`) say.
    public func trainingLoss(tokens: [Int], batch: Int, seqLen: Int, dropoutSeed: UInt64?, rowKeys: [UInt64]) throws -> Double {
        let dropout = dropoutSeed.map { DropoutPlan(family: config, seed: $0, rowKeys: rowKeys) }
        return try forwardLoss(tokens: tokens, batch: batch, seqLen: seqLen, dropout: dropout)
    }

    /// The buffer holds exp(logit − row max) after the loss (`forwardLoss` keeps the exponentials), which has
    /// the logits' argmax.
    public func evaluationLoss(tokens: [Int], batch: Int, seqLen: Int) throws -> (loss: Double, scores: UnsafePointer<Float>) {
        let loss = try forwardLoss(tokens: tokens, batch: batch, seqLen: seqLen)
        return (loss, UnsafePointer(logitsBuffer))
    }

    public func save(to folder: URL, extraFiles: [URL]) throws { try FamilyCheckpoint.save(params, to: folder, extraFiles: extraFiles) }

    public func load(folder: URL) throws {
        let other = try ModelConfig.load(from: folder.appendingPathComponent(HFCheckpoint.configFileName))
        guard other.family == config.family, FamilyLayout(config: other).tensors == layout.tensors else {
            throw CheckpointError(file: folder.appendingPathComponent(HFCheckpoint.configFileName),
                                  problem: "describes another model than the one being trained",
                                  fix: "resume from a checkpoint of this run, or use a new output_dir")
        }
        try FamilyCheckpoint.loadWeights(from: folder.appendingPathComponent(HFCheckpoint.weightsFileName), into: params)
    }
}
