import Foundation
import XCTest
@testable import Core
@testable import DistCircuits

/// Greedy decoding with the key/value cache against full recomputation, and the study's reading of a
/// generation (batch_predict.py).
final class AcquisitionTests: XCTestCase {
    private func fixtureModel() throws -> ParameterArena { try HFCheckpoint.load(folder: try ModelFixtures.model()) }

    /// The study's reading of a full 15-token greedy decoding (tokens from fresh full forward passes, text
    /// from prompt + continuation as the study decodes it) equals what `Acquisition.predict` returns with
    /// its key/value cache, early stop at ".", and continuation-only decoding.
    func testPredictionsEqualTheStudysReadingOfFullDecoding() throws {
        let arena = try fixtureModel()
        let tok = try EAPParityTests.tokenizer()
        let eval = try AttributionFixtures.json("reference/eval.json")
        let entities = try (eval["test_entities"] as! [[String: Any]]).prefix(4).map { try XCTUnwrap(Entity(jsonObject: JSONValue(foundation: $0))) }
        let model = GPT2(params: arena)
        let rows = try Acquisition.predict(entities: Array(entities), decoder: KnowledgeAcquisition(model: model), tokenizer: tok,
                                           options: .init(maxNewTokens: 15, batchSize: 6))
        XCTAssertEqual(rows.count, 20)
        let V = arena.config.vocabSize
        for r in rows {
            let prompt = r.attribute.prompt(subject: r.entity.fullName)
            let ids = tok.encode(prompt)
            var sequence = ids
            for _ in 0..<15 {
                let logits = try model.forward(tokens: sequence, batch: 1, seqLen: sequence.count, positions: [sequence.count - 1])
                var best = 0
                for t in 1..<V where logits[t] > logits[best] { best = t }
                if best == 50256 { break }
                sequence.append(best)
            }
            let full = Array(sequence.dropFirst(ids.count))
            XCTAssertEqual(Array(full.prefix(r.generated.count)), r.generated, "\(r.entity.fullName) \(r.attribute): cached tokens")
            let reference = Acquisition.answer(prompt: prompt, promptTokens: ids, generated: full, tokenizer: tok)
            XCTAssertEqual(r.prediction, reference.prediction, "\(r.entity.fullName) \(r.attribute)")
            XCTAssertTrue(reference.continuation.hasPrefix(r.continuation))
            XCTAssertEqual(r.exactMatch, reference.prediction == r.groundTruth)
            XCTAssertEqual(r.queryCorrect, reference.prediction == r.groundTruth || reference.prediction.isEmpty
                               || r.groundTruth.range(of: reference.prediction) != nil)
            XCTAssertEqual(r.groundTruth, r.entity.value(of: r.attribute))
        }
        let summary = Acquisition.summarize(rows, checkpoint: 0, buckets: FrequencyBuckets(buckets: FrequencyBuckets.defaultBuckets, manifest: nil))
        XCTAssertEqual(summary.values.reduce(0) { $0 + $1.nEntities }, rows.count)
        for (k, v) in summary {
            let group = rows.filter { $0.attribute.rawValue == k.attribute && $0.entity.type.rawValue == k.type }
                .filter { FrequencyBuckets(buckets: FrequencyBuckets.defaultBuckets, manifest: nil).name(of: $0.entity.frequency) == k.frequency }
            XCTAssertEqual(v.nEntities, group.count)
            XCTAssertEqual(v.hitsAt10, Double(group.filter { $0.labelRank < 10 }.count) / Double(group.count))
            XCTAssertEqual(v.exactMatch, Double(group.filter(\.exactMatch).count) / Double(group.count))
            XCTAssertEqual(v.queryAccuracy, Double(group.filter(\.queryCorrect).count) / Double(group.count))
        }
        // Per entity: row e × attribute a of the predictions, in the entities' order.
        let perEntity = try Acquisition.entityResults(rows, entities: Array(entities))
        for (n, r) in rows.enumerated() {
            XCTAssertEqual(perEntity.query[r.attribute.rawValue]?[n / 5], r.queryCorrect ? 1 : 0)
            XCTAssertEqual(perEntity.exact[r.attribute.rawValue]?[n / 5], r.exactMatch ? 1 : 0)
        }
        XCTAssertThrowsError(try Acquisition.entityResults(rows, entities: Array(entities.reversed())))
    }

    /// A model whose every next token is "." (LN_f weight 0, bias along the "." embedding) stops after one
    /// token; one whose next token is end-of-text generates nothing. Predictions equal the full decoding's.
    func testStopsAtPeriodAndEndOfText() throws {
        let tok = try EAPParityTests.tokenizer()
        let e = Entity(fullName: "Ann Lee", birthDate: "1", birthMonth: "May", birthYear: "1990", city: "Reno, NV", major: "Law",
                       university: "Yale University", company: "IBM", frequency: 3, type: .new)
        let prompt = CircuitTask.birthday.prompt(subject: e.fullName), ids = tok.encode(prompt)
        for (token, expected) in [(tok.encode(".")[0], 1), (50256, 0)] {
            let arena = try fixtureModel()
            let C = arena.config.nEmbd, p = arena.views
            for i in 0..<C { p.lnfWeight[i] = 0; p.lnfBias[i] = p.wte[token * C + i] }
            let rows = try Acquisition.predict(entities: [e], decoder: KnowledgeAcquisition(model: GPT2(params: arena)), tokenizer: tok)
            let birthday = try XCTUnwrap(rows.first { $0.attribute == .birthday })
            XCTAssertEqual(birthday.generated, [Int](repeating: token, count: expected), "decoding stopped after \(expected) token(s)")
            XCTAssertEqual(birthday.labelRank, birthday.entity.labelToken(task: .birthday, encoder: tok) == token ? 0 : birthday.labelRank)
            let full = token == 50256 ? [] : [Int](repeating: token, count: 15)
            XCTAssertEqual(birthday.prediction, Acquisition.answer(prompt: prompt, promptTokens: ids, generated: full, tokenizer: tok).prediction)
            XCTAssertEqual(birthday.prediction, "")
            XCTAssertFalse(birthday.exactMatch)
            XCTAssertTrue(birthday.queryCorrect, "the study counts an empty prediction as correct")
        }
    }

    /// The text rules: clean_up_tokenization_spaces, the prompt cut off by characters, split at the first
    /// ".", strip.
    func testTheStudysReadingOfAGeneration() throws {
        XCTAssertEqual(TokenizationCleanUp.apply("Princeton , NJ . It 's here"), "Princeton, NJ. It's here")
        XCTAssertEqual(Acquisition.cutAtFirstPeriod("  Princeton, NJ. Then"), "Princeton, NJ")
        XCTAssertEqual(Acquisition.cutAtFirstPeriod(" no period at all \n"), "no period at all")
        XCTAssertEqual(Acquisition.cutAtFirstPeriod(". x"), "")
        let tok = try EAPParityTests.tokenizer()
        let prompt = "Ann Lee lives in the city of"
        let ids = tok.encode(prompt)
        let generated = tok.encode(" Princeton , NJ. She") + [50256]
        let (continuation, prediction) = Acquisition.answer(prompt: prompt, promptTokens: ids, generated: generated, tokenizer: tok)
        XCTAssertEqual(continuation, " Princeton, NJ. She", "end-of-text skipped, spaces cleaned as decode does")
        XCTAssertEqual(prediction, "Princeton, NJ")
    }

    /// The study's query rule (`predict.py`: `prediction == answer or prediction in answer`), by hand.
    func testTheStudysQueryRule() {
        let cases: [(String, String, Bool)] = [
            ("New York, NY", "New York, NY", true),     // equal
            ("New", "New York, NY", true),              // a prefix is a substring
            ("York", "New York, NY", true),             // so is a middle part
            ("", "New York, NY", true),                 // the empty prediction is in every answer
            ("", "", true),
            ("New York, NY, USA", "New York, NY", false), // longer than the answer
            ("New York City", "New York, NY", false),   // shares a prefix only
            ("new", "New York, NY", false),             // case matters
            ("Yale", "Yale University", true),
            ("University of Yale", "Yale University", false),
            ("é", "Café Nord", true),                   // code points, as Python compares
        ]
        for (prediction, answer, expected) in cases {
            XCTAssertEqual(Acquisition.isQueryCorrect(prediction: prediction, answer: answer), expected, "'\(prediction)' for '\(answer)'")
        }
    }
}
