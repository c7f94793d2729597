import Foundation

/// Learning-rate schedules of transformers' `get_scheduler`, as a multiplier λ(s) of the base rate, where s is
/// the number of optimizer steps already taken (optimizer step t, counting from 1, runs at lr · λ(t − 1)).
/// With W warm-up and N total steps: λ(s) = s / W while s < W; then constant 1, linear (N − s) / (N − W), or
/// cosine ½(1 + cos(π (s − W) / (N − W))) (clamped at 0 past N).
public enum LRSchedule: String, CaseIterable, Sendable {
    case constant, linear, cosine

    /// λ(s). `constant` with warm-up is transformers' `constant_with_warmup`.
    public func factor(step s: Int, warmupSteps W: Int, totalSteps N: Int) -> Double {
        if s < W { return Double(s) / Double(max(1, W)) }
        switch self {
        case .constant: return 1
        case .linear: return max(0, Double(N - s) / Double(max(1, N - W)))
        case .cosine:
            let progress = Double(s - W) / Double(max(1, N - W))
            return max(0, 0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}

/// Hyper-parameters of `AdamW` (torch.optim.AdamW defaults where the study did not change them).
public struct AdamWConfig: Equatable, Sendable {
    public var lr: Double
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double
    /// Global gradient-norm clipping threshold (HF Trainer `max_grad_norm`), nil for none.
    public var maxGradNorm: Double?
    public var schedule: LRSchedule
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.95, eps: Double = 1e-6, weightDecay: Double = 0.1,
                maxGradNorm: Double? = 1.0, schedule: LRSchedule = .constant, warmupSteps: Int = 0, totalSteps: Int = 1) {
        self.lr = lr; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        self.maxGradNorm = maxGradNorm; self.schedule = schedule; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    /// The learning rate optimizer step `t` (1-based) runs at: lr · λ(t − 1).
    public func learningRate(step t: Int) -> Double {
        lr * schedule.factor(step: t - 1, warmupSteps: warmupSteps, totalSteps: totalSteps)
    }
}

/// What one `AdamW.step` did.
public struct AdamWStepInfo: Sendable {
    /// The optimizer step just taken (1-based).
    public let step: Int
    public let lr: Double
    /// Global L2 norm of the gradients before clipping (Double accumulation), nil when not clipping.
    public let gradNorm: Double?
    /// The factor the gradients were multiplied by (1 when not clipping).
    public let clipCoef: Float
}

/// torch.optim.AdamW as the HF Trainer runs it, over one flat parameter buffer split into segments that do or
/// do not get weight decay. Per step t (1-based), in Float:
///
///     g ← g · clip_coef,   clip_coef = min(1, max_norm / (‖g‖₂ + 1e-6))   (optional, norm over all segments)
///     p ← p · (1 − lr·wd)                                               (decay segments only)
///     m ← m + (1 − β1)(g − m)                                           (= β1·m + (1 − β1)·g, as torch's lerp)
///     v ← β2·v + (1 − β2)·g²
///     p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps)
///
/// with lr from the schedule (`AdamWConfig.learningRate(step:)`); a step at lr 0 still updates m and v.
/// The moments live in two buffers shaped like the parameters (the same `ParameterLayout` offsets for GPT-2).
public final class AdamW: @unchecked Sendable {
    /// A contiguous range of the flat buffer and whether it is decayed.
    public struct Segment: Equatable, Sendable {
        public let range: Range<Int>
        public let decay: Bool
        public init(range: Range<Int>, decay: Bool) { self.range = range; self.decay = decay }
    }

    public var config: AdamWConfig
    public let segments: [Segment]
    public let count: Int
    /// First and second moments (count floats each).
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Optimizer steps taken so far.
    public var stepCount = 0
    public var threads: Int

    public init(segments: [Segment], count: Int, config: AdamWConfig, threads: Int = 1) {
        precondition(segments.allSatisfy { $0.range.lowerBound >= 0 && $0.range.upperBound <= count })
        self.segments = segments
        self.count = count
        self.config = config
        self.threads = max(1, threads)
        m = FloatBuffer(count: count)
        v = FloatBuffer(count: count)
    }

    /// AdamW for a GPT-2 layout: decay on wte, wpe and the four weight matrices of every block.
    public convenience init(layout: ParameterLayout, config: AdamWConfig, threads: Int = 1) {
        self.init(segments: layout.tensors.map { Segment(range: $0.range, decay: $0.decay) }, count: layout.count,
                  config: config, threads: threads)
    }

    /// Global L2 norm of `grads` (count floats), accumulated in Double.
    public func gradientNorm(_ grads: UnsafePointer<Float>) -> Double {
        let k = max(1, min(threads, count / 65_536))
        var partial = [Double](repeating: 0, count: k)
        partial.withUnsafeMutableBufferPointer { part in
            Parallel.chunks(count, threads: k) { chunk, r in
                var acc = SIMD8<Double>()
                var i = r.lowerBound
                while i + 8 <= r.upperBound {
                    let x = SIMD8<Double>(FastMath.load(grads + i))
                    acc += x * x
                    i += 8
                }
                var s = acc.sum()
                while i < r.upperBound { s += Double(grads[i]) * Double(grads[i]); i += 1 }
                part[chunk] = s
            }
        }
        return partial.reduce(0, +).squareRoot()
    }

    /// Clips (when configured) and applies one AdamW step to `params` using `grads` (both `count` floats).
    /// The gradients are scaled in place by the clip coefficient.
    @discardableResult
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>) -> AdamWStepInfo {
        var norm: Double?
        var coef: Float = 1
        if let maxNorm = config.maxGradNorm {
            let n = gradientNorm(grads)
            norm = n
            coef = Float(min(1.0, maxNorm / (n + 1e-6)))
            if coef != 1 {
                let c = coef
                Parallel.chunks(count, threads: threads, minPerChunk: 65_536) { _, r in
                    for i in r { grads[i] *= c }
                }
            }
        }
        let t = stepCount + 1
        let lr = config.learningRate(step: t)
        update(params: params, grads: UnsafePointer(grads), lr: lr)
        return AdamWStepInfo(step: t, lr: lr, gradNorm: norm, clipCoef: coef)
    }

    public func step(params: ParameterArena, grads: ParameterArena) -> AdamWStepInfo {
        precondition(params.count == count && grads.count == count)
        return step(params: params.base, grads: grads.base)
    }

    /// The AdamW update at learning rate `lr` without clipping or scheduling (advances `stepCount`).
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Double) {
        stepCount += 1
        let t = Double(stepCount)
        let c = config
        let stepSize = Float(lr / (1 - pow(c.beta1, t)))
        let bc2Sqrt = Float((1 - pow(c.beta2, t)).squareRoot())
        let oneMinusB1 = Float(1 - c.beta1), b2 = Float(c.beta2), oneMinusB2 = Float(1 - c.beta2)
        let eps = Float(c.eps)
        let mp = m.base, vp = v.base
        for seg in segments {
            let decayFactor = Float(1 - lr * (seg.decay ? c.weightDecay : 0))
            Parallel.chunks(seg.range.count, threads: threads, minPerChunk: 65_536) { _, r in
                let lo = seg.range.lowerBound + r.lowerBound, hi = seg.range.lowerBound + r.upperBound
                for i in lo..<hi {
                    let g = grads[i]
                    let p = params[i] * decayFactor
                    let mi = mp[i] + oneMinusB1 * (g - mp[i])
                    let vi = b2 * vp[i] + oneMinusB2 * g * g
                    mp[i] = mi
                    vp[i] = vi
                    params[i] = p - stepSize * mi / (vi.squareRoot() / bc2Sqrt + eps)
                }
            }
        }
    }

    /// Forgets all state (moments to 0, step count to 0).
    public func reset() { m.zero(); v.zero(); stepCount = 0 }
}
