import Foundation
import Core

/// One training-step benchmark: forward + backward + AdamW of a randomly initialised GPT-2 on random tokens.
public struct ModelBenchResult: Sendable {
    public let config: String
    public let batchSize: Int
    public let seqLen: Int
    public let threads: Int
    public let repeats: Int
    /// Seconds per step, one per repeat (after warm-up).
    public let stepSeconds: [Double]
    /// Median, min and max tokens/s over the repeats.
    public let tokensPerS: Double
    public let minTokensPerS: Double
    public let maxTokensPerS: Double
    /// Model FLOPs per step: 6 × parameters × tokens + 12 × n_layer × B × T² × C (attention scores and mixing,
    /// forward and backward). The parameters include the tied embedding, which is also the unembedding GEMM.
    public let flopsPerStep: Double
    /// Achieved GFLOP/s at the median step time.
    public let gflops: Double
    /// Best sgemm rate measured in the same run at the same thread count.
    public var roofGflops: Double
    public var mfu: Double { gflops / roofGflops }
    public let peakRSSMiB: Double
    public let blasCore: String
    public let parameters: Int
    /// Mean seconds per timed step by phase ("fwd.matmul", "bwd.attention", "adamw", …) when profiling was on.
    public let phases: [(name: String, seconds: Double)]
}

/// The engine of `dkc bench model`.
public enum ModelBench {
    /// The named configurations (gpt2-medium: 24 layers, 16 heads, n_embd 1024, for calibrating docs/scaling.md).
    public static let configs: [(String, GPT2Config)] = [("tiny", .tiny), ("gpt2", .gpt2Small),
                                                         ("gpt2-medium", GPT2Config(nLayer: 24, nHead: 16, nEmbd: 1024))]

    public static func config(named name: String) -> GPT2Config? { configs.first { $0.0 == name }?.1 }

    /// The Llama and Phi shapes (docs/performance.md, "Model families"): the fixture models the tiny demos
    /// train (tiny-llama: 2 layers, 32 heads sharing 4 K/V heads, d_model 128, d_mlp 352, vocabulary 2,048;
    /// tiny-phi: 2 layers, 4 heads, d_model 64, d_mlp 256, half-rotary, vocabulary 3,039), and 4-layer slices
    /// of the real models at full width (TinyLlama v1.1: d_model 2048, 32 heads, 4 K/V heads, d_mlp 5632,
    /// vocabulary 32,000, untied; Phi-1.5: d_model 2048, 32 heads, d_mlp 8192, half-rotary, vocabulary 51,200).
    public static let familyConfigs: [(String, ModelConfig)] = [
        ("tiny-llama", ModelConfig(family: .llama, numLayers: 2, numHeads: 32, numKVHeads: 4, hiddenSize: 128, intermediateSize: 352,
                                   vocabSize: 2048, maxPositions: 256, normEps: 1e-5, tieWordEmbeddings: false, bosTokenId: 1, eosTokenId: 2)),
        ("tiny-phi", ModelConfig(family: .phi, numLayers: 2, numHeads: 4, numKVHeads: 4, hiddenSize: 64, intermediateSize: 256,
                                 vocabSize: 3039, maxPositions: 256, normEps: 1e-5, partialRotaryFactor: 0.5, tieWordEmbeddings: false,
                                 bosTokenId: 3000, eosTokenId: 3000)),
        ("tinyllama-4l", ModelConfig(family: .llama, numLayers: 4, numHeads: 32, numKVHeads: 4, hiddenSize: 2048, intermediateSize: 5632,
                                     vocabSize: 32000, maxPositions: 2048, normEps: 1e-5, tieWordEmbeddings: false, bosTokenId: 1, eosTokenId: 2)),
        ("phi-1_5-4l", ModelConfig(family: .phi, numLayers: 4, numHeads: 32, numKVHeads: 32, hiddenSize: 2048, intermediateSize: 8192,
                                   vocabSize: 51200, maxPositions: 2048, normEps: 1e-5, partialRotaryFactor: 0.5, tieWordEmbeddings: false,
                                   bosTokenId: 50256, eosTokenId: 50256)),
    ]

    public static func familyConfig(named name: String) -> ModelConfig? { familyConfigs.first { $0.0 == name }?.1 }

    /// FLOPs of one forward + backward step of a Llama / Phi model: 6 × tokens × (the blocks' matrix products
    /// per token, `ModelConfig.blockMatmulFlopsPerToken` / 2 multiply-adds per layer, + the unembedding V·C) +
    /// 12 × layers × B × T² × C (attention scores and mixing, forward and backward). The input embedding is a
    /// lookup, not counted.
    public static func flopsPerStep(_ c: ModelConfig, batch B: Int, seqLen T: Int) -> Double {
        let perToken = Double(c.numLayers) * c.blockMatmulFlopsPerToken / 2 + Double(c.vocabSize) * Double(c.hiddenSize)
        return 6 * perToken * Double(B * T) + 12 * Double(c.numLayers) * Double(B) * Double(T * T) * Double(c.hiddenSize)
    }

    /// `run` for a Llama or Phi shape: a `FamilyModel` initialised as transformers initialises it (seed 1234).
    public static func run(name: String, family config: ModelConfig, batch B: Int, seqLen T: Int, threads: Int,
                           repeats: Int, warmup: Int = 2, progress: ((String) -> Void)? = nil) throws -> ModelBenchResult {
        precondition(repeats >= 1 && warmup >= 0 && config.family != .gpt2)
        BLAS.setThreads(threads)
        let initialRoof = sgemmRoof(threads: threads, progress: progress)
        let arena = FamilyArena(layout: FamilyLayout(config: config))
        progress?("\(name): initialising \(arena.count) parameters")
        arena.initialize(seed: 1234)
        let model = FamilyModel(params: arena, threads: threads)
        return try timeSteps(name: name, model: model, vocab: config.vocabSize, flops: flopsPerStep(config, batch: B, seqLen: T),
                             batch: B, seqLen: T, threads: threads, repeats: repeats, warmup: warmup, roof: initialRoof,
                             timer: nil, progress: progress)
    }

    /// FLOPs of one forward + backward step (see `ModelBenchResult.flopsPerStep`).
    public static func flopsPerStep(_ c: GPT2Config, batch B: Int, seqLen T: Int) -> Double {
        let params = Double(ParameterLayout(config: c).count)
        return 6 * params * Double(B * T) + 12 * Double(c.nLayer) * Double(B) * Double(T * T) * Double(c.nEmbd)
    }

    /// Runs `warmup` untimed and `repeats` timed training steps. Sets OpenBLAS to `threads` threads.
    /// Without a given `roof`, the roof is the best of `sgemmRoof` before the steps and a 1024³ sgemm after each step.
    /// `progress` receives a line per phase (for a live display); nothing is printed here.
    public static func run(name: String, config: GPT2Config, batch B: Int, seqLen T: Int, threads: Int,
                           repeats: Int, warmup: Int = 2, roof: Double? = nil, profile: Bool = false,
                           progress: ((String) -> Void)? = nil) throws -> ModelBenchResult {
        precondition(repeats >= 1 && warmup >= 0)
        BLAS.setThreads(threads)
        let initialRoof = roof ?? sgemmRoof(threads: threads, progress: progress)
        progress?("\(name): initialising \(ParameterLayout(config: config).count) parameters")
        let model = GPT2(config: config, seed: 1234, threads: threads)
        return try timeSteps(name: name, model: model, vocab: config.vocabSize, flops: flopsPerStep(config, batch: B, seqLen: T),
                             batch: B, seqLen: T, threads: threads, repeats: repeats, warmup: warmup, roof: initialRoof,
                             probeRoof: roof == nil, timer: profile ? PhaseTimer() : nil, progress: progress)
    }

    /// Times `warmup` + `repeats` steps (forward, backward, AdamW) of `model` on random tokens. `timer`
    /// (GPT-2 only) collects the time of every kernel from the first timed step on.
    static func timeSteps(name: String, model: any TrainableModel, vocab: Int, flops: Double, batch B: Int, seqLen T: Int,
                          threads: Int, repeats: Int, warmup: Int, roof initialRoof: Double, probeRoof probing: Bool = true,
                          timer: PhaseTimer?, progress: ((String) -> Void)?) throws -> ModelBenchResult {
        let opt = model.makeOptimizer(AdamWConfig(lr: 1e-4, maxGradNorm: 1.0), threads: threads)
        var rng = SplitMix64(seed: 99)
        let tokens = (0..<(B * T)).map { _ in Int(rng.next() % UInt64(vocab)) }
        var times: [Double] = []
        var probe = 0.0
        let probeBuffers = (FloatBuffer(count: 1024 * 1024), FloatBuffer(count: 1024 * 1024), FloatBuffer(count: 1024 * 1024))
        let gpt2 = model as? GPT2
        for i in 0..<(warmup + repeats) {
            if let timer, i == warmup { gpt2?.phaseTimer = timer }
            let t0 = DispatchTime.now().uptimeNanoseconds
            model.zeroGradients()
            _ = try model.trainingLoss(tokens: tokens, batch: B, seqLen: T, dropoutSeed: nil, rowKeys: [])
            model.backward()
            if let t = gpt2?.phaseTimer {
                t.measure("adamw") { _ = opt.step(params: model.parameterBase, grads: model.gradientBase) }
            } else {
                opt.step(params: model.parameterBase, grads: model.gradientBase)
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            let label = i < warmup ? "warm-up \(i + 1)/\(warmup)" : "step \(i - warmup + 1)/\(repeats)"
            progress?("\(name): \(label) \(String(format: "%.3f", dt)) s")
            if i >= warmup { times.append(dt) }
            // Probe the roof between steps too, so a roof taken while other processes held the cores does not
            // stand alone (the best rate seen over the whole run is kept: MFU errs on the low side).
            if probing { probe = max(probe, probeRoof(threads: threads, buffers: probeBuffers)) }
        }
        let roofValue = max(initialRoof, probe)
        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let tokensPerStep = Double(B * T)
        return ModelBenchResult(config: name, batchSize: B, seqLen: T, threads: threads, repeats: repeats, stepSeconds: times,
                                tokensPerS: tokensPerStep / median, minTokensPerS: tokensPerStep / sorted.last!,
                                maxTokensPerS: tokensPerStep / sorted.first!, flopsPerStep: flops, gflops: flops / median / 1e9,
                                roofGflops: roofValue, peakRSSMiB: peakRSSMiB(), blasCore: BLAS.coreName,
                                parameters: model.parameterCount,
                                phases: timer.map { t in t.order.map { ($0, t.seconds[$0]! / Double(repeats)) } } ?? [])
    }

    /// The best single-precision GEMM rate (GFLOP/s) at `threads` OpenBLAS threads, over square 1024 and 2048
    /// products and GPT-2 training shapes ([1024, 768] × [768, 3072] and its transposed-weight backward);
    /// each shape is timed as the best of several calls after a warm-up call.
    public static func sgemmRoof(threads: Int, progress: ((String) -> Void)? = nil) -> Double {
        BLAS.setThreads(threads)
        progress?("measuring the sgemm roof at \(threads) thread(s)")
        // (M, N, K, transA, transB)
        let shapes: [(Int, Int, Int, Bool, Bool)] = [(1024, 1024, 1024, false, false), (2048, 2048, 2048, false, false),
                                                     (1024, 3072, 768, false, false), (768, 3072, 1024, true, false)]
        var best = 0.0
        for (M, N, K, ta, tb) in shapes {
            let a = FloatBuffer(count: M * K), b = FloatBuffer(count: K * N), c = FloatBuffer(count: M * N)
            var rng = SplitMix64(seed: 5)
            for i in 0..<a.count { a.base[i] = Float(rng.nextUnit()) - 0.5 }
            for i in 0..<b.count { b.base[i] = Float(rng.nextUnit()) - 0.5 }
            let lda = ta ? M : K, ldb = tb ? K : N
            let flops = 2.0 * Double(M) * Double(N) * Double(K)
            let reps = max(3, Int(2e10 / flops))
            Matmul.sgemm(ta, tb, M: M, N: N, K: K, alpha: 1, A: a.base, lda: lda, B: b.base, ldb: ldb, beta: 0, C: c.base, ldc: N)
            var fastest = Double.infinity
            for _ in 0..<reps {
                let t0 = DispatchTime.now().uptimeNanoseconds
                Matmul.sgemm(ta, tb, M: M, N: N, K: K, alpha: 1, A: a.base, lda: lda, B: b.base, ldb: ldb, beta: 0, C: c.base, ldc: N)
                fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            best = max(best, flops / fastest / 1e9)
        }
        return best
    }

    /// One 1024 × 1024 × 1024 sgemm, timed: GFLOP/s.
    static func probeRoof(threads: Int, buffers: (FloatBuffer, FloatBuffer, FloatBuffer)) -> Double {
        let n = 1024
        let t0 = DispatchTime.now().uptimeNanoseconds
        Matmul.sgemm(false, false, M: n, N: n, K: n, alpha: 1, A: buffers.0.base, lda: n, B: buffers.1.base, ldb: n,
                     beta: 0, C: buffers.2.base, ldc: n)
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return 2 * Double(n * n * n) / dt / 1e9
    }

    /// Peak resident set size of this process in MiB (`VmHWM` of /proc/self/status; 0 where unavailable).
    public static func peakRSSMiB() -> Double { ProcessMemory.peakRSSMiB() }
}
