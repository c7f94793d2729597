import Foundation
import Core

/// One attribution benchmark: `EdgeAttribution.scores` over a set of prompt pairs on a randomly initialised
/// model (GPT-2, Llama or Phi), timed per call (all prompts, in the length-ordered batches of `PromptBatch.lengthOrderedBatches`).
public struct DiscoverBenchResult: Sendable {
    public let config: String
    public let method: AttributionMethod
    /// Integration steps, nil for methods without steps.
    public let igSteps: Int?
    public let batchSize: Int
    /// Prompt pairs per call.
    public let samples: Int
    /// The longest padded batch length of a call (BOS included).
    public let seqLen: Int
    public let threads: Int
    public let repeats: Int
    /// Seconds per call, one per repeat (after the warm-up calls).
    public let callSeconds: [Double]
    /// Median, min and max samples/s over the repeats.
    public let samplesPerS: Double
    public let minSamplesPerS: Double
    public let maxSamplesPerS: Double
    /// FLOPs of one call (see `DiscoverBench.flops`).
    public let flopsPerCall: Double
    /// Achieved GFLOP/s at the median call time.
    public let gflops: Double
    /// Best sgemm rate measured in the same run at the same thread count.
    public var roofGflops: Double
    public var mfu: Double { gflops / roofGflops }
    /// Peak resident size (MiB) while this measurement ran: the process's high-water mark, reset just before the
    /// model was created when `peakIsPerMeasurement`, else the peak since the process started.
    public let peakRSSMiB: Double
    /// Resident size (MiB) when the measurement began (tokenizer, runtime, what earlier measurements left).
    public let baseRSSMiB: Double
    public let peakIsPerMeasurement: Bool
    /// The timed calls' products by shape, when the run was asked to profile them (`GemmProfile`); else empty.
    public var gemmProfile: [GemmProfile.Entry] = []
    public let blasCore: String
    public let parameters: Int
    /// Σ |score| over the edges of the last call: shows the work was done (finite, non-zero).
    public let scoreAbsSum: Double
}

/// A figure of the study's own attribution code (docs/performance.md, "Reference figures": CPU, 2 threads,
/// 64 prompts, median of 3 repeats after a warm-up call) and dkc's target for it.
public struct DiscoverBenchReference: Sendable {
    public let config: String
    public let method: AttributionMethod
    public let batchSize: Int
    public let studySamplesPerS: Double
    /// dkc's target as a multiple of the study's rate (EAP-IG: ≥ 10× on tiny, ≥ 8× on GPT-2 small at batch 16), nil
    /// where none is set. The target is a ratio measured in one run beside the study's code; against the recorded
    /// figure it is indicative only.
    public let targetRatio: Double?
    /// dkc's target in samples/s against the recorded figure.
    public var targetSamplesPerS: Double? { targetRatio.map { $0 * studySamplesPerS } }
    /// dkc's peak-memory target in MiB, nil where none is set.
    public let targetPeakRSSMiB: Double?
}

/// The engine of `dkc bench discover`.
public enum DiscoverBench {
    /// The study's figures and dkc's targets (docs/performance.md). They apply to runs like the study's: 64 prompts,
    /// 2 threads, 5 integration steps for EAP-IG. 4 GB = 4·10⁹ bytes.
    public static let references: [DiscoverBenchReference] = [
        DiscoverBenchReference(config: "tiny", method: .eapIG, batchSize: 16, studySamplesPerS: 10.4, targetRatio: 10, targetPeakRSSMiB: nil),
        DiscoverBenchReference(config: "tiny", method: .eapIG, batchSize: 64, studySamplesPerS: 10.0, targetRatio: 10, targetPeakRSSMiB: nil),
        DiscoverBenchReference(config: "gpt2", method: .eapIG, batchSize: 16, studySamplesPerS: 0.67, targetRatio: 8, targetPeakRSSMiB: nil),
        DiscoverBenchReference(config: "gpt2", method: .eapIG, batchSize: 64, studySamplesPerS: 0.36, targetRatio: nil,
                               targetPeakRSSMiB: 4e9 / 1_048_576),
        DiscoverBenchReference(config: "tiny", method: .eap, batchSize: 16, studySamplesPerS: 51, targetRatio: nil, targetPeakRSSMiB: nil),
        DiscoverBenchReference(config: "tiny", method: .eap, batchSize: 64, studySamplesPerS: 44, targetRatio: nil, targetPeakRSSMiB: nil),
        DiscoverBenchReference(config: "gpt2", method: .eap, batchSize: 16, studySamplesPerS: 3.0, targetRatio: nil, targetPeakRSSMiB: nil),
        DiscoverBenchReference(config: "gpt2", method: .eap, batchSize: 64, studySamplesPerS: 1.1, targetRatio: nil, targetPeakRSSMiB: nil),
    ]

    /// The study's figure for `r`, when `r` ran as the study did (64 prompts, 2 threads, 5 steps for EAP-IG).
    public static func reference(for r: DiscoverBenchResult) -> DiscoverBenchReference? {
        guard r.samples == 64, r.threads == 2, r.method != .eapIG || r.igSteps == 5 else { return nil }
        return references.first { $0.config == r.config && $0.method == r.method && $0.batchSize == r.batchSize }
    }

    // MARK: Prompts

    /// `count` samples of the study's city task, `{First Middle Last} lives in the city of`: names and
    /// cities drawn uniformly from `pools` (distinct clean names), each corrupted name another drawn person's whose
    /// prompt has as many tokens as the clean one and whose label differs. Labels are the first token of
    /// " " + city (without the space when `labelLeadingSpace` is false: Llama), as the study's circuit data.
    /// Deterministic in `seed`. Frequency 0, type "new".
    /// - Throws: `BenchError` (exit 65) when the pools cannot give a corrupted name of equal token length.
    public static func samples(count: Int, pools: DataPools, encoder: TextEncoder, labelLeadingSpace: Bool = true,
                               seed: UInt64 = 1) throws -> [CircuitSample] {
        precondition(count >= 0)
        var rng = DeterministicRandom(seed: seed, stream: "bench-discover-prompts")
        let template = CircuitTask.city.promptTemplate
        let space = labelLeadingSpace ? " " : ""
        func person() -> (name: String, city: String, label: Int?) {
            let name = [rng.choice(pools.firstNames), rng.choice(pools.middleNames), rng.choice(pools.lastNames)].joined(separator: " ")
            let city = space + rng.choice(pools.cities)
            return (name, city, encoder.encode(city).first)
        }
        func length(_ name: String) -> Int { encoder.encode(template.replacingOccurrences(of: "{subject}", with: name)).count }
        var samples: [CircuitSample] = []
        var used = Set<String>()
        let attempts = 10_000
        while samples.count < count {
            var clean = person()
            var tries = 0
            while used.contains(clean.name) || clean.label == nil {
                tries += 1
                guard tries < attempts else {
                    throw BenchError("the pools give fewer than \(count) distinct names with a city label; add names to the pools or ask for fewer prompts",
                                        exitCode: 65)
                }
                clean = person()
            }
            used.insert(clean.name)
            let n = length(clean.name)
            var match: (name: String, city: String, label: Int?)?
            for _ in 0..<attempts {
                let c = person()
                if c.name != clean.name, let label = c.label, label != clean.label, length(c.name) == n { match = c; break }
            }
            guard let corrupted = match else {
                throw BenchError("no name of the pools gives a prompt of \(n) tokens like \"\(clean.name)\" in \(attempts) draws; add names to the pools",
                                    exitCode: 65)
            }
            samples.append(CircuitSample(cleanSubject: clean.name, cleanLabel: clean.city, cleanLabelIndex: clean.label!,
                                         corruptedSubject: corrupted.name, corruptedLabel: corrupted.city, corruptedLabelIndex: corrupted.label!,
                                         frequency: 0, type: "new"))
        }
        return samples
    }

    /// The prompt pairs of `samples(…)`, tokenised by `encoder`.
    public static func prompts(count: Int, pools: DataPools, encoder: TextEncoder, labelLeadingSpace: Bool = true,
                               seed: UInt64 = 1) throws -> [PromptPair] {
        try samples(count: count, pools: pools, encoder: encoder, labelLeadingSpace: labelLeadingSpace, seed: seed)
            .map { $0.promptPair(task: .city, encoder: encoder) }
    }

    // MARK: FLOPs

    /// FLOPs of one batch of `B` prompts padded to `T` positions, as dkc's attribution computes it (2 per
    /// multiply-add; elementwise work, norms, rotary and softmaxes not counted), per node of the method:
    ///
    /// - a forward pass: the blocks' matrix products per token (`ModelConfig.blockMatmulFlopsPerToken`: 24·C² per
    ///   layer for GPT-2; Llama's K/V at the grouped width and its three MLP products; GPT-2's last MLP only at
    ///   the B read-out rows, `InstrumentedGPT2.forward`'s `readOutOnly`) plus 4·B·T²·C per layer
    ///   (scores and mixing over the full square, as `dkc bench model` counts them); a recorded pass (the clean
    ///   and the corrupted run) also forms each head's own output z_h·W_O,h: 2·C² per token per layer;
    /// - an activation backward (no parameter gradients): the same products (input side only, including each
    ///   head's own q/k/v input) plus 8·B·T²·C per layer;
    /// - the unembedding, 2·B·C·V per pass, only where the method needs logits: never for the logit difference
    ///   (its gradient does not depend on the logits and touches two columns of W_U);
    /// - the score contraction: 2·B·T·C per (forward row, backward column) pair of the dense per-layer blocks.
    ///
    /// EAP: 2 recorded forwards + 1 backward. EAP-IG: 2 recorded forwards + m × (forward + backward); with the logit
    /// difference the last step's forward is the clean run (`EdgeAttribution`), so 1 recorded forward + the last
    /// step's per-head outputs + m × (forward + backward).
    /// clean-corrupted: 2 recorded + 1 forward + 2 backwards. EAP-IG-activations: 2 recorded + (1 + 2L)·m ×
    /// (forward + backward), an upper bound (a replaced group's own backward is skipped).
    /// This counts dkc's work, not the study's: TransformerLens also computes full logits at every position.
    public static func flops(model c: ModelConfig, batch B: Int, seqLen T: Int, options: AttributionOptions) -> Double {
        let L = Double(c.numLayers), C = Double(c.hiddenSize), V = Double(c.vocabSize)
        let N = Double(B * T), square = Double(B) * Double(T) * Double(T)
        // GPT-2 runs its last MLP at the read-out rows alone (B of the B·T rows), forward and backward, in every
        // method's passes but IG-on-activations' (which replaces that MLP's output).
        let lastMLPRows = c.family == .gpt2 && options.method != .eapIGActivations ? Double(B) : N
        let body = N * L * c.blockMatmulFlopsPerToken - (N - lastMLPRows) * c.mlpMatmulFlopsPerToken
        let perHead = N * L * 2 * C * C
        let unembed = options.metric.kind == .logitDifference ? 0 : 2 * Double(B) * C * V
        let recorded = body + perHead + L * 4 * square * C
        let plain = body + L * 4 * square * C
        let backward = body + L * 8 * square * C + unembed
        let g = c.attributionGraph
        var pairs = Double(g.nForward)   // the logits column reads every forward node
        for l in 0..<c.numLayers { pairs += Double(g.backwardPrevIndex[g.mlpBackward(layer: l)] * (3 * c.numHeads + 1)) }
        let contraction = 2 * N * C * pairs
        let m = Double(options.igSteps)
        switch options.method {
        case .eap: return 2 * recorded + 2 * unembed + backward + contraction
        case .eapIG:
            if options.metric.kind == .logitDifference { return recorded + perHead + m * (plain + backward) + contraction }
            return 2 * recorded + unembed + m * (plain + unembed + backward) + contraction
        case .cleanCorrupted: return 2 * recorded + unembed + plain + unembed + 2 * backward + contraction
        case .eapIGActivations: return 2 * recorded + unembed + (1 + 2 * L) * m * (plain + unembed + backward) + contraction
        }
    }

    /// `flops(model:)` for a GPT-2 shape.
    public static func flops(config c: GPT2Config, batch B: Int, seqLen T: Int, options: AttributionOptions) -> Double {
        flops(model: ModelConfig(gpt2: c), batch: B, seqLen: T, options: options)
    }

    /// The batch shapes (B, T) dkc runs prompts of token counts `lengths` in (`PromptBatch.lengthOrderedBatches`;
    /// `weightedByBatch` for attribution with the study's normalisation), each padded to BOS + its longest prompt.
    public static func batchShapes(lengths: [Int], batchSize: Int, weightedByBatch: Bool) -> [(batch: Int, seqLen: Int)] {
        precondition(batchSize >= 1)
        let batches = (try? PromptBatch.lengthOrderedBatches(lengths: lengths, batchSize: batchSize, weightedByBatch: weightedByBatch)) ?? []
        return batches.map { ($0.count, 1 + $0.map { lengths[$0] }.max()!) }
    }

    // MARK: Run

    /// Creates a randomly initialised model of `config` (GPT-2: `ParameterArena.initializeGPT2(seed:)` and
    /// `InstrumentedGPT2`; Llama, Phi: `FamilyArena.initialize(seed:)`, as transformers initialises them, and
    /// `InstrumentedFamily`), then makes `warmup` untimed and `repeats` timed calls of `EdgeAttribution.scores` over all
    /// `pairs`. Sets OpenBLAS to `threads` threads. Without a given `roof`, the roof is the best of `sgemmRoof`
    /// before the calls and a 1024³ sgemm after each call. The peak memory is reset (`ProcessMemory.resetPeak`)
    /// after the roof and before the model is created. `gemmProfile`: the timed calls' products are timed by shape
    /// (`GemmProfile`, in the result). `progress` receives a line per phase; nothing is printed.
    public static func run(name: String, config: ModelConfig, pairs: [PromptPair], batchSize: Int, options: AttributionOptions,
                           threads: Int, repeats: Int, warmup: Int = 1, seed: UInt64 = 1234, roof: Double? = nil,
                           gemmProfile: Bool = false, progress: ((String) -> Void)? = nil) throws -> DiscoverBenchResult {
        precondition(repeats >= 1 && warmup >= 0 && threads >= 1 && batchSize >= 1)
        try options.validate()
        guard !pairs.isEmpty else { throw BenchError.usage("no prompts to attribute: ask for at least one") }
        BLAS.setThreads(threads)
        let initialRoof = roof ?? ModelBench.sgemmRoof(threads: threads, progress: progress)
        let probeBuffers = (FloatBuffer(count: 1024 * 1024), FloatBuffer(count: 1024 * 1024), FloatBuffer(count: 1024 * 1024))
        let shapes = batchShapes(lengths: pairs.map(\.clean.count), batchSize: batchSize, weightedByBatch: options.normalisation == .study)
        let flopsPerCall = shapes.reduce(0.0) { $0 + flops(model: config, batch: $1.batch, seqLen: $1.seqLen, options: options) }

        let perMeasurement = ProcessMemory.resetPeak()
        let baseRSS = ProcessMemory.currentRSSMiB()
        let label = "\(name) \(options.method.rawValue) b\(batchSize)"
        let model: any InstrumentedModel, parameters: Int
        if let gpt2 = config.gpt2 {
            let arena = ParameterArena(config: gpt2)
            progress?("\(label): initialising \(arena.count) parameters")
            arena.initializeGPT2(seed: seed)
            model = InstrumentedGPT2(parameters: arena, threads: threads)
            parameters = arena.count
        } else {
            let arena = FamilyArena(layout: FamilyLayout(config: config))
            progress?("\(label): initialising \(arena.count) parameters")
            arena.initialize(seed: seed)
            model = InstrumentedFamily(parameters: arena, threads: threads)
            parameters = arena.count
        }

        var times: [Double] = []
        var probe = 0.0
        var absSum = 0.0
        GemmProfile.reset()
        for i in 0..<(warmup + repeats) {
            GemmProfile.record(gemmProfile && i >= warmup)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: batchSize, options: options)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            GemmProfile.record(false)
            absSum = scores.values.reduce(0.0) { $0 + Double(abs($1)) }
            let what = i < warmup ? "warm-up \(i + 1)/\(warmup)" : "call \(i - warmup + 1)/\(repeats)"
            progress?("\(label): \(what) \(String(format: "%.2f", dt)) s (\(String(format: "%.2f", Double(pairs.count) / dt)) samples/s)")
            if i >= warmup { times.append(dt) }
            // Probe the roof between calls too, so a roof taken while other processes held the cores does not stand
            // alone (the best rate seen is kept: MFU errs on the low side).
            if roof == nil { probe = max(probe, ModelBench.probeRoof(threads: threads, buffers: probeBuffers)) }
        }
        let peak = ProcessMemory.peakRSSMiB()
        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let n = Double(pairs.count)
        var result = DiscoverBenchResult(config: name, method: options.method, igSteps: options.method.usesSteps ? options.igSteps : nil,
                                   batchSize: batchSize, samples: pairs.count, seqLen: shapes.map(\.seqLen).max()!,
                                   threads: threads, repeats: repeats, callSeconds: times,
                                   samplesPerS: n / median, minSamplesPerS: n / sorted.last!, maxSamplesPerS: n / sorted.first!,
                                   flopsPerCall: flopsPerCall, gflops: flopsPerCall / median / 1e9,
                                   roofGflops: max(initialRoof, probe), peakRSSMiB: peak, baseRSSMiB: baseRSS,
                                   peakIsPerMeasurement: perMeasurement, blasCore: BLAS.coreName, parameters: parameters,
                                   scoreAbsSum: absSum)
        if gemmProfile { result.gemmProfile = GemmProfile.entries }
        return result
    }
}
