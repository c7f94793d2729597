import Foundation
import XCTest
import Core

/// `dkc discover` and `dkc evaluate` on the Llama and Phi fixture folders (config.json picks the family, the
/// folder's tokenizer.json tokenises), on the study's cell (city, type new, frequency all; attribution with the
/// study's batch size of eap.json, 16 for Llama and 4 for Phi; evaluation with eval.json's, 16), against the
/// reference numbers of the fixtures' llama/ and phi/ READMEs; then `dkc predict` on the same folder and test entities.
final class FamilyCircuitCommandsTests: XCTestCase {
    func testLlamaDiscoverAndEvaluate() throws { try run("llama") }
    func testPhiDiscoverAndEvaluate() throws { try run("phi") }

    private func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    private func lines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    private func run(_ family: String) throws {
        let f = Paths.fixtures.appendingPathComponent(family)
        guard FileManager.default.fileExists(atPath: f.appendingPathComponent("reference/eval.json").path) else {
            throw missingFixtures(f.path)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-fam-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let dkc = try Launch.executable("dkc")
        let model = f.appendingPathComponent("model").path, data = f.appendingPathComponent("reference/eap/city.jsonl").path
        let eval = try json(f.appendingPathComponent("reference/eval.json"))
        let test = dir.appendingPathComponent("test.jsonl")
        try (eval["test_entities"] as! [[String: Any]]).map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
            .joined(separator: "\n").write(to: test, atomically: true, encoding: .utf8)

        let scores = dir.appendingPathComponent("scores.nc")
        let attributionBatch = (try json(f.appendingPathComponent("reference/eap/eap.json"))["batch_size"] as! NSNumber).intValue
        let d = try Launch.run(dkc, ["discover", "--model", model, "--data", data, "--task", "city", "--type", "new", "--batch-size", "\(attributionBatch)",
                                     "--out", scores.path])
        XCTAssertEqual(d.status, 0, d.stdout + d.stderr)
        let table = try ScoresTable.read(from: scores)
        let cell = ResultCell(checkpoint: 0, task: "city", type: "new", frequency: "all")
        let mine = try XCTUnwrap(table[cell])
        XCTAssertEqual(mine.nSamples, 24)
        let reference = try SafetensorsFile(url: f.appendingPathComponent("reference/eap/scores.safetensors")).floats("eap_ig_scores")
        XCTAssertEqual(reference.count, table.edges.isEdge.count, "\(family): scores.nc has the reference's graph layout")
        var num = 0.0, den = 0.0
        for (i, r) in reference.enumerated() where table.edges.isEdge[i] == 1 {
            num += pow(Double(mine.scores[i]) - Double(r), 2); den += Double(r) * Double(r)
        }
        XCTAssertLessThanOrEqual((num / den).squareRoot(), 1e-4, "\(family) scores.nc vs eap_ig_scores (rel Frobenius)")

        let results = eval["results"] as! [[String: Any]]
        let sizes = results.map { "\(($0["topn"] as! NSNumber).intValue)" }.joined(separator: ",")
        let circuits = dir.appendingPathComponent("circuits.nc"), predictions = dir.appendingPathComponent("predictions.jsonl")
        let e = try Launch.run(dkc, ["evaluate", "--model", model, "--scores", scores.path, "--data", data, "--test-data", test.path,
                                     "--task", "city", "--topn", sizes, "--batch-size", "\((eval["batch_size"] as! NSNumber).intValue)", "--out", circuits.path,
                                     "--predictions", predictions.path])
        XCTAssertEqual(e.status, 0, e.stdout + e.stderr)
        let ct = try CircuitsTable.read(from: circuits)
        let c = try XCTUnwrap(ct[cell])
        XCTAssertEqual(c.cleanBaseline, (results[0]["clean_baseline"] as! NSNumber).doubleValue, accuracy: 1e-4)
        XCTAssertEqual(c.corruptedBaseline, (results[0]["corrupted_baseline"] as! NSNumber).doubleValue, accuracy: 1e-4)
        for r in results {
            let n = (r["topn"] as! NSNumber).intValue
            // Circuits from dkc's own scores: the edge sets equal the reference's (FamilyCellRunnerParityTests), so the
            // reference's faithfulness and sizes hold within the README's tolerance.
            XCTAssertEqual(try XCTUnwrap(ct.faithfulness(cell, topn: n)).value, (r["faithfulness"] as! NSNumber).doubleValue, accuracy: 1e-4,
                           "\(family) top-\(n)")
            XCTAssertEqual(c.circuits[n]?.nEdges, (r["edges_num"] as! NSNumber).intValue, "\(family) top-\(n) edges")
            XCTAssertEqual(c.circuits[n]?.nNodes, (r["nodes_num"] as! NSNumber).intValue, "\(family) top-\(n) nodes")
        }
        let rows = try lines(predictions), referenceRows = try lines(f.appendingPathComponent("reference/test_predictions.jsonl"))
        XCTAssertEqual(rows.count, referenceRows.count)
        for ref in referenceRows {
            let row = try XCTUnwrap(rows.first { ($0["topn"] as! NSNumber) == (ref["topn"] as! NSNumber) && $0["full_name"] as? String == ref["full_name"] as? String })
            XCTAssertEqual(row["clean_label"] as? String, ref["clean_label"] as? String, "\(family): the label's leading space follows the family")
            XCTAssertEqual(((row["token_prob"] as! [NSNumber])[0]).doubleValue, ((ref["token_prob"] as! [NSNumber])[0]).doubleValue, accuracy: 1e-5)
        }

        // Full-model acquisition on the family folder.
        let acquisition = dir.appendingPathComponent("acquisition.nc"), answers = dir.appendingPathComponent("answers.jsonl")
        let p = try Launch.run(dkc, ["predict", "--model", model, "--test-data", test.path, "--out", acquisition.path, "--predictions", answers.path])
        XCTAssertEqual(p.status, 0, p.stdout + p.stderr)
        let answerRows = try lines(answers)
        XCTAssertEqual(answerRows.count, 5 * (eval["test_entities"] as! [Any]).count, "every test entity × attribute")
        XCTAssertFalse(try AcquisitionTable.read(from: acquisition).cells.isEmpty)
        if family == "llama" {
            // <s> + prompt, label without a leading space: the city ranks are the study's whole-model test (top-5,000 ≥ 3,526 edges).
            for ref in referenceRows where (ref["topn"] as! NSNumber).intValue == 5000 {
                let row = try XCTUnwrap(answerRows.first { $0["attribute"] as? String == "city" && $0["full_name"] as? String == ref["full_name"] as? String })
                XCTAssertEqual((row["label_rank"] as! NSNumber).intValue, (ref["token_rank"] as! NSNumber).intValue, "llama \(ref["full_name"]!)")
            }
        }
    }
}
