import Core
import DistTrain
import Foundation
import XCTest

/// `dkc train` end to end, under mpirun: independence of the rank count, bit-exact repeats and resumes in
/// deterministic mode, clean stops on SIGTERM, a killed rank ending the job, checkpoints readable by
/// dkc and by Python, and bad input rejected before training. Everything runs the tiny world of
/// `TrainFixture` (a 2-layer, 32-wide GPT-2 with a few hundred tokens), so each run takes seconds.
final class TrainTests: XCTestCase {
    /// Tolerance of the float-mode comparison across rank counts, after 4 AdamW steps at lr 3e-3.
    /// The gradient sums differ by float rounding only (~1e-7 relative: the reduction adds the same
    /// micro-batch gradients in another order). AdamW divides by √v, which keeps relative differences of
    /// ordinary entries at that level, but an entry whose gradient is itself rounding noise can move by a
    /// fraction of lr per step; the absolute bound allows 1/100 of 4 × lr. Measured on this world:
    /// relative L2 5.2e-7 (worst tensor h.0.attn.c_attn.bias), max |Δ| 1.9e-7.
    static let rankTolerance = (relativeL2: 1e-5, maxAbs: 1.2e-4)

    var dkc: URL!

    override func setUpWithError() throws {
        dkc = try Launch.executable("dkc")
        _ = try Launch.mpirun()
    }

    // MARK: helpers

    /// Runs `dkc train --config <config> --threads 1 args` on `ranks` ranks.
    func train(_ config: URL, ranks: Int, _ args: [String] = [], timeout: Double = 240) throws -> Launch.Result {
        try Launch.run(dkc, ["train", "--config", config.path, "--threads", "1"] + args, ranks: ranks,
                       env: ["OPENBLAS_NUM_THREADS": "1"], timeout: timeout)
    }

    func assertSuccess(_ r: Launch.Result, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, "\(what) timed out", file: file, line: line)
        XCTAssertEqual(r.status, 0, "\(what) failed:\n\(r.stdout)\n\(r.stderr)", file: file, line: line)
    }

    func checkpoints(_ output: URL, stage: String = "continual") -> [(step: Int, url: URL)] {
        TrainCheckpoint.list(in: output.appendingPathComponent(stage).appendingPathComponent("checkpoints"))
    }

    func finalCheckpoint(_ output: URL, stage: String = "continual") throws -> URL {
        try XCTUnwrap(checkpoints(output, stage: stage).last?.url, "no checkpoint in \(output.path)/\(stage)")
    }

    func bytes(_ url: URL) throws -> Data { try Data(contentsOf: url) }

    func metricsLines(_ output: URL, stage: String = "continual") throws -> [JSONValue] {
        let text = try String(contentsOf: output.appendingPathComponent(stage).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONValue(parsing: String($0)) }
    }

    // MARK: rank-count independence

    /// The same global batch of 12 blocks split as 1 × 2 × 6, 2 × 2 × 3 and 3 × 2 × 2 (ranks × per-rank
    /// batch × accumulation): losses and weights agree within `rankTolerance` in float mode, and are
    /// bit-identical in deterministic mode.
    func testResultDoesNotDependOnRankCount() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        for deterministic in [false, true] {
            var finals: [(ranks: Int, arena: ParameterArena, model: Data, optimizer: Data, losses: [Double])] = []
            for (ranks, accumulation) in [(1, 6), (2, 3), (3, 2)] {
                let out = root.appendingPathComponent("rank-\(deterministic)-\(ranks)")
                let cfg = try TrainFixture.config(root: root, output: out, extra: """
                    max_steps = 4
                    gradient_accumulation_steps = \(accumulation)
                    deterministic = \(deterministic)
                    eval_strategy = "no"
                    """)
                let r = try train(cfg, ranks: ranks)
                assertSuccess(r, "R = \(ranks), deterministic = \(deterministic)")
                let ck = try finalCheckpoint(out)
                XCTAssertEqual(ck.lastPathComponent, "checkpoint-4")
                let losses = try metricsLines(out).compactMap { $0["loss"]?.doubleValue }
                XCTAssertEqual(losses.count, 4)
                finals.append((ranks, try HFCheckpoint.load(folder: ck),
                               try bytes(ck.appendingPathComponent("model.safetensors")),
                               try bytes(ck.appendingPathComponent("optimizer.safetensors")), losses))
            }
            let ref = finals[0]
            for other in finals.dropFirst() {
                if deterministic {
                    XCTAssertEqual(other.model, ref.model, "deterministic: model.safetensors differs between R = 1 and R = \(other.ranks)")
                    XCTAssertEqual(other.optimizer, ref.optimizer, "deterministic: optimizer.safetensors differs between R = 1 and R = \(other.ranks)")
                    XCTAssertEqual(other.losses, ref.losses, "deterministic: losses differ between R = 1 and R = \(other.ranks)")
                } else {
                    for (a, b) in zip(ref.losses, other.losses) {
                        XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "loss curve R = 1 vs R = \(other.ranks)")
                    }
                    var worstRel = 0.0, worstAbs: Float = 0, worstName = ""
                    for t in ref.arena.layout.tensors {
                        let x = ref.arena.buffer(t), y = other.arena.buffer(t)
                        var diff = 0.0, norm = 0.0
                        for i in 0..<t.count {
                            let d = Double(x[i] - y[i])
                            diff += d * d; norm += Double(x[i]) * Double(x[i])
                            worstAbs = max(worstAbs, abs(x[i] - y[i]))
                        }
                        let rel = diff.squareRoot() / max(norm.squareRoot(), 1e-30)
                        if rel > worstRel { worstRel = rel; worstName = t.name }
                    }
                    let message = "R = 1 vs R = \(other.ranks): worst tensor \(worstName) relative L2 \(worstRel), max |Δ| \(worstAbs)"
                    print("rank independence (float mode): \(message)")
                    XCTAssertLessThanOrEqual(worstRel, Self.rankTolerance.relativeL2, message)
                    XCTAssertLessThanOrEqual(Double(worstAbs), Self.rankTolerance.maxAbs, message)
                }
            }
        }
    }

    /// Two deterministic runs at the same rank count write the same bits.
    func testDeterministicRunsRepeatBitForBit() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        var models: [Data] = []
        for run in 0..<2 {
            let out = root.appendingPathComponent("repeat-\(run)")
            let cfg = try TrainFixture.config(root: root, output: out, extra: "max_steps = 3\ndeterministic = true\neval_strategy = \"no\"")
            assertSuccess(try train(cfg, ranks: 2), "run \(run)")
            models.append(try bytes(try finalCheckpoint(out).appendingPathComponent("model.safetensors")))
        }
        XCTAssertEqual(models[0], models[1])
    }

    // MARK: stop, resume, failure

    /// SIGTERM to every rank mid-run: exit 0, a line on how to resume, a complete newest checkpoint; the
    /// same command then finishes the run with exactly the weights of an uninterrupted run.
    func testSigtermStopsCleanlyAndResumeMatchesUninterrupted() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self), entities: 60)
        let extra = "max_steps = 60\ndeterministic = true\neval_strategy = \"no\"\nsave_strategy = \"steps\"\nsave_steps = 20\nlogging_steps = 2"
        let whole = root.appendingPathComponent("whole")
        assertSuccess(try train(try TrainFixture.config(root: root, output: whole, extra: extra), ranks: 2), "uninterrupted run")

        let stopped = root.appendingPathComponent("stopped")
        let cfg = try TrainFixture.config(root: root, output: stopped, extra: extra)
        let r = try runAndSignal(cfg, ranks: 2, signal: SIGTERM, target: .allRanks, after: 2, stopped: stopped)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, "a stopped run exits 0:\n\(r.stdout)\n\(r.stderr)")
        XCTAssertTrue(r.stdout.contains("can be resumed with the same command"), r.stdout)
        let newest = try XCTUnwrap(checkpoints(stopped).last, "no checkpoint after SIGTERM")
        XCTAssertLessThan(newest.step, 60, "the run was not interrupted (it finished before the signal)")
        let state = try TrainerState(file: newest.url.appendingPathComponent("trainer_state.json"))
        XCTAssertEqual(state.globalStep, newest.step)
        XCTAssertFalse(state.finished)
        _ = try HFCheckpoint.load(folder: newest.url)

        let resumed = try train(cfg, ranks: 2, ["--resume"])
        assertSuccess(resumed, "resumed run")
        XCTAssertTrue(resumed.stdout.contains("resuming at step \(newest.step)"), resumed.stdout)
        let a = try finalCheckpoint(whole), b = try finalCheckpoint(stopped)
        XCTAssertEqual(a.lastPathComponent, b.lastPathComponent)
        XCTAssertEqual(try bytes(a.appendingPathComponent("model.safetensors")), try bytes(b.appendingPathComponent("model.safetensors")),
                       "interrupted + resumed differs from uninterrupted")
        XCTAssertEqual(try bytes(a.appendingPathComponent("optimizer.safetensors")), try bytes(b.appendingPathComponent("optimizer.safetensors")))
        // metrics.jsonl holds each step's line once.
        let steps = try metricsLines(stopped).filter { $0["loss"] != nil }.compactMap { $0["step"]?.intValue }
        XCTAssertEqual(steps, Array(stride(from: 2, through: 60, by: 2)))
        let wholeLosses = try metricsLines(whole).compactMap { $0["loss"]?.doubleValue }
        XCTAssertEqual(try metricsLines(stopped).compactMap { $0["loss"]?.doubleValue }, wholeLosses)
    }

    /// Raising max_steps continues a finished stage from its last checkpoint: 2 + 2 steps equal 4 steps.
    func testExtendingMaxStepsContinuesExactly() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let base = "deterministic = true\neval_strategy = \"no\"\nsave_strategy = \"no\""
        // Global batch 12 = 1 × 2 × 6 = 2 × 2 × 3 = 3 × 2 × 2 (ranks × per-rank batch × accumulation).
        let whole = root.appendingPathComponent("whole")
        assertSuccess(try train(try TrainFixture.config(root: root, output: whole, extra: base + "\nmax_steps = 4"), ranks: 1,
                                ["--set", "gradient_accumulation_steps=6"]), "4 steps")
        let parts = root.appendingPathComponent("parts")
        let cfg = try TrainFixture.config(root: root, output: parts, extra: base + "\nsave_optimizer = \"last\"")
        assertSuccess(try train(cfg, ranks: 2, ["--set", "max_steps=2", "--set", "gradient_accumulation_steps=3"]), "2 steps")
        let again = try train(cfg, ranks: 2, ["--set", "max_steps=2", "--set", "gradient_accumulation_steps=3"])
        assertSuccess(again, "2 steps again")
        XCTAssertTrue(again.stdout.contains("already complete"), again.stdout)
        assertSuccess(try train(cfg, ranks: 3, ["--set", "max_steps=4", "--set", "gradient_accumulation_steps=2"]),
                      "extended to 4 steps on 3 ranks")
        // save_optimizer = "last": checkpoint-2 kept its model but gave up its optimizer state.
        XCTAssertEqual(checkpoints(parts).map(\.step), [4])
        let older = parts.appendingPathComponent("continual/checkpoints/checkpoint-2")
        XCTAssertFalse(FileManager.default.fileExists(atPath: older.appendingPathComponent("optimizer.safetensors").path))
        XCTAssertNoThrow(try HFCheckpoint.load(folder: older))
        // Deterministic mode: the same bits whatever the rank count, since the per-rank batch is the same.
        XCTAssertEqual(try bytes(try finalCheckpoint(whole).appendingPathComponent("model.safetensors")),
                       try bytes(try finalCheckpoint(parts).appendingPathComponent("model.safetensors")))
    }

    /// Under mpirun, SIGUSR1 to mpirun is forwarded to every rank (SIGTERM to mpirun would kill the job):
    /// the run stops cleanly with exit 0 and a complete checkpoint.
    func testSigusr1ToMpirunStopsCleanly() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let out = root.appendingPathComponent("usr1")
        let cfg = try TrainFixture.config(root: root, output: out, extra: "max_steps = 100000\neval_strategy = \"no\"\nsave_strategy = \"no\"")
        let r = try runAndSignal(cfg, ranks: 2, signal: SIGUSR1, target: .launcher, after: 2, stopped: out)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, "\(r.stdout)\n\(r.stderr)")
        let newest = try XCTUnwrap(checkpoints(out).last)
        XCTAssertFalse(try TrainerState(file: newest.url.appendingPathComponent("trainer_state.json")).finished)
        XCTAssertTrue(r.stdout.contains("stopped by SIGUSR1"), r.stdout)
    }

    /// SIGKILL of one rank ends the whole job quickly with a non-zero status.
    func testKilledRankBringsJobDown() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let out = root.appendingPathComponent("killed")
        let cfg = try TrainFixture.config(root: root, output: out, extra: "max_steps = 100000\neval_strategy = \"no\"\nsave_strategy = \"no\"")
        let started = Date()
        let r = try runAndSignal(cfg, ranks: 2, signal: SIGKILL, target: .oneRank, after: 2, stopped: nil)
        XCTAssertFalse(r.timedOut, "mpirun did not end after a rank was killed")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertLessThan(r.afterSignal, 15, "mpirun took \(r.afterSignal) s to end after the kill (total \(Date().timeIntervalSince(started)) s)")
    }

    func testResumeWithoutCheckpointIsAnError() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let cfg = try TrainFixture.config(root: root, output: root.appendingPathComponent("none"), extra: "max_steps = 1")
        let r = try train(cfg, ranks: 2, ["--resume"])
        XCTAssertEqual(r.status, 65, r.stderr)
        XCTAssertTrue(r.stderr.contains("no checkpoint to resume from"), r.stderr)
    }

    // MARK: checkpoints and metrics

    /// Base then continual: every epoch checkpointed, loadable by dkc, with optimizer state, trainer state
    /// and tokenizer files; metrics lines with HF keys; the continual stage starts from the base weights.
    func testCheckpointsAndMetrics() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let out = root.appendingPathComponent("run")
        let cfg = try TrainFixture.config(root: root, output: out, stages: ["base", "continual"], extra: "num_train_epochs = 2")
        let r = try train(cfg, ranks: 2)
        assertSuccess(r, "base + continual")

        for stage in ["base", "continual"] {
            let list = checkpoints(out, stage: stage)
            XCTAssertEqual(list.count, 2, "\(stage): one checkpoint per epoch")
            for (step, url) in list {
                let arena = try HFCheckpoint.load(folder: url)
                XCTAssertEqual(arena.config.nLayer, 2)
                for f in ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "vocab.json", "merges.txt"] {
                    XCTAssertTrue(FileManager.default.fileExists(atPath: url.appendingPathComponent(f).path), "\(url.path)/\(f)")
                }
                let opt = try SafetensorsFile(url: url.appendingPathComponent("optimizer.safetensors"))
                XCTAssertEqual(try opt.ints("step"), [step])
                XCTAssertEqual(try opt.info("exp_avg.transformer.wte.weight").shape, arena.layout.tensors[0].shape)
                XCTAssertTrue(opt.contains("exp_avg_sq.transformer.ln_f.bias"))
                let state = try TrainerState(file: url.appendingPathComponent("trainer_state.json"))
                XCTAssertEqual(state.globalStep, step)
                XCTAssertEqual(state.stage, stage)
            }
            XCTAssertTrue(try TrainerState(file: list.last!.url.appendingPathComponent("trainer_state.json")).finished)
        }
        // The continual stage's evaluation lines carry the study's metrics.
        let lines = try metricsLines(out)
        let evals = lines.filter { $0["eval_loss"] != nil }
        XCTAssertEqual(evals.count, 2, "one evaluation per epoch")
        for key in ["eval_accuracy", "eval_first_token_accuracy_new", "eval_first_token_accuracy_revised",
                    "eval_first_token_accuracy_new_birthday", "eval_first_token_accuracy_new_city", "epoch", "step"] {
            XCTAssertNotNil(evals[0][key], "evaluation line lacks \(key): \(evals[0].compactText)")
        }
        for key in ["loss", "learning_rate", "grad_norm", "tokens_per_s", "epoch", "step"] {
            XCTAssertNotNil(lines[0][key], "training line lacks \(key)")
        }
        XCTAssertEqual(try metricsLines(out, stage: "base").filter { $0["eval_loss"] != nil }.count, 0, "base has no validation set")
        // The last checkpoint's log history is metrics.jsonl up to it (the summary line comes after).
        let last = try finalCheckpoint(out)
        let state = try TrainerState(file: last.appendingPathComponent("trainer_state.json"))
        XCTAssertEqual(state.logHistory, Array(lines.prefix(state.logHistory.count)))
        XCTAssertNotNil(lines.last?["train_runtime"])
    }

    /// `eval_strategy = "steps"` (the study's runs: every 50 steps) evaluates every `eval_steps` optimizer steps
    /// and at the last step; `save_strategy = "steps"` saves on the same rule.
    func testEvaluatesAndSavesEverySteps() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let out = root.appendingPathComponent("steps")
        let extra = "max_steps = 7\neval_strategy = \"steps\"\neval_steps = 3\nsave_strategy = \"steps\"\nsave_steps = 3\nlogging_steps = 2"
        assertSuccess(try train(try TrainFixture.config(root: root, output: out, extra: extra), ranks: 1), "train")
        let evals = try metricsLines(out).filter { $0["eval_loss"] != nil }.compactMap { $0["step"]?.intValue }
        XCTAssertEqual(evals, [3, 6, 7])
        XCTAssertEqual(checkpoints(out).map(\.step), [3, 6, 7])
        let state = try TrainerState(file: try finalCheckpoint(out).appendingPathComponent("trainer_state.json"))
        XCTAssertEqual(state.evalSteps, 3)
        XCTAssertEqual(state.saveSteps, 3)
    }

    /// Python's safetensors reads model.safetensors and optimizer.safetensors (skipped without it).
    func testCheckpointReadableByPythonSafetensors() throws {
        let probe = try Launch.run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import safetensors.numpy"], timeout: 60)
        guard probe.status == 0 else { throw XCTSkip("python3 with safetensors and numpy not installed (scripts/bootstrap --tests)") }
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let out = root.appendingPathComponent("py")
        assertSuccess(try train(try TrainFixture.config(root: root, output: out, extra: "max_steps = 2\neval_strategy = \"no\""), ranks: 1), "train")
        let ck = try finalCheckpoint(out)
        let arena = try HFCheckpoint.load(folder: ck)
        let wte = arena.layout.tensors[0]
        let sum = arena.buffer(wte).reduce(0.0) { $0 + Double($1) }
        let script = """
        import json, sys
        from safetensors.numpy import load_file
        m = load_file(sys.argv[1] + "/model.safetensors")
        o = load_file(sys.argv[1] + "/optimizer.safetensors")
        w = m["transformer.wte.weight"]
        assert w.dtype.name == "float32", w.dtype
        assert o["step"].dtype.name == "int64" and int(o["step"][0]) == 2, o["step"]
        for k, v in m.items():
            assert o["exp_avg." + k].shape == v.shape and o["exp_avg_sq." + k].shape == v.shape, k
        print(json.dumps({"tensors": len(m), "shape": list(w.shape), "sum": float(w.astype("float64").sum())}))
        """
        let r = try Launch.run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, ck.path], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try JSONValue(parsing: r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertEqual(j["tensors"]?.intValue, arena.layout.tensors.count)
        XCTAssertEqual(j["shape"], .array(wte.shape.map { .int($0) }))
        XCTAssertEqual(try XCTUnwrap(j["sum"]?.doubleValue), sum, accuracy: 1e-9 * max(1, abs(sum)))
    }

    // MARK: bad input

    /// Each bad input ends every rank with exit 65 and a message naming the problem, before training.
    func testBadInputIsRejectedBeforeTraining() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let notGPT2 = root.appendingPathComponent("bert")
        try FileManager.default.createDirectory(at: notGPT2, withIntermediateDirectories: true)
        try "{\"model_type\": \"bert\", \"architectures\": [\"BertForMaskedLM\"]}".write(
            to: notGPT2.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try Data().write(to: notGPT2.appendingPathComponent("model.safetensors"))
        let cases: [(String, [String], String)] = [
            ("missing data", ["--set", "data_dir=\(root.appendingPathComponent("nowhere").path)"], "does not exist"),
            ("block_size > n_positions", ["--set", "block_size=64"], "exceeds n_positions"),
            ("unknown key", ["--set", "lerning_rate=1e-3"], "did you mean 'learning_rate'"),
            ("unsupported architecture", ["--set", "init=\(notGPT2.path)"], "model_type"),
            ("too few blocks", ["--set", "per_device_train_batch_size=5000"], "fewer than one global batch"),
        ]
        for (name, args, expected) in cases {
            let out = root.appendingPathComponent("bad-\(name.replacingOccurrences(of: " ", with: "-"))")
            let cfg = try TrainFixture.config(root: root, output: out)
            let r = try train(cfg, ranks: 2, args, timeout: 120)
            XCTAssertEqual(r.status, 65, "\(name): status \(r.status)\n\(r.stderr)")
            XCTAssertTrue(r.stderr.contains(expected), "\(name): expected “\(expected)” in:\n\(r.stderr)")
            XCTAssertFalse(r.stderr.contains("MPI_ABORT"), "\(name): the ranks should agree and exit cleanly:\n\(r.stderr)")
            XCTAssertTrue(checkpoints(out).isEmpty, "\(name): nothing may be trained")
        }
    }

    // MARK: signalling a running job

    enum SignalTarget { case allRanks, oneRank, launcher }

    struct SignalledResult {
        let status: Int32
        let stdout: String
        let stderr: String
        let timedOut: Bool
        /// Seconds from the signal to mpirun's exit.
        let afterSignal: Double
    }

    /// Starts `dkc train` under mpirun, waits until training is under way (a metrics line written, and
    /// then `after` more lines), sends `signal` to the rank processes (children of mpirun), and waits.
    func runAndSignal(_ config: URL, ranks: Int, signal: Int32, target: SignalTarget, after lines: Int,
                      stopped: URL?, metricsFile: String = "continual/metrics.jsonl", timeout: Double = 240) throws -> SignalledResult {
        let p = Process()
        p.executableURL = try Launch.mpirun()
        p.arguments = ["--oversubscribe", "-np", String(ranks), dkc.path, "train", "--config", config.path, "--threads", "1"]
        p.environment = Launch.environment(["OPENBLAS_NUM_THREADS": "1"])
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-signal-\(UUID().uuidString).out")
        let errURL = outURL.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let start = Date()
        let metrics = config.deletingPathExtension().appendingPathComponent(metricsFile)
        var signalled: Date?
        var timedOut = false
        while p.isRunning {
            if Date().timeIntervalSince(start) > timeout { timedOut = true; p.terminate(); break }
            if signalled == nil {
                let text = (try? String(contentsOf: metrics, encoding: .utf8)) ?? ""
                if text.split(separator: "\n").count >= lines {
                    let children = Self.children(of: p.processIdentifier).filter { Self.command(of: $0).contains("dkc") }
                    if children.count == ranks {
                        switch target {
                        case .allRanks: for pid in children { kill(pid, signal) }
                        case .oneRank: kill(children.last!, signal)
                        case .launcher: kill(p.processIdentifier, signal)
                        }
                        signalled = Date()
                    }
                }
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        p.waitUntilExit()
        return SignalledResult(status: p.terminationStatus, stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                               stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "", timedOut: timedOut || signalled == nil,
                               afterSignal: signalled.map { Date().timeIntervalSince($0) } ?? .infinity)
    }

    /// Process ids whose parent is `pid` (from /proc).
    static func children(of pid: Int32) -> [Int32] {
        var out: [Int32] = []
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        for t in tasks {
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/children", encoding: .utf8)) ?? ""
            out += text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return out.sorted()
    }

    static func command(of pid: Int32) -> String {
        let raw = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
        return String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }
}
