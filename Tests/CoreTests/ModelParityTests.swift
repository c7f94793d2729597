import Foundation
import XCTest
@testable import Core

/// The model against the study's reference numbers (fixtures/reference), with the README's tolerances.
final class ModelParityTests: XCTestCase {
    // Tolerances from the fixture README's table; never widen them.
    static let logitsTolerance = 1e-4          // max abs, valid positions
    static let sequenceLossTolerance = 1e-5    // abs from the exact 2.19274080091213
    static let trainLossTolerance = 1e-6       // abs from the exact 1.8401911783803708
    static let gradientTolerance = 5e-5        // per-tensor rel L2 vs grad64
    static let optimizerAloneTolerance = 3e-7  // max abs vs after / after_clip
    static let endToEndTolerance = 3e-5        // max abs vs after64 / after_clip64
    static let adamwStepsTolerance = 1e-6      // max abs, six steps

    static let exactSequenceLoss = 2.19274080091213
    static let exactTrainLoss = 1.8401911783803708

    func loadModel(threads: Int = 2) throws -> GPT2 {
        GPT2(params: try HFCheckpoint.load(folder: try ModelFixtures.model()), threads: threads)
    }

    // MARK: forward

    func testForwardLogitsMatchHFOnValidPositions() throws {
        let model = try loadModel()
        let f = try SafetensorsFile(url: try ModelFixtures.reference("forward.safetensors"))
        let shape = try f.info("tokens").shape
        let B = shape[0], T = shape[1], V = model.config.vocabSize
        let tokens = try f.ints("tokens")
        let mask = try f.ints("attention_mask")
        let lengths = (0..<B).map { b in (0..<T).reduce(0) { $0 + mask[b * T + $1] } }
        XCTAssertEqual(lengths, try f.ints("input_lengths"))
        // Every vocabulary column, or the kept ones of the compact set (ReferenceTensor).
        let expected = try ReferenceTensor(f, "logits_hf")
        XCTAssertEqual(expected.shape, [B, T, V])

        let logits = Array(try model.forward(tokens: tokens, batch: B, seqLen: T, lengths: lengths))
        var worst = (diff: 0.0, b: 0, t: 0, v: 0)
        for (i, ref) in zip(expected.originalIndices, expected.values) {
            let (b, t, v) = (i / (T * V), (i / V) % T, i % V)
            guard t < lengths[b] else { continue }
            let d = Double(abs(logits[i] - ref))
            if d > worst.diff { worst = (d, b, t, v) }
        }
        print("forward logits vs logits_hf, valid positions: max abs \(worst.diff) at [\(worst.b), \(worst.t), \(worst.v)]")
        XCTAssertLessThanOrEqual(worst.diff, Self.logitsTolerance,
                                 "logits vs logits_hf: max abs \(worst.diff) at [\(worst.b), \(worst.t), \(worst.v)], tolerance \(Self.logitsTolerance)")

        // One prompt at a time, unpadded, gives the same logits on its real positions.
        var worstSingle = 0.0
        for b in 0..<B {
            let L = lengths[b]
            let single = Array(try model.forward(tokens: Array(tokens[(b * T)..<(b * T + L)]), batch: 1, seqLen: L))
            let d = Diff(single, logits[(b * T * V)..<((b * T + L) * V)])
            worstSingle = max(worstSingle, d.maxAbs)
        }
        print("batched vs one-at-a-time: max abs \(worstSingle)")
        XCTAssertLessThanOrEqual(worstSingle, 1e-5, "batched vs one-at-a-time logits: max abs \(worstSingle), tolerance 1e-5")

        // Logits at the last real position only (the metric's position) equal the full logits there.
        let last = Array(try model.forward(tokens: tokens, batch: B, seqLen: T, lengths: lengths, positions: lengths.map { $0 - 1 }))
        let columns = expected.kept(along: 2), cols = columns.count
        for b in 0..<B {
            let i0 = (b * T + lengths[b] - 1) * V
            let d = Diff(last[(b * V)..<((b + 1) * V)], logits[i0..<(i0 + V)])
            XCTAssertLessThanOrEqual(d.maxAbs, 1e-5, "row \(b) logits at position \(lengths[b] - 1): \(d.summary)")
            let r0 = (b * T + lengths[b] - 1) * cols
            let r = Diff(columns.map { last[b * V + $0] }, expected.values[r0..<(r0 + cols)])
            XCTAssertLessThanOrEqual(r.maxAbs, Self.logitsTolerance, "row \(b) last-position logits vs logits_hf: \(r.summary)")
        }
    }

    func testOneSequenceLossMatchesExactValue() throws {
        let model = try loadModel()
        let f = try SafetensorsFile(url: try ModelFixtures.reference("forward.safetensors"))
        let tokens = try f.ints("loss_tokens")
        let loss = try model.forwardLoss(tokens: tokens, batch: 1, seqLen: tokens.count)
        let d = abs(loss - Self.exactSequenceLoss)
        print("one-sequence loss \(loss), exact \(Self.exactSequenceLoss), abs diff \(d)")
        XCTAssertLessThanOrEqual(d, Self.sequenceLossTolerance, "loss \(loss) vs exact \(Self.exactSequenceLoss): abs \(d), tolerance \(Self.sequenceLossTolerance)")
    }

    // MARK: train step

    func testTrainStepLossAndEveryGradient() throws {
        let model = try loadModel()
        let step = try SafetensorsFile(url: try ModelFixtures.reference("train_step.safetensors"))
        let exact = try SafetensorsFile(url: try ModelFixtures.reference("train_step_f64.safetensors"))
        let shape = try step.info("tokens").shape
        model.zeroGradients()
        let loss = try model.forwardLoss(tokens: try step.ints("tokens"), batch: shape[0], seqLen: shape[1])
        let d = abs(loss - Self.exactTrainLoss)
        print("train_step loss \(loss), exact \(Self.exactTrainLoss), abs diff \(d)")
        XCTAssertLessThanOrEqual(d, Self.trainLossTolerance, "train loss \(loss) vs exact: abs \(d), tolerance \(Self.trainLossTolerance)")
        model.backward()
        var worst = (0.0, "")
        for t in model.layout.tensors {
            let ref = try ReferenceTensor(exact, "grad64.\(t.name)")
            let diff = Diff(ref.gather(Array(model.grads.buffer(t))), ref.values)
            if diff.relL2 > worst.0 { worst = (diff.relL2, t.name) }
            XCTAssertLessThanOrEqual(diff.relL2, Self.gradientTolerance,
                                     "gradient \(t.name) vs grad64: \(diff.summary), tolerance rel L2 \(Self.gradientTolerance)")
        }
        print("gradients vs grad64: worst rel L2 \(worst.0) (\(worst.1))")
        let norm = AdamW(layout: model.layout, config: AdamWConfig()).gradientNorm(model.grads.base)
        let json = try ModelFixtures.json("train_step_f64.json")
        let refNorm = try XCTUnwrap(json["grad_norm_float64"] as? Double)
        XCTAssertLessThanOrEqual(abs(norm - refNorm) / refNorm, Self.gradientTolerance, "gradient norm \(norm) vs \(refNorm)")
    }

    /// The optimizer alone: the stored float32 gradients through our AdamW give the stored parameters.
    func testAdamWAloneMatchesOneTorchStep() throws {
        let step = try SafetensorsFile(url: try ModelFixtures.reference("train_step.safetensors"))
        let json = try ModelFixtures.json("train_step.json")
        let clipCoef = try XCTUnwrap((json["clip"] as? [String: Any])?["clip_coef"] as? Double)
        let normSum = try XCTUnwrap(json["grad_norm_float64_sum"] as? Double)
        for (prefix, coef) in [("after", 1.0), ("after_clip", clipCoef)] {
            let params = try HFCheckpoint.load(folder: try ModelFixtures.model())
            let grads = ParameterArena(layout: params.layout)
            // Compact set: the kept gradient entries, zeros elsewhere (train_step.json's norm is the kept entries').
            for t in params.layout.tensors {
                let g = try ReferenceTensor(step, "grad.\(t.name)"), buffer = grads.buffer(t)
                XCTAssertEqual(g.shape.reduce(1, *), buffer.count, "grad.\(t.name) shape")
                for (i, v) in zip(g.originalIndices, g.values) { buffer[i] = v }
            }
            let opt = AdamW(layout: params.layout, config: AdamWConfig(lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-6, weightDecay: 0.1, maxGradNorm: nil))
            if prefix == "after_clip" {
                let norm = opt.gradientNorm(grads.base)
                XCTAssertEqual(norm, normSum, accuracy: 1e-9 * normSum, "norm of the stored gradients")
                // The stored coefficient comes from PyTorch's float32 norm (`grad_norm`), 4e-6 below the exact one.
                let torchNorm = try XCTUnwrap(json["grad_norm"] as? Double)
                XCTAssertEqual(min(1, 1.0 / (torchNorm + 1e-6)), clipCoef, accuracy: 1e-12)
            }
            opt.update(params: params.base, grads: grads.base, lr: 1e-3, gradScale: Float(coef))
            var worst = 0.0
            for t in params.layout.tensors {
                let ref = try ReferenceTensor(step, "\(prefix).\(t.name)")
                let diff = Diff(ref.gather(Array(params.buffer(t))), ref.values)
                worst = max(worst, diff.maxAbs)
                XCTAssertLessThanOrEqual(diff.maxAbs, Self.optimizerAloneTolerance,
                                         "\(prefix).\(t.name): \(diff.summary), tolerance max abs \(Self.optimizerAloneTolerance)")
            }
            print("AdamW alone vs \(prefix).*: max abs \(worst)")
        }
    }

    /// Own gradients, own clipping, own AdamW against the float64 reference step.
    func testEndToEndStepMatchesFloat64Reference() throws {
        let step = try SafetensorsFile(url: try ModelFixtures.reference("train_step.safetensors"))
        let exact = try SafetensorsFile(url: try ModelFixtures.reference("train_step_f64.safetensors"))
        let shape = try step.info("tokens").shape
        let tokens = try step.ints("tokens")
        for (prefix, clip) in [("after64", nil), ("after_clip64", 1.0)] as [(String, Double?)] {
            let model = try loadModel()
            model.zeroGradients()
            _ = try model.forwardLoss(tokens: tokens, batch: shape[0], seqLen: shape[1])
            model.backward()
            let opt = AdamW(layout: model.layout, config: AdamWConfig(lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-6, weightDecay: 0.1,
                                                                      maxGradNorm: clip, schedule: .constant))
            let info = opt.step(params: model.params, grads: model.grads)
            XCTAssertEqual(info.lr, 1e-3)
            var worst = (0.0, "")
            for t in model.layout.tensors {
                let ref = try ReferenceTensor(exact, "\(prefix).\(t.name)")
                let diff = Diff(ref.gather(Array(model.params.buffer(t))), ref.values)
                if diff.maxAbs > worst.0 { worst = (diff.maxAbs, t.name) }
                XCTAssertLessThanOrEqual(diff.maxAbs, Self.endToEndTolerance,
                                         "\(prefix).\(t.name): \(diff.summary), tolerance max abs \(Self.endToEndTolerance)")
            }
            print("end to end vs \(prefix).*: max abs \(worst.0) (\(worst.1)); clip coef \(info.clipCoef)")
        }
    }

    // MARK: six AdamW steps with schedules and clipping

    func testAdamWSixStepsAllSchedules() throws {
        let f = try SafetensorsFile(url: try ModelFixtures.reference("adamw_steps.safetensors"))
        let json = try ModelFixtures.json("adamw_steps.json")
        let runs = try XCTUnwrap(json["runs"] as? [String: [String: Any]])
        let wShape = try f.info("p0.w").shape
        let nw = wShape.reduce(1, *), nb = try f.info("p0.b").count
        let steps = try XCTUnwrap(json["steps"] as? Int)
        let lr = try XCTUnwrap(json["lr"] as? Double)
        let betas = try XCTUnwrap(json["betas"] as? [Double])
        let eps = try XCTUnwrap(json["eps"] as? Double)
        let wd = try XCTUnwrap((json["weight_decay"] as? [String: Double])?["w"])
        XCTAssertEqual(Set(runs.keys), ["constant", "constant_clip", "linear_warmup", "cosine_warmup"])
        for (name, run) in runs.sorted(by: { $0.key < $1.key }) {
            let schedule = try XCTUnwrap(LRSchedule(rawValue: try XCTUnwrap(run["scheduler"] as? String)))
            let cfg = AdamWConfig(lr: lr, beta1: betas[0], beta2: betas[1], eps: eps, weightDecay: wd,
                                  maxGradNorm: run["max_grad_norm"] as? Double, schedule: schedule,
                                  warmupSteps: try XCTUnwrap(run["num_warmup_steps"] as? Int),
                                  totalSteps: try XCTUnwrap(run["num_training_steps"] as? Int))
            let opt = AdamW(segments: [.init(range: 0..<nw, decay: true), .init(range: nw..<(nw + nb), decay: false)],
                            count: nw + nb, config: cfg)
            var p = try f.floats("p0.w") + f.floats("p0.b")
            let lrs = try XCTUnwrap(run["lr_used_at_step"] as? [Double])
            let norms = run["grad_norm_before_clip"] as? [Double] ?? []
            for t in 1...steps {
                var g = try f.floats("grad.\(t).w") + f.floats("grad.\(t).b")
                let info = p.withUnsafeMutableBufferPointer { pp in
                    g.withUnsafeMutableBufferPointer { gg in opt.step(params: pp.baseAddress!, grads: gg.baseAddress!) }
                }
                XCTAssertEqual(info.lr, lrs[t - 1], accuracy: 1e-15, "\(name) step \(t): learning rate")
                if !norms.isEmpty {
                    let n = try XCTUnwrap(info.gradNorm)
                    XCTAssertEqual(n, norms[t - 1], accuracy: 1e-6 * norms[t - 1], "\(name) step \(t): gradient norm")
                }
                let ref = try f.floats("\(name).\(t).w") + f.floats("\(name).\(t).b")
                let d = Diff(p, ref)
                XCTAssertLessThanOrEqual(d.maxAbs, Self.adamwStepsTolerance,
                                         "\(name) step \(t) (w then b): \(d.summary), tolerance max abs \(Self.adamwStepsTolerance)")
                if t == steps { print("adamw_steps \(name): after step \(t) max abs \(d.maxAbs)") }
            }
        }
    }
}
