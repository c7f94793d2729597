import Foundation
import XCTest
@testable import Core

/// Length-ordered batches run from the shortest prompts to the longest, so each batch would be larger than the
/// last: the buffers are sized once, for the largest, before the first batch runs.
final class BufferReservationTests: XCTestCase {
    /// Pairs whose lengths grow batch after batch in the order dkc runs them (3 … 6 tokens, batches of 4).
    func mixedPairs(_ model: InstrumentedGPT2) -> [PromptPair] {
        AttributionPropertyTests.randomPairs(16, vocab: model.config.vocabSize, seed: 11)
    }

    func testAttributionAllocatesItsBuffersOnce() throws {
        for method in [AttributionMethod.eapIG, .eap, .eapIGActivations] {
            let model = AttributionPropertyTests.tinyModel(seed: 3)
            let engine = try EdgeAttribution(model: model, options: AttributionOptions(method: method, igSteps: 3))
            try engine.accumulate(pairs: mixedPairs(model), batchSize: 4)
            XCTAssertEqual(engine.bufferGrowths, 1, "\(method): Δ / gradient buffers")
            XCTAssertEqual(model.bufferGrowths, 1, "\(method): activation buffers")
            // Batch by batch as they come, the same batches grow the buffers again and again (what the check above rules out).
            let grown = AttributionPropertyTests.tinyModel(seed: 3)
            let unreserved = try EdgeAttribution(model: grown, options: AttributionOptions(method: method, igSteps: 3))
            for group in try PromptBatch.lengthOrderedBatches(lengths: mixedPairs(grown).map(\.clean.count), batchSize: 4, weightedByBatch: true) {
                unreserved.accumulate(try grown.promptBatch(pairs: group.map { mixedPairs(grown)[$0] }, numbers: group))
            }
            XCTAssertGreaterThan(unreserved.bufferGrowths, 1, "\(method)")
            XCTAssertGreaterThan(grown.bufferGrowths, 1, "\(method)")
            XCTAssertEqual(ScoreMatrix.maxAbsDifference(engine.scores(), unreserved.scores()), 0, "\(method): same batches, same scores")
        }
    }

    func testEvaluationAndTestsAllocateTheirBuffersOnce() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 4)
        let pairs = mixedPairs(model)
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: AttributionOptions(method: .eap))
        var circuit = Circuit(graph: model.graph, scores: scores)
        circuit.applyTopN(10)

        let fresh = AttributionPropertyTests.tinyModel(seed: 4)
        let evaluator = CircuitEvaluator(model: fresh)
        _ = try evaluator.evaluate(circuit, pairs: pairs, batchSize: 4)
        XCTAssertEqual(evaluator.recordGrowths, 1)
        XCTAssertEqual(fresh.bufferGrowths, 1)

        // Circuit tests: prompts of growing length.
        let testModel = AttributionPropertyTests.tinyModel(seed: 4)
        let tester = CircuitEvaluator(model: testModel)
        let prompts = (0..<12).map { i in Array(repeating: 1 + i % 5, count: 2 + i / 2) }
        let results = try tester.test(circuit, prompts: prompts, labels: prompts.map { $0[0] }, batchSize: 4)
        XCTAssertEqual(results.count, prompts.count)
        XCTAssertEqual(tester.recordGrowths, 1)
        XCTAssertEqual(testModel.bufferGrowths, 1)
    }

    /// Large buffers are memory mappings: zeroed, aligned, writable to the end and returned when freed.
    func testFloatBuffersAreZeroedAlignedAndFreed() throws {
        for count in [0, 1, 1000, FloatBuffer.mappedBytes / 4 - 1, FloatBuffer.mappedBytes / 4, 3_000_001] {
            let b = FloatBuffer(count: count)
            XCTAssertEqual(Int(bitPattern: b.base) % 64, 0, "\(count) floats")
            XCTAssertFalse(b.buffer.contains { $0 != 0 }, "\(count) floats")
            if count > 0 { b.base[count - 1] = 1; XCTAssertEqual(b.base[count - 1], 1) }
        }
        // 40 buffers of 64 MiB, each filled and dropped: 2.5 GiB in all, far more than the process keeps.
        let before = try residentBytes()
        for _ in 0..<40 {
            let b = FloatBuffer(count: 16 << 20)
            b.base.update(repeating: 1, count: b.count)
        }
        XCTAssertLessThan(try residentBytes() - before, 256 << 20, "freed buffers stay resident")
    }

    func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
        return Int(statm[1])! * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
