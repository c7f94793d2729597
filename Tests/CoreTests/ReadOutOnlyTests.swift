import Foundation
import XCTest
@testable import Core

/// A `readOutOnly` forward (what circuit evaluation runs) runs GPT-2's last MLP at the read-out rows alone. Its
/// logits must be a full run's, for plain, recorded, patched (corrupted differences) and zero-ablated runs, and the
/// recorded output of that MLP must be the full run's at the read-out rows, which is all the logits' rebuilt input
/// reads.
final class ReadOutOnlyTests: XCTestCase {
    func testReadOutOnlyRunsGiveTheFullRunsLogits() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 31)
        let g = model.graph, V = model.vocabSize
        let pairs = AttributionPropertyTests.randomPairs(5, vocab: V, seed: 32)
        let batch = try PromptBatch(pairs: pairs, config: model.config)
        XCTAssertNotEqual(Set(batch.lengths).count, 1, "prompts of several lengths, so read-out rows differ from the last row")
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: 5, options: AttributionOptions(method: .eap))
        var circuit = Circuit(graph: g, scores: scores)
        circuit.applyTopN(g.edgeCount / 4)
        XCTAssertTrue(circuit.nodeInGraph[g.logitsNode], "the circuit rebuilds the logits' input from the record")
        let BTC = batch.batch * batch.seqLen * model.config.nEmbd
        let record = UnsafeMutablePointer<Float>.allocate(capacity: g.nForward * BTC)
        defer { record.deallocate() }
        let lastMLP = g.mlpForward(layer: g.nLayers - 1), rows = batch.readRows, C = model.config.nEmbd

        func logits(_ readOutOnly: Bool, _ mode: String) -> ([Float], [Float]) {
            let out: UnsafeMutablePointer<Float>
            switch mode {
            case "plain":
                out = model.forward(batch, clean: true, readOutOnly: readOutOnly)
            case "recorded":
                out = model.forward(batch, clean: false, record: record, recordMode: .set, readOutOnly: readOutOnly)
            case "patched":
                model.forward(batch, clean: false, record: record, recordMode: .set, readOutOnly: readOutOnly)
                out = model.forward(batch, clean: true, record: record, recordMode: .subtract, patch: .init(circuit: circuit),
                                    readOutOnly: readOutOnly)
            default:
                out = model.forward(batch, clean: true, record: record, recordMode: .negate, patch: .init(circuit: circuit),
                                    readOutOnly: readOutOnly)
            }
            let recorded = mode == "plain" ? [] : rows.flatMap { Array(UnsafeBufferPointer(start: record + lastMLP * BTC + $0 * C, count: C)) }
            return (Array(UnsafeBufferPointer(start: out, count: batch.batch * V)), recorded)
        }
        for mode in ["plain", "recorded", "patched", "zero-ablated"] {
            let (full, fullRecord) = logits(false, mode), (short, shortRecord) = logits(true, mode)
            let scale = full.map { abs($0) }.max()!
            let worst = zip(full, short).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "\(mode): logits differ by \(worst)")
            let worstRecord = zip(fullRecord, shortRecord).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worstRecord, 1e-5 * max(1, fullRecord.map { abs($0) }.max() ?? 0), "\(mode): recorded last MLP")
        }
    }

    /// Attribution runs read-out-only too, then a backward pass over stacked copies: the gradients of every column
    /// must be the full run's, and so must the record of the last copy subtracted from a corrupted run (the last MLP's
    /// at the read-out rows, which is all the logits' column reads).
    func testBackwardAfterAReadOutOnlyRunGivesTheFullRunsGradients() throws {
        let model = AttributionPropertyTests.tinyModel(seed: 33)
        let g = model.graph, V = model.vocabSize, C = model.config.nEmbd
        let batch = try PromptBatch(pairs: AttributionPropertyTests.randomPairs(5, vocab: V, seed: 34), config: model.config)
        XCTAssertNotEqual(Set(batch.lengths).count, 1)
        let copies = 3, stacked = batch.repeated(copies), BTC = batch.batch * batch.seqLen * C
        var rng = SplitMix64(seed: 35)
        let embedding = (0..<copies * BTC).map { _ in rng.nextGaussian() }
        let dLogits = (0..<copies * batch.batch * V).map { _ in rng.nextGaussian() }
        let lastMLP = g.mlpForward(layer: g.nLayers - 1), rows = batch.readRows

        func run(_ readOutOnly: Bool) -> (grads: [Float], record: [Float]) {
            var record = [Float](repeating: .nan, count: g.nForward * BTC)
            var grads = [Float](repeating: 0, count: g.nBackward * BTC)
            record.withUnsafeMutableBufferPointer { rec in
                embedding.withUnsafeBufferPointer { emb in
                    model.forward(batch, clean: false, record: rec.baseAddress!, recordMode: .set, readOutOnly: readOutOnly)
                    model.forward(stacked, clean: true, record: rec.baseAddress!, recordMode: .subtractLastCopy(of: copies),
                                  replace: [0: emb.baseAddress!], computeLogits: false, readOutOnly: readOutOnly)
                }
            }
            grads.withUnsafeMutableBufferPointer { gr in
                dLogits.withUnsafeBufferPointer { model.backward(dLogits: $0.baseAddress!, grads: gr.baseAddress!, copies: copies) }
            }
            return (grads, record)
        }
        let full = run(false), short = run(true)
        let scale = full.grads.map { abs($0) }.max()!
        XCTAssertGreaterThan(scale, 0)
        for column in 0..<g.nBackward {
            let range = column * BTC..<(column + 1) * BTC
            let worst = zip(full.grads[range], short.grads[range]).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5 * scale, "gradient column \(column) differs by \(worst)")
        }
        let mlpColumn = g.mlpBackward(layer: g.nLayers - 1) * BTC
        XCTAssertGreaterThan(full.grads[mlpColumn..<mlpColumn + BTC].map { abs($0) }.max()!, 0, "the last MLP's column carries a gradient")
        let recordScale = full.record.map { abs($0) }.max()!
        for f in 0..<g.nForward {
            var compared: [Int] = []
            for row in f == lastMLP ? rows : Array(0..<batch.batch * batch.seqLen) {
                let start = f * BTC + row * C
                compared += Array(start..<start + C)
            }
            let worst = compared.map { abs(full.record[$0] - short.record[$0]) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5 * recordScale, "record of node \(f) differs by \(worst)")
        }
    }
}
