import Core
import DistTrain
import Foundation
import XCTest

/// Faults injected into `dkc train` (docs/fault-tolerance.md): every rank killed at seeded random moments
/// and during a checkpoint write, damaged newest checkpoints, a NaN gradient, a full disk, two jobs on
/// one folder. The tiny world of `TrainFixture`; each case takes a few seconds.
extension TrainTests {
    /// A `dkc train` under mpirun in the background, with its output in files.
    final class TrainJob: BackgroundJob {
        init(dkc: URL, config: URL, ranks: Int, env: [String: String] = [:]) throws {
            try super.init(dkc: dkc, ["train", "--config", config.path, "--threads", "1"], ranks: ranks,
                           env: ["OPENBLAS_NUM_THREADS": "1"].merging(env) { $1 }, label: "fault")
        }

        /// The rank processes: the children of this mpirun that run dkc.
        var ranks: [Int32] { children.filter { TrainTests.command(of: $0).contains("dkc") } }

        /// Polls `condition` every 2 ms; false when the job ended first or `timeout` passed.
        func wait(until condition: () -> Bool, timeout: Double = 120) -> Bool {
            let start = Date()
            while process.isRunning && Date().timeIntervalSince(start) < timeout {
                if condition() { return true }
                usleep(2_000)
            }
            return false
        }

        /// SIGKILL to every rank at once (a node failure), then waits for mpirun; the ranks killed.
        @discardableResult
        func killAllRanks() -> Int {
            var killed = 0
            while process.isRunning && killed == 0 {
                let pids = ranks
                for pid in pids where kill(pid, SIGKILL) == 0 { killed += 1 }
                if killed == 0 { usleep(1_000) }
            }
            finish()
            return killed
        }

        @discardableResult
        func finish(timeout: Double = 240) -> Int32 {
            let start = Date()
            while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    private func checkpointsFolder(_ output: URL) -> URL { output.appendingPathComponent("continual/checkpoints") }

    /// Every `checkpoint-<step>` folder is whole (a killed write leaves at most a hidden temporary folder).
    private func assertEveryCheckpointWhole(_ output: URL, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for (step, url) in TrainCheckpoint.folders(in: checkpointsFolder(output)) {
            XCTAssertNil(TrainCheckpoint.problem(with: url, step: step, checkHashes: true), "\(what): \(url.path)", file: file, line: line)
        }
    }

    // MARK: kills

    /// SIGKILL of all ranks during a checkpoint write (when its temporary folder appears) and at seeded
    /// random moments; every re-run continues from the newest complete checkpoint, and in deterministic mode
    /// the final weights, optimizer state and losses equal an uninterrupted run's bit for bit.
    func testFaultKillsAtRandomMomentsResumeBitForBit() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self), entities: 60)
        let extra = "max_steps = 40\ndeterministic = true\neval_strategy = \"no\"\nsave_strategy = \"steps\"\nsave_steps = 4\nlogging_steps = 1"
        let whole = root.appendingPathComponent("whole")
        assertSuccess(try train(try TrainFixture.config(root: root, output: whole, extra: extra), ranks: 2), "uninterrupted run")

        let killed = root.appendingPathComponent("killed")
        let cfg = try TrainFixture.config(root: root, output: killed, extra: extra)
        let metrics = killed.appendingPathComponent("continual/metrics.jsonl")
        var rng = SeededRNG(20261204)
        var kills: [String] = []
        // Writes pause 150 ms inside the temporary folder so that the kill lands inside one.
        let slow = ["DKC_TEST_CHECKPOINT_WRITE_DELAY_MS": "150"]
        for round in 0..<4 {
            let newest = TrainCheckpoint.newest(in: checkpointsFolder(killed))?.step
            try? FileManager.default.removeItem(at: metrics)
            // Leftovers of the previous kill (the new job clears them): not the write this round waits for.
            let leftovers = Set((try? FileManager.default.contentsOfDirectory(atPath: checkpointsFolder(killed).path)) ?? [])
            let job = try TrainJob(dkc: dkc, config: cfg, ranks: 2, env: slow)
            let hit: Bool
            if round % 2 == 1 {
                // During the write of a checkpoint newer than the one resumed from: its hidden temporary folder exists.
                hit = job.wait(until: {
                    ((try? FileManager.default.contentsOfDirectory(atPath: checkpointsFolder(killed).path)) ?? []).contains { name in
                        guard !leftovers.contains(name), name.hasPrefix(".checkpoint-"), let r = name.range(of: ".tmp-"),
                              let step = Int(name[name.index(name.startIndex, offsetBy: 12)..<r.lowerBound]) else { return false }
                        return step > (newest ?? 0)
                    }
                })
            } else {
                // A seeded moment 250-750 ms after training started.
                let delay = Double(250 + rng.below(500)) / 1000
                hit = job.wait(until: { FileManager.default.fileExists(atPath: metrics.path) })
                if hit { usleep(useconds_t(delay * 1e6)) }
            }
            XCTAssertTrue(hit && job.process.isRunning, "round \(round): the run ended before the kill:\n\(job.stdout)\n\(job.stderr)")
            let ranksKilled = job.killAllRanks()
            XCTAssertEqual(ranksKilled, 2, "round \(round): ranks killed")
            XCTAssertNotEqual(job.process.terminationStatus, 0, "round \(round): the job was not killed:\n\(job.stdout)")
            // The stage's start lines (printed together) say where it resumed.
            if let newest, job.stdout.contains("parameters from") {
                XCTAssertTrue(job.stdout.contains("resuming at step \(newest)"), "round \(round): expected to resume at \(newest):\n\(job.stdout)")
            }
            assertEveryCheckpointWhole(killed, "after kill \(round)")
            kills.append("round \(round) (\(round % 2 == 1 ? "during a write" : "seeded moment")): newest complete checkpoint \(TrainCheckpoint.newest(in: checkpointsFolder(killed))?.step ?? 0)")
        }
        print("kills: \(kills.joined(separator: "; "))")
        let newest = try XCTUnwrap(TrainCheckpoint.newest(in: checkpointsFolder(killed)), "no checkpoint survived the kills")
        XCTAssertLessThan(newest.step, 40, "the kills came too late to interrupt the run")
        let resumed = try train(cfg, ranks: 2)
        assertSuccess(resumed, "run after the kills")
        XCTAssertTrue(resumed.stdout.contains("resuming at step \(newest.step)"), resumed.stdout)
        let a = try finalCheckpoint(whole), b = try finalCheckpoint(killed)
        XCTAssertEqual(b.lastPathComponent, "checkpoint-40")
        for f in ["model.safetensors", "optimizer.safetensors"] {
            XCTAssertEqual(try bytes(a.appendingPathComponent(f)), try bytes(b.appendingPathComponent(f)), "\(f): killed + resumed differs from uninterrupted")
        }
        XCTAssertEqual(try metricsLines(killed).compactMap { $0["loss"]?.doubleValue }, try metricsLines(whole).compactMap { $0["loss"]?.doubleValue })
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: checkpointsFolder(killed).path).contains { $0.hasPrefix(".") },
                       "temporary folders of the killed writes are cleared")
    }

    // MARK: damaged checkpoints

    /// The newest checkpoint with a truncated model.safetensors, or with a corrupt trainer_state.json:
    /// reported, and training resumes from the one before, ending bit for bit as an uninterrupted run. When
    /// no checkpoint is usable: exit 65 with every folder named, nothing removed.
    func testFaultDamagedNewestCheckpointFallsBack() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let extra = "max_steps = 8\ndeterministic = true\neval_strategy = \"no\"\nsave_strategy = \"steps\"\nsave_steps = 4"
        let whole = root.appendingPathComponent("whole")
        assertSuccess(try train(try TrainFixture.config(root: root, output: whole, extra: extra), ranks: 2), "uninterrupted run")
        let reference = try bytes(try finalCheckpoint(whole).appendingPathComponent("model.safetensors"))

        for damage in ["truncated model.safetensors", "corrupt trainer_state.json"] {
            let out = root.appendingPathComponent(damage.replacingOccurrences(of: " ", with: "-"))
            let cfg = try TrainFixture.config(root: root, output: out, extra: extra)
            assertSuccess(try train(cfg, ranks: 2), "first run")
            let c8 = checkpointsFolder(out).appendingPathComponent("checkpoint-8")
            if damage.hasPrefix("truncated") {
                let url = c8.appendingPathComponent("model.safetensors")
                let data = try Data(contentsOf: url)
                try data.prefix(data.count - 100).write(to: url)
            } else {
                try "{\"global_step\": 8, \"dkc\": ".write(to: c8.appendingPathComponent("trainer_state.json"), atomically: false, encoding: .utf8)
            }
            let r = try train(cfg, ranks: 2)
            assertSuccess(r, "\(damage): re-run")
            XCTAssertTrue(r.stdout.contains("passed over incomplete or damaged checkpoint(s)") && r.stdout.contains(c8.path), "\(damage):\n\(r.stdout)")
            XCTAssertTrue(r.stdout.contains("resuming at step 4"), r.stdout)
            XCTAssertEqual(try bytes(c8.appendingPathComponent("model.safetensors")), reference, "\(damage): the redone steps differ")
            assertEveryCheckpointWhole(out, damage)
        }

        // The only checkpoint damaged: nothing to resume from is an error naming it; the folder stays.
        let lone = root.appendingPathComponent("lone")
        let cfg = try TrainFixture.config(root: root, output: lone, extra: "max_steps = 2\neval_strategy = \"no\"")
        assertSuccess(try train(cfg, ranks: 2), "lone run")
        let c2 = checkpointsFolder(lone).appendingPathComponent("checkpoint-2")
        let weights = c2.appendingPathComponent("model.safetensors")
        try Data(try Data(contentsOf: weights).prefix(64)).write(to: weights)
        let r = try train(cfg, ranks: 2, ["--set", "max_steps=4"])
        XCTAssertEqual(r.status, 65, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("no checkpoint to resume from") && r.stderr.contains("\(c2.path): model.safetensors has 64 bytes"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: weights.path))
    }

    // MARK: numerical faults

    /// A NaN put into a gradient at step 6 (test hook), float and deterministic modes: every rank stops with
    /// exit 1 naming the step, the stage and the last good checkpoint, which is unchanged, and nothing
    /// newer is written. With skip_nonfinite_steps = 1 the run skips that step (logged) and finishes.
    func testFaultNaNGradientStopsOrIsSkipped() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let nan = ["DKC_TEST_NAN_GRADIENT_STEPS": "6"]
        for deterministic in [false, true] {
            let extra = "max_steps = 8\ndeterministic = \(deterministic)\neval_strategy = \"no\"\nsave_strategy = \"steps\"\nsave_steps = 4"
            let out = root.appendingPathComponent("nan-\(deterministic)")
            let cfg = try TrainFixture.config(root: root, output: out, extra: extra)
            let r = try Launch.run(dkc, ["train", "--config", cfg.path, "--threads", "1"], ranks: 2,
                                   env: nan.merging(["OPENBLAS_NUM_THREADS": "1"]) { $1 }, timeout: 240)
            let c4 = checkpointsFolder(out).appendingPathComponent("checkpoint-4")
            XCTAssertEqual(r.status, 1, "deterministic = \(deterministic):\n\(r.stdout)\n\(r.stderr)")
            XCTAssertTrue(r.stderr.contains("[continual] step 6: ") && r.stderr.contains("the last good checkpoint, \(c4.path), is untouched"),
                          "deterministic = \(deterministic):\n\(r.stderr)")
            XCTAssertFalse(r.stderr.contains("MPI_ABORT"), "the ranks agree and end cleanly:\n\(r.stderr)")
            XCTAssertEqual(TrainCheckpoint.folders(in: checkpointsFolder(out)).map(\.step), [4])
            XCTAssertNil(TrainCheckpoint.problem(with: c4, step: 4, checkHashes: true))

            // Skipping instead: continues from checkpoint-4 and finishes, the skip logged and recorded.
            let skip = try Launch.run(dkc, ["train", "--config", cfg.path, "--threads", "1", "--set", "skip_nonfinite_steps=1"], ranks: 2,
                                      env: nan.merging(["OPENBLAS_NUM_THREADS": "1"]) { $1 }, timeout: 240)
            assertSuccess(skip, "skip_nonfinite_steps = 1, deterministic = \(deterministic)")
            XCTAssertTrue(skip.stdout.contains("step 6: ") && skip.stdout.contains("batch was skipped"), skip.stdout)
            let lines = try metricsLines(out)
            XCTAssertEqual(lines.filter { $0["skipped_nonfinite_steps"] != nil }.compactMap { $0["step"]?.intValue }, [6])
            XCTAssertEqual(lines.filter { $0["loss"] != nil }.compactMap { $0["step"]?.intValue }, [1, 2, 3, 4, 5, 7, 8])
            let final = try finalCheckpoint(out)
            XCTAssertEqual(final.lastPathComponent, "checkpoint-8")
            let state = try TrainerState(file: final.appendingPathComponent("trainer_state.json"))
            XCTAssertEqual(state.nonfiniteSkipped, 1)
            let opt = try SafetensorsFile(url: final.appendingPathComponent("optimizer.safetensors"))
            XCTAssertEqual(try opt.ints("step"), [7], "seven updates in eight steps")
            let arena = try HFCheckpoint.load(folder: final)
            XCTAssertTrue(arena.buffer.allSatisfy { $0.isFinite })
        }
    }

    /// Real divergence, no hook: at learning_rate = 1e30 the first update blows the weights up and the next
    /// loss is not finite; the run stops there, naming the step.
    func testFaultDivergenceAtHugeLearningRateStops() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let out = root.appendingPathComponent("lr")
        let cfg = try TrainFixture.config(root: root, output: out, extra: "max_steps = 6\nlearning_rate = 1e30\neval_strategy = \"no\"\nsave_strategy = \"no\"")
        let r = try train(cfg, ranks: 2)
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("[continual] step ") && r.stderr.contains("no checkpoint of this stage was written yet"), r.stderr)
        XCTAssertTrue(r.stderr.contains("inf") || r.stderr.contains("nan") || r.stderr.contains("NaN"), r.stderr)
        XCTAssertTrue(TrainCheckpoint.folders(in: checkpointsFolder(out)).isEmpty)
    }

    // MARK: disk full and concurrency

    /// A checkpoint write past the file size limit (ulimit -f, SIGXFSZ ignored: a full disk): exit 1 naming
    /// the checkpoint and the cause, the previous checkpoint intact, no temporary folder left; run again
    /// with space, it resumes and ends as an uninterrupted run.
    func testFaultDiskFullDuringCheckpointWrite() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let extra = "deterministic = true\neval_strategy = \"no\"\nsave_strategy = \"steps\"\nsave_steps = 2"
        let whole = root.appendingPathComponent("whole")
        assertSuccess(try train(try TrainFixture.config(root: root, output: whole, extra: extra + "\nmax_steps = 4"), ranks: 1), "4 steps")
        let out = root.appendingPathComponent("full")
        let cfg = try TrainFixture.config(root: root, output: out, extra: extra + "\nmax_steps = 2")
        assertSuccess(try train(cfg, ranks: 1), "2 steps")
        let c2 = checkpointsFolder(out).appendingPathComponent("checkpoint-2")
        let model = try bytes(c2.appendingPathComponent("model.safetensors")).count
        let optimizer = try bytes(c2.appendingPathComponent("optimizer.safetensors")).count
        let limitKiB = (model + optimizer) / 2 / 1024   // model.safetensors fits, optimizer.safetensors does not
        let script = "trap '' XFSZ; ulimit -f \(limitKiB); exec \"$0\" \"$@\""
        let r = try Launch.run(URL(fileURLWithPath: "/bin/bash"), ["-c", script, dkc.path, "train", "--config", cfg.path, "--threads", "1",
                                                                   "--set", "max_steps=4"],
                               // PMIx's shared-memory store would itself exceed the limit at MPI start-up: its hash store instead.
                               env: ["OPENBLAS_NUM_THREADS": "1", "PMIX_MCA_gds": "hash"], timeout: 120)
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("cannot write checkpoint") && r.stderr.contains("checkpoint-4") && r.stderr.contains("File too large"), r.stderr)
        XCTAssertEqual(TrainCheckpoint.folders(in: checkpointsFolder(out)).map(\.step), [2])
        XCTAssertNil(TrainCheckpoint.problem(with: c2, step: 2, checkHashes: true))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: checkpointsFolder(out).path).contains { $0.hasPrefix(".") })
        let again = try train(cfg, ranks: 1, ["--set", "max_steps=4"])
        assertSuccess(again, "with space again")
        XCTAssertEqual(try bytes(try finalCheckpoint(out).appendingPathComponent("model.safetensors")),
                       try bytes(try finalCheckpoint(whole).appendingPathComponent("model.safetensors")))
    }

    /// A second `dkc train` on an output folder a running one holds is refused, naming the holder; the
    /// first is not disturbed. After it ends the folder is free again (a killed holder leaves no lock).
    func testFaultSecondTrainOnOneFolderIsRefused() throws {
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let out = root.appendingPathComponent("locked")
        let cfg = try TrainFixture.config(root: root, output: out, extra: "max_steps = 100000\neval_strategy = \"no\"\nsave_strategy = \"no\"")
        let first = try TrainJob(dkc: dkc, config: cfg, ranks: 2)
        XCTAssertTrue(first.wait(until: { FileManager.default.fileExists(atPath: out.appendingPathComponent("continual/metrics.jsonl").path) }),
                      first.stdout + first.stderr)
        let second = try train(cfg, ranks: 2, ["--set", "max_steps=2"], timeout: 120)
        XCTAssertEqual(second.status, 1, second.stdout + second.stderr)
        XCTAssertTrue(second.stderr.contains("is in use by another dkc train (pid ") && second.stderr.contains(ProcessInfo.processInfo.hostName),
                      second.stderr)
        XCTAssertTrue(first.process.isRunning, "the first job must go on")
        first.killAllRanks()
        let third = try train(cfg, ranks: 1, ["--set", "max_steps=1"], timeout: 120)
        assertSuccess(third, "after the holder was killed")
    }
}
