import Foundation
import XCTest
@testable import Core

/// The component analysis (logit lens, DLA source ratios, head classes, circuit heads) against the study's
/// `ComponentAnalyzer` and notebook cells (fixtures README, "reference/components.json"). Numbers are compared
/// with the float64 run (`entities_f64`, `_f64` keys) within the README's tolerances.
final class ComponentParityTests: XCTestCase {
    static func reference() throws -> [String: Any] { try AttributionFixtures.json("reference/components.json") }

    static func samples() throws -> [CircuitSample] {
        try CircuitSample.readJSONL(try AttributionFixtures.requireFixtures().appendingPathComponent("reference/eap/city.jsonl"))
    }

    static func prompts() throws -> [ComponentPrompt] {
        let tok = try EAPParityTests.tokenizer()
        return try samples().enumerated().map { try ComponentPrompt(sample: $1, task: .city, tokenizer: tok, index: $0) }
    }

    static func relClose(_ a: Double, _ ref: Double, abs absTol: Double, rel: Double) -> Bool { abs(a - ref) <= absTol + rel * abs(ref) }

    func testPromptsSubjectRangesAndLabels() throws {
        let ref = try Self.reference()["entities"] as! [[String: Any]]
        let prompts = try Self.prompts()
        XCTAssertEqual(prompts.count, ref.count)
        for (i, (p, r)) in zip(prompts, ref).enumerated() {
            XCTAssertEqual([50256] + p.tokens, AttributionFixtures.ints(r["tokens"]), "entity \(i) tokens")
            let range = AttributionFixtures.ints(r["subject_range"])
            XCTAssertEqual([p.subjectRange.lowerBound, p.subjectRange.upperBound], range, "entity \(i) subject range")
            XCTAssertEqual(p.label, (r["answer_token"] as! NSNumber).intValue, "entity \(i) answer token")
            XCTAssertEqual(p.subjectLastToken, (r["subject_last_token"] as! NSNumber).intValue, "entity \(i) subject last token")
        }
    }

    /// A subject the decoded prompt does not hold is a named error, not a trap.
    func testMissingSubjectIsNamedError() throws {
        let tok = try EAPParityTests.tokenizer()
        XCTAssertNil(ComponentPrompt.subjectRange(tokens: [50256] + tok.encode("Ann lives in the city of"), subject: "Bob", tokenizer: tok))
        XCTAssertEqual(ComponentPrompt.subjectRange(tokens: [50256] + tok.encode("Ann Lee lives in the city of"), subject: "Ann Lee", tokenizer: tok),
                       1..<3)
    }

    func testLogitLensAndDLAPerEntity() throws {
        let model = try EAPParityTests.model()
        let analyzer = ComponentAnalyzer(model: model)
        let prompts = try Self.prompts()
        let mine = try analyzer.analyze(prompts, batchSize: 8)
        let ref64 = try Self.reference()["entities_f64"] as! [[String: Any]]
        XCTAssertEqual(ComponentAnalyzer.lensLabels(nLayers: 2), AttributionFixtures.strings(try Self.reference()["lens_labels"]))
        var worstProb = 0.0, worstDLA = 0.0, windowed = 0
        for (i, (e, r)) in zip(mine, ref64).enumerated() {
            let prob = AttributionFixtures.doubles(r["prob"]), subj = AttributionFixtures.doubles(r["prob_subject_last_token"])
            let ranks = AttributionFixtures.ints(r["rank_last"]), minRanks = AttributionFixtures.ints(r["min_rank_subject"])
            let windows = (r["rank_last_window"] as! [Any]).map { AttributionFixtures.ints($0) }
            for k in 0..<3 {
                for (a, b, what) in [(e.probLast[k], prob[k], "prob"), (e.subjectTokenProb[k], subj[k], "subject token prob")] {
                    worstProb = max(worstProb, abs(a - b) / max(b, 1e-300))
                    XCTAssertTrue(Self.relClose(a, b, abs: 1e-9, rel: 1e-4), "entity \(i) lens \(k) \(what): \(a) vs \(b)")
                }
                if e.rankLast[k] != ranks[k] {
                    windowed += 1
                    XCTAssertTrue((windows[k][0]...windows[k][1]).contains(e.rankLast[k]), "entity \(i) lens \(k) rank \(e.rankLast[k]) outside \(windows[k])")
                }
                XCTAssertEqual(e.minRankAtSubject[k], minRanks[k], "entity \(i) lens \(k) min rank at subject")
            }
            let rs = (r["dla_subject_ratio"] as! [Any]).flatMap { AttributionFixtures.doubles($0) }
            let rr = (r["dla_relation_ratio"] as! [Any]).flatMap { AttributionFixtures.doubles($0) }
            for j in 0..<8 {
                for (a, b, what) in [(e.subjectRatio[j], rs[j], "subject"), (e.relationRatio[j], rr[j], "relation")] {
                    worstDLA = max(worstDLA, abs(a - b))
                    XCTAssertTrue(Self.relClose(a, b, abs: 1e-5, rel: 2e-3), "entity \(i) head \(j) \(what) ratio: \(a) vs \(b)")
                }
            }
        }
        print("components parity: lens prob max rel \(worstProb), ranks differing (inside windows) \(windowed), DLA max abs \(worstDLA)")

        // Batching does not change a prompt's numbers beyond float rounding; ranks stay.
        let single = try analyzer.analyze(Array(prompts.prefix(3)), batchSize: 1)
        for (a, b) in zip(single, mine.prefix(3)) {
            XCTAssertEqual(a.rankLast, b.rankLast)
            for (x, y) in zip(a.probLast, b.probLast) { XCTAssertEqual(x, y, accuracy: 1e-6 * y + 1e-12) }
        }
    }

    func testLogitLensBucketMeans() throws {
        let model = try EAPParityTests.model()
        let mine = try ComponentAnalyzer(model: model).analyze(try Self.prompts(), batchSize: 24)
        let samples = try Self.samples()
        let means = try Self.reference()["logit_lens_means"] as! [String: [String: Any]]
        let buckets: [(String, (Int) -> Bool)] = [("high", { $0 > 5 }), ("medium", { $0 >= 2 && $0 <= 5 }), ("low", { $0 == 1 }), ("all", { _ in true })]
        for (name, contains) in buckets {
            let ref = means[name]!
            let picked = zip(samples, mine).filter { $0.0.type == "new" && contains($0.0.frequency) }.map(\.1)
            let m = LogitLensMeans(picked, lensCount: 3)
            XCTAssertEqual(m.count, (ref["n"] as! NSNumber).intValue, name)
            let prob = AttributionFixtures.doubles(ref["prob_mean_f64"])
            let rank = AttributionFixtures.doubles(ref["rank_last_plus1_mean_f64"])
            let subj = AttributionFixtures.doubles(ref["min_rank_subject_plus1_mean_f64"])
            for k in 0..<3 {
                XCTAssertTrue(Self.relClose(m.probability[k], prob[k], abs: 1e-9, rel: 1e-4), "\(name) lens \(k) prob mean")
                XCTAssertEqual(m.rankPlus1[k], rank[k], accuracy: 1e-9, "\(name) lens \(k) rank mean")
                XCTAssertEqual(m.subjectRankPlus1[k], subj[k], accuracy: 1e-9, "\(name) lens \(k) subject rank mean")
            }
        }
    }

    /// Cell 34: per-head mean ratios over the city/new/high samples and their classes; `heads_all` over every new sample.
    func testHeadMeansAndClasses() throws {
        let model = try EAPParityTests.model()
        let mine = try ComponentAnalyzer(model: model).analyze(try Self.prompts(), batchSize: 8)
        let root = try Self.reference()
        let ref64 = root["entities_f64"] as! [[String: Any]]
        for (key, sKey, rKey, cKey) in [("heads", "mean_subject_ratio_f64", "mean_relation_ratio_f64", "class_f64"),
                                        ("heads_all", "mean_subject_ratio", "mean_relation_ratio", "class")] {
            let heads = root[key] as! [String: Any]
            let idx = AttributionFixtures.ints(heads["eval_entities"])
            let ratios = HeadRatios(idx.map { mine[$0] }, nLayers: 2, nHeads: 4)
            let refS = (heads[sKey] as! [Any]).flatMap { AttributionFixtures.doubles($0) }
            let refR = (heads[rKey] as! [Any]).flatMap { AttributionFixtures.doubles($0) }
            for j in 0..<8 {
                // Tolerance scale: mean of the samples' |ratio| (README).
                let scaleS = idx.map { abs((ref64[$0]["dla_subject_ratio"] as! [[Double]]).flatMap { $0 }[j]) }.reduce(0, +) / Double(idx.count)
                let scaleR = idx.map { abs((ref64[$0]["dla_relation_ratio"] as! [[Double]]).flatMap { $0 }[j]) }.reduce(0, +) / Double(idx.count)
                XCTAssertLessThanOrEqual(abs(ratios.meanSubject[j] - refS[j]), 1e-5 + 2e-3 * scaleS, "\(key) head \(j) mean subject ratio")
                XCTAssertLessThanOrEqual(abs(ratios.meanRelation[j] - refR[j]), 1e-5 + 2e-3 * scaleR, "\(key) head \(j) mean relation ratio")
            }
            let classes = (heads[cKey] as! [Any]).flatMap { AttributionFixtures.strings($0) }
            XCTAssertEqual(ratios.classes.map(\.rawValue), classes, "\(key) classes")
        }
        XCTAssertEqual(HeadClass(meanSubjectRatio: 10, meanRelationRatio: 1), .mixture, "boundary is mixture")
        XCTAssertEqual(HeadClass(meanSubjectRatio: 1, meanRelationRatio: 10), .mixture, "boundary is mixture")
        XCTAssertEqual(HeadClass(meanSubjectRatio: 0, meanRelationRatio: 0), .mixture, "0/0 is mixture")
        XCTAssertEqual(HeadClass(meanSubjectRatio: -11, meanRelationRatio: 1), .mover)
        XCTAssertEqual(HeadClass(meanSubjectRatio: 0.0099, meanRelationRatio: -0.1), .relation)
    }

    /// Cells 34–39 on the top-10/50/200 circuits of the EAP-IG scores, with the reference's head classes.
    func testCircuitHeads() throws {
        let model = try EAPParityTests.model()
        let root = try Self.reference()
        let classes = ((root["heads"] as! [String: Any])["class"] as! [Any]).flatMap { AttributionFixtures.strings($0) }
            .map { HeadClass(rawValue: $0)! }
        let scores = try AttributionFixtures.scores("eap_ig_scores")
        let circuits = root["circuits"] as! [String: [String: Any]]
        for n in [10, 50, 200] {
            let ref = circuits[String(n)]!
            var c = Circuit(graph: model.graph, scores: scores)
            c.applyTopN(n)
            c.pruneDeadNodes()
            let heads = CircuitHeads(circuit: c, classes: classes)
            XCTAssertEqual(heads.nodeCount, (ref["count_included_nodes"] as! NSNumber).intValue, "top-\(n) node count")
            XCTAssertEqual(heads.heads.map { [$0.layer, $0.head] }, (ref["heads_in_circuit"] as! [Any]).map { AttributionFixtures.ints($0) }, "top-\(n) heads")
            let props = ref["proportion"] as! [String: NSNumber]
            let counts = ref["layer_counts"] as! [String: Any]
            for (ci, cls) in HeadClass.allCases.enumerated() {
                XCTAssertEqual(heads.heads(of: cls).map { [$0.layer, $0.head] }, (ref[cls.rawValue] as! [Any]).map { AttributionFixtures.ints($0) },
                               "top-\(n) \(cls.rawValue) heads")
                XCTAssertEqual(heads.proportion(of: cls), props[cls.rawValue]!.doubleValue, "top-\(n) \(cls.rawValue) proportion")
                XCTAssertEqual(heads.layerCounts[ci], AttributionFixtures.ints(counts[cls.rawValue]), "top-\(n) \(cls.rawValue) layer counts")
            }
        }
    }
}
