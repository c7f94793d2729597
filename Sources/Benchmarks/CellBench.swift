import Foundation
import Core
import DistCircuits

/// One phase of a timed cell: wall seconds and the FLOPs dkc's work in it counts (`CellBench.flops`).
public struct CellBenchPhase: Sendable {
    /// One of `CellRunner.phases`.
    public let name: String
    public let seconds: Double
    public let flops: Double
    public var gflops: Double { seconds > 0 ? flops / seconds / 1e9 : 0 }
}

/// One paper-size circuit cell, timed by phase (`dkc bench cell`).
public struct CellBenchResult: Sendable {
    public let config: String
    public let options: CellOptions
    /// Circuit samples (attribution and faithfulness) and test prompts over all target cells.
    public let samples: Int
    public let testPrompts: Int
    public let targets: Int
    /// The longest padded batch length (BOS included) of attribution, evaluation and tests.
    public let seqLen: Int
    public let threads: Int
    /// Whole-cell wall seconds (discovery + evaluation), one per repeat.
    public let cellSeconds: [Double]
    /// Process CPU seconds (user + system) of the median repeat's cell.
    public let cpuSeconds: Double
    /// The phases of the median repeat, in `CellRunner.phases` order.
    public let phases: [CellBenchPhase]
    public let flopsPerCell: Double
    /// Best sgemm rate measured in the same run at the same thread count.
    public var roofGflops: Double
    public let peakRSSMiB: Double
    /// Peak resident size (MiB) during the last repeat's discovery and during its evaluation (the high-water mark
    /// is reset between them; 0 where the reset is unavailable): which half sets the peak.
    public let discoverPeakRSSMiB: Double
    public let evaluatePeakRSSMiB: Double
    public let baseRSSMiB: Double
    public let peakIsPerMeasurement: Bool
    public let blasCore: String

    public var medianSeconds: Double { CellBench.median(cellSeconds) }
    public var gflops: Double { flopsPerCell / medianSeconds / 1e9 }
    public var mfu: Double { gflops / roofGflops }
}

/// The engine of `dkc bench cell`: one cell of the study's grid — EAP-IG attribution on the circuit samples,
/// circuits of the top-n edges, their faithfulness, and the zero-ablation tests on every target cell — run by
/// `CellRunner` (the code path of `dkc discover`, `dkc evaluate` and `dkc sweep`) on a randomly initialised model,
/// with the runner's phase timer on.
public enum CellBench {
    /// The paper-size cell the target applies to (docs/performance.md): GPT-2 small, 300 samples, batch 64,
    /// top-8,000, the 6 target cells, 2 threads; ≤ 90 s and ≤ 2.5 GB (2.5·10⁹ bytes).
    public static let targetSeconds = 90.0
    public static let targetPeakRSSMiB = 2.5e9 / 1_048_576

    /// Whether `r` ran as the target's cell does.
    public static func isPaperSize(_ r: CellBenchResult) -> Bool {
        r.config == "gpt2" && r.samples == 300 && r.options.batchSize == 64 && r.options.topn == [8000] && r.threads == 2
            && r.targets == 6 && r.testPrompts == 6 * 300 && r.options.attribution.method == .eapIG && r.options.attribution.igSteps == 5
    }

    /// Test entities of the 6 target cells (new, revised × high, medium, low; frequencies 6, 2, 1) with `count`
    /// people each, names and attributes drawn from `pools` (distinct names over all targets, each with a city
    /// whose label token exists), as the study's circuit-set test people. Deterministic in `seed`.
    /// - Throws: `BenchError` (exit 65) when the pools cannot give that many distinct names.
    public static func targets(count: Int, pools: DataPools, encoder: TextEncoder, seed: UInt64 = 2) throws -> [TestTarget] {
        precondition(count >= 1)
        var rng = DeterministicRandom(seed: seed, stream: "bench-cell-targets")
        var used = Set<String>()
        let buckets = FrequencyBuckets.defaultBuckets
        return try EntityType.allCases.flatMap { type in
            try buckets.map { bucket -> TestTarget in
                var entities: [Entity] = []
                var tries = 0
                while entities.count < count {
                    tries += 1
                    guard tries < 100 * count + 10_000 else {
                        throw BenchError("the pools give fewer than \(6 * count) distinct names; add names to the pools or lower --circuit-n",
                                            exitCode: 65)
                    }
                    let name = [rng.choice(pools.firstNames), rng.choice(pools.middleNames), rng.choice(pools.lastNames)].joined(separator: " ")
                    let e = Entity(fullName: name, birthDate: rng.choice(pools.days), birthMonth: rng.choice(pools.months),
                                   birthYear: rng.choice(pools.years), city: rng.choice(pools.cities), major: rng.choice(pools.majors),
                                   university: rng.choice(pools.universities), company: rng.choice(pools.companies),
                                   frequency: bucket.min, type: type)
                    guard !used.contains(name), e.labelToken(task: .city, encoder: encoder) != nil else { continue }
                    used.insert(name)
                    entities.append(e)
                }
                return TestTarget(type: type.rawValue, frequency: bucket.name, entities: entities)
            }
        }
    }

    // MARK: FLOPs

    /// FLOPs of one read-out-only forward pass over `B` prompts padded to `T` (what evaluation runs): 24·C² per
    /// token and layer, but the last layer's MLP (16·C²) at the B read-out rows alone, 4·B·T²·C per layer
    /// (attention over the full square), and the unembedding at the read-out rows, 2·B·C·V.
    static func forwardFlops(_ c: GPT2Config, B: Int, T: Int) -> Double {
        let L = Double(c.nLayer), C = Double(c.nEmbd)
        return Double(B * T) * L * 24 * C * C - Double(B * T - B) * 16 * C * C + L * 4 * Double(B) * Double(T * T) * C
            + 2 * Double(B) * C * Double(c.vocabSize)
    }

    /// A recorded forward also forms each head's own output: + 2·C² per token and layer.
    static func recordedFlops(_ c: GPT2Config, B: Int, T: Int) -> Double {
        forwardFlops(c, B: B, T: T) + Double(B * T) * Double(c.nLayer) * 2 * Double(c.nEmbd * c.nEmbd)
    }

    /// A patched forward (faithfulness, or zero ablation), counted as if every input is rebuilt: a recorded
    /// forward, plus per layer the rebuild as the dense products the reference forms (3H head inputs and the MLP
    /// input from the rows that feed them, 2·rows·B·T·C each) and the final residual's (2·nForward·B·C). The
    /// per-input q/k/v products replace the shared one, so they add nothing. dkc forms the rebuilt inputs as sparse
    /// sums over the shorter of a circuit's kept and left-out edges (`InstrumentedEngine.rebuildSums`), a fraction
    /// of these FLOPs that depends on the circuit: the count stays the reference's workload, so cells stay
    /// comparable across versions, and the patched phases' GFLOP/s are rates of that workload.
    static func patchedFlops(_ c: GPT2Config, B: Int, T: Int) -> Double {
        let g = AttributionGraph(nLayers: c.nLayer, nHeads: c.nHead)
        let BTC = Double(B * T * c.nEmbd)
        var rows = 0.0
        for l in 0..<c.nLayer {
            rows += Double(3 * c.nHead * g.backwardPrevIndex[g.headBackward(layer: l, head: 0, qkv: .q)])
            rows += Double(g.backwardPrevIndex[g.mlpBackward(layer: l)])
        }
        return recordedFlops(c, B: B, T: T) + 2 * rows * BTC + 2 * Double(g.nForward * B * c.nEmbd)
    }

    /// FLOPs per phase of a cell as `CellRunner` runs it, every phase in length-ordered batches: attribution
    /// (`DiscoverBench.flops` per batch), selection (none counted), baselines (a recorded corrupted and a plain clean
    /// forward per batch), faithfulness (a patched forward per batch and non-empty circuit), tests (a patched forward
    /// per test batch and non-empty circuit).
    public static func flops(config c: GPT2Config, pairs: [PromptPair], testPrompts: [[Int]], options: CellOptions,
                             circuits: Int) -> [String: Double] {
        let lengths = pairs.map(\.clean.count)
        let attributionShapes = DiscoverBench.batchShapes(lengths: lengths, batchSize: options.batchSize,
                                                          weightedByBatch: options.attribution.normalisation == .study)
        let shapes = DiscoverBench.batchShapes(lengths: lengths, batchSize: options.batchSize, weightedByBatch: false)
        let testShapes = DiscoverBench.batchShapes(lengths: testPrompts.map(\.count), batchSize: options.batchSize, weightedByBatch: false)
        let n = Double(circuits)
        return [
            "attribution": attributionShapes.reduce(0) { $0 + DiscoverBench.flops(config: c, batch: $1.batch, seqLen: $1.seqLen, options: options.attribution) },
            "selection": 0,
            "baselines": shapes.reduce(0) { $0 + recordedFlops(c, B: $1.batch, T: $1.seqLen) + forwardFlops(c, B: $1.batch, T: $1.seqLen) },
            "faithfulness": n * shapes.reduce(0) { $0 + patchedFlops(c, B: $1.batch, T: $1.seqLen) },
            "tests": n * testShapes.reduce(0) { $0 + patchedFlops(c, B: $1.batch, T: $1.seqLen) },
        ]
    }

    // MARK: Run

    /// Creates a randomly initialised GPT-2 of `config` and a `CellRunner` on it, then runs `repeats` cells
    /// (`discover`, then `evaluate` with the scores on the same pairs and on `targets`), each timed by phase.
    /// The peak memory is reset just before the model is created. Sets OpenBLAS to `threads` threads; the roof
    /// is `ModelBench.sgemmRoof` before the cells (the caller may probe again after).
    public static func run(name: String, config: GPT2Config, pairs: [PromptPair], targets: [TestTarget], encoder: TextEncoder,
                           options: CellOptions, threads: Int, repeats: Int = 1, seed: UInt64 = 1234,
                           progress: ((String) -> Void)? = nil) throws -> CellBenchResult {
        precondition(repeats >= 1 && threads >= 1)
        try options.validate(source: "bench cell")
        guard !pairs.isEmpty else { throw BenchError.usage("no circuit samples: ask for at least one") }
        BLAS.setThreads(threads)
        let roof = ModelBench.sgemmRoof(threads: threads, progress: progress)

        let perMeasurement = ProcessMemory.resetPeak()
        let baseRSS = ProcessMemory.currentRSSMiB()
        progress?("\(name): initialising \(ParameterLayout(config: config).count) parameters")
        let arena = ParameterArena(config: config)
        arena.initializeGPT2(seed: seed)
        let model = InstrumentedGPT2(parameters: arena, threads: threads)
        let runner = CellRunner(model: model)

        var runs: [(seconds: Double, cpu: Double, phases: [String: Double])] = []
        var peak = 0.0, discoverPeak = 0.0, evaluatePeak = 0.0
        for i in 0..<repeats {
            let timer = PhaseTimer()
            runner.phaseTimer = timer
            let cpu0 = cpuSeconds(), t0 = DispatchTime.now().uptimeNanoseconds
            let found = try runner.discover(pairs, options: options) { p in
                progress?("\(name) cell \(i + 1)/\(repeats): attribution \(p.done)/\(p.total)")
            }
            // The peak so far covers discovery (and earlier repeats); reset it for the evaluation's own peak.
            discoverPeak = ProcessMemory.peakRSSMiB()
            peak = max(peak, discoverPeak)
            if !perMeasurement || !ProcessMemory.resetPeak() { discoverPeak = 0 }
            _ = try runner.evaluate(scores: found.scores, pairs: pairs, targets: targets, task: .city, encoder: encoder, options: options) { p in
                progress?("\(name) cell \(i + 1)/\(repeats): \(p.phase.rawValue) \(p.done)/\(p.total)")
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            evaluatePeak = discoverPeak > 0 ? ProcessMemory.peakRSSMiB() : 0
            peak = max(peak, ProcessMemory.peakRSSMiB())
            runs.append((dt, cpuSeconds() - cpu0, timer.seconds))
            progress?("\(name) cell \(i + 1)/\(repeats): \(String(format: "%.1f", dt)) s")
        }
        let seconds = runs.map(\.seconds)
        let median = runs.sorted { $0.seconds < $1.seconds }[(runs.count - 1) / 2]

        let testPrompts = targets.flatMap { $0.entities.map { encoder.encode(CircuitTask.city.prompt(subject: $0.fullName)) } }
        let flops = flops(config: config, pairs: pairs, testPrompts: testPrompts, options: options, circuits: options.topn.count)
        let phases = CellRunner.phases.map { CellBenchPhase(name: $0, seconds: median.phases[$0] ?? 0, flops: flops[$0] ?? 0) }
        let seqLen = max(1 + pairs.map(\.clean.count).max()!,
                         1 + (testPrompts.map(\.count).max() ?? 0))
        return CellBenchResult(config: name, options: options, samples: pairs.count, testPrompts: testPrompts.count,
                               targets: targets.count, seqLen: seqLen, threads: threads, cellSeconds: seconds, cpuSeconds: median.cpu,
                               phases: phases, flopsPerCell: flops.values.reduce(0, +), roofGflops: roof, peakRSSMiB: peak,
                               discoverPeakRSSMiB: discoverPeak, evaluatePeakRSSMiB: evaluatePeak,
                               baseRSSMiB: baseRSS, peakIsPerMeasurement: perMeasurement, blasCore: BLAS.coreName)
    }

    /// User + system CPU seconds of this process so far (all threads).
    public static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return s(usage.ru_utime) + s(usage.ru_stime)
    }

    static func median(_ x: [Double]) -> Double {
        let s = x.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
