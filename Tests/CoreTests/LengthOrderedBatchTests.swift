import Foundation
import XCTest
@testable import Core

/// dkc runs prompts in batches of similar length (`PromptBatch.lengthOrderedBatches`) instead of the study's
/// consecutive batches: fewer padded rows, the same results up to float summation order.
final class LengthOrderedBatchTests: XCTestCase {
    func testGroupingKeepsTheStudysShortBatchWhereTheMetricIsABatchMean() throws {
        let lengths = [5, 3, 7, 3, 6, 4, 9, 2, 8, 1]
        // 10 samples in batches of 4: the study's short batch is samples 8 and 9; the first 8 are grouped by length.
        XCTAssertEqual(try PromptBatch.lengthOrderedBatches(lengths: lengths, batchSize: 4, weightedByBatch: true),
                       [[7, 1, 3, 5], [0, 4, 2, 6], [8, 9]])
        // Per-sample results: every sample is regrouped (stable on equal lengths).
        XCTAssertEqual(try PromptBatch.lengthOrderedBatches(lengths: lengths, batchSize: 4, weightedByBatch: false),
                       [[9, 7, 1, 3], [5, 0, 4, 2], [8, 6]])
        // Batch sizes are the study's either way; every sample once.
        for weighted in [true, false] {
            for b in 1...11 {
                let batches = try PromptBatch.lengthOrderedBatches(lengths: lengths, batchSize: b, weightedByBatch: weighted)
                XCTAssertEqual(batches.map(\.count), stride(from: 0, to: 10, by: b).map { min(b, 10 - $0) }, "b \(b)")
                XCTAssertEqual(batches.flatMap { $0 }.sorted(), Array(0..<10))
            }
        }
        XCTAssertEqual(try PromptBatch.lengthOrderedBatches(lengths: [], batchSize: 3, weightedByBatch: true), [])
        XCTAssertThrowsError(try PromptBatch.lengthOrderedBatches(lengths: lengths, batchSize: 0, weightedByBatch: true)) {
            XCTAssertTrue("\($0)".contains("batch size"), "\($0)")
        }
    }

    /// The study's scores: consecutive batches, each accumulated as it comes.
    func consecutiveScores(_ model: InstrumentedGPT2, _ pairs: [PromptPair], batchSize: Int, options: AttributionOptions) throws -> ScoreMatrix {
        let engine = try EdgeAttribution(model: model, options: options)
        try PromptBatch.forEachBatch(pairs.count, batchSize) { range in
            engine.accumulate(try model.promptBatch(pairs: Array(pairs[range]), firstIndex: range.lowerBound))
        }
        return engine.scores()
    }

    func testScoresEqualTheStudysConsecutiveBatches() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 5)
        // Lengths 3…6 in turn, 11 samples in batches of 4: the short batch (samples 8–10) has three lengths.
        let pairs = AttributionPropertyTests.randomPairs(11, vocab: model.config.vocabSize, seed: 9)
        for options in [AttributionOptions(method: .eapIG, igSteps: 3), AttributionOptions(method: .eap),
                        AttributionOptions(method: .eapIG, igSteps: 3, normalisation: .perSample)] {
            let study = try consecutiveScores(model, pairs, batchSize: 4, options: options)
            let dkc = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: options)
            let scale = ScoreMatrix.maxAbsDifference(study, ScoreMatrix(graph: model.graph))
            XCTAssertGreaterThan(scale, 0)
            XCTAssertLessThanOrEqual(ScoreMatrix.maxAbsDifference(study, dkc), 1e-5 * scale, "\(options.method) \(options.normalisation)")
        }
        // Regrouping the short batch's samples too would change the study's scores: the check above can tell.
        let options = AttributionOptions(method: .eapIG, igSteps: 3)
        let study = try consecutiveScores(model, pairs, batchSize: 4, options: options)
        let order = try PromptBatch.lengthOrderedBatches(lengths: pairs.map(\.clean.count), batchSize: 4, weightedByBatch: false)
        let regrouped = try consecutiveScores(model, order.flatMap { $0 }.map { pairs[$0] }, batchSize: 4, options: options)
        XCTAssertGreaterThan(ScoreMatrix.maxAbsDifference(study, regrouped), 1e-3 * ScoreMatrix.maxAbsDifference(study, ScoreMatrix(graph: model.graph)))
    }

    func testEvaluationKeepsEachSamplesValueInDataOrder() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 6)
        let pairs = AttributionPropertyTests.randomPairs(10, vocab: model.config.vocabSize, seed: 4)
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: AttributionOptions(method: .eap))
        var circuit = Circuit(graph: model.graph, scores: scores)
        circuit.applyTopN(12)
        let evaluator = CircuitEvaluator(model: model)
        let all = try evaluator.evaluate(circuit, pairs: pairs, batchSize: 4)
        // Each sample alone (its own batch, no padding) gives the value reported at its position.
        for i in pairs.indices {
            let one = try evaluator.evaluate(circuit, pairs: [pairs[i]], batchSize: 1)
            XCTAssertEqual(all.perSampleClean[i], one.perSampleClean[0], accuracy: 1e-5 * max(1, abs(one.perSampleClean[0])), "sample \(i)")
            XCTAssertEqual(all.perSampleCorrupted[i], one.perSampleCorrupted[0], accuracy: 1e-5 * max(1, abs(one.perSampleCorrupted[0])), "sample \(i)")
            XCTAssertEqual(all.perSampleCircuit[i], one.perSampleCircuit[0], accuracy: 1e-5 * max(1, abs(one.perSampleCircuit[0])), "sample \(i)")
        }
    }

    func testErrorsNameTheSampleOfTheDataSet() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 5)
        var pairs = AttributionPropertyTests.randomPairs(9, vocab: model.config.vocabSize, seed: 9)
        pairs[6].corrupted.append(1)   // lengths differ: named as sample 6 whatever batch it lands in
        XCTAssertThrowsError(try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4)) {
            XCTAssertTrue("\($0)".contains("sample 6"), "\($0)")
        }
    }
}
