import Core
import Foundation
import MPIShim

/// One data-parallel optimizer step: every rank runs forward/backward on its share of the global batch
/// (`BatchShard`), the gradients are reduced to the mean-loss gradient of the global batch
/// (`GradientReducer`, one collective per step), and every rank applies the same AdamW update, so the
/// parameters stay identical everywhere.
///
/// The global batch is `ranks × perRankBatch × accumulation` blocks, given as positions into a block
/// order; which rank runs which block does not change the result beyond float rounding (and, in exact
/// mode with the same per-rank batch, not at all).
public final class DataParallelStep {
    public let comm: Communicator
    /// GPT-2 or a Llama / Phi model (`TrainableModel`).
    public let model: any TrainableModel
    public let optimizer: AdamW
    public let shard: BatchShard
    public let reducer: GradientReducer
    public let blockSize: Int
    /// Seed of the dropout masks; nil: no dropout (eval-mode steps).
    public let dropoutSeed: UInt64?
    private var tokens: [Int]
    /// Seconds the last step spent in the gradient reduction (waiting for other ranks included).
    public private(set) var lastReduceSeconds = 0.0

    /// What one step did: the mean loss over the global batch, the optimizer's report, and whether any
    /// rank asked to stop (agreed across ranks).
    public struct Result: Sendable {
        public let loss: Double
        /// The optimizer step just taken (1-based) and the learning rate it ran at.
        public let step: Int
        public let learningRate: Double
        /// Global gradient norm before clipping.
        public let gradNorm: Double?
        public let stopRequested: Bool
        /// Set when the loss or the gradient was not finite: what was (e.g. "the loss is nan"). No update
        /// was applied (parameters and optimizer state are as before the step), and every rank reports it alike.
        public let nonFinite: String?
    }

    /// Test hook (docs/fault-tolerance.md): when set, the next step puts a NaN into rank 0's first
    /// micro-batch gradient, as a numerical fault would. Only fault tests set it.
    public var injectNaNGradient = false

    public init(comm: Communicator, model: any TrainableModel, optimizer: AdamW, perRankBatch: Int, accumulation: Int,
                blockSize: Int, deterministic: Bool, dropoutSeed: UInt64? = nil) {
        precondition(blockSize <= model.modelConfig.maxPositions, "block size beyond n_positions")
        self.comm = comm
        self.model = model
        self.optimizer = optimizer
        self.blockSize = blockSize
        self.dropoutSeed = dropoutSeed
        shard = BatchShard(ranks: comm.size, rank: comm.rank, perRankBatch: perRankBatch, accumulation: accumulation)
        reducer = GradientReducer(comm: comm, count: model.parameterCount, microBatches: comm.size * accumulation,
                                  mode: deterministic ? .exact : .float)
        tokens = [Int](repeating: 0, count: perRankBatch * blockSize)
    }

    public var globalBatch: Int { shard.globalBatch }
    /// Tokens one step trains on, over all ranks.
    public var tokensPerStep: Int { shard.globalBatch * blockSize }

    /// Runs one optimizer step on the blocks `order[start ..< start + globalBatch]` of `blocks`.
    /// `stop` is this rank's stop request; the result says whether any rank had one. A loss or gradient
    /// that is not finite skips the update and is reported in `Result.nonFinite` on every rank.
    public func run(blocks: PackedBlocks, order: [Int], start: Int, stop: Bool) throws -> Result {
        precondition(blocks.blockSize == blockSize && start + globalBatch <= order.count)
        let B = shard.perRankBatch, T = blockSize
        while true {
            reducer.begin()
            model.zeroGradients()
            // One slot per micro-batch of the global batch (index micro × ranks + rank), the stop flag last:
            // a sum of one value and zeros is exact, and the ranks add the slots in index order, so the
            // logged loss is the same bits whatever the rank count.
            var slots = [Double](repeating: 0, count: reducer.microBatches + 1)
            for micro in 0..<shard.accumulation {
                if reducer.mode == .exact && micro > 0 { model.zeroGradients() }
                let range = shard.blocks(micro: micro)
                blocks.tokens.withUnsafeBufferPointer { src in
                    tokens.withUnsafeMutableBufferPointer { dst in
                        for (row, position) in range.enumerated() {
                            let b = order[start + position]
                            let from = src.baseAddress! + b * T
                            let to = dst.baseAddress! + row * T
                            for t in 0..<T { to[t] = Int(from[t]) }
                        }
                    }
                }
                // Dropout masks keyed by (optimizer step, position in the global batch): the same for a block
                // whichever rank or micro-step runs it, and again after a resume.
                let rowKeys = range.map { UInt64(optimizer.stepCount + 1) << 32 | UInt64($0) }
                slots[micro * comm.size + comm.rank] = try model.trainingLoss(tokens: tokens, batch: B, seqLen: T,
                                                                             dropoutSeed: dropoutSeed, rowKeys: rowKeys)
                model.backward()
                if injectNaNGradient, micro == 0, comm.rank == 0 { model.gradientBase[0] = .nan }
                if reducer.mode == .exact { try reducer.accumulate(model.gradientBase, micro: micro) }
            }
            slots[reducer.microBatches] = stop ? 1 : 0
            try comm.allreduce(&slots, op: .sum)
            let loss = slots[..<reducer.microBatches].reduce(0, +) / Double(reducer.microBatches)
            let stopRequested = slots[reducer.microBatches] > 0
            let lr = optimizer.config.learningRate(step: optimizer.stepCount + 1)
            func skipped(_ what: String) -> Result {
                injectNaNGradient = false
                return Result(loss: loss, step: optimizer.stepCount, learningRate: lr, gradNorm: nil, stopRequested: stopRequested,
                              nonFinite: what)
            }
            // The loss is the allreduced sum, the same on every rank.
            guard loss.isFinite else { return skipped("the loss is \(loss)") }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let completion = try reducer.finish(into: model.gradientBase)
            lastReduceSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            switch completion {
            case .recompute: continue
            case .nonFinite: return skipped("a gradient entry is inf or NaN")
            case .complete: break
            }
            // The norm is logged even without clipping (HF logs `grad_norm` either way), checked for a
            // non-finite entry, and handed to the optimizer's clipping. Float mode: the ranks' reduced
            // gradients may differ in rounding, so they agree on the verdict.
            let norm = optimizer.gradientNorm(model.gradientBase)
            if reducer.mode == .float {
                var flag = [norm.isFinite ? 0.0 : 1.0]
                try comm.allreduce(&flag, op: .max)
                if flag[0] != 0 { return skipped("the gradient norm is \(norm.isFinite ? "not finite on another rank" : "\(norm)")") }
            } else if !norm.isFinite {
                return skipped("the gradient norm is \(norm)")
            }
            injectNaNGradient = false
            let info = optimizer.step(params: model.parameterBase, grads: model.gradientBase, norm: norm)
            return Result(loss: loss, step: info.step, learningRate: info.lr, gradNorm: info.gradNorm ?? norm,
                          stopRequested: stopRequested, nonFinite: nil)
        }
    }
}
