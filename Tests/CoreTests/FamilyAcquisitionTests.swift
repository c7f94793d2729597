import Foundation
import XCTest
@testable import Core
@testable import Circuits
@testable import DistCircuits

/// Full-model acquisition on Llama and Phi (docs/model-families.md, "Acquisition"): the key/value-cache decoder
/// against fresh forwards, the label's rank and probability against the study's numbers for a circuit of every
/// edge (fixtures' reference/eval.json), and the study's prompt and label conventions per family.
final class FamilyAcquisitionTests: XCTestCase {
    func testLlamaCachedDecodingEqualsFreshForwards() throws { try checkCachedDecoding("llama") }
    func testPhiCachedDecodingEqualsFreshForwards() throws { try checkCachedDecoding("phi") }

    /// Each generated token is the argmax of a fresh forward over prompt + the tokens so far, in a batch of
    /// prompts of different lengths; the cached step's logits equal the fresh forward's last row.
    private func checkCachedDecoding(_ family: String) throws {
        let model = try FamilyFixtures.loadModel(family)
        let tok = try FamilyAttributionChecks.tokenizer(family)
        let entities = try Self.testEntities(family)
        let prompts = entities.prefix(6).flatMap { e in
            [CircuitTask.city, .birthday, .university].map { tok.encode($0.prompt(subject: e.fullName), addSpecialTokens: true) }
        }
        XCTAssertGreaterThan(Set(prompts.map(\.count)).count, 1, "prompts of different lengths share a batch")
        let acquisition = KnowledgeAcquisition(model: model)
        // A decode closure without "." never stops early: every row runs to the token limit or EOS.
        let out = try acquisition.run(prompts: prompts, labels: prompts.map { _ in 5 }, answers: prompts.map { _ in "" }, batchSize: 7,
                                      maxNewTokens: 8, decode: { _ in "" })
        let V = model.config.vocabSize
        var generated = 0
        for (i, p) in prompts.enumerated() {
            var seq = p
            for (j, token) in out[i].continuation.enumerated() {
                let logits = try model.forward(tokens: seq, batch: 1, seqLen: seq.count)
                let row = Array(logits[((seq.count - 1) * V)..<(seq.count * V)])
                let best = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
                XCTAssertEqual(token, best, "\(family) prompt \(i) token \(j)")
                seq.append(token)
            }
            generated += out[i].continuation.count
            if out[i].continuation.count < 8 {
                let logits = try model.forward(tokens: seq, batch: 1, seqLen: seq.count)
                let row = Array(logits[((seq.count - 1) * V)..<(seq.count * V)])
                XCTAssertEqual(row.indices.max { row[$0] < row[$1] }, model.config.eosTokenId, "\(family) prompt \(i) stopped before EOS")
            }
        }
        XCTAssertGreaterThan(generated, prompts.count * 4, "the test should decode several tokens per prompt")

        // The step's logits against the fresh forward's, two rows at different positions.
        let decoder = FamilyGreedyDecoder(model: FamilyModel(params: model.params))
        let a = prompts[0], b = prompts[4]
        _ = try decoder.prefill([a, b], capacity: max(a.count, b.count) + 2)
        let step = decoder.step(rows: [0, 1], tokens: [7, 11], positions: [a.count, b.count])
        let stepRows = Array(UnsafeBufferPointer(start: step, count: 2 * V))
        var worst = 0.0
        for (r, seq) in [a + [7], b + [11]].enumerated() {
            let logits = try model.forward(tokens: seq, batch: 1, seqLen: seq.count)
            let (rel, _) = FamilyFixtures.compare(stepRows[(r * V)..<((r + 1) * V)], logits[((seq.count - 1) * V)..<(seq.count * V)])
            worst = max(worst, rel)
        }
        XCTAssertLessThanOrEqual(worst, 1e-5, "\(family) cached step logits, relative L2")
        print("\(family) cached decoding: \(generated) tokens identical to fresh forwards; step logits rel L2 \(worst)")
    }

    /// Llama through `Acquisition.predict`: prompts get `<s>` first (the tokenizer's default call, as the study's
    /// predict.py), labels are the value's first token without a leading space; with that, the city label's rank
    /// and probability equal the study's zero-ablation test of the whole model (top-5,000 ≥ its 3,526 edges),
    /// which TransformerLens runs on `<s>` + the same prompt.
    func testLlamaAcquisitionRanksEqualTheStudysWholeModelTest() throws {
        let model = try FamilyFixtures.loadModel("llama")
        let tok = try FamilyAttributionChecks.tokenizer("llama")
        let entities = try Self.testEntities("llama")
        let rows = try Acquisition.predict(entities: entities, decoder: KnowledgeAcquisition(model: model), tokenizer: tok,
                                           options: .init(maxNewTokens: 15, batchSize: 16))
        let city = rows.filter { $0.attribute == .city }
        XCTAssertEqual(city.count, entities.count)
        let whole = try Self.wholeModelResult("llama", topn: 5000)
        let refRank = AttributionFixtures.ints(whole["test_token_rank"]), refProb = AttributionFixtures.doubles(whole["test_token_prob"])
        var worst = 0.0
        for (i, r) in city.enumerated() {
            XCTAssertEqual(r.labelRank, refRank[i], "entity \(i) rank")
            worst = max(worst, abs(r.labelProb - refProb[i]))
            XCTAssertEqual(r.labelProb, refProb[i], accuracy: 1e-5, "entity \(i) probability")
        }
        // The study's reading: decode(<s> + prompt + continuation, skip_special_tokens) minus the prompt's characters.
        for r in rows {
            let prompt = r.attribute.prompt(subject: r.entity.fullName)
            let ids = tok.encode(prompt, addSpecialTokens: true)
            XCTAssertEqual(ids.first, 1, "Llama prompts start with <s>")
            let full = tok.decode(ids + r.generated, skipSpecialTokens: true, cleanUpSpaces: false)
            XCTAssertTrue(full.hasPrefix(prompt), full)
            XCTAssertEqual(r.continuation, String(full.dropFirst(prompt.count)))
            XCTAssertEqual(r.prediction, Acquisition.cutAtFirstPeriod(r.continuation))
        }
        let birthdays = rows.filter { $0.attribute == .birthday }
        XCTAssertEqual(birthdays.map(\.labelRank).filter { $0 == 0 }.count, birthdays.count,
                       "for Llama a birthday's first label token is the lone ▁, which the trained model always ranks first")
        print("llama acquisition: city ranks identical to the study's, probability max |Δ| \(worst); query accuracy "
              + "\(rows.filter(\.queryCorrect).count)/\(rows.count), exact \(rows.filter(\.exactMatch).count)/\(rows.count); "
              + "e.g. '\(rows[1].continuation)' for \(rows[1].groundTruth)")
    }

    /// Phi: predict.py encodes prompts without BOS (CodeGen's tokenizer adds none), while TransformerLens's test
    /// prepends `<|endoftext|>`; run on `<|endoftext|>` + prompt, the decoder's label rank and probability equal the
    /// study's whole-model test (top-200 ≥ its 102 edges), and `Acquisition.predict` leaves BOS out.
    func testPhiLabelRanksEqualTheStudysWholeModelTest() throws {
        let model = try FamilyFixtures.loadModel("phi")
        let tok = try FamilyAttributionChecks.tokenizer("phi")
        let entities = try Self.testEntities("phi")
        let acquisition = KnowledgeAcquisition(model: model)
        let prompts = entities.map { [model.config.bosTokenId] + tok.encode(CircuitTask.city.prompt(subject: $0.fullName), addSpecialTokens: true) }
        let labels = entities.map { $0.labelToken(task: .city, encoder: tok, leadingSpace: true)! }
        let out = try acquisition.run(prompts: prompts, labels: labels, answers: entities.map(\.city), batchSize: 5, maxNewTokens: 4,
                                      decode: { tok.decode($0, skipSpecialTokens: true, cleanUpSpaces: true) })
        let whole = try Self.wholeModelResult("phi", topn: 200)
        let refRank = AttributionFixtures.ints(whole["test_token_rank"]), refProb = AttributionFixtures.doubles(whole["test_token_prob"])
        for i in out.indices {
            XCTAssertEqual(out[i].labelRank, refRank[i], "entity \(i) rank")
            XCTAssertEqual(out[i].labelProbability, refProb[i], accuracy: 1e-5, "entity \(i) probability")
        }
        XCTAssertEqual(tok.encode("Ann Lee was born on", addSpecialTokens: true), tok.encode("Ann Lee was born on"), "no BOS added for Phi")
        XCTAssertTrue(tok.cleanUpTokenizationSpaces && Acquisition.cleansUpSpaces(tok, family: .phi), "Phi's tokenizer_config cleans up spaces")
        let llama = try FamilyAttributionChecks.tokenizer("llama")
        XCTAssertFalse(Acquisition.cleansUpSpaces(llama, family: .llama), "TinyLlama's does not")
    }

    /// The acquisition's decoder for a loaded circuit model runs on the same parameters (no copy).
    func testCircuitModelDecoderSharesTheParameters() throws {
        let loaded = try CircuitModel.load(folder: try FamilyFixtures.model("phi"))
        let tok = try FamilyAttributionChecks.tokenizer("phi")
        let e = try Self.testEntities("phi")[0]
        let acquisition = KnowledgeAcquisition(circuitModel: loaded)
        XCTAssertEqual(acquisition.family, .phi)
        let x = try XCTUnwrap(tok.encode("x").first)
        let params = (loaded.model as! InstrumentedFamily).parameters
        (params.base + params.layout.lmHeadBias! + x).pointee = 1e4
        let rows = try Acquisition.predict(entities: [e], decoder: acquisition, tokenizer: tok, options: .init(maxNewTokens: 3, batchSize: 5))
        XCTAssertEqual(rows.map(\.generated), [[Int]](repeating: [x, x, x], count: 5), "a changed lm_head bias reaches the decoder")
        XCTAssertTrue(rows.allSatisfy { $0.labelRank >= 1 || $0.labelProb > 0.99 })
    }

    func testLlamaGenerationEqualsTransformers() throws { try checkAgainstTransformers("llama") }
    func testPhiGenerationEqualsTransformers() throws { try checkAgainstTransformers("phi") }

    /// The study's predict.py on the fixture folder through transformers (`tokenizer(prompt)`, `generate` with
    /// `max_new_tokens=15` and `pad_token_id=eos`, `decode(skip_special_tokens=True)`, the prompt's characters cut
    /// off, split at ".", strip) gives the same generated ids, continuation and prediction as `Acquisition.predict`.
    /// transformers runs live or comes recorded (`CrossCheck`).
    private func checkAgainstTransformers(_ family: String) throws {
        let promptsFile = CrossCheck.file(family, "generation_prompts.json"), rowsFile = CrossCheck.file(family, "generation.txt")
        let mode = try CrossCheck.mode(needsStudy: false, recorded: [promptsFile, rowsFile])
        let folder = try FamilyFixtures.model(family)
        let tok = try FamilyAttributionChecks.tokenizer(family)
        let entities = Array(try Self.testEntities(family).prefix(6))
        let rows = try Acquisition.predict(entities: entities, decoder: KnowledgeAcquisition(model: try FamilyFixtures.loadModel(family)),
                                           tokenizer: tok, options: .init(maxNewTokens: 15, batchSize: 8))
        let prompts = rows.map { $0.attribute.prompt(subject: $0.entity.fullName) }
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-generate-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: input) }
        let promptData = try JSONSerialization.data(withJSONObject: prompts, options: [.prettyPrinted])
        try CrossCheck.inputs(promptData, promptsFile, mode)
        try promptData.write(to: input)
        let script = """
        import sys, json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        folder, prompts = sys.argv[1], json.load(open(sys.argv[2]))
        tok = AutoTokenizer.from_pretrained(folder)
        m = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
        for p in prompts:
            inputs = tok(p, return_tensors="pt")
            with torch.no_grad():
                out = m.generate(**inputs, max_new_tokens=15, pad_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, do_sample=False)
            gen = out[0, inputs["input_ids"].shape[1]:].tolist()
            text = tok.decode(out[0], skip_special_tokens=True)[len(p):]
            print("ROW " + json.dumps({"generated": gen, "output": text, "prediction": text.split(".")[0].strip()}))
        """
        let output = String(decoding: try CrossCheck.output(rowsFile, mode) {
            let (status, output) = try FamilyFixtures.runPython(script, [folder.path, input.path])
            XCTAssertEqual(status, 0, output)
            return Data(output.split(separator: "\n").filter { $0.hasPrefix("ROW ") }.map { $0 + "\n" }.joined().utf8)
        }, as: UTF8.self)
        let reference = try output.split(separator: "\n").filter { $0.hasPrefix("ROW ") }.map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.dropFirst(4).utf8)) as? [String: Any])
        }
        XCTAssertEqual(reference.count, rows.count, output)
        var sameIds = 0
        for (r, ref) in zip(rows, reference) {
            // transformers keeps generating after a "." (dkc stops there: the text before it cannot change) and
            // ends with EOS, which dkc leaves out; the ids agree up to dkc's last token.
            let theirs = (ref["generated"] as! [NSNumber]).map(\.intValue)
            XCTAssertEqual(Array(theirs.prefix(r.generated.count)), r.generated, "\(family) \(r.entity.fullName) \(r.attribute.rawValue)")
            if Array(theirs.prefix(r.generated.count)) == r.generated { sameIds += 1 }
            XCTAssertEqual(r.prediction, ref["prediction"] as? String, "\(family) \(r.entity.fullName) \(r.attribute.rawValue)")
            XCTAssertTrue((ref["output"] as! String).hasPrefix(r.continuation) || r.continuation.hasPrefix(ref["output"] as! String),
                          "\(family): '\(r.continuation)' vs transformers' '\(ref["output"] as! String)'")
        }
        print("\(family) generation vs transformers: \(sameIds)/\(rows.count) prompts with identical ids, predictions equal")
    }

    static func testEntities(_ family: String) throws -> [Entity] {
        let eval = try FamilyFixtures.json(family, "eval.json")
        return (eval["test_entities"] as! [[String: Any]]).map { Entity(jsonObject: JSONValue(foundation: $0))! }
    }

    static func wholeModelResult(_ family: String, topn: Int) throws -> [String: Any] {
        let eval = try FamilyFixtures.json(family, "eval.json")
        return try XCTUnwrap((eval["results"] as! [[String: Any]]).first { ($0["topn"] as! NSNumber).intValue == topn })
    }
}
