import Foundation
import XCTest
import Core
@testable import DistTrain
import MPIShim

/// DistTrain's pieces on R = 1…4 in-process ranks over a tiny GPT-2: batch sharding, the gradient
/// reduction (exact mode: the same bits for every R, as docs/training.md promises; float mode: within
/// rounding), one data-parallel optimizer step end to end, replica sync and the distributed evaluation.
/// References are computed on one thread without a communicator.
final class DistTrainLocalTests: XCTestCase {
    static let config = GPT2Config(nLayer: 1, nHead: 2, nEmbd: 8, nPositions: 16, vocabSize: 11)
    static let T = 8
    /// K: micro-batches of one block each per optimizer step, divisible by every R in 1…4.
    static let K = 12

    private var savedThreads = 1
    override func setUp() {
        super.setUp()
        savedThreads = BLAS.threads
        BLAS.setThreads(1)  // R model replicas share the cores; each runs its BLAS on one thread
    }
    override func tearDown() {
        BLAS.setThreads(savedThreads)
        super.tearDown()
    }

    /// `count` random blocks of length T over the tiny vocabulary; every third token marks the first token
    /// of an attribute value (alternating new / revised, cycling through the attributes).
    static func blocks(_ count: Int, seed: UInt64) -> PackedBlocks {
        var rng = SplitMix64(seed: seed)
        let tokens = (0..<(count * T)).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
        let mask = (0..<(count * T)).map { i -> UInt8 in
            i % 3 == 0 ? FirstTokenMark.code(type: i % 2 == 0 ? FirstTokenMark.new : FirstTokenMark.revised,
                                               attribute: (i / 3) % BiographyAttribute.allCases.count) : 0
        }
        return PackedBlocks(blockSize: T, tokens: tokens, attributeMask: mask)
    }

    /// The gradient of block `b`'s mean loss, on one thread.
    static func blockGradients(_ blocks: PackedBlocks, seed: UInt64) throws -> [[Float]] {
        let model = GPT2(config: config, seed: seed, threads: 1)
        return try (0..<blocks.count).map { b in
            model.zeroGradients()
            _ = try model.forwardLoss(tokens: blocks.tokens[(b * T)..<((b + 1) * T)].map(Int.init), batch: 1, seqLen: T)
            model.backward()
            return Array(model.grads.buffer)
        }
    }

    // MARK: Batch sharding

    /// Every block of the global batch is run exactly once, by one rank at one micro-step, in runs of
    /// `perRankBatch`; micro-step m of rank r starts at (m·R + r)·B (hand-checked for one case).
    func testBatchShardsCoverTheGlobalBatchOnce() {
        for R in 1...4 {
            for B in 1...3 {
                for A in 1...3 {
                    var seen = [Int](repeating: 0, count: R * B * A)
                    for r in 0..<R {
                        let shard = BatchShard(ranks: R, rank: r, perRankBatch: B, accumulation: A)
                        XCTAssertEqual(shard.globalBatch, R * B * A)
                        for m in 0..<A {
                            let blocks = shard.blocks(micro: m)
                            XCTAssertEqual(blocks.count, B, "R \(R) B \(B) A \(A) rank \(r) micro \(m)")
                            for b in blocks { seen[b] += 1 }
                        }
                    }
                    XCTAssertEqual(seen, [Int](repeating: 1, count: R * B * A), "R \(R) B \(B) A \(A)")
                }
            }
        }
        XCTAssertEqual(BatchShard(ranks: 2, rank: 1, perRankBatch: 2, accumulation: 2).blocks(micro: 1), 6..<8)
        XCTAssertEqual(BatchShard(ranks: 3, rank: 0, perRankBatch: 1, accumulation: 4).blocks(micro: 2), 6..<7)
    }

    // MARK: Gradient reduction

    /// The K = 12 block gradients reduced by R = 1…4 ranks (accumulation 12 / R; rank r feeds the blocks
    /// `BatchShard` gives it). Exact mode: the same bits on every rank and for every R, and within the
    /// fixed-point rounding (about max|g|·2⁻⁵² per entry, checked with margin at 2⁻⁴⁴) of the mean in Double.
    /// Float mode: every rank the same bits (one reduction), within float rounding of the mean.
    func testGradientReductionMatchesTheSingleRankMean() throws {
        let blocks = Self.blocks(Self.K, seed: 11)
        let grads = try Self.blockGradients(blocks, seed: 3)
        let n = grads[0].count
        let mean = (0..<n).map { i in grads.reduce(0.0) { $0 + Double($1[i]) } / Double(Self.K) }
        let maxAbs = grads.flatMap { $0 }.map { abs(Double($0)) }.max()!
        XCTAssertGreaterThan(maxAbs, 0)

        for mode in [GradientReducer.Mode.exact, .float] {
            var byR: [Int: [Float]] = [:]
            for R in 1...4 {
                let results = try LocalGroup.runAll(ranks: R, timeout: 30) { comm -> [Float] in
                    let shard = BatchShard(ranks: R, rank: comm.rank, perRankBatch: 1, accumulation: Self.K / R)
                    let reducer = GradientReducer(comm: comm, count: n, microBatches: Self.K, mode: mode)
                    reducer.begin()
                    var out = [Float](repeating: 0, count: n)
                    for m in 0..<shard.accumulation {
                        let g = grads[shard.blocks(micro: m).lowerBound]
                        if mode == .exact {
                            try reducer.accumulate(g, micro: m)
                        } else {
                            for i in 0..<n { out[i] += g[i] }  // what backward's accumulation does
                        }
                    }
                    XCTAssertEqual(try reducer.finish(into: &out), .complete)
                    return out
                }
                for (rank, r) in results.enumerated() {
                    XCTAssertEqual(r.map(\.bitPattern), results[0].map(\.bitPattern), "\(mode) R \(R): rank \(rank) differs from rank 0")
                }
                byR[R] = results[0]
                for i in 0..<n {
                    let tolerance = mode == .exact ? maxAbs * 0x1p-44 + abs(mean[i]) * 0x1p-24 : maxAbs * 1e-5
                    if abs(Double(results[0][i]) - mean[i]) > tolerance {
                        XCTFail("\(mode) R \(R): entry \(i) is \(results[0][i]), the mean is \(mean[i])")
                        break
                    }
                }
            }
            if mode == .exact {
                for R in 2...4 {
                    XCTAssertEqual(byR[R]!.map(\.bitPattern), byR[1]!.map(\.bitPattern), "exact mode: R = \(R) differs from R = 1")
                }
            }
        }
    }

    /// Exact mode: a later micro-batch beyond the 2⁶ headroom of micro-batch 0's scale makes every rank
    /// recompute; the second pass (scale from the largest |g|) gives the exact mean of dyadic values.
    /// A NaN on one rank makes every rank report a non-finite gradient.
    func testExactReductionRecomputesOnOverflowAndFlagsNaN() throws {
        let inputs: [[Float]] = [[1, 0.5, -0.25], [1000, 2, 0]]
        let outcomes = try LocalGroup.runAll(ranks: 2, timeout: 10) { comm -> [String] in
            let reducer = GradientReducer(comm: comm, count: 3, microBatches: 2, mode: .exact)
            var log: [String] = []
            var out = [Float](repeating: 0, count: 3)
            for _ in 0..<2 {
                reducer.begin()
                try reducer.accumulate(inputs[comm.rank], micro: 0)
                log.append("\(try reducer.finish(into: &out))")
            }
            log.append("\(out)")
            reducer.begin()
            try reducer.accumulate(comm.rank == 1 ? [0, .nan, 0] : inputs[0], micro: 0)
            log.append("\(try reducer.finish(into: &out))")
            return log
        }
        for log in outcomes {
            XCTAssertEqual(log, ["recompute", "complete", "[500.5, 1.25, -0.125]", "nonFinite"])
        }
    }

    // MARK: One data-parallel step

    /// Two deterministic optimizer steps on a global batch of 12 blocks split over R = 1…4 ranks: every
    /// rank ends with the same parameter bits, the same for every R, and the same logged losses.
    func testDataParallelStepsAreBitIdenticalForEveryRankCount() throws {
        let blocks = Self.blocks(2 * Self.K, seed: 21)
        var rng = SplitMix64(seed: 5)
        let order = Array(0..<blocks.count).shuffled(using: &rng)
        var reference: (params: [UInt32], losses: [Double])?
        for R in 1...4 {
            let results = try LocalGroup.runAll(ranks: R, timeout: 60) { comm -> ([UInt32], [Double]) in
                let model = GPT2(config: Self.config, seed: 9, threads: 1)
                let optimizer = AdamW(layout: model.layout, config: AdamWConfig(lr: 1e-2, maxGradNorm: 1.0))
                let step = DataParallelStep(comm: comm, model: model, optimizer: optimizer, perRankBatch: 1, accumulation: Self.K / R,
                                            blockSize: Self.T, deterministic: true)
                var losses: [Double] = []
                for s in 0..<2 {
                    let r = try step.run(blocks: blocks, order: order, start: s * Self.K, stop: false)
                    XCTAssertNil(r.nonFinite)
                    XCTAssertEqual(r.step, s + 1)
                    losses.append(r.loss)
                }
                return (model.params.buffer.map(\.bitPattern), losses)
            }
            for (rank, r) in results.enumerated() {
                XCTAssertEqual(r.0, results[0].0, "R \(R): rank \(rank) parameters differ from rank 0")
            }
            if let reference {
                XCTAssertEqual(results[0].0, reference.params, "R \(R): parameters differ from R = 1")
                XCTAssertEqual(results[0].1, reference.losses, "R \(R): losses differ from R = 1")
            } else {
                reference = (results[0].0, results[0].1)
                // The step moved the parameters.
                XCTAssertNotEqual(results[0].0, GPT2(config: Self.config, seed: 9, threads: 1).params.buffer.map(\.bitPattern))
            }
        }
    }

    /// A stop request on any one rank is seen by every rank in the same step.
    func testStopRequestOnOneRankReachesEveryRank() throws {
        let blocks = Self.blocks(4, seed: 2)
        let seen = try LocalGroup.runAll(ranks: 4, timeout: 30) { comm -> Bool in
            let model = GPT2(config: Self.config, seed: 9, threads: 1)
            let step = DataParallelStep(comm: comm, model: model, optimizer: AdamW(layout: model.layout, config: AdamWConfig()),
                                        perRankBatch: 1, accumulation: 1, blockSize: Self.T, deterministic: false)
            return try step.run(blocks: blocks, order: [0, 1, 2, 3], start: 0, stop: comm.rank == 2).stopRequested
        }
        XCTAssertEqual(seen, [true, true, true, true])
    }

    // MARK: Replica sync

    /// Rank 0's parameters and optimizer state reach every rank; a replica that drifted is detected on
    /// every rank and replaced by rank 0's state; identical replicas are left alone.
    func testReplicaSyncMakesEveryRankHoldRankZerosState() throws {
        for R in 1...4 {
            let results = try LocalGroup.runAll(ranks: R, timeout: 30) { comm -> [String] in
                let params = ParameterArena(config: Self.config)
                params.initializeGPT2(seed: UInt64(100 + comm.rank))  // different on every rank
                let optimizer = AdamW(layout: params.layout, config: AdamWConfig())
                optimizer.stepCount = 7 * (comm.rank + 1)
                for i in 0..<optimizer.count { optimizer.m.base[i] = Float(comm.rank); optimizer.v.base[i] = Float(i % 5) }
                try ReplicaSync.broadcast(params.base, count: params.count, comm: comm)
                try ReplicaSync.broadcast(optimizer, comm: comm)
                var log = ["step \(optimizer.stepCount)", "m \(optimizer.m.base[3])",
                           "params \(ReplicaSync.digest(params.base, params.count) == Self.digest(seed: 100))"]
                let model = GPT2(params: params, threads: 1)
                log.append("identical \(try ReplicaSync.ensureIdentical(model: model, optimizer: optimizer, comm: comm))")
                if comm.rank == R - 1 && R > 1 { params.base[5] += 1 }  // a replica drifts
                log.append("identical \(try ReplicaSync.ensureIdentical(model: model, optimizer: optimizer, comm: comm))")
                log.append("params \(ReplicaSync.digest(params.base, params.count) == Self.digest(seed: 100))")
                return log
            }
            let drift = R > 1 ? "identical false" : "identical true"
            for log in results {
                XCTAssertEqual(log, ["step 7", "m 0.0", "params true", "identical true", drift, "params true"], "R \(R)")
            }
        }
    }

    static func digest(seed: UInt64) -> UInt64 {
        let p = ParameterArena(config: config)
        p.initializeGPT2(seed: seed)
        return ReplicaSync.digest(p.base, p.count)
    }

    // MARK: Distributed evaluation

    /// Seven blocks (not a multiple of R) scored by R = 1…4 ranks in forward passes of two blocks: every
    /// rank returns the counts of scoring each block once on its own (integer counts equal, the loss sum
    /// within rounding).
    func testDistributedEvaluationCountsEveryBlockOnce() throws {
        let blocks = Self.blocks(7, seed: 31)
        let T = Self.T, V = Self.config.vocabSize
        let model = GPT2(config: Self.config, seed: 4, threads: 1)
        var reference = EvalCounts()
        for b in 0..<blocks.count {
            let tokens = blocks.tokens[(b * T)..<((b + 1) * T)].map(Int.init)
            let loss = try model.forwardLoss(tokens: tokens, batch: 1, seqLen: T)
            reference.lossSum += loss * Double(T - 1)
            // Predictions from a plain forward pass's logits (the training loss leaves its gradient in the buffer).
            let logits = try model.forward(tokens: tokens, batch: 1, seqLen: T).baseAddress!
            let predictions = (0..<T).map { EvalCounts.argmax(logits + $0 * V, V) }
            blocks.tokens.withUnsafeBufferPointer { tk in
                blocks.attributeMask.withUnsafeBufferPointer { mk in
                    reference.add(tokens: tk.baseAddress! + b * T, mask: mk.baseAddress! + b * T, predictions: predictions, T: T)
                }
            }
        }
        XCTAssertEqual(reference.blocks, 7)
        XCTAssertGreaterThan(reference.markTotal.reduce(0, +), 0)
        for R in 1...4 {
            let results = try LocalGroup.runAll(ranks: R, timeout: 30) { comm in
                try DistributedEvaluation.run(model: GPT2(config: Self.config, seed: 4, threads: 1), blocks: blocks, batch: 2, comm: comm)
            }
            for (rank, counts) in results.enumerated() {
                XCTAssertEqual(counts.packed, reference.packed, "R \(R) rank \(rank)")
                XCTAssertEqual(counts.lossSum, reference.lossSum, accuracy: 1e-5 * reference.lossSum, "R \(R) rank \(rank)")
            }
        }
    }
}
