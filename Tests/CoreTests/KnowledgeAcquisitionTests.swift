import Foundation
import XCTest
@testable import Core

final class KnowledgeAcquisitionTests: XCTestCase {
    /// With BOS, the full model's label rank and probability are what the circuit test gives for a circuit of
    /// every edge (eval.json, top-200).
    func testLabelRankMatchesFullCircuitTest() throws {
        let root = try AttributionFixtures.requireFixtures()
        let model = GPT2(params: try HFCheckpoint.load(folder: root.appendingPathComponent("model")))
        let tok = try EAPParityTests.tokenizer()
        let eval = try AttributionFixtures.json("reference/eval.json")
        let entities = (eval["test_entities"] as! [[String: Any]]).map { Entity(jsonObject: JSONValue(foundation: $0))! }
        let prompts = entities.map { [50256] + tok.encode(CircuitTask.city.prompt(subject: $0.fullName)) }
        let labels = entities.map { $0.labelToken(task: .city, encoder: tok)! }
        let probe = KnowledgeAcquisition(model: model)
        let out = try probe.run(prompts: prompts, labels: labels, answers: entities.map(\.city), batchSize: 5, maxNewTokens: 6,
                                decode: { tok.decode($0) })
        let full = (eval["results"] as! [[String: Any]]).first { ($0["topn"] as! NSNumber).intValue == 200 }!
        let refRank = AttributionFixtures.ints(full["test_token_rank"]), refProb = AttributionFixtures.doubles(full["test_token_prob"])
        for i in out.indices {
            XCTAssertEqual(out[i].labelRank, refRank[i], "entity \(i) rank")
            XCTAssertEqual(out[i].labelProbability, refProb[i], accuracy: 1e-5, "entity \(i) probability")
            XCTAssertFalse(out[i].prediction.contains("."))
        }
        print("acquisition on the fixture model: predictions \(out.map(\.prediction)), exact \(out.filter(\.exactMatch).count)/\(out.count)")
    }

    /// Batched greedy decoding equals decoding each prompt alone, and each token is the argmax of a fresh forward.
    func testBatchedDecodingEqualsSingle() throws {
        var cfg = GPT2Config(nLayer: 2, nHead: 2, nEmbd: 16, nPositions: 24, vocabSize: 30)
        cfg.bosTokenId = 29; cfg.eosTokenId = 29
        cfg.initializerRange = 0.5
        let model = GPT2(config: cfg, seed: 3)
        // Token 7 decodes to ".", everything else to a letter.
        let decode: ([Int]) -> String = { ids in String(ids.map { $0 == 7 ? "." : Character(UnicodeScalar(UInt8(97 + $0 % 26))) }) }
        var rng = SplitMix64(seed: 8)
        let prompts = (0..<7).map { i in (0..<(2 + i % 5)).map { _ in Int(rng.next() % 28) } }
        let labels = prompts.map { _ in Int(rng.next() % 30) }
        let answers = prompts.map { _ in "x" }
        let probe = KnowledgeAcquisition(model: model)
        let batched = try probe.run(prompts: prompts, labels: labels, answers: answers, batchSize: 7, maxNewTokens: 10, decode: decode)
        XCTAssertGreaterThanOrEqual(batched.map(\.continuation.count).max()!, 4, "the test should decode several tokens")
        for i in prompts.indices {
            let single = try probe.run(prompts: [prompts[i]], labels: [labels[i]], answers: ["x"], batchSize: 1, maxNewTokens: 10, decode: decode)[0]
            XCTAssertEqual(batched[i].continuation, single.continuation, "prompt \(i)")
            XCTAssertEqual(batched[i].labelRank, single.labelRank)
            XCTAssertEqual(batched[i].labelProbability, single.labelProbability, accuracy: 1e-6)
            // Check the chain by hand.
            var seq = prompts[i]
            for tokenId in batched[i].continuation {
                let logits = try model.forward(tokens: seq, batch: 1, seqLen: seq.count, positions: [seq.count - 1])
                var best = 0
                for t in 1..<cfg.vocabSize where logits[t] > logits[best] { best = t }
                XCTAssertEqual(tokenId, best)
                seq.append(best)
            }
            XCTAssertEqual(batched[i].prediction, decode(batched[i].continuation).split(separator: ".", omittingEmptySubsequences: false).first.map(String.init) ?? "")
        }
    }
}
