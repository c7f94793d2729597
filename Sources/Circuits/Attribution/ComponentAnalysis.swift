import Foundation
import Numerics
import Models
import StudyData

/// One clean prompt of the component analysis (docs/components.md): the task template filled with the
/// sample's clean subject, BOS first, unpadded; the subject's token positions; the label.
public struct ComponentPrompt: Sendable, Equatable {
    /// Prompt tokens without BOS (`PromptBatch` prepends it).
    public var tokens: [Int]
    /// Positions of the subject's tokens, BOS counted as position 0 (`find_token_range`: every token whose
    /// characters overlap the first occurrence of the subject in the decoded prompt).
    public var subjectRange: Range<Int>
    /// First token of the clean label (`clean_label`, leading space included).
    public var label: Int
    /// The subject's last token (`tokens[subjectRange.upperBound − 1]` counting BOS).
    public var subjectLastToken: Int

    public init(tokens: [Int], subjectRange: Range<Int>, label: Int, subjectLastToken: Int) {
        self.tokens = tokens
        self.subjectRange = subjectRange
        self.label = label
        self.subjectLastToken = subjectLastToken
    }

    /// The prompt of circuit sample `sample` for `task`. `index` numbers the sample in error messages. The subject's
    /// tokens are found as the study's analyzer.py finds them: for Llama, the subject's own tokens
    /// (`to_tokens(subject, prepend_bos=False)`) as a run of the prompt's (`find_sublist_index`); otherwise by
    /// characters (`find_token_range`).
    /// - Throws: `AttributionError` when the clean label is empty or the subject cannot be found in the
    ///   prompt.
    public init(sample: CircuitSample, task: CircuitTask, tokenizer: any Tokenizer, family: ModelFamily = .gpt2, bos: Int = 50256,
                index: Int) throws {
        let body = tokenizer.encode(task.prompt(subject: sample.cleanSubject))
        guard let label = tokenizer.encode(sample.cleanLabel).first else {
            throw AttributionError(item: "circuit sample \(index) ('\(sample.cleanSubject)')", problem: "has an empty clean_label",
                                   fix: "give the attribute value as the circuit data does")
        }
        let all = [bos] + body
        let found = family == .llama ? Self.sublistRange(tokens: all, sub: tokenizer.encode(sample.cleanSubject))
                                     : Self.subjectRange(tokens: all, subject: sample.cleanSubject, tokenizer: tokenizer)
        guard let range = found else {
            throw AttributionError(item: "circuit sample \(index) ('\(sample.cleanSubject)')",
                                   problem: "its subject is not in the prompt", fix: "check clean_subject")
        }
        self.init(tokens: body, subjectRange: range, label: label, subjectLastToken: all[range.upperBound - 1])
    }

    /// The study's `find_sublist_index`: the first run of `tokens` equal to `sub`.
    public static func sublistRange(tokens: [Int], sub: [Int]) -> Range<Int>? {
        guard !sub.isEmpty, sub.count <= tokens.count else { return nil }
        for i in 0...(tokens.count - sub.count) where tokens[i..<(i + sub.count)].elementsEqual(sub) { return i..<(i + sub.count) }
        return nil
    }

    /// The study's `find_token_range`: decode each token on its own, join, find the first occurrence of
    /// `subject` (in Unicode scalars, as Python counts characters), and return the tokens overlapping it.
    public static func subjectRange(tokens: [Int], subject: String, tokenizer: any Tokenizer) -> Range<Int>? {
        let pieces = tokens.map { Array(tokenizer.decode([$0], skipSpecialTokens: false, cleanUpSpaces: false).unicodeScalars) }
        let whole = pieces.flatMap { $0 }, needle = Array(subject.unicodeScalars)
        guard !needle.isEmpty, needle.count <= whole.count else { return nil }
        var at: Int?
        for i in 0...(whole.count - needle.count) where whole[i..<(i + needle.count)].elementsEqual(needle) { at = i; break }
        guard let charLoc = at else { return nil }
        var loc = 0, start: Int?
        for (i, p) in pieces.enumerated() {
            loc += p.count
            if start == nil && loc > charLoc { start = i }
            if loc >= charLoc + needle.count, let s = start { return s..<(i + 1) }
        }
        return nil
    }
}

/// What the component analysis finds for one prompt. Lens points k = 0 … L: the residual entering block k
/// (`k_pre`), then the output of the last block (`final_post`).
public struct EntityComponents: Sendable, Equatable {
    /// 0-based rank of the label at the last position (tokens with a strictly larger lens logit).   // (L+1)
    public var rankLast: [Int]
    /// Probability of the label at the last position.   // (L+1)
    public var probLast: [Double]
    /// Probability of the subject's last token at the last position.   // (L+1)
    public var subjectTokenProb: [Double]
    /// Minimum over the subject positions of the label's rank there.   // (L+1)
    public var minRankAtSubject: [Int]
    /// DLA share of the subject positions per head, row-major [layer, head].   // (L·H)
    public var subjectRatio: [Double]
    /// DLA share of the other positions (BOS excluded) per head.   // (L·H)
    public var relationRatio: [Double]
}

/// What the component analysis reads from an instrumented model after a clean forward: the residual stream at
/// every block boundary, each head's value rows and attention pattern (same layouts in `InstrumentedGPT2` and
/// `InstrumentedFamily`), and the family's final norm, unembedding and head output matrices.
protocol ComponentSource: InstrumentedModel {
    var L: Int { get }
    var H: Int { get }
    var C: Int { get }
    var dh: Int { get }
    var V: Int { get }
    var resid: FloatBuffer { get }
    var qkv: FloatBuffer { get }
    var pattern: FloatBuffer { get }
    var batchCapacity: Int { get }
    var seqCapacity: Int { get }
    func layerSlice(_ buffer: FloatBuffer, _ l: Int, width: Int) -> UnsafeMutablePointer<Float>
    /// The final norm: weight, bias (LayerNorm) or nil (RMSNorm), ε.
    var lensNorm: (weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, eps: Double) { get }
    /// The unembedding W_U as (V, C) rows and its bias b_U (Phi) or nil.
    var lensUnembedding: (weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?) { get }
    /// W_O,h[d, :] · u for layer `l`, head `h`, dimension `d`.
    func headOutputDot(layer l: Int, head h: Int, dim d: Int, _ u: [Double]) -> Double
    /// The family and the BOS TransformerLens puts in front of a prompt.
    var componentFamily: ModelFamily { get }
    var componentBOS: Int { get }
}

extension InstrumentedGPT2: ComponentSource {
    var lensNorm: (weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, eps: Double) {
        let p = parameters.views
        return (UnsafePointer(p.lnfWeight), UnsafePointer(p.lnfBias), Double(config.layerNormEpsilon))
    }
    var lensUnembedding: (weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?) { (UnsafePointer(parameters.views.wte), nil) }
    var componentFamily: ModelFamily { .gpt2 }
    var componentBOS: Int { config.bosTokenId }
    func headOutputDot(layer l: Int, head h: Int, dim d: Int, _ u: [Double]) -> Double {
        let row = parameters.views.layers[l].attnProjWeight + (h * dh + d) * C   // Conv1D [in, out]: row = head h's input d
        var s = 0.0
        for m in 0..<C { s += Double(row[m]) * u[m] }
        return s
    }
}

extension InstrumentedFamily: ComponentSource {
    var lensNorm: (weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, eps: Double) {
        let p = parameters.base
        return (UnsafePointer(p + layout.finalNorm), layout.finalNormBias.map { UnsafePointer(p + $0) }, config.normEps)
    }
    var lensUnembedding: (weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?) {
        let p = parameters.base
        return (UnsafePointer(p + layout.lmHead), layout.lmHeadBias.map { UnsafePointer(p + $0) })
    }
    var componentFamily: ModelFamily { config.family }
    var componentBOS: Int { config.bosTokenId }
    func headOutputDot(layer l: Int, head h: Int, dim d: Int, _ u: [Double]) -> Double {
        let w = parameters.base + layout.blocks[l].o + h * dh + d   // nn.Linear [out, in]: column h·dh + d
        var s = 0.0
        for m in 0..<C { s += Double(w[m * C]) * u[m] }
        return s
    }
}

/// The study's component analysis (`analyzer.py` `ComponentAnalyzer`, `analysis_component.py`) on the
/// instrumented model (GPT-2, Llama or Phi): one clean forward per prompt, no gradients. See docs/components.md.
///
/// - Logit lens: at a position, x = (r_k − mean r_k)/σ_L with σ_L = √(var r_L + ε) the final LayerNorm's
///   scale of the final residual r_L, then the full final LayerNorm on x, then ·W_Uᵀ + b_U. For RMSNorm
///   (Llama) `accumulated_resid(apply_ln=True)` leaves the stack as it is (TransformerLens scales only for
///   LayerNorm), so x = r_k and only the final RMSNorm applies. The two normalisations are the study's
///   (`accumulated_resid(apply_ln=True)`, then `ln_final`).
/// - DLA by source: for head (ℓ, h), o_s = z_s W_O,h (no value bias: it is folded into b_O), a_s = attention
///   of the last position to key s; ratio_X = (Σ_{s∈X} a_s (o_s·u) + Σ b_U) / (Σ_{s<T} (o_s·u) + Σ b_U) with
///   u = Σ_v W_U[:, v] (b_U: Phi's lm_head bias, else 0). Computed as o_s·u = Σ_t A[s, t] (v_t · W_O,h u), so
///   no per-head output is formed.
public final class ComponentAnalyzer: @unchecked Sendable {
    let model: any ComponentSource
    package let L: Int, H: Int, C: Int, dh: Int, V: Int
    /// The model's family (the subject-finding rule of `ComponentPrompt`) and BOS.
    public var family: ModelFamily { model.componentFamily }
    public var bos: Int { model.componentBOS }
    /// The model's attribution graph (circuits over it).
    public var graph: AttributionGraph { model.graph }
    /// W_O,h · u per layer and head, u = row sums of the unembedding.   // (L, H, dh)
    private var headU: [Double]
    /// Σ_v b_U[v] (0 without an unembedding bias).
    private var biasSum = 0.0
    private var lensIn = FloatBuffer(count: 0)
    private var lensLogits = FloatBuffer(count: 0)
    private var valueU: [Double] = []
    private var outU: [Double] = []

    public convenience init(model: InstrumentedGPT2) { self.init(source: model) }
    public convenience init(model: InstrumentedFamily) { self.init(source: model) }

    /// The analyzer of a loaded checkpoint (any family).
    public convenience init(circuitModel m: CircuitModel) {
        guard let source = m.model as? any ComponentSource else {
            preconditionFailure("CircuitModel holds an InstrumentedGPT2 or an InstrumentedFamily")
        }
        self.init(source: source)
    }

    init(source: any ComponentSource) {
        model = source
        L = source.L; H = source.H; C = source.C; dh = source.dh; V = source.V
        headU = []
        refresh()
    }

    /// Recomputes the unembedding sums from the arena; call after loading another checkpoint into it.
    public func refresh() {
        let (wU, bU) = model.lensUnembedding
        var u = [Double](repeating: 0, count: C)
        for v in 0..<V {
            let row = wU + v * C
            for i in 0..<C { u[i] += Double(row[i]) }
        }
        biasSum = 0
        if let bU { for v in 0..<V { biasSum += Double(bU[v]) } }
        headU = [Double](repeating: 0, count: L * H * dh)
        for l in 0..<L {
            for h in 0..<H {
                for d in 0..<dh { headU[(l * H + h) * dh + d] = model.headOutputDot(layer: l, head: h, dim: d, u) }
            }
        }
    }

    /// Lens point names: "0_pre" … "{L−1}_pre", "final_post" (TransformerLens `accumulated_resid` labels).
    public static func lensLabels(nLayers: Int) -> [String] { (0..<nLayers).map { "\($0)_pre" } + ["final_post"] }

    /// Analyses `prompts` in forwards of `batchSize` prompts (right-padded; causal attention keeps padding
    /// from changing real positions). Results in prompt order.
    public func analyze(_ prompts: [ComponentPrompt], batchSize: Int) throws -> [EntityComponents] {
        guard batchSize >= 1 else { throw AttributionError(item: "batch size", problem: "is \(batchSize)", fix: "use at least 1") }
        var out: [EntityComponents] = []
        out.reserveCapacity(prompts.count)
        var start = 0
        while start < prompts.count {
            let end = min(start + batchSize, prompts.count)
            let slice = Array(prompts[start..<end])
            for (i, p) in slice.enumerated() {
                guard p.subjectRange.lowerBound >= 0, p.subjectRange.upperBound <= p.tokens.count + 1, !p.subjectRange.isEmpty,
                      p.label >= 0, p.label < V, p.subjectLastToken >= 0, p.subjectLastToken < V else {
                    throw AttributionError(item: "component prompt \(start + i)", problem: "has a subject range or label outside the prompt or vocabulary")
                }
            }
            let batch = try model.promptBatch(prompts: slice.map(\.tokens), labels: slice.map(\.label), firstIndex: start)
            model.forward(batch, clean: true, computeLogits: false)
            for (b, p) in slice.enumerated() { out.append(analyzeRow(b, p, batch)) }
            start = end
        }
        return out
    }

    /// Reads row `b` of the last forward.
    private func analyzeRow(_ b: Int, _ p: ComponentPrompt, _ batch: PromptBatch) -> EntityComponents {
        let T = batch.seqLen, n = batch.lengths[b], last = n - 1
        let per = 1 + p.subjectRange.count, rows = (L + 1) * per
        // Logit lens rows: for each lens point k, the last position then each subject position.
        if lensIn.count < rows * C { lensIn = FloatBuffer(count: rows * C) }
        if lensLogits.count < rows * V { lensLogits = FloatBuffer(count: rows * V) }
        for (j, pos) in ([last] + Array(p.subjectRange)).enumerated() { lensInputs(row: b * T + pos, slot: j, per: per) }
        let lens = lensReadout(p, rows: rows, per: per)
        let (subjectRatio, relationRatio) = directLogitAttribution(row: b, length: n, subject: p.subjectRange, seqLen: T)
        return EntityComponents(rankLast: lens.rankLast, probLast: lens.probLast, subjectTokenProb: lens.subjectProb,
                                minRankAtSubject: lens.minRank, subjectRatio: subjectRatio, relationRatio: relationRatio)
    }

    /// The final norm applied to the residual stream of token row `row` at every lens point k (TransformerLens's
    /// `apply_ln_to_stack` with the last point's scale), written to `lensIn` row `k * per + slot`.
    private func lensInputs(row: Int, slot j: Int, per: Int) {
        let m = model
        let norm = m.lensNorm
        let eps = norm.eps, rms = norm.bias == nil
        /// The mean of `r`'s C values (0 for RMSNorm, which does not centre).
        func centre(_ r: UnsafePointer<Float>) -> Double {
            guard !rms else { return 0 }
            var s = 0.0
            for i in 0..<C { s += Double(r[i]) }
            return s / Double(C)
        }
        let rL = m.layerSlice(m.resid, L, width: C) + row * C
        let mean = centre(rL)
        var v = 0.0
        for i in 0..<C { let d = Double(rL[i]) - mean; v += d * d }
        // TransformerLens's apply_ln_to_stack scales only for LayerNorm; an RMSNorm model's stack is left as is.
        let sigma = rms ? 1 : (v / Double(C) + eps).squareRoot()
        for k in 0...L {
            let r = m.layerSlice(m.resid, k, width: C) + row * C
            let mk = centre(r)
            // x = (r − mean r)/σ_L has mean 0 up to rounding; the second LayerNorm centres it again (RMSNorm: no centring).
            var mx = 0.0
            if !rms {
                for i in 0..<C { mx += (Double(r[i]) - mk) / sigma }
                mx /= Double(C)
            }
            var vx = 0.0
            for i in 0..<C { let d = (Double(r[i]) - mk) / sigma - mx; vx += d * d }
            let rstd = 1 / (vx / Double(C) + eps).squareRoot()
            let dst = lensIn.base + (k * per + j) * C
            for i in 0..<C {
                let x = ((Double(r[i]) - mk) / sigma - mx) * rstd
                dst[i] = Float(x * Double(norm.weight[i]) + (norm.bias.map { Double($0[i]) } ?? 0))
            }
        }
    }

    /// The lens logits of the `rows` rows of `lensIn` and what the study reads from them per lens point: the label's
    /// rank and probability at the last position, the subject's last token's probability there, and the label's
    /// best rank over the subject positions.
    private func lensReadout(_ p: ComponentPrompt, rows: Int, per: Int)
        -> (rankLast: [Int], probLast: [Double], subjectProb: [Double], minRank: [Int]) {
        let (wU, bU) = model.lensUnembedding
        Matmul.sgemm(false, true, M: rows, N: V, K: C, alpha: 1, A: lensIn.base, lda: C, B: wU, ldb: C, beta: 0,
                     C: lensLogits.base, ldc: V)
        if let bU {
            for r in 0..<rows {
                let dst = lensLogits.base + r * V
                for v in 0..<V { dst[v] += bU[v] }
            }
        }
        var rankLast = [Int](), probLast = [Double](), subjProb = [Double](), minRank = [Int]()
        for k in 0...L {
            let row = lensLogits.base + (k * per) * V
            let (mx, lse) = AttributionMetric.logSumExp(row, V)
            let label = row[p.label]
            var rank = 0
            for t in 0..<V where row[t] > label { rank += 1 }
            rankLast.append(rank)
            probLast.append(exp(Double(label) - mx - lse))
            subjProb.append(exp(Double(row[p.subjectLastToken]) - mx - lse))
            var best = Int.max
            for j in 1..<per {
                let r = lensLogits.base + (k * per + j) * V
                let lv = r[p.label]
                var rk = 0
                for t in 0..<V where r[t] > lv { rk += 1 }
                best = min(best, rk)
            }
            minRank.append(best)
        }

        return (rankLast, probLast, subjProb, minRank)
    }

    /// Each head's direct logit attribution to the label at the last position of batch row `b`, split by source
    /// position: the share from the subject tokens and from the others (the relation), with W_O's bias share.
    private func directLogitAttribution(row b: Int, length n: Int, subject S: Range<Int>, seqLen T: Int) -> ([Double], [Double]) {
        let m = model, last = n - 1
        if valueU.count < T { valueU = [Double](repeating: 0, count: T); outU = [Double](repeating: 0, count: T) }
        var subjectRatio = [Double](repeating: 0, count: L * H), relationRatio = [Double](repeating: 0, count: L * H)
        for l in 0..<L {
            let q = m.layerSlice(m.qkv, l, width: 3 * C)
            let pat = m.pattern.base + l * m.batchCapacity * H * m.seqCapacity * m.seqCapacity
            for h in 0..<H {
                let hu = (l * H + h) * dh
                for t in 0..<n {
                    let v = q + (b * T + t) * 3 * C + 2 * C + h * dh
                    var s = 0.0
                    for d in 0..<dh { s += Double(v[d]) * headU[hu + d] }
                    valueU[t] = s
                }
                let a = pat + (b * H + h) * T * T
                var den = 0.0
                for s in 0..<n {
                    let row = a + s * T
                    var o = 0.0
                    for t in 0...s { o += Double(row[t]) * valueU[t] }
                    outU[s] = o
                    den += o
                }
                let lastRow = a + last * T
                var numS = 0.0, numR = 0.0
                for s in 1..<max(n, 1) {
                    let x = Double(lastRow[s]) * outU[s]
                    if S.contains(s) { numS += x } else { numR += x }
                }
                subjectRatio[l * H + h] = (numS + biasSum) / (den + biasSum)
                relationRatio[l * H + h] = (numR + biasSum) / (den + biasSum)
            }
        }
        return (subjectRatio, relationRatio)
    }
}

/// What `analysis_component.py` stores per cell and lens point: mean of (rank + 1), mean probability and
/// mean of (subject rank + 1) over the cell's prompts (NaN for none).
public struct LogitLensMeans: Sendable, Equatable {
    public var count: Int
    /// Mean of `rankLast + 1`.   // (L+1)
    public var rankPlus1: [Double]
    /// Mean of `probLast`.   // (L+1)
    public var probability: [Double]
    /// Mean of `minRankAtSubject + 1`.   // (L+1)
    public var subjectRankPlus1: [Double]

    public init(_ entities: [EntityComponents], lensCount: Int) {
        count = entities.count
        var r = [Double](repeating: 0, count: lensCount), p = r, s = r
        for e in entities {
            for k in 0..<lensCount {
                r[k] += Double(e.rankLast[k] + 1); p[k] += e.probLast[k]; s[k] += Double(e.minRankAtSubject[k] + 1)
            }
        }
        let n = Double(entities.count)
        rankPlus1 = r.map { $0 / n }; probability = p.map { $0 / n }; subjectRankPlus1 = s.map { $0 / n }
    }
}
