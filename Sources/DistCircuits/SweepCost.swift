import Core
import Foundation

/// Rough cost of a sweep for `dkc sweep --plan`: floating-point operations counted from the model shape,
/// the prompts' token counts and the grid, and a time estimate from a quick sgemm measurement.
///
/// Per token and layer a forward pass costs the block's matrix products (`ModelConfig.blockMatmulFlopsPerToken`,
/// 24·C² for GPT-2: q, k, v, output, MLP) + 2·T·C (attention); the
/// unembedding 2·C·V per read position. An activation-gradient backward pass costs about one forward.
/// Discovery (EAP-IG, m steps): 2 + m forwards and m backwards per sample, plus the score contraction.
/// Evaluation: 2 baseline forwards per sample, then per top-n a recorded and a patched forward (the patch
/// adds the edge-rebuild products). Tests: one patched forward per test entity and top-n. Acquisition:
/// the prompt, then at most `max_new_tokens` single-token steps per entity and attribute.
public struct SweepCost {
    public let flopsPerCell: [ResultCell: Double]
    public let flopsPerAcquisition: Double
    public var totalFlops: Double { flopsPerCell.values.reduce(0, +) + flopsPerAcquisition * Double(acquisitions) }
    public let acquisitions: Int

    public init(plan: SweepPlan, cells: [ResultCell], acquisitions: Int, tokenizer: any Tokenizer) throws {
        let m = plan.modelConfig
        let L = Double(m.numLayers), C = Double(m.hiddenSize), V = Double(m.vocabSize), H = Double(m.numHeads)
        let graph = m.attributionGraph, block = m.blockMatmulFlopsPerToken
        func forward(_ T: Double) -> Double { T * L * (block + 2 * T * C) + 2 * C * V }
        // Σ over layers of the rows feeding each column block, times 2·T·C (contraction and patch rebuild).
        var rebuildRows = 0.0
        for l in 0..<m.numLayers {
            rebuildRows += Double(graph.backwardPrevIndex[graph.headBackward(layer: l, head: 0, qkv: .q)]) * 3 * H
            rebuildRows += Double(graph.backwardPrevIndex[graph.mlpBackward(layer: l)])
        }
        rebuildRows += Double(graph.nForward)
        let opts = plan.config.cell
        let steps = Double(opts.attribution.method.usesSteps ? opts.attribution.igSteps : 1)
        let topn = Double(opts.topn.count)

        // Mean prompt tokens (with BOS) per task and filter, and of the test prompts.
        let tests = try TestEntities.read(plan.data.testFile)
        var perCell: [ResultCell: Double] = [:]
        var taskTokens: [String: (records: [CircuitSample], tokens: [Double])] = [:]
        for cell in cells {
            let task = try CircuitTask.named(cell.task, option: "tasks")
            if taskTokens[cell.task] == nil {
                let records = try CircuitSample.read(plan.data.circuitFile(cell.task))
                taskTokens[cell.task] = (records, records.map { Double(tokenizer.encode(task.prompt(subject: $0.cleanSubject)).count + 1) })
            }
            let (records, tokens) = taskTokens[cell.task]!
            let filter = try CellFilter(type: cell.type, frequency: cell.frequency, buckets: plan.data.buckets)
            var discover = 0.0, evaluate = 0.0
            for (r, T) in zip(records, tokens) where filter.accepts(type: r.type, frequency: r.frequency) {
                let f = forward(T), patch = f + rebuildRows * 2 * T * C
                discover += (2 + steps) * f + steps * f + rebuildRows * 2 * T * C
                evaluate += 2 * f + topn * (f + patch)
            }
            var test = 0.0
            for e in tests where plan.data.buckets.name(of: e.frequency) != nil {
                let T = Double(tokenizer.encode(task.prompt(subject: e.fullName)).count + 1)
                test += topn * (forward(T) + rebuildRows * 2 * T * C)
            }
            perCell[cell] = discover + evaluate + test
        }
        flopsPerCell = perCell
        var acquisition = 0.0
        let newTokens = Double(plan.config.maxNewTokens)
        for e in tests {
            for a in Acquisition.attributes {
                let T = Double(tokenizer.encode(a.prompt(subject: e.fullName), addSpecialTokens: true).count)
                acquisition += forward(T) + newTokens * forward(1) + newTokens * L * 2 * (T + newTokens) * C
            }
        }
        flopsPerAcquisition = acquisition
        self.acquisitions = acquisitions
    }

    /// GFLOP/s of a 512 × 512 × 512 sgemm at the current OpenBLAS thread count (best of a few).
    public static func measureRoof() -> Double {
        let n = 512
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0..<6 {
            let t = Date()
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        Matmul.sgemm(false, false, M: n, N: n, K: n, alpha: 1, A: pa.baseAddress!, lda: n, B: pb.baseAddress!, ldb: n,
                                     beta: 0, C: pc.baseAddress!, ldc: n)
                    }
                }
            }
            best = min(best, Date().timeIntervalSince(t))
        }
        return 2 * Double(n * n * n) / best / 1e9
    }
}
