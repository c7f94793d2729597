import XCTest
@testable import Core
@testable import DistTrain

/// The pure pieces of the forget stage: the exponential checkpoint schedule and the replay mix.
final class ForgetTrainingTests: XCTestCase {
    // MARK: - Checkpoint schedule (docs/forgetting.md, Q6 and Q7)

    func testScheduleWithCap16MatchesTheStudysSteps() {
        // Intervals 1, 2, 2, 4, 4, 8, 8, 16, 16, then 16: written out by hand.
        XCTAssertEqual(ExponentialSaveSchedule(cap: 16).steps(total: 100),
                       [0, 1, 3, 5, 9, 13, 21, 29, 45, 61, 77, 93, 100])
    }

    func testScheduleWithCap32() {
        // Intervals 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, then 32.
        XCTAssertEqual(ExponentialSaveSchedule(cap: 32).steps(total: 300),
                       [0, 1, 3, 5, 9, 13, 21, 29, 45, 61, 93, 125, 157, 189, 221, 253, 285, 300])
    }

    func testLastStepSavedOnceAndShortRuns() {
        XCTAssertEqual(ExponentialSaveSchedule(cap: 16).steps(total: 93), [0, 1, 3, 5, 9, 13, 21, 29, 45, 61, 77, 93])
        XCTAssertEqual(ExponentialSaveSchedule(cap: 32).steps(total: 4), [0, 1, 3, 4])
        XCTAssertEqual(ExponentialSaveSchedule(cap: 32).steps(total: 1), [0, 1])
        XCTAssertEqual(ExponentialSaveSchedule(cap: 1).steps(total: 5), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(ExponentialSaveSchedule(cap: 3).steps(total: 20), [0, 1, 3, 5, 8, 11, 14, 17, 20])
    }

    func testIsSaveStepAgreesWithTheList() {
        for cap in [1, 2, 5, 16, 32] {
            for total in [1, 7, 64, 301] {
                let s = ExponentialSaveSchedule(cap: cap)
                let listed = Set(s.steps(total: total))
                for step in 1...total {
                    XCTAssertEqual(s.isSaveStep(step, total: total), listed.contains(step), "cap \(cap) total \(total) step \(step)")
                }
            }
        }
    }

    // MARK: - Replay mix (Q9)

    private let ratios = [0, 0.1, 0.2, 0.4, 0.6, 1]

    func testReplaceCountsExactPerRatio() throws {
        // ⌊r · 1000⌋ by hand: 0, 100, 200, 400, 600, 1000.
        let expected = [0, 100, 200, 400, 600, 1000]
        for (r, k) in zip(ratios, expected) {
            let m = try ReplayMix(ratio: r, forgetCount: 1000, replayCount: 300, mode: .replace, draw: .withReplacement, seed: 42)
            XCTAssertEqual(m.texts.count, 1000, "replace keeps the text count")
            let replay = m.texts.filter { if case .replay = $0 { return true } else { return false } }
            XCTAssertEqual(replay.count, k, "ratio \(r)")
            XCTAssertEqual(m.replayed, k)
            XCTAssertEqual(m.forgetKept, 1000 - k)
            // The forgetting texts left are distinct and keep their own slot.
            for (slot, s) in m.texts.enumerated() { if case .forget(let i) = s { XCTAssertEqual(i, slot) } }
        }
        // Truncation as Python's int(n * r): 7 · 0.3 = 2.1 → 2; 10 · 0.29 = 2.9000000000000004 → 2.
        XCTAssertEqual(ReplayMix.replayTextCount(ratio: 0.3, forgetCount: 7), 2)
        XCTAssertEqual(ReplayMix.replayTextCount(ratio: 0.29, forgetCount: 10), 2)
        XCTAssertEqual(ReplayMix.replayTextCount(ratio: 1, forgetCount: 50_000), 50_000)
    }

    func testRatiosAreNested() throws {
        for mode in ReplayMode.allCases {
            for draw in ReplayDraw.allCases {
                let mixes = try ratios.map {
                    try ReplayMix(ratio: $0, forgetCount: 500, replayCount: 800, mode: mode, draw: draw, seed: 7)
                }
                for (small, large) in zip(mixes, mixes.dropFirst()) {
                    if mode == .replace {
                        for (a, b) in zip(small.texts, large.texts) where a != b {
                            // A slot can only change from a forgetting text to a replay text.
                            guard case .forget = a, case .replay = b else { return XCTFail("\(mode) \(draw): \(a) → \(b)") }
                        }
                        for (a, b) in zip(small.texts, large.texts) {
                            if case .replay = a { XCTAssertEqual(a, b, "\(mode) \(draw): a replayed slot changed at a larger ratio") }
                        }
                    } else {
                        XCTAssertEqual(Array(large.texts.prefix(small.texts.count)), small.texts, "\(mode) \(draw): not a prefix")
                        XCTAssertEqual(large.texts.count, 500 + large.replayed)
                    }
                }
            }
        }
    }

    func testWithoutReplacementDrawsDistinctTexts() throws {
        let m = try ReplayMix(ratio: 0.6, forgetCount: 1000, replayCount: 600, mode: .replace, draw: .withoutReplacement, seed: 1)
        XCTAssertEqual(m.distinctReplayed, 600)
        XCTAssertThrowsError(try ReplayMix(ratio: 0.61, forgetCount: 1000, replayCount: 600, mode: .add, draw: .withoutReplacement, seed: 1))
        // With replacement, 1000 draws from 300 texts repeat some (expected distinct ≈ 300 · (1 − e^{-10/3}) ≈ 289).
        let w = try ReplayMix(ratio: 1, forgetCount: 1000, replayCount: 300, mode: .replace, draw: .withReplacement, seed: 1)
        XCTAssertLessThan(w.distinctReplayed, 300)
        XCTAssertGreaterThan(w.distinctReplayed, 250)
    }

    func testBadRatiosAndEmptyReplayAreErrors() {
        XCTAssertThrowsError(try ReplayMix(ratio: 1.5, forgetCount: 10, replayCount: 10, mode: .replace, draw: .withReplacement, seed: 0))
        XCTAssertThrowsError(try ReplayMix(ratio: -0.1, forgetCount: 10, replayCount: 10, mode: .replace, draw: .withReplacement, seed: 0))
        XCTAssertThrowsError(try ReplayMix(ratio: 0.5, forgetCount: 10, replayCount: 0, mode: .replace, draw: .withReplacement, seed: 0))
        XCTAssertNoThrow(try ReplayMix(ratio: 0, forgetCount: 10, replayCount: 0, mode: .replace, draw: .withReplacement, seed: 0))
    }

    func testApplyAndSeed() throws {
        let m = try ReplayMix(ratio: 0.5, forgetCount: 6, replayCount: 3, mode: .add, draw: .withoutReplacement, seed: 3)
        let mixed = m.apply(forget: ["a", "b", "c", "d", "e", "f"], replay: ["X", "Y", "Z"])
        XCTAssertEqual(Array(mixed.prefix(6)), ["a", "b", "c", "d", "e", "f"])
        XCTAssertEqual(Set(mixed.suffix(3)), ["X", "Y", "Z"])
        let a = try ReplayMix(ratio: 0.5, forgetCount: 200, replayCount: 200, mode: .replace, draw: .withReplacement, seed: 3)
        let b = try ReplayMix(ratio: 0.5, forgetCount: 200, replayCount: 200, mode: .replace, draw: .withReplacement, seed: 4)
        XCTAssertNotEqual(a.texts, b.texts, "the seed does not change the mix")
        XCTAssertEqual(a, try ReplayMix(ratio: 0.5, forgetCount: 200, replayCount: 200, mode: .replace, draw: .withReplacement, seed: 3))
    }

    // MARK: - The forget stage's configuration

    private func trainConfig(_ overrides: [String]) throws -> TrainConfig {
        try TrainConfig.load(file: nil, overrides: ["data_dir=/tmp/dkc-data", "output_dir=/tmp/dkc-run/train"] + overrides)
    }

    func testForgetStageExpandsIntoOneSubRunPerRatio() throws {
        let c = try trainConfig(["stages=[\"continual\", \"forget\"]", "forget.save_strategy=exponential", "forget.save_steps=32"])
        XCTAssertEqual(c.stages.map(\.stage), [.continual, .forget, .forget, .forget, .forget, .forget, .forget])
        let forget = c.stages.filter { $0.stage == .forget }
        XCTAssertEqual(forget.map(\.folder.lastPathComponent), ["replay_0", "replay_0.1", "replay_0.2", "replay_0.4", "replay_0.6", "replay_1"])
        XCTAssertTrue(forget.allSatisfy { $0.folder.deletingLastPathComponent().path == "/tmp/dkc-run/train/forget" })
        XCTAssertEqual(forget.map { $0.replay?.ratio }, [0, 0.1, 0.2, 0.4, 0.6, 1])
        for s in forget {
            XCTAssertEqual(s.initSource, .continual)
            XCTAssertEqual(s.trainFile.path, "/tmp/dkc-data/forget/train.jsonl")
            XCTAssertEqual(s.replay?.file.path, "/tmp/dkc-data/forget/replay.jsonl")
            XCTAssertEqual(s.validationFile?.path, "/tmp/dkc-data/validation.jsonl")
            XCTAssertEqual(s.replay?.mode, .replace)
            XCTAssertEqual(s.replay?.draw, .withReplacement)
            XCTAssertEqual(s.saveSchedule, ExponentialSaveSchedule(cap: 32))
            XCTAssertTrue(s.evaluatesAtStart)
            XCTAssertTrue(s.saveDue(step: 61, total: 300, epochEnd: false))
            XCTAssertFalse(s.saveDue(step: 77, total: 300, epochEnd: true))
            XCTAssertTrue(s.saveDue(step: 300, total: 300, epochEnd: false))
        }
        XCTAssertTrue(forget.allSatisfy { $0.extraValidationFiles.isEmpty })
        let e = try trainConfig(["stages=[\"forget\"]", "forget.extra_validation_files={ own = \"forget/validation.jsonl\" }"])
        XCTAssertEqual(e.stages[0].extraValidationFiles.map(\.name), ["own"])
        XCTAssertEqual(e.stages[0].extraValidationFiles.map(\.file.path), ["/tmp/dkc-data/forget/validation.jsonl"])
        XCTAssertThrowsError(try trainConfig(["stages=[\"forget\"]", "forget.extra_validation_files={ \"a-b\" = \"x.jsonl\" }"]))
        XCTAssertFalse(c.stages[0].evaluatesAtStart)
        XCTAssertNil(c.stages[0].replay)
    }

    func testForgetConfigErrors() throws {
        func rejects(_ overrides: [String], key: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try trainConfig(overrides), file: file, line: line) { error in
                guard case .invalidValue(let k, _, _)? = error as? ConfigError else { return XCTFail("\(error)", file: file, line: line) }
                XCTAssertEqual(k, key, file: file, line: line)
            }
        }
        let forget = "stages=[\"forget\"]"
        rejects([forget, "forget.replay_ratios=[0, 1.5]"], key: "forget.replay_ratios")
        rejects([forget, "forget.replay_ratios=[0.1, 0.1]"], key: "forget.replay_ratios")
        rejects([forget, "forget.replay_ratios=[]"], key: "forget.replay_ratios")
        rejects(["stages=[\"forget\", \"continual\"]"], key: "stages")
        rejects(["stages=[\"continual\"]", "continual.init=continual"], key: "continual.init")
        rejects([forget, "forget.save_strategy=exponential", "forget.save_steps=0"], key: "forget.save_steps")
        XCTAssertThrowsError(try trainConfig([forget, "forget.replay_mode=swap"]))
        XCTAssertThrowsError(try trainConfig([forget, "forget.replay_ratio=[0]"])) { error in
            guard case .unknownKey(_, _, let suggestion)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(suggestion, "forget.replay_ratios")
        }
        XCTAssertEqual(ForgetReplay.label(0), "0")
        XCTAssertEqual(ForgetReplay.label(1), "1")
        XCTAssertEqual(ForgetReplay.label(0.1), "0.1")
        XCTAssertEqual(ForgetReplay.label(0.25), "0.25")
    }

    func testBuiltInTrainConfigsCarryTheStudysForgetSettings() throws {
        for (name, ratios, epochs, accumulation) in [("gpt2", [0, 0.1, 0.2, 0.4, 0.6, 1], 10, 8), ("gpt2-medium", [0, 0.1, 0.2, 1], 5, 8)] {
            let c = try TrainConfig.load(file: try ConfigLoader.locate(name, kind: "train"), overrides: ["stages=[\"forget\"]"])
            XCTAssertEqual(c.stages.map { $0.replay?.ratio }, ratios, name)
            for s in c.stages {
                XCTAssertEqual(s.learningRate, 1e-4, name)
                XCTAssertEqual(s.numTrainEpochs, epochs, name)
                XCTAssertEqual(s.gradientAccumulationSteps, accumulation, name)
                XCTAssertEqual(s.saveSchedule, ExponentialSaveSchedule(cap: 32), name)
                XCTAssertEqual(s.evalSteps, 5, name)
            }
        }
        let tiny = try TrainConfig.load(file: try ConfigLoader.locate("tiny", kind: "train"), overrides: ["stages=[\"forget\"]"])
        XCTAssertEqual(tiny.stages.map { $0.replay?.ratio }, [0, 0.4, 1])
    }
}
