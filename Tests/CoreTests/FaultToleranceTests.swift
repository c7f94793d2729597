import Foundation
import XCTest
@testable import Core
@testable import DistTrain

/// Files that are whole or absent (docs/fault-tolerance.md): checkpoint markers, the fallback past an
/// incomplete or damaged newest checkpoint, trainer_state.json consistency, a rewrite interrupted between
/// its two renames, folder locks, and writes that fail for lack of space.
final class FaultToleranceTests: XCTestCase {
    private func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-faults-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A tiny model and optimizer, and a consistent state of `step` (50 blocks, global batch 4: 12 steps per epoch).
    private func pieces(step: Int, maxSteps: Int = 24) -> (ParameterArena, AdamW, TrainerState) {
        let params = ParameterArena(config: GPT2Config(nLayer: 1, nHead: 2, nEmbd: 8, nPositions: 16, vocabSize: 11))
        params.initializeGPT2(seed: UInt64(step))
        let opt = AdamW(layout: params.layout, config: AdamWConfig())
        opt.stepCount = step
        let state = TrainerState(stage: "continual", globalStep: step, maxSteps: maxSteps, numTrainEpochs: 2, stepsPerEpoch: 12,
                                 globalBatchSize: 4, perDeviceTrainBatchSize: 2, loggingSteps: 1, saveSteps: 0, evalSteps: 0,
                                 logHistory: [], window: .init(), seed: 1, trainFile: "t", trainBlocks: 50, trainFingerprint: 9,
                                 worldSize: 1, blasThreads: 1, deterministic: false, finished: step == maxSteps, config: .null)
        return (params, opt, state)
    }

    @discardableResult
    private func write(step: Int, in dir: URL, maxSteps: Int = 24, edit: (inout TrainerState) -> Void = { _ in }) throws -> URL {
        var (p, o, s) = pieces(step: step, maxSteps: maxSteps)
        edit(&s)
        return try TrainCheckpoint.write(model: GPT2(params: p, threads: 1), optimizer: o, state: s, tokenizerFiles: [], in: dir)
    }

    // MARK: markers

    /// The marker lists every file with its size and SHA-256 (checked against an independent digest), and
    /// the folder is loadable without it (a Hugging Face folder is the marker plus the usual files).
    func testMarkerRecordsEveryFile() throws {
        let dir = try temporaryFolder()
        let url = try write(step: 12, in: dir)
        let marker = try JSONValue(parsing: Data(contentsOf: url.appendingPathComponent(TrainCheckpoint.markerFileName)))
        XCTAssertEqual(marker["step"]?.intValue, 12)
        let names = try XCTUnwrap(marker["files"]?.arrayValue).compactMap { $0["name"]?.stringValue }
        XCTAssertEqual(Set(names), ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"])
        let model = try XCTUnwrap(marker["files"]?.arrayValue?.first { $0["name"]?.stringValue == "model.safetensors" })
        let bytes = try Data(contentsOf: url.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(model["bytes"]?.intValue, bytes.count)
        // sha256sum's digest when available, else the project's (known-answer tested in DataGenerationTests).
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        probe.arguments = [url.appendingPathComponent("model.safetensors").path]
        let pipe = Pipe()
        probe.standardOutput = pipe
        if (try? probe.run()) != nil {
            probe.waitUntilExit()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(model["sha256"]?.stringValue, String(text.prefix(64)))
        }
        XCTAssertNil(TrainCheckpoint.problem(with: url, step: 12, checkHashes: true))
        XCTAssertNoThrow(try HFCheckpoint.load(folder: url))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir.path).contains { $0.hasPrefix(".") },
                       "no temporary folder or file is left")
    }

    /// A truncated model, a changed trainer_state.json (same size), a missing marker: the folder is not
    /// whole, and resuming goes back to the newest checkpoint that is, naming the ones passed over.
    func testResumeFallsBackPastIncompleteOrCorruptCheckpoints() throws {
        let dir = try temporaryFolder()
        try write(step: 12, in: dir)
        let c24 = try write(step: 24, in: dir)
        XCTAssertEqual(TrainCheckpoint.resumable(in: dir).chosen?.step, 24)

        // Same size, other bytes: only the hash sees it.
        let stateURL = c24.appendingPathComponent(TrainCheckpoint.stateFileName)
        var state = try Data(contentsOf: stateURL)
        let i = try XCTUnwrap(state.firstIndex(of: UInt8(ascii: "2")))
        state[i] = UInt8(ascii: "3")
        try state.write(to: stateURL)
        XCTAssertEqual(TrainCheckpoint.list(in: dir).map(\.step), [12, 24], "sizes alone do not see a same-size change")
        var found = TrainCheckpoint.resumable(in: dir)
        XCTAssertEqual(found.chosen?.step, 12)
        XCTAssertEqual(found.rejected.map(\.url.lastPathComponent), [c24.lastPathComponent])
        XCTAssertTrue(found.rejected[0].reason.contains("trainer_state.json does not match its SHA-256"), found.rejected[0].reason)

        // Truncated weights: not even listed.
        try write(step: 24, in: dir)
        let model = c24.appendingPathComponent("model.safetensors")
        let weights = try Data(contentsOf: model)
        try weights.prefix(weights.count / 2).write(to: model)
        XCTAssertEqual(TrainCheckpoint.list(in: dir).map(\.step), [12])
        found = TrainCheckpoint.resumable(in: dir)
        XCTAssertEqual(found.chosen?.step, 12)
        XCTAssertTrue(found.rejected[0].reason.contains("model.safetensors has \(weights.count / 2) bytes"), found.rejected[0].reason)

        // No marker (a write that never finished, or a folder another tool wrote).
        try FileManager.default.removeItem(at: c24.appendingPathComponent(TrainCheckpoint.markerFileName))
        found = TrainCheckpoint.resumable(in: dir)
        XCTAssertEqual(found.chosen?.step, 12)
        XCTAssertTrue(found.rejected[0].reason.contains("has no dkc_checkpoint.json"), found.rejected[0].reason)

        // Nothing usable: no choice, every folder named.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("checkpoint-12/model.safetensors"))
        found = TrainCheckpoint.resumable(in: dir)
        XCTAssertNil(found.chosen)
        XCTAssertEqual(found.rejected.count, 2)
    }

    /// A crash between "old folder aside" and "new folder in place" leaves `.checkpoint-N.old-<pid>` and no
    /// `checkpoint-N`: the leftover clean-up puts the old one back. With the new one in place the old one goes.
    func testRewriteInterruptedBetweenRenamesKeepsTheOldCheckpoint() throws {
        let dir = try temporaryFolder()
        let url = try write(step: 12, in: dir)
        let before = try Data(contentsOf: url.appendingPathComponent("model.safetensors"))
        let aside = dir.appendingPathComponent(".checkpoint-12.old-4242")
        try FileManager.default.moveItem(at: url, to: aside)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".checkpoint-12.tmp-4242"), withIntermediateDirectories: true)
        TrainCheckpoint.removeLeftovers(in: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["checkpoint-12"])
        XCTAssertEqual(try Data(contentsOf: url.appendingPathComponent("model.safetensors")), before)
        XCTAssertNil(TrainCheckpoint.problem(with: url, step: 12, checkHashes: true))

        // Rewriting the same step replaces it whole; an old copy next to a present folder is removed.
        try FileManager.default.copyItem(at: url, to: aside)
        try write(step: 12, in: dir) { $0.logHistory = [.object([("loss", .double(1)), ("step", .int(12))])] }
        TrainCheckpoint.removeLeftovers(in: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["checkpoint-12"])
        XCTAssertEqual(try TrainerState(file: url.appendingPathComponent(TrainCheckpoint.stateFileName)).logHistory.count, 1)
    }

    // MARK: trainer_state.json

    /// Each inconsistency is named; a checkpoint whose hashes match but whose state is impossible is passed over.
    func testTrainerStateConsistency() throws {
        let (_, _, good) = pieces(step: 12)
        XCTAssertNil(good.inconsistency(folderStep: 12))
        XCTAssertEqual(good.inconsistency(folderStep: 13), "global_step is 12, but the folder is the checkpoint of step 13")
        var s = good; s.globalStep = 30; s.maxSteps = 24
        XCTAssertTrue(s.inconsistency(folderStep: 30)?.contains("outside 0 ... max_steps 24") == true)
        s = good; s.globalStep = -1
        XCTAssertTrue(s.inconsistency(folderStep: -1)?.contains("outside") == true)
        s = good; s.stepsPerEpoch = 13
        XCTAssertTrue(s.inconsistency(folderStep: 12)?.contains("is not dkc.train_data.blocks 50 / dkc.global_batch_size 4") == true)
        s = good; s.window = .init(steps: 13, lossSum: 1)
        XCTAssertTrue(s.inconsistency(folderStep: 12)?.contains("logging_window") == true)
        s = good; s.finished = true
        XCTAssertTrue(s.inconsistency(folderStep: 12)?.contains("finished is true") == true)

        // An edited data order is named when the file is read.
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("trainer_state.json")
        let text = good.json.prettyText().replacingOccurrences(of: "\"step_in_epoch\": 0", with: "\"step_in_epoch\": 5")
        XCTAssertNotEqual(text, good.json.prettyText())
        try text.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainerState(file: url)) { XCTAssertTrue("\($0)".contains("dkc.data_order (epoch 1, step_in_epoch 5) does not match global_step 12"), "\($0)") }

        // Hashes fine, state impossible (global_step beyond max_steps): passed over for the checkpoint before.
        let checkpoints = dir.appendingPathComponent("checkpoints")
        try write(step: 6, in: checkpoints, maxSteps: 12)
        try write(step: 18, in: checkpoints, maxSteps: 12)
        let found = TrainCheckpoint.resumable(in: checkpoints)
        XCTAssertEqual(found.chosen?.step, 6)
        XCTAssertTrue(found.rejected.first?.reason.contains("global_step 18 is outside 0 ... max_steps 12") == true, "\(found.rejected)")
    }

    // MARK: locks

    func testFolderLockRefusesASecondHolderAndReleases() throws {
        let dir = try temporaryFolder()
        var first: FolderLock? = try FolderLock(folder: dir, name: ".x.lock")
        XCTAssertThrowsError(try FolderLock(folder: dir, name: ".x.lock")) { error in
            guard case FolderLock.Failure.held(let holder) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(holder, "pid \(getpid()) on \(ProcessInfo.processInfo.hostName)")
        }
        XCTAssertNotNil(first)
        first = nil
        XCTAssertNoThrow(try FolderLock(folder: dir, name: ".x.lock"))
    }

    // MARK: disk full

    /// Runs `body` with the file size limit at `bytes` (SIGXFSZ ignored, so a write past it fails with
    /// EFBIG as on a full disk), restoring both afterwards.
    private func withFileSizeLimit<T>(_ bytes: Int, _ body: () throws -> T) rethrows -> T {
        var old = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        var limit = old
        limit.rlim_cur = rlim_t(bytes)
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
        defer {
            setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
            signal(SIGXFSZ, oldHandler)
        }
        return try body()
    }

    /// A checkpoint write that runs out of space: a named error (the file, the reason, what to do), the
    /// checkpoints already there intact, nothing half-written left; with space again the write succeeds.
    func testCheckpointWriteOnAFullDiskIsANamedErrorAndKeepsTheOldOnes() throws {
        let dir = try temporaryFolder()
        let c12 = try write(step: 12, in: dir)
        let model = try Data(contentsOf: c12.appendingPathComponent("model.safetensors")).count
        let optimizer = try Data(contentsOf: c12.appendingPathComponent("optimizer.safetensors")).count
        XCTAssertLessThan(model, optimizer)
        let (p, o, s) = pieces(step: 24)
        let limit = (model + optimizer) / 2   // the model fits, the optimizer state does not
        let error = withFileSizeLimit(limit) { () -> Error? in
            do { _ = try TrainCheckpoint.write(model: GPT2(params: p, threads: 1), optimizer: o, state: s, tokenizerFiles: [], in: dir); return nil } catch { return error }
        }
        let text = "\(try XCTUnwrap(error, "the write should fail past the limit"))"
        XCTAssertTrue(text.contains("checkpoint-24") && text.contains("File too large") && text.contains("untouched"), text)
        XCTAssertEqual((error as? UserFacingError)?.exitCode, 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["checkpoint-12"])
        XCTAssertNil(TrainCheckpoint.problem(with: c12, step: 12, checkHashes: true))
        XCTAssertEqual(try TrainCheckpoint.write(model: GPT2(params: p, threads: 1), optimizer: o, state: s, tokenizerFiles: [], in: dir).lastPathComponent, "checkpoint-24")
    }

    /// A NetCDF rewrite that runs out of space: an error naming the file, the previous file unchanged, no
    /// temporary file left.
    func testNetCDFWriteOnAFullDiskKeepsThePreviousFile() throws {
        let dir = try temporaryFolder()
        let target = dir.appendingPathComponent("scores.nc")
        try NetCDFFile.writeAtomically(to: target) { f in
            try f.addDimension("x", length: 4)
            try f.addVariable("v", type: .float, dimensions: ["x"])
            try f.write([Float](repeating: 1, count: 4), to: "v")
        }
        let before = try Data(contentsOf: target)
        let n = 1 << 18
        let error = withFileSizeLimit(before.count * 4) { () -> Error? in
            do {
                try NetCDFFile.writeAtomically(to: target) { f in
                    try f.addDimension("x", length: n)
                    try f.addVariable("v", type: .float, dimensions: ["x"])
                    try f.write([Float](repeating: 2, count: n), to: "v")
                }
                return nil
            } catch { return error }
        }
        let text = "\(try XCTUnwrap(error, "a 1 MiB variable cannot be written under a \(before.count * 4)-byte limit"))"
        XCTAssertTrue(text.contains("scores.nc"), text)
        XCTAssertEqual(try Data(contentsOf: target), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["scores.nc"])
    }

    /// The durable write replaces a file whole and leaves no temporary file, also when it fails.
    func testDurableWrite() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("state.json")
        try DurableFiles.write(Data("one".utf8), to: url)
        try DurableFiles.write(Data("two".utf8), to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "two")
        let big = Data(repeating: 7, count: 1 << 16)
        let error = withFileSizeLimit(1 << 12) { () -> Error? in
            do { try DurableFiles.write(big, to: url); return nil } catch { return error }
        }
        XCTAssertTrue("\(try XCTUnwrap(error))".contains("File too large"), "\(String(describing: error))")
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "two")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["state.json"])
    }
}
