import Foundation
import XCTest
@testable import Core

/// The Phi family (the study's phi-1_5) against fixtures/phi, with its README's tolerances (helpers in
/// LlamaParityTests.swift).
final class PhiParityTests: XCTestCase {
    func testForwardLogitsMatchHFAndTransformerLens() throws { try FamilyChecks.forwardLogits("phi") }

    func testOneSequenceLossMatchesExactValue() throws { try FamilyChecks.sequenceLoss("phi") }

    func testTrainStepLossGradientsAndAdamWStep() throws { try FamilyChecks.trainStep("phi", tensors: 33) }

    func testCheckpointRoundTripKeepsLogits() throws { try FamilyChecks.roundTrip("phi", self) }

    /// A checkpoint dkc wrote loads in transformers with the same logits (skipped without transformers).
    func testTransformersLoadsDkcCheckpoint() throws { try FamilyChecks.transformersLoads("phi", self) }

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
