import Core
import Foundation
import MPIShim

/// The study's evaluation (loss, next-token accuracy, first-token attribute accuracy; `EvalCounts`) over a
/// set of blocks, sharded over the ranks: rank r scores blocks r, r + R, r + 2R, … in forward passes of
/// up to `batch` blocks, and the counts are summed with one Int64 and one Double allreduce. Every rank
/// returns the same totals.
public enum DistributedEvaluation {
    public static func run(model: any TrainableModel, blocks: PackedBlocks, batch: Int, comm: Communicator) throws -> EvalCounts {
        precondition(batch >= 1)
        let T = blocks.blockSize, V = model.modelConfig.vocabSize
        let mine = Array(stride(from: comm.rank, to: blocks.count, by: comm.size))
        var counts = EvalCounts()
        var lossSum = 0.0
        var tokens = [Int](repeating: 0, count: batch * T)
        var predictions = [Int32](repeating: 0, count: batch * T)
        var start = 0
        while start < mine.count {
            let chunk = mine[start..<min(start + batch, mine.count)]
            let B = chunk.count
            if tokens.count != B * T { tokens = [Int](repeating: 0, count: B * T) }
            for (row, b) in chunk.enumerated() {
                for t in 0..<T { tokens[row * T + t] = Int(blocks.tokens[b * T + t]) }
            }
            let (meanLoss, logits) = try model.evaluationLoss(tokens: tokens, batch: B, seqLen: T)  // logits: (B·T, V), argmax-preserving
            lossSum += meanLoss * Double(B * (T - 1))
            predictions.withUnsafeMutableBufferPointer { pred in
                Parallel.chunks(B * T, threads: model.threads) { _, rows in
                    for n in rows { pred[n] = EvalCounts.argmax(logits + n * V, V) }
                }
            }
            blocks.tokens.withUnsafeBufferPointer { tk in
                blocks.attributeMask.withUnsafeBufferPointer { mk in
                    predictions.withUnsafeBufferPointer { pred in
                        for (row, b) in chunk.enumerated() {
                            counts.add(tokens: tk.baseAddress! + b * T, mask: mk.baseAddress! + b * T,
                                       predictions: pred.baseAddress! + row * T, T: T)
                        }
                    }
                }
            }
            start += B
        }
        var packed = counts.packed
        try comm.allreduce(&packed, op: .sum)
        let totalLoss = try comm.allreduce(lossSum, op: .sum)
        return EvalCounts(packed: packed, lossSum: totalLoss)
    }
}
