import Foundation
import XCTest
@testable import Core

/// Greedy decoding with the key/value cache against full recomputation, and the study's reading of a
/// generation (batch_predict.py).
final class AcquisitionTests: XCTestCase {
    private func fixtureModel() throws -> ParameterArena { try HFCheckpoint.load(folder: try ModelFixtures.model()) }

    /// Every generated token equals the argmax of a full forward pass over prompt + tokens so far, and the
    /// first-step logits equal the full pass's; a prompt decoded alone gives the same tokens as in a batch.
    func testCachedDecodingMatchesFullRecomputation() throws {
        let arena = try fixtureModel()
        let tok = try EAPParityTests.tokenizer()
        let prompts = ["Poppy Arrow Osborne lives in the city of", "Navi Jude Mansfield was born on",
                       "Amaury Penn Ainsworth works for the company of", "Lu graduates from the"].map { tok.encode($0) }
        let decoder = GreedyDecoder(parameters: arena)
        var firstRows: [Int: [Float]] = [:]
        let V = arena.config.vocabSize
        let generated = try decoder.decode(prompts: prompts, maxNewTokens: 8, firstLogits: { b, row in
            firstRows[b] = Array(UnsafeBufferPointer(start: row, count: V))
        })
        let full = GPT2(params: arena)
        var worst: Float = 0
        for (b, prompt) in prompts.enumerated() {
            XCTAssertEqual(generated[b].count, 8, "prompt \(b): no stop condition, so maxNewTokens tokens")
            var sequence = prompt
            for (i, id) in generated[b].enumerated() {
                let logits = try full.forward(tokens: sequence, batch: 1, seqLen: sequence.count, positions: [sequence.count - 1])
                XCTAssertEqual(GreedyDecoder.argmax(logits.baseAddress!, V), id, "prompt \(b) token \(i)")
                if i == 0 { for t in 0..<V { worst = max(worst, abs(logits[t] - firstRows[b]![t])) } }
                sequence.append(id)
            }
            let alone = try decoder.decode(prompts: [prompt], maxNewTokens: 8)
            XCTAssertEqual(alone[0], generated[b], "prompt \(b) alone vs in a batch")
        }
        XCTAssertLessThanOrEqual(worst, 1e-4, "first-step logits vs the full forward")
        // The logits of the last cached step (which chose each prompt's 8th token) against a full pass.
        _ = try decoder.decode(prompts: prompts, maxNewTokens: 8)
        var worstCached: Float = 0
        for (b, prompt) in prompts.enumerated() {
            let sequence = prompt + generated[b].dropLast()
            let logits = try full.forward(tokens: sequence, batch: 1, seqLen: sequence.count, positions: [sequence.count - 1])
            for t in 0..<V { worstCached = max(worstCached, abs(logits[t] - decoder.logits.base[b * V + t])) }
        }
        XCTAssertLessThanOrEqual(worstCached, 1e-4, "cached-step logits vs the full forward")
        print("greedy decoder: logits max |Δ| vs full forward: first step \(worst), 8th step (cached) \(worstCached)")
    }

    /// A model whose every next token is "." (LN_f weight 0, bias along the "." embedding) stops after one
    /// token; one whose next token is end-of-text generates nothing. Predictions equal full decoding.
    func testStopsAtPeriodAndEndOfText() throws {
        let tok = try EAPParityTests.tokenizer()
        let prompt = "Ann Lee was born on", ids = tok.encode(prompt)
        for (token, expected) in [(tok.encode(".")[0], 1), (50256, 0)] {
            let arena = try fixtureModel()
            let C = arena.config.nEmbd, p = arena.views
            for i in 0..<C { p.lnfWeight[i] = 0; p.lnfBias[i] = p.wte[token * C + i] }
            let decoder = GreedyDecoder(parameters: arena)
            let full = try decoder.decode(prompts: [ids], maxNewTokens: 15)[0]
            XCTAssertEqual(full, token == 50256 ? [] : [Int](repeating: token, count: 15), "every step chooses \(token)")
            let e = Entity(fullName: "Ann Lee", birthDate: "1", birthMonth: "May", birthYear: "1990", city: "Reno, NV", major: "Law",
                           university: "Yale University", company: "IBM", frequency: 3, type: .new)
            let rows = try Acquisition.predict(entities: [e], decoder: decoder, tokenizer: tok)
            let birthday = try XCTUnwrap(rows.first { $0.attribute == .birthday })
            XCTAssertEqual(birthday.continuation.count, expected, "decoding stopped after \(expected) token(s)")
            XCTAssertEqual(birthday.prediction, Acquisition.answer(prompt: prompt, promptTokens: ids, generated: full, tokenizer: tok).prediction)
            XCTAssertEqual(birthday.prediction, "")
            XCTAssertFalse(birthday.correct)
        }
    }

    /// Stopping at the first "." gives the same predictions as decoding all max_new_tokens.
    func testEarlyStopGivesTheSamePredictions() throws {
        let arena = try fixtureModel()
        let tok = try EAPParityTests.tokenizer()
        let eval = try AttributionFixtures.json("reference/eval.json")
        let entities = try (eval["test_entities"] as! [[String: Any]]).prefix(4).map { try XCTUnwrap(Entity(jsonObject: $0)) }
        let decoder = GreedyDecoder(parameters: arena)
        let rows = try Acquisition.predict(entities: Array(entities), decoder: decoder, tokenizer: tok, options: .init(maxNewTokens: 15, batchSize: 6))
        XCTAssertEqual(rows.count, 20)
        var stoppedEarly = 0
        for r in rows {
            let prompt = r.attribute.prompt(subject: r.entity.fullName)
            let ids = tok.encode(prompt)
            let all = try decoder.decode(prompts: [ids], maxNewTokens: 15)[0]
            let reference = Acquisition.answer(prompt: prompt, promptTokens: ids, generated: all, tokenizer: tok)
            XCTAssertEqual(r.prediction, reference.prediction, "\(r.entity.fullName) \(r.attribute)")
            XCTAssertTrue(reference.continuation.hasPrefix(r.continuation))
            if r.continuation.count < reference.continuation.count { stoppedEarly += 1 }
            XCTAssertEqual(r.correct, reference.prediction == r.groundTruth)
            XCTAssertEqual(r.groundTruth, r.entity.value(of: r.attribute))
        }
        print("acquisition: \(stoppedEarly) of \(rows.count) prompts stopped early at a '.'")
        let summary = Acquisition.summarize(rows, buckets: FrequencyBuckets(buckets: FrequencyBuckets.defaultBuckets, manifest: nil))
        XCTAssertEqual(summary.values.reduce(0) { $0 + $1.nEntities }, rows.count)
        for (k, v) in summary {
            let group = rows.filter { $0.attribute.rawValue == k.attribute && $0.entity.type.rawValue == k.type }
                .filter { FrequencyBuckets(buckets: FrequencyBuckets.defaultBuckets, manifest: nil).name(of: $0.entity.frequency) == k.frequency }
            XCTAssertEqual(v.nEntities, group.count)
            XCTAssertEqual(v.hitsAt10, Double(group.filter { $0.labelRank < 10 }.count) / Double(group.count))
        }
    }

    /// The text rules: clean_up_tokenization_spaces, the prompt cut off by characters, split at the first
    /// ".", strip.
    func testTheStudysReadingOfAGeneration() throws {
        XCTAssertEqual(Acquisition.cleanUpTokenizationSpaces("Princeton , NJ . It 's here"), "Princeton, NJ. It's here")
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
}
