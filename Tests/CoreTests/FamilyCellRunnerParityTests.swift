import Foundation
import XCTest
@testable import Core
@testable import DistCircuits

/// The code path of `dkc discover` / `evaluate` / `sweep` on Llama and Phi (model loaded by `CircuitModel.load`
/// from the fixture folder's config.json, circuit data read through `CircuitSample`, `CellRunner`) against the
/// study's numbers (fixtures llama/ and phi/ READMEs: reference/eap/, eval.json, test_predictions.jsonl), with the
/// READMEs' tolerances.
final class FamilyCellRunnerParityTests: XCTestCase {
    func testLlamaDiscoveryMatchesTheStudy() throws { try discovery("llama", family: .llama, topN: [10, 100, 1000]) }
    func testPhiDiscoveryMatchesTheStudy() throws { try discovery("phi", family: .phi, topN: [10, 50]) }
    func testLlamaEvaluationAndPredictionsMatchTheStudy() throws { try evaluation("llama") }
    func testPhiEvaluationAndPredictionsMatchTheStudy() throws { try evaluation("phi") }

    private func load(_ name: String) throws -> (CircuitModel, any Tokenizer) {
        let folder = try FamilyFixtures.model(name)
        return (try CircuitModel.load(folder: folder), try TokenizerLoader.resolve(explicit: nil, model: folder))
    }

    /// city.jsonl read as `dkc discover` reads it (type new, frequency all), attributed by the cell runner with the
    /// study's batch size.
    private func discovery(_ name: String, family: ModelFamily, topN: [Int]) throws {
        let (loaded, tok) = try load(name)
        XCTAssertEqual(loaded.config.family, family)
        XCTAssertTrue(loaded.model is InstrumentedFamily)
        XCTAssertEqual(loaded.model.graph.parallel, family == .phi, "Phi's blocks are parallel")
        let file = try FamilyAttributionChecks.eap(name, "city.jsonl")
        let filter = try CellFilter(type: "new", frequency: OutputLabels.all, buckets: try FrequencyBuckets.forData(at: file))
        let pairs = try CircuitSample.pairs(try CircuitSample.read(file), filter: filter, task: .city, encoder: tok, source: file.path)
        XCTAssertEqual(pairs, try FamilyAttributionChecks.cityPairs(name), "records read through CircuitSample give the study's prompts and labels")
        let batchSize = (try FamilyAttributionChecks.eapJSON(name)["batch_size"] as! NSNumber).intValue
        let runner = CellRunner(loaded)
        var seen: [Int] = []
        let result = try runner.discover(pairs, options: CellOptions(batchSize: batchSize, topn: [10])) { seen.append($0.done) }
        XCTAssertEqual(seen.last, 24)
        XCTAssertEqual(result.nSamples, 24)
        let ref = try FamilyAttributionChecks.referenceScores(name, "eap_ig_scores")
        let rel = ScoreMatrix.relativeFrobenius(result.scores, ref)
        print("\(name) CellRunner EAP-IG vs eap_ig_scores: rel Frobenius \(rel)")
        XCTAssertLessThanOrEqual(rel, 1e-4)
        for n in topN {
            var a = Circuit(graph: runner.graph, scores: result.scores), b = Circuit(graph: runner.graph, scores: ref)
            a.applyTopN(n); b.applyTopN(n)
            XCTAssertEqual(a.edgeInGraph, b.edgeInGraph, "\(name) top-\(n) edge set")
        }
    }

    /// run_eval and run_test for every top-n of eval.json through `CellRunner.evaluate`, and the prediction rows of
    /// test_predictions.jsonl: the test label follows the family's rule (Llama: no leading space).
    private func evaluation(_ name: String) throws {
        let (loaded, tok) = try load(name)
        let eval = try FamilyAttributionChecks.evalJSON(name)
        let entities = try (eval["test_entities"] as! [[String: Any]]).map { try XCTUnwrap(Entity(jsonObject: JSONValue(foundation: $0))) }
        let targets = TestTarget.all(entities, buckets: FrequencyBuckets(buckets: FrequencyBuckets.defaultBuckets, manifest: nil))
        XCTAssertEqual(targets.reduce(0) { $0 + $1.entities.count }, entities.count)
        let pairs = try FamilyAttributionChecks.pairs(name, try FamilyAttributionChecks.jsonLines(try FamilyFixtures.reference(name, "eval_samples.jsonl")))
        let results = eval["results"] as! [[String: Any]]
        let sizes = results.map { ($0["topn"] as! NSNumber).intValue }
        let runner = CellRunner(loaded)
        let result = try runner.evaluate(scores: try FamilyAttributionChecks.referenceScores(name, "eap_ig_scores"), pairs: pairs, targets: targets,
                                         task: .city, encoder: tok,
                                         options: CellOptions(batchSize: (eval["batch_size"] as! NSNumber).intValue, topn: sizes),
                                         keepPredictions: true)
        var worstMean = 0.0, worstProb = 0.0, windowRanks = 0
        for r in results { worstMean = max(worstMean, try CellRunnerParityTests.checkRunEval(result, r, label: name)) }
        let reference = try FamilyAttributionChecks.jsonLines(try FamilyFixtures.reference(name, "test_predictions.jsonl"))
        XCTAssertEqual(result.predictions.count, reference.count)
        XCTAssertFalse(reference.isEmpty)
        let windows = Dictionary(uniqueKeysWithValues: results.map { (($0["topn"] as! NSNumber).intValue, $0["test_rank_windows"] as! [[String: Any]]) })
        let names = entities.map(\.fullName)
        let space = loaded.config.family.circuitLabelHasLeadingSpace ? " " : ""
        for ref in reference {
            let (dp, exact) = try CellRunnerParityTests.checkPrediction(result, ref, windows: windows, names: names, labelSpace: space, label: name)
            worstProb = max(worstProb, dp)
            if !exact { windowRanks += 1 }
        }
        print("\(name) CellRunner evaluation: means max |Δ| \(worstMean); prediction probability max |Δ| \(worstProb); ranks outside exact \(windowRanks)")
    }
}
