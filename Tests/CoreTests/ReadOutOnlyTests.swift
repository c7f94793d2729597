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
}
