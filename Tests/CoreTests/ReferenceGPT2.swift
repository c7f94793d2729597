import Foundation
@testable import Core

/// A plain float64 GPT-2, written independently of the kernels (straight loops, no BLAS, exact tanh/exp),
/// used as the ground truth for finite differences: its derivatives by central differences are accurate to
/// ~1e-9, far below the float32 errors being tested.
enum Ref {
    static func layerNorm(_ x: [Double], _ w: ArraySlice<Double>, _ b: ArraySlice<Double>, N: Int, C: Int, eps: Double) -> [Double] {
        var out = [Double](repeating: 0, count: N * C)
        let w = Array(w), b = Array(b)
        for n in 0..<N {
            let row = x[(n * C)..<((n + 1) * C)]
            let mean = row.reduce(0, +) / Double(C)
            let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(C)
            let r = 1 / (v + eps).squareRoot()
            for i in 0..<C { out[n * C + i] = (x[n * C + i] - mean) * r * w[i] + b[i] }
        }
        return out
    }

    /// x (N, IC) · W (IC, OC) + b.
    static func linear(_ x: [Double], _ w: ArraySlice<Double>, _ b: ArraySlice<Double>?, N: Int, IC: Int, OC: Int) -> [Double] {
        let w = Array(w), b = b.map(Array.init)
        var out = [Double](repeating: 0, count: N * OC)
        for n in 0..<N {
            for o in 0..<OC {
                var s = b?[o] ?? 0
                for i in 0..<IC { s += x[n * IC + i] * w[i * OC + o] }
                out[n * OC + o] = s
            }
        }
        return out
    }

    static func gelu(_ x: Double) -> Double {
        0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    }

    /// Causal attention on qkv (B, T, 3C) with right padding: query i sees keys j ≤ min(i, L − 1).
    /// `keep(b, h, i, j)`: the dropout factor of probability (i, j) (mask / (1 − p)); nil: none.
    static func attention(_ qkv: [Double], lengths: [Int], B: Int, T: Int, C: Int, NH: Int,
                          keep: ((Int, Int, Int, Int) -> Double)? = nil) -> [Double] {
        let hs = C / NH
        var out = [Double](repeating: 0, count: B * T * C)
        for b in 0..<B {
            for h in 0..<NH {
                for i in 0..<T {
                    let kmax = min(i, lengths[b] - 1)
                    var scores = [Double](repeating: 0, count: kmax + 1)
                    for j in 0...kmax {
                        var s = 0.0
                        for d in 0..<hs { s += qkv[(b * T + i) * 3 * C + h * hs + d] * qkv[(b * T + j) * 3 * C + C + h * hs + d] }
                        scores[j] = s / Double(hs).squareRoot()
                    }
                    let m = scores.max()!
                    let e = scores.map { Foundation.exp($0 - m) }
                    let z = e.reduce(0, +)
                    for d in 0..<hs {
                        var s = 0.0
                        for j in 0...kmax { s += e[j] / z * (keep?(b, h, i, j) ?? 1) * qkv[(b * T + j) * 3 * C + 2 * C + h * hs + d] }
                        out[(b * T + i) * C + h * hs + d] = s
                    }
                }
            }
        }
        return out
    }

    /// Mean cross-entropy of rows with target ≥ 0.
    static func crossEntropy(_ logits: [Double], targets: [Int], V: Int) -> Double {
        var sum = 0.0, count = 0
        for (n, t) in targets.enumerated() where t >= 0 {
            let row = logits[(n * V)..<((n + 1) * V)]
            let m = row.max()!
            let lse = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
            sum += lse - logits[n * V + t]
            count += 1
        }
        return sum / Double(count)
    }

    /// Targets as the model shifts them: position t predicts token t+1 when t+1 < L and labelMask allows it.
    static func targets(tokens: [Int], B: Int, T: Int, lengths: [Int], labelMask: [Bool]?) -> [Int] {
        var out = [Int](repeating: -1, count: B * T)
        for b in 0..<B {
            for t in 0..<T where t + 1 < lengths[b] && (labelMask?[b * T + t + 1] ?? true) { out[b * T + t] = tokens[b * T + t + 1] }
        }
        return out
    }

    /// The mean next-token loss of a GPT-2 whose parameters (ParameterLayout order) are `p`.
    /// With `dropout`, the same masks as the model's (`Dropout.keeps` with the plan's keys), applied as
    /// transformers applies them: embeddings, attention probabilities, both residual branches.
    static func loss(_ p: [Double], layout: ParameterLayout, tokens: [Int], B: Int, T: Int, lengths: [Int], labelMask: [Bool]?,
                     dropout: DropoutPlan? = nil) -> Double {
        let cfg = layout.config
        let C = cfg.nEmbd, V = cfg.vocabSize, N = B * T, eps = cfg.layerNormEpsilon
        func s(_ off: Int, _ n: Int) -> ArraySlice<Double> { p[off..<(off + n)] }
        // Factor of element i of row b's (T, C) block at a place (1 without dropout).
        func factor(_ q: Float, _ key: UInt64, _ i: Int) -> Double {
            q > 0 ? (Dropout.keeps(key: key, index: i, p: q) ? 1 / Double(1 - q) : 0) : 1
        }
        func drop(_ x: inout [Double], _ q: Float, _ place: DropoutPlan.Place, layer: Int) {
            guard let d = dropout, q > 0 else { return }
            for b in 0..<B { for i in 0..<(T * C) { x[b * T * C + i] *= factor(q, d.key(row: b, place, layer: layer), i) } }
        }
        var x = [Double](repeating: 0, count: N * C)
        for n in 0..<N {
            for i in 0..<C { x[n * C + i] = p[layout.wte + tokens[n] * C + i] + p[layout.wpe + (n % T) * C + i] }
        }
        drop(&x, dropout?.embd ?? 0, .embedding, layer: 0)
        for (l, o) in layout.layers.enumerated() {
            let h = layerNorm(x, s(o.ln1Weight, C), s(o.ln1Bias, C), N: N, C: C, eps: eps)
            let qkv = linear(h, s(o.attnWeight, 3 * C * C), s(o.attnBias, 3 * C), N: N, IC: C, OC: 3 * C)
            var keep: ((Int, Int, Int, Int) -> Double)?
            if let d = dropout, d.attn > 0 {
                keep = { b, head, i, j in factor(d.attn, d.key(row: b, .attention, layer: l, head: head), i * T + j) }
            }
            let y = attention(qkv, lengths: lengths, B: B, T: T, C: C, NH: cfg.nHead, keep: keep)
            var a = linear(y, s(o.attnProjWeight, C * C), s(o.attnProjBias, C), N: N, IC: C, OC: C)
            drop(&a, dropout?.resid ?? 0, .attentionOutput, layer: l)
            for i in 0..<(N * C) { x[i] += a[i] }
            let h2 = layerNorm(x, s(o.ln2Weight, C), s(o.ln2Bias, C), N: N, C: C, eps: eps)
            let f = linear(h2, s(o.fcWeight, 4 * C * C), s(o.fcBias, 4 * C), N: N, IC: C, OC: 4 * C).map(gelu)
            var m = linear(f, s(o.fcProjWeight, 4 * C * C), s(o.fcProjBias, C), N: N, IC: 4 * C, OC: C)
            drop(&m, dropout?.resid ?? 0, .mlpOutput, layer: l)
            for i in 0..<(N * C) { x[i] += m[i] }
        }
        let hf = layerNorm(x, s(layout.lnfWeight, C), s(layout.lnfBias, C), N: N, C: C, eps: eps)
        var logits = [Double](repeating: 0, count: N * V)
        for n in 0..<N {
            for v in 0..<V {
                var acc = 0.0
                for i in 0..<C { acc += hf[n * C + i] * p[layout.wte + v * C + i] }
                logits[n * V + v] = acc
            }
        }
        return crossEntropy(logits, targets: targets(tokens: tokens, B: B, T: T, lengths: lengths, labelMask: labelMask), V: V)
    }

    /// Central-difference gradient of `f` at `x` (step h).
    static func numericalGradient(_ x: [Double], h: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
        var g = [Double](repeating: 0, count: x.count)
        var xp = x
        for i in 0..<x.count {
            xp[i] = x[i] + h
            let fp = f(xp)
            xp[i] = x[i] - h
            let fm = f(xp)
            xp[i] = x[i]
            g[i] = (fp - fm) / (2 * h)
        }
        return g
    }

    /// Deterministic pseudo-random values in [-scale, scale).
    static func random(_ n: Int, seed: UInt64, scale: Double = 1) -> [Double] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * scale }
    }
}
