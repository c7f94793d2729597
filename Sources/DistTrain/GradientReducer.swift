import Core
import Foundation
import MPIShim

/// Turns the gradients each rank computed for its micro-batches into the gradient of the mean loss over
/// the whole global batch, identical on every rank.
///
/// Each micro-batch gradient g_k is the gradient of that micro-batch's mean loss (`GPT2.backward`). Blocks
/// are all full, so the gradient of the global mean is (1 / K) Σ_k g_k over the K = ranks × accumulation
/// micro-batches, whichever rank ran them.
///
/// - `.float`: each rank accumulates its micro-batches in the gradient arena (`backward` adds), one
///   `MPI_Allreduce` (sum, Float) per step, then the 1/K scale. Fast; the summation order depends on the
///   rank count and on MPI's algorithm, so runs agree to float rounding only.
/// - `.exact` (`deterministic = true`): every micro-batch gradient is converted to 64-bit fixed point with
///   a power-of-two scale chosen from micro-batch 0 (rank 0's first), summed in integers (exact, so the
///   order is irrelevant), allreduced as Int64 and converted back. Runs repeat bit for bit, and runs with
///   different rank counts but the same per-rank batch (so the same micro-batches) produce the same bits.
///   The scale leaves 2⁶ of headroom: a later micro-batch whose largest |g| exceeds it makes `finish`
///   return false and the step is recomputed with a scale from the largest |g| seen (rare).
///   Entries are rounded to multiples of about max|g₀| · 2^(−56 + ⌈log₂ K⌉) (`FixedPointSum`), far below
///   float resolution for every entry within 2⁻³⁰ of the largest.
public final class GradientReducer {
    public enum Mode: String, Sendable { case float, exact }

    public let mode: Mode
    public let count: Int
    /// K: micro-batches per optimizer step across all ranks.
    public let microBatches: Int
    let comm: Communicator
    private let fixed: FixedPointSum?
    /// Whether micro-batch 0 has set this step's scale (exact mode).
    private var scaled = false
    /// Largest |g| of this step on this rank, and whether one was beyond the fixed-point range.
    private var localMax: Float = 0
    private var overflow = false
    /// Set after an overflow: the next step's scale comes from this bound instead of micro-batch 0.
    private var forcedMax: Float?

    public init(comm: Communicator, count: Int, microBatches: Int, mode: Mode) {
        precondition(count > 0 && microBatches > 0)
        self.comm = comm
        self.count = count
        self.microBatches = microBatches
        self.mode = mode
        fixed = mode == .exact ? FixedPointSum(count: count, terms: microBatches) : nil
    }

    /// Starts an optimizer step.
    public func begin() {
        scaled = false
        localMax = 0
        overflow = false
    }

    /// Adds one micro-batch gradient (exact mode only; call on every rank for every micro-step `micro`, in
    /// order — micro-step 0 is collective: rank 0's gradient, global micro-batch 0, sets the scale).
    public func accumulate(_ grads: UnsafePointer<Float>, micro: Int) throws {
        guard let fixed else { preconditionFailure("accumulate is for the exact mode") }
        let m = FixedPointSum.maxAbs(grads, count)
        if !scaled {
            precondition(micro == 0)
            var bound: [Float] = [forcedMax ?? m]
            try comm.broadcast(&bound, root: 0)
            fixed.reset(forMax: bound[0])
            scaled = true
        }
        localMax = max(localMax, m.isNaN ? .infinity : m)
        if !fixed.add(grads, maxAbs: m) { overflow = true }
    }

    /// How `finish` ended.
    public enum Completion: Equatable {
        /// `grads` holds the mean gradient.
        case complete
        /// Exact mode: a micro-batch overflowed the fixed-point range; recompute the step.
        case recompute
        /// Exact mode: a micro-batch gradient had an inf or NaN entry on some rank (every rank learns it
        /// alike); `grads` is not valid. (Float mode leaves the check to the caller's gradient norm.)
        case nonFinite
    }

    /// Completes the step: writes the mean gradient over the global batch into `grads` on every rank.
    public func finish(into grads: UnsafeMutablePointer<Float>) throws -> Completion {
        guard let fixed else {
            try comm.allreduce(grads, count: count, op: .sum)
            if microBatches > 1 {
                let k = Float(1) / Float(microBatches)
                for i in 0..<count { grads[i] *= k }
            }
            return .complete
        }
        var flags: [Float] = [localMax, overflow ? 1 : 0]
        try comm.allreduce(&flags, op: .max)
        guard flags[0].isFinite else { return .nonFinite }
        if flags[1] != 0 {
            forcedMax = flags[0]
            return .recompute
        }
        forcedMax = nil
        try comm.allreduce(fixed.values, count: count, op: .sum)
        fixed.result(into: grads, dividedBy: Double(microBatches))
        return .complete
    }
}
