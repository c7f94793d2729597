import Foundation
import Numerics

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
///     g ← g · clip_coef,   clip_coef = min(1, max_norm / (‖g‖₂ + 1e-6))   (optional; norm over all segments in Double)
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
    /// Clipping multiplies each gradient by the clip coefficient inside the update (as torch's in-place scaling
    /// would, in Float); `grads` itself is left unchanged. `norm`: `gradientNorm(grads)` when the caller
    /// has computed it already (it is not computed twice).
    @discardableResult
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, norm known: Double? = nil) -> AdamWStepInfo {
        var norm: Double?
        var coef: Float = 1
        if let maxNorm = config.maxGradNorm {
            let n = known ?? gradientNorm(grads)
            norm = n
            coef = Float(min(1.0, maxNorm / (n + 1e-6)))
        }
        let t = stepCount + 1
        let lr = config.learningRate(step: t)
        update(params: params, grads: grads, lr: lr, gradScale: coef)
        return AdamWStepInfo(step: t, lr: lr, gradNorm: norm, clipCoef: coef)
    }

    @discardableResult
    public func step(params: ParameterArena, grads: ParameterArena, norm: Double? = nil) -> AdamWStepInfo {
        precondition(params.count == count && grads.count == count)
        return step(params: params.base, grads: UnsafePointer(grads.base), norm: norm)
    }

    /// The AdamW update at learning rate `lr` with gradients `gradScale · grads`, without clipping or scheduling
    /// (advances `stepCount`).
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Double, gradScale: Float = 1) {
        stepCount += 1
        let t = Double(stepCount)
        let c = config
        let stepSize = Float(lr / (1 - pow(c.beta1, t)))
        let bc2Sqrt = Float((1 - pow(c.beta2, t)).squareRoot())
        let mp = m.base, vp = v.base
        for seg in segments {
            let decay = Float(1 - lr * (seg.decay ? c.weightDecay : 0))
            let k = Kernel(decay: decay, oneMinusB1: Float(1 - c.beta1), b2: Float(c.beta2), oneMinusB2: Float(1 - c.beta2),
                           stepSize: stepSize, bc2Sqrt: bc2Sqrt, eps: Float(c.eps), scale: gradScale)
            Parallel.pieces(seg.range.count, threads: threads, minPerPiece: 65_536) { r in
                let lo = seg.range.lowerBound + r.lowerBound, hi = seg.range.lowerBound + r.upperBound
                var i = lo
                while i + 8 <= hi {
                    k.apply8(params + i, grads + i, mp + i, vp + i)
                    i += 8
                }
                while i < hi { k.apply1(params + i, grads + i, mp + i, vp + i); i += 1 }
            }
        }
    }

    /// One element's update, in the order of torch's operations; `apply8` is the same on 8 lanes.
    private struct Kernel {
        let decay, oneMinusB1, b2, oneMinusB2, stepSize, bc2Sqrt, eps, scale: Float

        @inline(__always)
        func apply1(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>) {
            let gi = scale == 1 ? g[0] : g[0] * scale
            let pi = p[0] * decay
            let mi = m[0] + oneMinusB1 * (gi - m[0])
            let vi = b2 * v[0] + oneMinusB2 * gi * gi
            m[0] = mi
            v[0] = vi
            p[0] = pi - stepSize * mi / (vi.squareRoot() / bc2Sqrt + eps)
        }

        @inline(__always)
        func apply8(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>) {
            typealias V8 = FastMath.V8
            let g0 = FastMath.load(g)
            let gi = scale == 1 ? g0 : g0 * V8(repeating: scale)
            let pi = FastMath.load(p) * V8(repeating: decay)
            let m0 = FastMath.load(m)
            let mi = m0 + V8(repeating: oneMinusB1) * (gi - m0)
            let vi = V8(repeating: b2) * FastMath.load(v) + V8(repeating: oneMinusB2) * gi * gi
            FastMath.store(mi, m)
            FastMath.store(vi, v)
            FastMath.store(pi - V8(repeating: stepSize) * mi / (vi.squareRoot() / V8(repeating: bc2Sqrt) + V8(repeating: eps)), p)
        }
    }

    /// Forgets all state (moments to 0, step count to 0).
    public func reset() { m.zero(); v.zero(); stepCount = 0 }
}

// MARK: - State on disk

extension AdamW {
    /// Writes the moments and the step count to a safetensors file: `exp_avg` and `exp_avg_sq` (F32, [count],
    /// flat in the parameter layout's order), `step` (I64, [1]); metadata records the hyper-parameters.
    public func saveState(to url: URL) throws {
        let c = config
        let meta: [String: String] = [
            "format": "pt", "optimizer": "AdamW", "count": "\(count)", "lr": "\(c.lr)", "beta1": "\(c.beta1)", "beta2": "\(c.beta2)",
            "eps": "\(c.eps)", "weight_decay": "\(c.weightDecay)", "schedule": c.schedule.rawValue,
            "warmup_steps": "\(c.warmupSteps)", "total_steps": "\(c.totalSteps)",
            "max_grad_norm": c.maxGradNorm.map { "\($0)" } ?? "none",
        ]
        try SafetensorsWriter.write([
            .float32("exp_avg", shape: [count], pointer: UnsafePointer(m.base)),
            .float32("exp_avg_sq", shape: [count], pointer: UnsafePointer(v.base)),
            .int64("step", shape: [1], values: [Int64(stepCount)]),
        ], metadata: meta, to: url)
    }

    /// Restores the moments and step count written by `saveState`; the element count must match.
    public func loadState(from url: URL) throws {
        let f = try SafetensorsFile(url: url)
        for name in ["exp_avg", "exp_avg_sq"] {
            let info = try f.info(name)
            guard info.count == count else {
                throw CheckpointError(file: url, item: name, problem: "has \(info.count) values, the optimizer \(count)",
                                      fix: "the optimizer state belongs to a model of another shape")
            }
        }
        let step = try f.int64s("step")
        guard step.count == 1, step[0] >= 0 else {
            throw CheckpointError(file: url, item: "step", problem: "is not one non-negative integer", fix: "write the state again")
        }
        try f.readFloats("exp_avg", into: m.buffer)
        try f.readFloats("exp_avg_sq", into: v.buffer)
        stepCount = Int(step[0])
    }
}
