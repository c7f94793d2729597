import Foundation
import XCTest
@testable import Core

/// Component analysis (docs/components.md) on the Llama and Phi fixture models: the subject rules of the
/// study's analyzer.py per family, the logit lens's last point against the model's own logits, and every
/// number against the study's `ComponentAnalyzer` itself where its code and a Python with torch are at hand.
final class FamilyComponentTests: XCTestCase {
    func testLlamaLensAndSubjectRule() throws { try checkLensAndSubject("llama") }
    func testPhiLensAndSubjectRule() throws { try checkLensAndSubject("phi") }

    func testLlamaAgainstTheStudysAnalyzer() throws { try checkAgainstStudy("llama") }
    func testPhiAgainstTheStudysAnalyzer() throws { try checkAgainstStudy("phi") }

    static func samples(_ family: String, count: Int) throws -> [CircuitSample] {
        Array(try CircuitSample.readJSONL(try FamilyFixtures.reference(family, "eap/city.jsonl")).prefix(count))
    }

    static func analyze(_ family: String, _ samples: [CircuitSample]) throws -> (ComponentAnalyzer, [ComponentPrompt], [EntityComponents]) {
        let model = try FamilyAttributionChecks.model(family)
        let tok = try FamilyAttributionChecks.tokenizer(family)
        let analyzer = ComponentAnalyzer(model: model)
        let prompts = try samples.enumerated().map {
            try ComponentPrompt(sample: $1, task: .city, tokenizer: tok, family: analyzer.family, bos: analyzer.bos, index: $0)
        }
        return (analyzer, prompts, try analyzer.analyze(prompts, batchSize: 5))
    }

    /// The subject is the name's tokens right after BOS (Llama by token run, Phi by characters); at the last lens
    /// point (the final residual through the final norm, twice as the study normalises) the label's rank is the
    /// model's own rank and its probability the model's within 1e-4 (relative).
    private func checkLensAndSubject(_ family: String) throws {
        let samples = try Self.samples(family, count: 12)
        let (analyzer, prompts, out) = try Self.analyze(family, samples)
        let tok = try FamilyAttributionChecks.tokenizer(family)
        let model = try FamilyAttributionChecks.model(family)
        let V = model.vocabSize
        let L = model.config.numLayers
        for (i, (p, s)) in zip(prompts, samples).enumerated() {
            XCTAssertEqual(p.subjectRange, 1..<(1 + tok.encode(s.cleanSubject).count), "\(family) sample \(i) subject range")
            XCTAssertEqual(p.label, s.cleanLabelIndex, "\(family) sample \(i): the label is the circuit data's")
            let batch = try model.promptBatch(prompts: [p.tokens], labels: [p.label], firstIndex: i)
            let logits = Array(UnsafeBufferPointer(start: model.forward(batch), count: V))
            let label = logits[p.label]
            XCTAssertEqual(out[i].rankLast[L], logits.filter { $0 > label }.count, "\(family) sample \(i) final-point rank")
            let m = Double(logits.max()!), z = logits.reduce(0.0) { $0 + exp(Double($1) - m) }
            let prob = exp(Double(label) - m) / z
            XCTAssertEqual(out[i].probLast[L], prob, accuracy: 1e-4 * prob, "\(family) sample \(i) final-point probability")
            XCTAssertEqual(out[i].subjectRatio.count, L * model.config.numHeads)
            XCTAssertTrue(out[i].subjectRatio.allSatisfy(\.isFinite) && out[i].relationRatio.allSatisfy(\.isFinite))
        }
        XCTAssertEqual(analyzer.family.rawValue, family)
    }

    /// benchmarks/reference/family_components.py runs the study's analyzer.py on the same model folder and samples;
    /// subject ranges and minimum subject ranks are identical, lens probabilities within 1e-4 (relative), ranks
    /// identical or within 2 of a float32 neighbour's, DLA ratios within 2e-3 (relative, 1e-5 absolute) — the
    /// GPT-2 component tolerances. The analyzer runs live (a Python with torch and transformers, and `$DKC_STUDY_CODE`
    /// holding the study's code) or comes recorded (`CrossCheck`).
    private func checkAgainstStudy(_ family: String) throws {
        let samplesFile = CrossCheck.file(family, "component_samples.jsonl"), rowsFile = CrossCheck.file(family, "components.txt")
        let mode = try CrossCheck.mode(needsStudy: true, recorded: [samplesFile, rowsFile])
        let samples = try Self.samples(family, count: 8)
        let (analyzer, prompts, out) = try Self.analyze(family, samples)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-components-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        let sampleData = Data((samples.map(\.jsonObject.compactText).joined(separator: "\n") + "\n").utf8)
        try CrossCheck.inputs(sampleData, samplesFile, mode)
        try sampleData.write(to: file)
        let output = String(decoding: try CrossCheck.output(rowsFile, mode) {
            let script = Paths.sourceRoot.appendingPathComponent("benchmarks/reference/family_components.py").path
            let shims = Paths.fixtures.deletingLastPathComponent().appendingPathComponent("reference-bench").path
            let (status, output) = try FamilyFixtures.runPython("import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                                                                [script, CrossCheck.studyCode!, shims, try FamilyFixtures.model(family).path, family, file.path])
            XCTAssertEqual(status, 0, output)
            return Data(output.split(separator: "\n").filter { $0.hasPrefix("ROW ") }.map { $0 + "\n" }.joined().utf8)
        }, as: UTF8.self)
        let rows = try output.split(separator: "\n").filter { $0.hasPrefix("ROW ") }.map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.dropFirst(4).utf8)) as? [String: Any])
        }
        XCTAssertEqual(rows.count, samples.count, output)
        var worstProb = 0.0, worstDLA = 0.0, rankDiffs = 0
        for (i, (e, r)) in zip(out, rows).enumerated() {
            let range = AttributionFixtures.ints(r["subject_range"])
            XCTAssertEqual(prompts[i].subjectRange, range[0]..<range[1], "\(family) sample \(i) subject range")
            XCTAssertEqual(e.minRankAtSubject, AttributionFixtures.ints(r["min_rank"]), "\(family) sample \(i) min rank at subject")
            for (a, b) in zip(e.probLast + e.subjectTokenProb, AttributionFixtures.doubles(r["prob"]) + AttributionFixtures.doubles(r["subject_prob"])) {
                worstProb = max(worstProb, abs(a - b) / max(b, 1e-300))
                XCTAssertTrue(ComponentParityTests.relClose(a, b, abs: 1e-9, rel: 1e-4), "\(family) sample \(i) probability \(a) vs \(b)")
            }
            for (a, b) in zip(e.rankLast, AttributionFixtures.ints(r["rank"])) where a != b {
                rankDiffs += 1
                XCTAssertLessThanOrEqual(abs(a - b), 2, "\(family) sample \(i) lens rank \(a) vs \(b)")
            }
            for (a, b) in zip(e.subjectRatio + e.relationRatio, AttributionFixtures.doubles(r["subject_ratio"]) + AttributionFixtures.doubles(r["relation_ratio"])) {
                worstDLA = max(worstDLA, abs(a - b))
                XCTAssertTrue(ComponentParityTests.relClose(a, b, abs: 1e-5, rel: 2e-3), "\(family) sample \(i) DLA ratio \(a) vs \(b)")
            }
        }
        XCTAssertEqual(analyzer.family.rawValue, family)
        print("\(family) components vs the study's analyzer: probability max rel \(worstProb), ranks differing \(rankDiffs), DLA max abs \(worstDLA)")
    }
}
