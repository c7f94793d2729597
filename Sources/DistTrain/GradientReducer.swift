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
///   Resolution: an entry is rounded to max|g₀| · 2^(−56 + ⌈log₂ K⌉); larger entries are exact.
public final class GradientReducer {
    public enum Mode: String, Sendable { case float, exact }

    public let mode: Mode
    public let count: Int
    /// K: micro-batches per optimizer step across all ranks.
    public let microBatches: Int
    let comm: Communicator
    private var fixed: UnsafeMutablePointer<Int64>?
    /// 2^e of the current step (exact mode), nil until micro-batch 0 has set it.
    private var scale: Double?
    /// Largest |g| of this step on this rank, and whether one exceeded the fixed-point range.
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
        if mode == .exact {
            fixed = .allocate(capacity: count)
            fixed!.initialize(repeating: 0, count: count)
        }
    }

    deinit { fixed?.deallocate() }

    /// Largest |sum| of K fixed-point terms must stay below 2⁶²: each term at most 2⁶² / K.
    private var termLimit: Double { 0x1p62 / Double(microBatches) }

    /// Starts an optimizer step (exact mode: clears the integer accumulator).
    public func begin() {
        guard mode == .exact else { return }
        fixed!.update(repeating: 0, count: count)
        scale = nil
        localMax = 0
        overflow = false
    }

    /// Adds one micro-batch gradient (exact mode only; call on every rank for every micro-step `micro`, in
    /// order — micro-step 0 is collective: rank 0's gradient sets the scale).
    public func accumulate(_ grads: UnsafePointer<Float>, micro: Int) throws {
        precondition(mode == .exact, "accumulate is for the exact mode")
        let m = Self.maxAbs(grads, count)
        if scale == nil {
            precondition(micro == 0)
            var bound: [Float] = [forcedMax ?? (m.isFinite ? m : .infinity)]
            try comm.broadcast(&bound, root: 0)
            scale = Self.scale(forMax: bound[0], microBatches: microBatches)
        }
        localMax = max(localMax, m.isNaN ? .infinity : m)
        let s = scale!
        guard Double(m) * s < termLimit else { overflow = true; return }
        let acc = fixed!
        for i in 0..<count {
            acc[i] &+= Int64((Double(grads[i]) * s).rounded(.toNearestOrEven))
        }
    }

    /// Completes the step: writes the mean gradient over the global batch into `grads` on every rank.
    /// Returns false (exact mode) when a micro-batch overflowed the fixed-point range: recompute the step.
    /// - Throws: `TrainError` when a gradient is not finite (every rank throws alike).
    public func finish(into grads: UnsafeMutablePointer<Float>) throws -> Bool {
        let k = Float(1) / Float(microBatches)
        switch mode {
        case .float:
            try comm.allreduce(grads, count: count, op: .sum)
            if microBatches > 1 { for i in 0..<count { grads[i] *= k } }
            return true
        case .exact:
            var flags: [Float] = [localMax, overflow ? 1 : 0]
            try comm.allreduce(&flags, op: .max)
            guard flags[0].isFinite else {
                throw TrainError("a gradient is not finite (inf or NaN): training diverged; lower learning_rate or raise warmup_steps")
            }
            if flags[1] != 0 {
                forcedMax = flags[0]
                return false
            }
            forcedMax = nil
            try comm.allreduce(fixed!, count: count, op: .sum)
            let inv = 1 / (scale! * Double(microBatches))
            let acc = fixed!
            for i in 0..<count { grads[i] = Float(Double(acc[i]) * inv) }
            return true
        }
    }

    /// The power of two 2^e with max · 2^e · K · 2⁶ < 2⁶² (e from max's binary exponent).
    static func scale(forMax m: Float, microBatches: Int) -> Double {
        let bound = m > 0 && m.isFinite ? Double(m) : 1
        let k = bound.exponent + 1                       // bound < 2^k
        let r = Int((Double(microBatches)).log2Ceiling)  // K ≤ 2^r
        let e = 62 - 6 - r - k
        return Double(sign: .plus, exponent: e, significand: 1)
    }

    /// max |x[i]| (NaN if any entry is NaN).
    static func maxAbs(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var mv = SIMD8<Float>(repeating: 0)
        var nanLanes = SIMDMask<SIMD8<Int32>>(repeating: false)
        var nan = false
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let a = pointwiseMax(v, -v)
            nanLanes .|= v .!= v
            mv = pointwiseMax(mv, a)
            i += 8
        }
        nan = any(nanLanes)
        var m = mv.max()
        while i < n {
            let a = abs(x[i])
            if a.isNaN { nan = true }
            m = max(m, a)
            i += 1
        }
        return nan ? .nan : m
    }
}

extension Double {
    /// ⌈log₂ self⌉ for self ≥ 1.
    var log2Ceiling: Double {
        var e = 0.0
        while Double(sign: .plus, exponent: Int(e), significand: 1) < self { e += 1 }
        return e
    }
}
