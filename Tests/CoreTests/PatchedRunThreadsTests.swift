import Foundation
import XCTest
@testable import Core

/// A patched forward rebuilds each head input on its own; on two threads the rebuilt inputs run in two halves side
/// by side (`InstrumentedEngine.forEachRebuiltColumn`). Every circuit test and faithfulness value must be the one
/// a single thread gives. Likewise the attribution backward pass forms each head input's gradient on its own, in two
/// halves on two threads (`InstrumentedEngine.inHalves`), each half adding to its own residual gradient.
final class PatchedRunThreadsTests: XCTestCase {
    /// EAP-IG scores (one integration step per pass, and several stacked) on two threads equal a single thread's.
    func checkAttribution(_ model: any InstrumentedModel, setThreads: (Int) -> Void, name: String) throws {
        let pairs = AttributionPropertyTests.randomPairs(7, vocab: model.vocabSize, seed: 22)
        let saved = BLAS.threads
        defer { BLAS.setThreads(saved); setThreads(saved) }
        for rowsPerPass in [1, 512] {
            var options = AttributionOptions(method: .eapIG, igSteps: 3)
            options.rowsPerPass = rowsPerPass
            func scores(_ threads: Int) throws -> ScoreMatrix {
                BLAS.setThreads(threads)
                setThreads(threads)
                XCTAssertEqual(BLAS.threads, threads)
                return try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 4, options: options)
            }
            let one = try scores(1), two = try scores(2)
            let scale = Double(one.values.map { abs($0) }.max()!)
            XCTAssertGreaterThan(scale, 0)
            XCTAssertLessThanOrEqual(ScoreMatrix.maxAbsDifference(one, two), 1e-5 * scale, "\(name), rows per pass \(rowsPerPass)")
        }
    }

    func testAttributionOnTwoThreads() throws {
        let gpt2 = AttributionPropertyTests.tinyModel(seed: 13)
        try checkAttribution(gpt2, setThreads: { gpt2.threads = $0 }, name: "gpt2")
        for family in [ModelFamily.llama, .phi] {
            let model = try FamilyAttributionPropertyTests.tinyModel(family, seed: 14)
            try checkAttribution(model, setThreads: { model.threads = $0 }, name: family.rawValue)
        }
    }

    func check(_ model: any InstrumentedModel, setThreads: (Int) -> Void, name: String) throws {
        let vocab = model.vocabSize
        let pairs = AttributionPropertyTests.randomPairs(6, vocab: vocab, seed: 21)
        let saved = BLAS.threads
        defer { BLAS.setThreads(saved); setThreads(saved) }
        BLAS.setThreads(1)
        setThreads(1)
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 3, options: AttributionOptions(method: .eap))
        var circuit = Circuit(graph: model.graph, scores: scores)
        circuit.applyTopN(model.graph.edgeCount / 3)
        let prompts = pairs.map(\.clean), labels = pairs.map(\.cleanLabel)
        func run() throws -> ([Float], [(probability: Double, rank: Int)]) {
            let evaluator = CircuitEvaluator(model: model)
            let eval = try evaluator.evaluate(circuit, pairs: pairs, batchSize: 3)
            return (eval.perSampleCircuit, try evaluator.test(circuit, prompts: prompts, labels: labels, batchSize: 3))
        }
        let one = try run()
        BLAS.setThreads(2)
        setThreads(2)
        XCTAssertEqual(BLAS.threads, 2, "OpenBLAS takes two threads")
        let two = try run()
        for i in pairs.indices {
            XCTAssertEqual(one.0[i], two.0[i], accuracy: 1e-6 * max(1, abs(one.0[i])), "\(name) faithfulness, sample \(i)")
            XCTAssertEqual(one.1[i].probability, two.1[i].probability, accuracy: 1e-6 * max(1e-3, one.1[i].probability), "\(name) test, prompt \(i)")
            XCTAssertEqual(one.1[i].rank, two.1[i].rank, "\(name) test rank, prompt \(i)")
        }
    }

    func testGPT2() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 13)
        try check(model, setThreads: { model.threads = $0 }, name: "gpt2")
    }

    func testLlamaAndPhi() throws {
        for family in [ModelFamily.llama, .phi] {
            let model = try FamilyAttributionPropertyTests.tinyModel(family, seed: 14)
            try check(model, setThreads: { model.threads = $0 }, name: family.rawValue)
        }
    }
}
