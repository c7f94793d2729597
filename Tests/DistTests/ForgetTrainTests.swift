import Core
import DistTrain
import Foundation
import XCTest

/// The forget stage of `dkc train` (docs/forgetting.md) on the tiny world of `TrainFixture`: the
/// forgetting texts are the fixture's base.jsonl (other attributes of the revised people), the replay
/// texts its train.jsonl (the continual corpus).
extension TrainTests {
    /// The `[forget]` table of the tests; `extra` lines are added to it.
    func forgetTable(ratios: String, maxSteps: Int, saveSteps: Int = 2, evalSteps: Int = 2, extra: String = "") -> String {
        """
        [forget]
        train_file = "base.jsonl"
        replay_file = "train.jsonl"
        validation_file = "validation.jsonl"
        replay_ratios = \(ratios)
        max_steps = \(maxSteps)
        save_strategy = "exponential"
        save_steps = \(saveSteps)
        eval_strategy = "steps"
        eval_steps = \(evalSteps)
        \(extra)
        """
    }

    func subRun(_ output: URL, _ ratio: String) -> URL {
        output.appendingPathComponent("forget").appendingPathComponent("replay_\(ratio)")
    }

    /// Continual (3 steps from scratch) then forget at ratios 0 and 0.5 (6 steps each), as 1 × 2 × 6 and
    /// 2 × 2 × 3 (ranks × per-rank batch × accumulation) in deterministic mode: every sub-run's weights,
    /// losses and evaluations are bit-identical. Checks the sub-run layout too: checkpoints on the doubling
    /// schedule with cap 2 (1, 3, 5) and the last step (6), checkpoint-0 linking the continual stage's final
    /// weights, evaluation at step 0 and every 2 steps, and replay.json's counts.
    func testForgetSubRunsDoNotDependOnRankCount() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self), entities: 60)
        var runs: [(ranks: Int, output: URL)] = []
        for (ranks, accumulation) in [(1, 6), (2, 3)] {
            let out = root.appendingPathComponent("forget-\(ranks)")
            let cfg = try TrainFixture.config(root: root, output: out, stages: ["continual", "forget"], extra: """
                max_steps = 3
                gradient_accumulation_steps = \(accumulation)
                deterministic = true
                eval_strategy = "no"
                [continual]
                init = "scratch"
                \(forgetTable(ratios: "[0, 0.5]", maxSteps: 6, extra: "extra_validation_files = { forget = \"base.jsonl\" }"))
                """)
            assertSuccess(try train(cfg, ranks: ranks), "R = \(ranks)")
            runs.append((ranks, out))
        }
        let trainLines = try String(contentsOf: root.appendingPathComponent("data/base.jsonl"), encoding: .utf8)
            .split(separator: "\n").count
        for ratio in ["0", "0.5"] {
            let a = subRun(runs[0].output, ratio), b = subRun(runs[1].output, ratio)
            let steps = TrainCheckpoint.list(in: a.appendingPathComponent("checkpoints")).map(\.step)
            XCTAssertEqual(steps, [1, 3, 5, 6], "ratio \(ratio): checkpoints off the exponential schedule")
            for step in steps {
                let name = "checkpoints/checkpoint-\(step)/model.safetensors"
                XCTAssertEqual(try bytes(a.appendingPathComponent(name)), try bytes(b.appendingPathComponent(name)),
                               "ratio \(ratio) step \(step): R = 1 and R = 2 differ")
            }
            let ma = try metricsLines(a.deletingLastPathComponent(), stage: "replay_\(ratio)")
            let mb = try metricsLines(b.deletingLastPathComponent(), stage: "replay_\(ratio)")
            let evalSteps = ma.filter { $0["eval_loss"] != nil }.compactMap { $0["step"]?.intValue }
            XCTAssertEqual(evalSteps, [0, 2, 4, 6], "ratio \(ratio): evaluation steps")
            // The extra evaluation set, with its own keys, at the same steps.
            let extraSteps = ma.filter { $0["eval_forget_loss"] != nil }.compactMap { $0["step"]?.intValue }
            XCTAssertEqual(extraSteps, [0, 2, 4, 6], "ratio \(ratio): extra evaluation steps")
            XCTAssertTrue(ma.allSatisfy { $0["eval_forget_loss"] == nil || $0["eval_loss"] == nil }, "extra metrics share a line with the main ones")
            let fa = ma.compactMap { $0["eval_forget_loss"]?.doubleValue }, fb = mb.compactMap { $0["eval_forget_loss"]?.doubleValue }
            XCTAssertEqual(fa.count, fb.count)
            for (x, y) in zip(fa, fb) { XCTAssertEqual(x, y, accuracy: 1e-12 * abs(x)) }
            // Training on base.jsonl lowers the loss on it.
            XCTAssertLessThan(try XCTUnwrap(fa.last), try XCTUnwrap(fa.first), "ratio \(ratio): forgetting texts not learnt")
            XCTAssertEqual(ma.compactMap { $0["loss"]?.doubleValue }, mb.compactMap { $0["loss"]?.doubleValue })
            // Evaluation sums are reduced in rank order, so they may differ in the last bit between rank counts.
            let ea = ma.compactMap { $0["eval_loss"]?.doubleValue }, eb = mb.compactMap { $0["eval_loss"]?.doubleValue }
            XCTAssertEqual(ea.count, eb.count)
            for (x, y) in zip(ea, eb) { XCTAssertEqual(x, y, accuracy: 1e-12 * abs(x), "ratio \(ratio): eval_loss R = 1 vs R = 2") }

            // checkpoint-0: the continual stage's final weights, as links; not a checkpoint to resume from.
            let zero = a.appendingPathComponent("checkpoints/checkpoint-0")
            let continualFinal = try finalCheckpoint(runs[0].output)
            XCTAssertEqual(try bytes(zero.appendingPathComponent("model.safetensors")),
                           try bytes(continualFinal.appendingPathComponent("model.safetensors")))
            let link = try FileManager.default.destinationOfSymbolicLink(atPath: zero.appendingPathComponent("model.safetensors").path)
            XCTAssertFalse(link.hasPrefix("/"), "checkpoint-0 links should be relative inside the run folder: \(link)")

            // replay.json: ⌊r · N⌋ replay texts replace forgetting texts.
            let record = try JSONValue(parsing: try bytes(a.appendingPathComponent("replay.json")))
            let k = ratio == "0" ? 0 : trainLines / 2
            XCTAssertEqual(record["forget_texts_in_file"]?.intValue, trainLines)
            XCTAssertEqual(record["replay_texts"]?.intValue, k)
            XCTAssertEqual(record["forget_texts"]?.intValue, trainLines - k)
            XCTAssertEqual(record["total_texts"]?.intValue, trainLines)
            let initPath = try XCTUnwrap(record["init"]?.stringValue)
            XCTAssertTrue(initPath.hasSuffix("continual/checkpoints/\(continualFinal.lastPathComponent)"), initPath)
        }
        // The forget stage starts from the continual weights: step-0 evaluation is the same for both ratios.
        let e0 = try metricsLines(subRun(runs[0].output, "0").deletingLastPathComponent(), stage: "replay_0").first { $0["eval_loss"] != nil }
        let e5 = try metricsLines(subRun(runs[0].output, "0.5").deletingLastPathComponent(), stage: "replay_0.5").first { $0["eval_loss"] != nil }
        XCTAssertEqual(e0?["eval_loss"]?.doubleValue, e5?["eval_loss"]?.doubleValue)
        XCTAssertEqual(e0?["step"]?.intValue, 0)
    }

    /// SIGTERM during a forget sub-run: exit 0 with a checkpoint; the same command resumes it and ends with
    /// exactly the weights of an uninterrupted sub-run.
    func testForgetSubRunStopsOnSigtermAndResumesExactly() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self), entities: 60)
        let cpt = root.appendingPathComponent("cpt")
        assertSuccess(try train(try TrainFixture.config(root: root, output: cpt, extra: "max_steps = 3\ndeterministic = true\neval_strategy = \"no\""),
                                ranks: 2), "continual stage")
        let initFolder = try finalCheckpoint(cpt)
        func config(_ out: URL) throws -> URL {
            try TrainFixture.config(root: root, output: out, stages: ["forget"], extra: """
                deterministic = true
                logging_steps = 2
                \(forgetTable(ratios: "[0.5]", maxSteps: 60, saveSteps: 16, evalSteps: 20, extra: "init = \"\(initFolder.path)\""))
                """)
        }
        let whole = root.appendingPathComponent("whole")
        assertSuccess(try train(try config(whole), ranks: 2), "uninterrupted forget run")

        let stopped = root.appendingPathComponent("stopped")
        let cfg = try config(stopped)
        let r = try runAndSignal(cfg, ranks: 2, signal: SIGTERM, target: .allRanks, after: 3, stopped: stopped,
                                 metricsFile: "forget/replay_0.5/metrics.jsonl")
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, "a stopped run exits 0:\n\(r.stdout)\n\(r.stderr)")
        let folder = subRun(stopped, "0.5").appendingPathComponent("checkpoints")
        let newest = try XCTUnwrap(TrainCheckpoint.list(in: folder).last, "no checkpoint after SIGTERM")
        XCTAssertLessThan(newest.step, 60, "the run was not interrupted (it finished before the signal)")

        let resumed = try train(cfg, ranks: 2, ["--resume"])
        assertSuccess(resumed, "resumed forget run")
        XCTAssertTrue(resumed.stdout.contains("resuming at step \(newest.step)"), resumed.stdout)
        let a = subRun(whole, "0.5").appendingPathComponent("checkpoints/checkpoint-60")
        let b = folder.appendingPathComponent("checkpoint-60")
        XCTAssertEqual(try bytes(a.appendingPathComponent("model.safetensors")), try bytes(b.appendingPathComponent("model.safetensors")),
                       "interrupted + resumed forget run differs from uninterrupted")
        XCTAssertEqual(try bytes(a.appendingPathComponent("optimizer.safetensors")), try bytes(b.appendingPathComponent("optimizer.safetensors")))
        let stoppedMetrics = try metricsLines(subRun(stopped, "0.5").deletingLastPathComponent(), stage: "replay_0.5")
        let wholeMetrics = try metricsLines(subRun(whole, "0.5").deletingLastPathComponent(), stage: "replay_0.5")
        XCTAssertEqual(stoppedMetrics.compactMap { $0["loss"]?.doubleValue }, wholeMetrics.compactMap { $0["loss"]?.doubleValue })
        XCTAssertEqual(stoppedMetrics.compactMap { $0["eval_loss"]?.doubleValue }, wholeMetrics.compactMap { $0["eval_loss"]?.doubleValue })
        // The whole run's checkpoints, intervals 1, 2, 2, 4, 4, 8, 8, 16 (cap 16), then the last step 60.
        XCTAssertEqual(TrainCheckpoint.list(in: subRun(whole, "0.5").appendingPathComponent("checkpoints")).map(\.step),
                       [1, 3, 5, 9, 13, 21, 29, 45, 60])
    }
}
