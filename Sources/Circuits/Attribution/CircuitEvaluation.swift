import Foundation
import Numerics

/// Circuit evaluation as the study's `circuit_eval` runs it: clean and corrupted baselines, the circuit's
/// performance with every edge outside it carrying its corrupted value (`evaluate_graph`), faithfulness,
/// and the zero-ablated probability and rank of a label (`get_circuit_token_prob_and_rank`).
///
/// All metrics here are the non-loss logit difference per sample, logit[clean label] − logit[corrupted
/// label] at position length − 1, in float32 as the reference computes it.
public final class CircuitEvaluator: @unchecked Sendable {
    /// The instrumented model (GPT-2, or a Llama / Phi `InstrumentedFamily`).
    public let model: any InstrumentedModel
    public var graph: AttributionGraph { model.graph }
    private var record = FloatBuffer(count: 0)   // (nForward, B·T·C)
    /// A copy of the corrupted run's outputs when several circuits are patched into one kept run.   // (nForward, B·T·C)
    private var keptCopy = FloatBuffer(count: 0)
    /// What `record` holds for `keptRunPerformance`: the corrupted run of the last `baselinesKeepingCorruptedRun`
    /// (`fresh`), or that run patched over, with `keptCopy` holding the original (`copied`) or not (`none`).
    private enum KeptRun { case none, fresh, copied }
    private var kept = KeptRun.none
    private var keptCorrupted: [Float] = []
    /// How often the record buffer was (re)allocated.
    package private(set) var recordGrowths = 0

    public init(model: any InstrumentedModel) { self.model = model }

    /// Frees the evaluation buffers (they are sized to the largest batch seen; the next call allocates again).
    public func releaseBuffers() {
        record = FloatBuffer(count: 0)
        keptCopy = FloatBuffer(count: 0)
        kept = .none
    }

    private func recordBuffer(_ batch: PromptBatch) -> UnsafeMutablePointer<Float> { recordBuffer(rows: batch.batch * batch.seqLen) }

    /// The record buffer, grown to hold `rows` token rows of every node.
    private func recordBuffer(rows: Int) -> UnsafeMutablePointer<Float> {
        let n = graph.nForward * rows * model.dModel
        if record.count < n { record = FloatBuffer(count: n); recordGrowths += 1 }
        return record.base
    }

    /// Sizes the record buffer and the model's activations once for all of `batches` (run shortest first, they
    /// would otherwise be reallocated and refilled whenever a batch is longer than the last).
    public func reserve(for batches: [PromptBatch]) {
        guard let rows = batches.map({ $0.batch * $0.seqLen }).max() else { return }
        _ = recordBuffer(rows: rows)
        model.reserve(batches.map { ($0.batch, $0.seqLen) })
    }

    /// Per-sample logit difference of logits `(B, V)` at the read-out positions.
    func logitDifference(_ logits: UnsafePointer<Float>, _ batch: PromptBatch) -> [Float] {
        let V = model.vocabSize
        return (0..<batch.batch).map { b in logits[b * V + batch.cleanLabels[b]] - logits[b * V + batch.corruptedLabels[b]] }
    }

    /// Per-sample logit difference on the clean prompts and on the corrupted prompts (same mask and labels).
    public func baselines(_ batch: PromptBatch) -> (clean: [Float], corrupted: [Float]) {
        precondition(batch.corruptedTokens != nil, "baselines need corrupted prompts")
        let corrupted = logitDifference(model.forward(batch, clean: false, readOutOnly: true), batch)
        let clean = logitDifference(model.forward(batch, clean: true, readOutOnly: true), batch)
        return (clean, corrupted)
    }

    /// `baselines`, with the corrupted run recorded and kept for `keptRunPerformance` on the same batch: the
    /// corrupted run is the same for every circuit, so a cell makes it once per batch (the logits are the same
    /// as an unrecorded run's: recording only copies node outputs out).
    public func baselinesKeepingCorruptedRun(_ batch: PromptBatch) -> (clean: [Float], corrupted: [Float]) {
        precondition(batch.corruptedTokens != nil, "baselines need corrupted prompts")
        let rec = recordBuffer(batch)
        let corrupted = logitDifference(model.forward(batch, clean: false, record: rec, recordMode: .set, readOutOnly: true), batch)
        kept = .fresh
        keptCorrupted = corrupted
        let clean = logitDifference(model.forward(batch, clean: true, readOutOnly: true), batch)
        return (clean, corrupted)
    }

    /// `circuitPerformance(circuit, batch)` from the corrupted run the last `baselinesKeepingCorruptedRun` kept
    /// for this `batch`: only the patched clean run is made. `more`: another circuit follows on the same batch
    /// (the kept outputs are then copied once and restored before each further circuit).
    public func keptRunPerformance(_ circuit: Circuit, _ batch: PromptBatch, more: Bool) -> [Float] {
        precondition(kept != .none, "keptRunPerformance needs baselinesKeepingCorruptedRun on the same batch first")
        if circuit.isEmpty { return keptCorrupted }
        let n = graph.nForward * batch.batch * batch.seqLen * model.dModel
        let rec = recordBuffer(batch)
        if kept == .copied {
            rec.update(from: keptCopy.base, count: n)
        } else if more {
            // As large as the record buffer, so it too is allocated once for the batches `reserve` sized.
            if keptCopy.count < n { keptCopy = FloatBuffer(count: max(n, record.count)) }
            keptCopy.base.update(from: rec, count: n)
        }
        let logits = model.forward(batch, clean: true, record: rec, recordMode: .subtract, patch: .init(circuit: circuit), readOutOnly: true)
        kept = (kept == .copied || more) ? .copied : .none
        return logitDifference(logits, batch)
    }

    /// Logits `(B, V)` of the clean prompts with `circuit` patched in: run the corrupted prompts and record
    /// every node's output, then the clean prompts, where each rebuilt input adds Σ over the absent edges of
    /// (corrupted − current output of the parent). An empty circuit gives the corrupted logits. The circuit
    /// is used as given (prune it first, as `evaluate` does).
    public func patchedLogits(_ circuit: Circuit, _ batch: PromptBatch) -> [Float] {
        precondition(batch.corruptedTokens != nil, "patching needs corrupted prompts")
        let V = model.vocabSize
        let rec = recordBuffer(batch)
        kept = .none
        let corrupted = model.forward(batch, clean: false, record: rec, recordMode: .set, readOutOnly: true)
        if circuit.isEmpty { return Array(UnsafeBufferPointer(start: corrupted, count: batch.batch * V)) }
        let logits = model.forward(batch, clean: true, record: rec, recordMode: .subtract, patch: .init(circuit: circuit), readOutOnly: true)
        return Array(UnsafeBufferPointer(start: logits, count: batch.batch * V))
    }

    /// Per-sample logit difference with `circuit` patched in.
    public func circuitPerformance(_ circuit: Circuit, _ batch: PromptBatch) -> [Float] {
        let logits = patchedLogits(circuit, batch)
        return logits.withUnsafeBufferPointer { logitDifference($0.baseAddress!, batch) }
    }

    /// Logits `(B, V)` of the clean prompts with every edge outside `circuit` zero-ablated: the parent's
    /// live output is subtracted from the child's input (no corrupted run). The folded value biases, all
    /// b_O, the MLP biases and the positional embedding stay, since no node owns them.
    public func zeroAblatedLogits(_ circuit: Circuit, _ batch: PromptBatch) -> [Float] {
        let V = model.vocabSize
        let rec = recordBuffer(batch)
        kept = .none
        let logits = model.forward(batch, clean: true, record: rec, recordMode: .negate, patch: .init(circuit: circuit), readOutOnly: true)
        return Array(UnsafeBufferPointer(start: logits, count: batch.batch * V))
    }

    /// Probability (softmax over the vocabulary) and rank (tokens with a strictly larger logit; 0 = top) of
    /// `batch.cleanLabels[b]` at the read-out position, from logits `(B, V)`.
    public func labelProbabilityAndRank(_ logits: [Float], _ batch: PromptBatch) -> [(probability: Double, rank: Int)] {
        let V = model.vocabSize
        return logits.withUnsafeBufferPointer { l in
            (0..<batch.batch).map { b in
                let row = l.baseAddress! + b * V
                let (m, lse) = AttributionMetric.logSumExp(row, V)
                let label = row[batch.cleanLabels[b]]
                var rank = 0
                for t in 0..<V where row[t] > label { rank += 1 }
                return (exp(Double(label) - m - lse), rank)
            }
        }
    }
}

/// The numbers `circuit_eval.run_eval` reports for one circuit, and per sample.
public struct CircuitEvalResult: Sendable {
    public var topN: Int?
    /// Mean over samples of the clean / corrupted logit difference.
    public var cleanBaseline: Double
    public var corruptedBaseline: Double
    /// Mean logit difference with the circuit patched in.
    public var circuitPerformance: Double
    public var perSampleClean: [Float]
    public var perSampleCorrupted: [Float]
    public var perSampleCircuit: [Float]
    /// Edges and nodes in the circuit after pruning (nodes count `input` and `logits`).
    public var edgeCount: Int
    public var nodeCount: Int
    /// Entropy of |score| over the kept edges (nil for an empty circuit).
    public var edgeEntropy: Float?

    /// circuit − corrupted baseline.
    public var faithfulnessNumerator: Double { circuitPerformance - corruptedBaseline }
    /// clean − corrupted baseline.
    public var faithfulnessDenominator: Double { cleanBaseline - corruptedBaseline }

    /// (circuit − corrupted) / (clean − corrupted); nil when |clean − corrupted| < `minDenominator`
    /// (the ratio is then noise; the study reports it regardless, which `minDenominator: 0` reproduces
    /// except for an exactly zero denominator).
    public func faithfulness(minDenominator: Double = 0) -> Double? {
        let d = faithfulnessDenominator
        guard abs(d) >= minDenominator, d != 0 else { return nil }
        return faithfulnessNumerator / d
    }
}

extension CircuitEvaluator {
    /// `run_eval` for one circuit over `pairs` in batches of `batchSize`: prunes `circuit` (as
    /// `evaluate_graph` does), then baselines, patched performance, counts and entropy.
    public func evaluate(_ circuit: Circuit, pairs: [PromptPair], batchSize: Int, topN: Int? = nil) throws -> CircuitEvalResult {
        var c = circuit
        c.pruneDeadNodes()
        let n = pairs.count
        var clean = [Float](repeating: 0, count: n), corrupted = clean, perf = clean
        try model.forEachLengthOrderedBatch(of: pairs, batchSize: batchSize, weightedByBatch: false, reserving: reserve(for:)) { indices, batch in
            let base = baselines(batch), patched = circuitPerformance(c, batch)
            for (k, i) in indices.enumerated() { (clean[i], corrupted[i], perf[i]) = (base.clean[k], base.corrupted[k], patched[k]) }
        }
        return CircuitEvalResult(topN: topN, cleanBaseline: Self.mean(clean), corruptedBaseline: Self.mean(corrupted),
                                 circuitPerformance: Self.mean(perf), perSampleClean: clean, perSampleCorrupted: corrupted,
                                 perSampleCircuit: perf, edgeCount: c.edgeCount, nodeCount: c.nodeCount, edgeEntropy: c.edgeEntropy())
    }

    /// `run_test`: the zero-ablated probability and rank of each prompt's label under `circuit` (pruned
    /// first). Throws for an empty circuit, as the reference does.
    /// `progress` receives the number of prompts done after each batch.
    public func test(_ circuit: Circuit, prompts: [[Int]], labels: [Int], batchSize: Int,
                     progress: ((Int) -> Void)? = nil) throws -> [(probability: Double, rank: Int)] {
        var c = circuit
        c.pruneDeadNodes()
        guard !c.isEmpty else {
            throw AttributionError(item: "circuit test", problem: "the circuit is empty after pruning (logits has no kept parent edge)",
                                   fix: "choose a larger top-n")
        }
        var batches: [(PromptBatch, Int)] = []
        try PromptBatch.forEachBatch(prompts.count, batchSize) { range in
            batches.append((try model.promptBatch(prompts: Array(prompts[range]), labels: Array(labels[range]), firstIndex: range.lowerBound),
                            range.upperBound))
        }
        reserve(for: batches.map(\.0))
        var out: [(probability: Double, rank: Int)] = []
        for (batch, done) in batches {
            out += labelProbabilityAndRank(zeroAblatedLogits(c, batch), batch)
            progress?(done)
        }
        return out
    }

    /// Mean of float32 values, summed in double and rounded to float (as a float32 tensor mean reports it).
    package static func mean(_ x: [Float]) -> Double {
        guard !x.isEmpty else { return .nan }
        return Double(Float(x.reduce(0.0) { $0 + Double($1) } / Double(x.count)))
    }
}
