import Foundation
import XCTest
@testable import Core

/// The Phi family (the study's phi-1_5) against fixtures/phi, with its README's tolerances (helpers in
/// LlamaParityTests.swift).
final class PhiParityTests: XCTestCase {
    static let logitsTolerance = 1e-4        // max abs, valid positions
    static let sequenceLossTolerance = 1e-5  // abs from the exact 1.4062887411358658
    static let trainLossTolerance = 1e-6     // abs from the exact 1.2843551414894905
    static let gradientTolerance = 5e-5      // per-tensor rel L2 vs grad64
    static let afterStepTolerance = 1e-6     // max abs vs after_clip64

    func testForwardLogitsMatchHFAndTransformerLens() throws {
        let e = try FamilyFixtures.forwardLogitsError("phi")
        print("phi logits max |Δ|: HF \(e.hf), TL \(e.tl)")
        XCTAssertLessThanOrEqual(e.hf, Self.logitsTolerance)
        XCTAssertLessThanOrEqual(e.tl, Self.logitsTolerance)
    }

    func testOneSequenceLossMatchesExactValue() throws {
        let e = try FamilyFixtures.sequenceLossError("phi")
        print("phi sequence loss |Δ| \(e)")
        XCTAssertLessThanOrEqual(e, Self.sequenceLossTolerance)
    }

    func testTrainStepLossGradientsAndAdamWStep() throws {
        let r = try FamilyFixtures.trainStep("phi")
        print("phi train step: loss |Δ| \(r.lossError), grad norm |Δ| \(r.gradNormError), worst gradient rel L2 \(r.worstGradient), worst after-step max abs \(r.worstAfterStep)")
        XCTAssertEqual(r.tensorsChecked, 33)
        XCTAssertLessThanOrEqual(r.lossError, Self.trainLossTolerance)
        XCTAssertLessThanOrEqual(r.worstGradient.relL2, Self.gradientTolerance, r.worstGradient.name)
        XCTAssertLessThanOrEqual(r.gradNormError, 1e-4)
        XCTAssertLessThanOrEqual(r.worstAfterStep.maxAbs, Self.afterStepTolerance, r.worstAfterStep.name)
    }

    func testCheckpointRoundTripKeepsLogits() throws {
        let r = try FamilyFixtures.roundTrip("phi", into: try ModelFixtures.tempDir(self))
        XCTAssertTrue(r.identical)
        XCTAssertEqual(r.maxAbs, 0)
    }

    /// A checkpoint dkc wrote loads in transformers with the same logits (skipped without transformers).
    func testTransformersLoadsDkcCheckpoint() throws {
        let e = try FamilyFixtures.transformersLogitsError("phi", into: try ModelFixtures.tempDir(self))
        print("phi transformers vs dkc logits max |Δ| \(e)")
        XCTAssertLessThanOrEqual(e, Self.logitsTolerance)
    }

    /// The layout of the fixture checkpoint: the README's parameter count, biases, untied head with a bias,
    /// 8 of 16 head dimensions rotated.
    func testLayoutMatchesCheckpoint() throws {
        let arena = try FamilyCheckpoint.load(folder: try FamilyFixtures.model("phi"))
        XCTAssertEqual(arena.count, 491_871)
        XCTAssertEqual(arena.layout.tensors.count, 33)
        XCTAssertNotNil(arena.layout.lmHeadBias)
        XCTAssertEqual(arena.config.rotaryDim, 8)
        XCTAssertEqual(arena.config.headSize, 16)
        XCTAssertEqual(arena.layout.tensors.map(\.name),
                       try XCTUnwrap(FamilyFixtures.json("phi", "train_step_f64.json")["parameter_names"] as? [String]))
    }
}
