import Core
import Foundation
import MPIShim
import DistTrain

/// One measurement of `dkc bench train`, the same on every rank.
public struct TrainBenchResult: Sendable {
    public let config: String
    public let ranks: Int
    public let threads: Int
    /// Blocks per rank per micro-step, micro-steps per step, tokens per block.
    public let batchSize: Int
    public let accumulation: Int
    public let seqLen: Int
    public let deterministic: Bool
    public let repeats: Int
    /// Tokens per second over all ranks: median, slowest and fastest step.
    public let tokensPerS: Double
    public let minTokensPerS: Double
    public let maxTokensPerS: Double
    /// Model FLOPs per second over all ranks at the median step (`ModelBench.flopsPerStep` of the global batch).
    public let gflops: Double
    /// Sum over ranks of each rank's sgemm roof at its thread count, measured concurrently (so ranks sharing
    /// cores share the roof as they share them in training).
    public let roofGflops: Double
    public var mfu: Double { gflops / roofGflops }
    /// Median seconds of the gradient reduction per step (waiting for the slowest rank included).
    public let reduceSeconds: Double
    /// Largest peak RSS of any rank.
    public let peakRSSMiB: Double
    public let blasCore: String
}

/// The engine of `dkc bench train`: data-parallel optimizer steps (`DataParallelStep`: forward, backward,
/// gradient allreduce, AdamW) of a randomly initialised GPT-2 on random tokens, timed on every rank; the
/// world size is the communicator's. Steps are separated by a barrier, so a step's time is the slowest
/// rank's.
public enum TrainBench {
    public static func run(name: String, config: GPT2Config, comm: Communicator, batch: Int, accumulation: Int, seqLen: Int,
                           threads: Int, repeats: Int, warmup: Int, deterministic: Bool,
                           progress: ((String) -> Void)? = nil) throws -> TrainBenchResult {
        precondition(repeats >= 1 && warmup >= 0 && seqLen <= config.nPositions)
        BLAS.setThreads(threads)
        try comm.barrier()
        let myRoof = ModelBench.sgemmRoof(threads: threads, progress: comm.isRoot ? progress : nil)
        let roof = try comm.allreduce(myRoof, op: .sum)

        progress?("\(name): initialising \(ParameterLayout(config: config).count) parameters on \(comm.size) rank(s)")
        let params = ParameterArena(config: config)
        if comm.isRoot { params.initializeGPT2(seed: 1234) }
        let model = GPT2(params: params, threads: threads)
        try ReplicaSync.broadcast(model, comm: comm)
        let optimizer = AdamW(layout: params.layout, config: AdamWConfig(lr: 1e-4, maxGradNorm: 1.0), threads: threads)
        let stepper = DataParallelStep(comm: comm, model: model, optimizer: optimizer, perRankBatch: batch,
                                       accumulation: accumulation, blockSize: seqLen, deterministic: deterministic)
        // Random blocks, the same on every rank: one global batch, visited in order.
        let G = stepper.globalBatch
        var rng = SplitMix64(seed: 99)
        let tokens = (0..<(G * seqLen)).map { _ in Int32(truncatingIfNeeded: rng.next() % UInt64(config.vocabSize)) }
        let blocks = PackedBlocks(blockSize: seqLen, tokens: tokens, attributeMask: [UInt8](repeating: 0, count: tokens.count))
        let order = Array(0..<G)

        var times: [Double] = [], reduces: [Double] = []
        for i in 0..<(warmup + repeats) {
            try comm.barrier()
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try stepper.run(blocks: blocks, order: order, start: 0, stop: false)
            try comm.barrier()
            var dt = [Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, stepper.lastReduceSeconds]
            try comm.allreduce(&dt, op: .max)
            let label = i < warmup ? "warm-up \(i + 1)/\(warmup)" : "step \(i - warmup + 1)/\(repeats)"
            progress?("\(name): \(label) \(String(format: "%.3f", dt[0])) s")
            if i >= warmup { times.append(dt[0]); reduces.append(dt[1]) }
        }
        func median(_ x: [Double]) -> Double {
            let s = x.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        let tokensPerStep = Double(stepper.tokensPerStep)
        let flops = ModelBench.flopsPerStep(config, batch: G, seqLen: seqLen)
        let rss = try comm.allreduce(ModelBench.peakRSSMiB(), op: .max)
        let mid = median(times)
        return TrainBenchResult(config: name, ranks: comm.size, threads: threads, batchSize: batch, accumulation: accumulation,
                                seqLen: seqLen, deterministic: deterministic, repeats: repeats,
                                tokensPerS: tokensPerStep / mid, minTokensPerS: tokensPerStep / times.max()!,
                                maxTokensPerS: tokensPerStep / times.min()!, gflops: flops / mid / 1e9, roofGflops: roof,
                                reduceSeconds: median(reduces), peakRSSMiB: rss, blasCore: BLAS.coreName)
    }
}
