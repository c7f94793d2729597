import Foundation
import XCTest
@testable import Core

/// The fixture folders of the Llama and Phi families (`fixtures/llama`, `fixtures/phi`), and the parity checks
/// both families run against them. Tolerances are the folder READMEs'; never widen them.
enum FamilyFixtures {
    static func root(_ family: String) throws -> URL {
        let url = Paths.fixtures.appendingPathComponent(family)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("README.md").path) else {
            throw missingFixtures(url.path)
        }
        return url
    }

    static func model(_ family: String) throws -> URL { try root(family).appendingPathComponent("model") }
    static func reference(_ family: String, _ name: String) throws -> URL { try root(family).appendingPathComponent("reference/\(name)") }

    static func json(_ family: String, _ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: try reference(family, name))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func loadModel(_ family: String, threads: Int = 2) throws -> FamilyModel {
        FamilyModel(params: try FamilyCheckpoint.load(folder: try model(family)), threads: threads)
    }

    /// ‖a − b‖ / ‖b‖ and max |a − b|, in Double.
    static func compare<A: Collection, B: Collection>(_ a: A, _ b: B) -> (relL2: Double, maxAbs: Double)
    where A.Element == Float, B.Element == Float {
        precondition(a.count == b.count)
        var num = 0.0, den = 0.0, worst = 0.0
        for (x, y) in zip(a, b) {
            let d = Double(x) - Double(y)
            num += d * d; den += Double(y) * Double(y); worst = max(worst, abs(d))
        }
        return (den > 0 ? (num / den).squareRoot() : num.squareRoot(), worst)
    }

    /// Max |Δ| of the logits on positions with mask 1 against `logits_hf` and `logits_tl` of forward.safetensors.
    static func forwardLogitsError(_ family: String) throws -> (hf: Double, tl: Double) {
        let model = try loadModel(family)
        let f = try SafetensorsFile(url: try reference(family, "forward.safetensors"))
        let shape = try f.info("tokens").shape
        let B = shape[0], T = shape[1], V = model.config.vocabSize
        let mask = try f.ints("attention_mask")
        let lengths = (0..<B).map { b in (0..<T).reduce(0) { $0 + mask[b * T + $1] } }
        XCTAssertEqual(lengths, try f.ints("input_lengths"))
        // The view lives in the model's buffers: keep the model alive while copying.
        let logits = try withExtendedLifetime(model) { Array(try model.forward(tokens: try f.ints("tokens"), batch: B, seqLen: T, lengths: lengths)) }
        var worst = (hf: 0.0, tl: 0.0)
        for (key, isHF) in [("logits_hf", true), ("logits_tl", false)] {
            let expected = try f.floats(key)
            XCTAssertEqual(expected.count, logits.count, key)
            var m = 0.0
            for b in 0..<B {
                for t in 0..<lengths[b] {
                    let o = (b * T + t) * V
                    for v in 0..<V { m = max(m, abs(Double(logits[o + v]) - Double(expected[o + v]))) }
                }
            }
            if isHF { worst.hf = m } else { worst.tl = m }
        }
        return worst
    }

    /// |loss − exact| on forward.safetensors' `loss_tokens` (one unpadded training sequence).
    static func sequenceLossError(_ family: String) throws -> Double {
        let model = try loadModel(family)
        let f = try SafetensorsFile(url: try reference(family, "forward.safetensors"))
        let tokens = try f.ints("loss_tokens")
        let exact = try XCTUnwrap(try json(family, "forward.json")["loss_exact_float64"] as? Double)
        let loss = try model.forwardLoss(tokens: tokens, batch: 1, seqLen: tokens.count)
        XCTAssertEqual(model.lastLabelCount, tokens.count - 1)
        return abs(loss - exact)
    }

    /// The training step of train_step_f64: loss, every gradient (rel L2 per tensor) and the parameters after one
    /// clipped AdamW step with the folder's optimizer settings (max abs per tensor).
    struct StepResult {
        var lossError = 0.0
        var gradNormError = 0.0
        var worstGradient = (relL2: 0.0, name: "")
        var worstAfterStep = (maxAbs: 0.0, name: "")
        var tensorsChecked = 0
    }

    static func trainStep(_ family: String) throws -> StepResult {
        let model = try loadModel(family)
        let st = try SafetensorsFile(url: try reference(family, "train_step_f64.safetensors"))
        let meta = try json(family, "train_step_f64.json")
        let shape = try st.info("tokens").shape
        let loss = try model.forwardLoss(tokens: try st.ints("tokens"), batch: shape[0], seqLen: shape[1])
        model.zeroGradients()
        model.backward()
        var r = StepResult()
        r.lossError = abs(loss - (try XCTUnwrap(meta["loss_float64"] as? Double)))
        for t in model.layout.tensors {
            let (relL2, _) = compare(model.grads.buffer(t), try st.floats("grad64." + t.name))
            if relL2 >= r.worstGradient.relL2 { r.worstGradient = (relL2, t.name) }
            r.tensorsChecked += 1
        }
        // The decay set must be the one the reference names.
        let decayNames = Set(model.layout.tensors.filter(\.decay).map(\.name))
        XCTAssertEqual(decayNames, Set(try XCTUnwrap(meta["decay_parameters"] as? [String])), "decay set")
        let opt = try XCTUnwrap(meta["optimizer"] as? [String: Any])
        let betas = try XCTUnwrap(opt["betas"] as? [Double])
        let clip = try XCTUnwrap(meta["clip"] as? [String: Any])
        let adamw = model.makeAdamW(AdamWConfig(lr: try XCTUnwrap(opt["lr"] as? Double), beta1: betas[0], beta2: betas[1],
                                                eps: try XCTUnwrap(opt["eps"] as? Double),
                                                weightDecay: try XCTUnwrap(opt["weight_decay"] as? Double),
                                                maxGradNorm: try XCTUnwrap(clip["max_grad_norm"] as? Double)))
        let info = adamw.step(params: model.params.base, grads: UnsafePointer(model.grads.base))
        r.gradNormError = abs((info.gradNorm ?? .nan) - (try XCTUnwrap(meta["grad_norm_float64"] as? Double)))
        for t in model.layout.tensors {
            let (_, maxAbs) = compare(model.params.buffer(t), try st.floats("after_clip64." + t.name))
            if maxAbs >= r.worstAfterStep.maxAbs { r.worstAfterStep = (maxAbs, t.name) }
        }
        return r
    }

    /// Saves the fixture model with `FamilyCheckpoint.save`, reloads it, and returns max |Δ logits| and whether
    /// every parameter came back bit for bit.
    static func roundTrip(_ family: String, into dir: URL) throws -> (maxAbs: Double, identical: Bool) {
        let original = try FamilyCheckpoint.load(folder: try model(family))
        let out = dir.appendingPathComponent("\(family)-copy")
        try FamilyCheckpoint.save(original, to: out)
        let reloaded = try FamilyCheckpoint.load(folder: out)
        XCTAssertEqual(reloaded.config, original.config)
        let identical = (0..<original.count).allSatisfy { original.base[$0].bitPattern == reloaded.base[$0].bitPattern }
        let tokens = Array(1..<13)
        // The returned logits live in the model's buffers: keep each model alive while copying them.
        let m1 = FamilyModel(params: original, threads: 1), m2 = FamilyModel(params: reloaded, threads: 1)
        let a = Array(try m1.forward(tokens: tokens, batch: 2, seqLen: 6))
        let b = Array(try m2.forward(tokens: tokens, batch: 2, seqLen: 6))
        withExtendedLifetime((m1, m2)) {}
        return (compare(b, a).maxAbs, identical)
    }
    /// The Python that runs the transformers check: `$DKC_PYTHON`, else `python3` on the PATH.
    static var python: String { ProcessInfo.processInfo.environment["DKC_PYTHON"] ?? "python3" }

    /// Runs `python -c script args…`; returns (status, combined output).
    static func runPython(_ script: String, _ args: [String]) throws -> (Int32, String) {
        let py = Process()
        py.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        py.arguments = [python, "-c", script] + args
        let pipe = Pipe()
        py.standardOutput = pipe
        py.standardError = pipe
        try py.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        py.waitUntilExit()
        return (py.terminationStatus, output)
    }

    /// Trains the fixture model one AdamW step (so the checkpoint is dkc's own, not a copy), saves it with
    /// `FamilyCheckpoint.save`, and has transformers' `AutoModelForCausalLM` load the folder and compute logits
    /// on two padded prompts; returns max |Δ| against dkc's logits on the real positions. The transformers side
    /// runs live or comes recorded with the folder's manifest it loaded (`CrossCheck`).
    static func transformersLogitsError(_ family: String, into dir: URL) throws -> Double {
        let manifestFile = CrossCheck.file(family, "checkpoint.txt"), logitsFile = CrossCheck.file(family, "transformers_logits.safetensors")
        let mode = try CrossCheck.mode(needsStudy: false, recorded: [manifestFile, logitsFile])
        let model = try loadModel(family, threads: 1)
        let st = try SafetensorsFile(url: try reference(family, "train_step_f64.safetensors"))
        let shape = try st.info("tokens").shape
        _ = try model.forwardLoss(tokens: try st.ints("tokens"), batch: shape[0], seqLen: shape[1])
        model.zeroGradients()
        model.backward()
        model.makeAdamW(AdamWConfig(lr: 1e-3)).step(params: model.params.base, grads: UnsafePointer(model.grads.base))
        let folder = dir.appendingPathComponent("\(family)-trained")
        try FamilyCheckpoint.save(model.params, to: folder)
        let f = try SafetensorsFile(url: try reference(family, "forward.safetensors"))
        let tshape = try f.info("tokens").shape
        let B = tshape[0], T = tshape[1], V = model.config.vocabSize
        let tokens = try f.ints("tokens"), lengths = try f.ints("input_lengths")
        let logits = try withExtendedLifetime(model) { Array(try model.forward(tokens: tokens, batch: B, seqLen: T, lengths: lengths)) }
        let prompts = "tokens \(tokens.map(String.init).joined(separator: " "))\nlengths \(lengths.map(String.init).joined(separator: " "))\n"
        try CrossCheck.inputs(try CrossCheck.manifest(of: folder) + Data(prompts.utf8), manifestFile, mode)
        let theirs = dir.appendingPathComponent("transformers.safetensors")
        try CrossCheck.output(logitsFile, mode) {
            let input = dir.appendingPathComponent("prompts.safetensors")
            try SafetensorsWriter.write([.int64("tokens", shape: [B, T], values: tokens.map(Int64.init)),
                                         .int64("lengths", shape: [B], values: lengths.map(Int64.init))], to: input)
            let script = """
            import sys, torch
            from safetensors.torch import load_file, save_file
            from transformers import AutoModelForCausalLM
            folder, prompts, out = sys.argv[1], load_file(sys.argv[2]), sys.argv[3]
            m = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
            toks, lens = prompts["tokens"], prompts["lengths"]
            mask = (torch.arange(toks.shape[1])[None, :] < lens[:, None]).long()
            with torch.no_grad():
                logits = m(toks, attention_mask=mask).logits
            real = torch.cat([logits[b, :int(lens[b])] for b in range(toks.shape[0])]).contiguous()
            save_file({"logits": real}, out)
            """
            let (status, output) = try runPython(script, [folder.path, input.path, theirs.path])
            guard status == 0 else { throw ItemError(item: folder.path, problem: "transformers could not load it: \(output)") }
            return try Data(contentsOf: theirs)
        }.write(to: theirs)
        // The real positions, row after row: (Σ lengths, V).
        let reference = try SafetensorsFile(url: theirs).floats("logits")
        XCTAssertEqual(reference.count, lengths.reduce(0, +) * V)
        var worst = 0.0, row = 0
        for b in 0..<B {
            for t in 0..<lengths[b] {
                for v in 0..<V where row * V + v < reference.count {
                    worst = max(worst, Double(abs(logits[(b * T + t) * V + v] - reference[row * V + v])))
                }
                row += 1
            }
        }
        return worst
    }
}

/// The parity checks both families run against their fixture folder, with the READMEs' tolerances
/// (the same for llama/ and phi/); each test of LlamaParityTests and PhiParityTests calls one.
enum FamilyChecks {
    static let logitsTolerance = 1e-4        // max abs, valid positions
    static let sequenceLossTolerance = 1e-5  // abs from the exact value in the fixture
    static let trainLossTolerance = 1e-6     // abs from the exact value in the fixture
    static let gradientTolerance = 5e-5      // per-tensor rel L2 vs grad64
    static let afterStepTolerance = 1e-6     // max abs vs after_clip64

    static func forwardLogits(_ family: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try FamilyFixtures.forwardLogitsError(family)
        print("\(family) logits max |Δ|: HF \(e.hf), TL \(e.tl)")
        XCTAssertLessThanOrEqual(e.hf, logitsTolerance, file: file, line: line)
        XCTAssertLessThanOrEqual(e.tl, logitsTolerance, file: file, line: line)
    }

    static func sequenceLoss(_ family: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try FamilyFixtures.sequenceLossError(family)
        print("\(family) sequence loss |Δ| \(e)")
        XCTAssertLessThanOrEqual(e, sequenceLossTolerance, file: file, line: line)
    }

    /// `tensors`: how many parameter tensors the fixture's train step holds.
    static func trainStep(_ family: String, tensors: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try FamilyFixtures.trainStep(family)
        print("\(family) train step: loss |Δ| \(r.lossError), grad norm |Δ| \(r.gradNormError), worst gradient rel L2 \(r.worstGradient), worst after-step max abs \(r.worstAfterStep)")
        XCTAssertEqual(r.tensorsChecked, tensors, file: file, line: line)
        XCTAssertLessThanOrEqual(r.lossError, trainLossTolerance, file: file, line: line)
        XCTAssertLessThanOrEqual(r.worstGradient.relL2, gradientTolerance, r.worstGradient.name, file: file, line: line)
        XCTAssertLessThanOrEqual(r.gradNormError, 1e-4, file: file, line: line)
        XCTAssertLessThanOrEqual(r.worstAfterStep.maxAbs, afterStepTolerance, r.worstAfterStep.name, file: file, line: line)
    }

    static func roundTrip(_ family: String, _ test: XCTestCase, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try FamilyFixtures.roundTrip(family, into: try ModelFixtures.tempDir(test))
        XCTAssertTrue(r.identical, file: file, line: line)
        XCTAssertEqual(r.maxAbs, 0, file: file, line: line)
    }

    static func transformersLoads(_ family: String, _ test: XCTestCase, file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try FamilyFixtures.transformersLogitsError(family, into: try ModelFixtures.tempDir(test))
        print("\(family) transformers vs dkc logits max |Δ| \(e)")
        XCTAssertLessThanOrEqual(e, logitsTolerance, file: file, line: line)
    }
}

/// The Llama family (the study's TinyLlama_v1.1) against fixtures/llama, with its README's tolerances.
final class LlamaParityTests: XCTestCase {
    func testForwardLogitsMatchHFAndTransformerLens() throws { try FamilyChecks.forwardLogits("llama") }

    func testOneSequenceLossMatchesExactValue() throws { try FamilyChecks.sequenceLoss("llama") }

    func testTrainStepLossGradientsAndAdamWStep() throws { try FamilyChecks.trainStep("llama", tensors: 21) }

    func testCheckpointRoundTripKeepsLogits() throws { try FamilyChecks.roundTrip("llama", self) }

    /// A checkpoint dkc wrote loads in transformers with the same logits (skipped without transformers).
    func testTransformersLoadsDkcCheckpoint() throws { try FamilyChecks.transformersLoads("llama", self) }

    /// A small random Llama for the structural tests below.
    func smallLlama(kvHeads: Int, tied: Bool) throws -> ModelConfig {
        let c = ModelConfig(family: .llama, numLayers: 2, numHeads: 4, numKVHeads: kvHeads, hiddenSize: 16, intermediateSize: 24,
                            vocabSize: 37, maxPositions: 16, tieWordEmbeddings: tied)
        try c.validate()
        return c
    }

    /// Tied embeddings: a tied model equals an untied one whose lm_head is a copy of the embedding, and its one
    /// matrix receives the sum of the untied model's embedding and lm_head gradients.
    func testTiedEmbeddingsGetBothGradients() throws {
        let untied = FamilyArena(layout: FamilyLayout(config: try smallLlama(kvHeads: 2, tied: false)))
        untied.initialize(seed: 11)
        let tied = FamilyArena(layout: FamilyLayout(config: try smallLlama(kvHeads: 2, tied: true)))
        for t in tied.layout.tensors { tied.buffer(t).update(fromContentsOf: untied.buffer(try XCTUnwrap(untied.layout.tensor(named: t.name)))) }
        let head = try XCTUnwrap(untied.layout.tensor(named: "lm_head.weight"))
        untied.buffer(head).update(fromContentsOf: tied.buffer(tied.layout.tensors[0]))
        let tokens = (0..<24).map { ($0 * 7 + 3) % 37 }
        let a = FamilyModel(params: untied, threads: 1), b = FamilyModel(params: tied, threads: 1)
        let la = try a.forwardLoss(tokens: tokens, batch: 2, seqLen: 12, lengths: [12, 9])
        let lb = try b.forwardLoss(tokens: tokens, batch: 2, seqLen: 12, lengths: [12, 9])
        XCTAssertEqual(la, lb, accuracy: 1e-6)
        a.zeroGradients(); a.backward()
        b.zeroGradients(); b.backward()
        let sum = zip(try XCTUnwrap(a.grads.values("model.embed_tokens.weight")), try XCTUnwrap(a.grads.values("lm_head.weight"))).map { $0 + $1 }
        let (rel, _) = FamilyFixtures.compare(try XCTUnwrap(b.grads.values("model.embed_tokens.weight")), sum)
        XCTAssertLessThanOrEqual(rel, 1e-5)
        XCTAssertGreaterThan(try XCTUnwrap(a.grads.values("lm_head.weight")).map { abs($0) }.max() ?? 0, 0)
    }

    /// Grouped-query attention: 4 query heads on 2 KV heads equal 4 ordinary heads whose K/V rows repeat each
    /// KV head for the two query heads of its group (HF `repeat_kv`); the grouped K/V gradients are the sums of
    /// the repeated rows' gradients.
    func testGroupedHeadsEqualRepeatedHeads() throws {
        let gqa = FamilyArena(layout: FamilyLayout(config: try smallLlama(kvHeads: 2, tied: false)))
        gqa.initialize(seed: 5)
        let mha = FamilyArena(layout: FamilyLayout(config: try smallLlama(kvHeads: 4, tied: false)))
        let hs = 4, C = 16
        for t in mha.layout.tensors {
            let src = gqa.buffer(try XCTUnwrap(gqa.layout.tensor(named: t.name)))
            if t.name.hasSuffix("k_proj.weight") || t.name.hasSuffix("v_proj.weight") {
                let dst = mha.buffer(t)
                for h in 0..<4 { for r in 0..<hs { for c in 0..<C { dst[(h * hs + r) * C + c] = src[((h / 2) * hs + r) * C + c] } } }
            } else {
                mha.buffer(t).update(fromContentsOf: src)
            }
        }
        let tokens = (0..<30).map { ($0 * 5 + 1) % 37 }
        let a = FamilyModel(params: gqa, threads: 1), b = FamilyModel(params: mha, threads: 1)
        let la = try a.forwardLoss(tokens: tokens, batch: 3, seqLen: 10)
        let lb = try b.forwardLoss(tokens: tokens, batch: 3, seqLen: 10)
        XCTAssertEqual(la, lb, accuracy: 1e-6)
        a.zeroGradients(); a.backward()
        b.zeroGradients(); b.backward()
        for name in ["model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight"] {
            let g = try XCTUnwrap(a.grads.values(name)), r = try XCTUnwrap(b.grads.values(name))
            var summed = [Float](repeating: 0, count: g.count)
            for h in 0..<4 { for i in 0..<(hs * C) { summed[(h / 2) * hs * C + i] += r[h * hs * C + i] } }
            XCTAssertLessThanOrEqual(FamilyFixtures.compare(g, summed).relL2, 1e-5, name)
        }
        let (rel, _) = FamilyFixtures.compare(try XCTUnwrap(a.grads.values("model.layers.0.self_attn.q_proj.weight")),
                                              try XCTUnwrap(b.grads.values("model.layers.0.self_attn.q_proj.weight")))
        XCTAssertLessThanOrEqual(rel, 1e-5)
    }

    /// The layout of the fixture checkpoint: the README's parameter count, untied head, 4 KV heads of 4.
    func testLayoutMatchesCheckpoint() throws {
        let arena = try FamilyCheckpoint.load(folder: try FamilyFixtures.model("llama"))
        XCTAssertEqual(arena.count, 868_992)          // the README's parameter count
        XCTAssertEqual(arena.layout.tensors.count, 21)
        XCTAssertNil(arena.layout.lmHeadBias)
        XCTAssertNotEqual(arena.layout.lmHead, arena.layout.embed)
        XCTAssertEqual(arena.layout.tensor(named: "model.layers.0.self_attn.k_proj.weight")?.shape, [16, 128])
    }
}
