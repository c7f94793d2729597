import Core
import Foundation
import MPIShim

/// Keeping the model replicas identical: rank 0's parameters and optimizer state are the truth, sent to
/// every rank at the start of a stage; the float-mode gradient allreduce is not guaranteed to give every
/// rank the same bits, so at every checkpoint the replicas compare digests and, if they differ, take rank
/// 0's state again.
public enum ReplicaSync {
    /// Sends rank 0's parameters (`count` floats at `parameters`) to every rank.
    public static func broadcast(_ parameters: UnsafeMutablePointer<Float>, count: Int, comm: Communicator) throws {
        guard comm.size > 1 else { return }
        try comm.broadcast(parameters, count: count)
    }

    /// Sends rank 0's parameters of `model` to every rank.
    public static func broadcast(_ model: any TrainableModel, comm: Communicator) throws {
        try broadcast(model.parameterBase, count: model.parameterCount, comm: comm)
    }

    /// Sends rank 0's AdamW moments and step count to every rank.
    public static func broadcast(_ optimizer: AdamW, comm: Communicator) throws {
        guard comm.size > 1 else { return }
        try comm.broadcast(optimizer.m.base, count: optimizer.count)
        try comm.broadcast(optimizer.v.base, count: optimizer.count)
        var step: [Int64] = [Int64(optimizer.stepCount)]
        try comm.broadcast(&step)
        optimizer.stepCount = Int(step[0])
    }

    /// Whether every rank holds the same parameters and moments; when not, rank 0's are broadcast and
    /// false is returned.
    @discardableResult
    public static func ensureIdentical(model: any TrainableModel, optimizer: AdamW, comm: Communicator) throws -> Bool {
        guard comm.size > 1 else { return true }
        let digest = Int64(bitPattern: self.digest(model.parameterBase, model.parameterCount) ^ self.digest(optimizer.m.base, optimizer.count) &* 3
                           ^ self.digest(optimizer.v.base, optimizer.count) &* 5)
        let lo = try comm.allreduce(digest, op: .min)
        let hi = try comm.allreduce(digest, op: .max)
        guard lo != hi else { return true }
        try broadcast(model, comm: comm)
        try broadcast(optimizer, comm: comm)
        return false
    }

    /// FNV-1a over the bit patterns, 8 floats at a time folded into one word.
    static func digest(_ p: UnsafePointer<Float>, _ n: Int) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        let words = UnsafeRawPointer(p).bindMemory(to: UInt32.self, capacity: n)
        var i = 0
        while i < n {
            h = (h ^ UInt64(words[i])) &* 0x0000_0100_0000_01B3
            i += 1
        }
        return h
    }
}
