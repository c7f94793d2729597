import Foundation
import XCTest
import Core
import DistTrain

/// `dkc train` on Llama and Phi (docs/model-families.md, "Training the families"): continual training from the
/// fixture model folders with their own tokenizer.json, data-parallel under mpirun. Deterministic mode gives
/// bit-identical checkpoints and losses on 1 and 2 ranks (R-invariance); the checkpoints are complete model
/// folders of the family (config.json, model.safetensors, the tokenizer files, the dropout trained with) that
/// load again; training drops where transformers drops (Llama: attention; Phi: also embeddings and residual
/// branches), with masks keyed by global position, so R-invariance holds with dropout on; the
/// evaluation's first-token marks follow the family's tokenisation (Llama: `<s>` first, values without the
/// leading space).
final class FamilyTrainTests: XCTestCase {
    func testLlamaTrainingIsTheSameOnOneAndTwoRanks() throws { try rankInvariance("llama", dropout: ["attn_pdrop": 0.1]) }
    func testPhiTrainingIsTheSameOnOneAndTwoRanks() throws {
        try rankInvariance("phi", dropout: ["attn_pdrop": 0.1, "embd_pdrop": 0.05, "resid_pdrop": 0.1])
    }

    private func model(_ family: String) throws -> URL {
        let url = Paths.fixtures.appendingPathComponent(family).appendingPathComponent("model")
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("tokenizer.json").path) else { throw missingFixtures(url.path) }
        return url
    }

    private func rankInvariance(_ family: String, dropout: [String: Double]) throws {
        let folder = try model(family)
        let root = try TrainFixture.make(root: try TrainFixture.temporaryFolder(self))
        let dkc = try Launch.executable("dkc")
        var finals: [(model: Data, optimizer: Data, losses: [Double])] = []
        for (ranks, accumulation) in [(1, 4), (2, 2)] {
            let out = root.appendingPathComponent("\(family)-\(ranks)")
            let cfg = try TrainFixture.config(root: root, output: out, extra: """
                init = "\(folder.path)"
                tokenizer = "\(folder.path)"
                max_steps = 3
                gradient_accumulation_steps = \(accumulation)
                deterministic = true
                eval_strategy = "steps"
                eval_steps = 3
                learning_rate = 1e-3
                """ + dropout.sorted { $0.key < $1.key }.map { "\n\($0.key) = \($0.value)" }.joined())
            let r = try Launch.run(dkc, ["train", "--config", cfg.path, "--threads", "1"], ranks: ranks,
                                   env: ["OPENBLAS_NUM_THREADS": "1"], timeout: 300)
            XCTAssertEqual(r.status, 0, "\(family) R = \(ranks):\n\(r.stdout)\n\(r.stderr)")
            let ck = try XCTUnwrap(TrainCheckpoint.list(in: out.appendingPathComponent("continual/checkpoints")).last?.url)
            XCTAssertEqual(ck.lastPathComponent, "checkpoint-3")
            // A complete model folder of the family: it loads as one, with its tokenizer.
            let saved = try ModelConfig.load(from: ck.appendingPathComponent("config.json"))
            XCTAssertEqual(saved.family.rawValue, family)
            XCTAssertEqual(saved.attentionDropout, dropout["attn_pdrop"] ?? 0, "the checkpoint records the dropout trained with")
            XCTAssertEqual(saved.residPdrop, dropout["resid_pdrop"] ?? 0)
            let trained = try FamilyCheckpoint.load(folder: ck)
            let start = try FamilyCheckpoint.load(folder: folder)
            XCTAssertNotEqual(Array(UnsafeBufferPointer(start: trained.base, count: trained.count)),
                              Array(UnsafeBufferPointer(start: start.base, count: start.count)), "three steps changed the weights")
            XCTAssertTrue(TokenizerLoader.hasTokenizerFiles(ck))
            let text = try String(contentsOf: out.appendingPathComponent("continual/metrics.jsonl"), encoding: .utf8)
            let lines = try text.split(separator: "\n").map { try JSONValue(parsing: String($0)) }
            let losses = lines.compactMap { $0["loss"]?.doubleValue }
            XCTAssertEqual(losses.count, 3)
            XCTAssertTrue(losses.allSatisfy { $0.isFinite && $0 > 0 })
            let eval = try XCTUnwrap(lines.first { $0["eval_loss"] != nil }, "an evaluation line")
            XCTAssertTrue(eval["eval_loss"]!.doubleValue!.isFinite)
            finals.append((try Data(contentsOf: ck.appendingPathComponent("model.safetensors")),
                           try Data(contentsOf: ck.appendingPathComponent("optimizer.safetensors")), losses))
        }
        XCTAssertEqual(finals[0].losses, finals[1].losses, "\(family): losses on 1 and 2 ranks")
        XCTAssertEqual(finals[0].model, finals[1].model, "\(family): model.safetensors on 1 and 2 ranks")
        XCTAssertEqual(finals[0].optimizer, finals[1].optimizer, "\(family): optimizer.safetensors on 1 and 2 ranks")
    }

    /// The study's train.py tokenisation per family: Llama puts `<s>` first and finds an attribute by the
    /// tokens of the value itself (in-text `▁Boston`), GPT-2-style tokenizers by " " + value.
    func testTrainingTextsFollowTheFamily() throws {
        let llama = try TokenizerLoader.load(directory: try model("llama"))
        let record = BiographyRecord(text: "Ada Moss lives in Boston.", typeCode: 1,
                                     attributes: BiographyAttribute.allCases.map { $0 == .city ? "Boston" : nil })
        let t = record.tokenized(encoder: llama, eos: llama.eosTokenId, blockSize: 64, bos: llama.encode("", addSpecialTokens: true).first,
                                 markLeadingSpace: ModelFamily.llama.circuitLabelHasLeadingSpace)
        let ids = t.ids.map(Int.init)
        XCTAssertEqual(ids.first, 1, "<s> first")
        XCTAssertEqual(ids.last, llama.eosTokenId)
        XCTAssertEqual(Array(ids.dropFirst().dropLast()), llama.encode("Ada Moss lives in Boston."))
        let marked = try XCTUnwrap(t.attributeMask.firstIndex { $0 != 0 }, "the city is marked")
        XCTAssertEqual(ids[marked], llama.encode("Boston").first, "the mark sits on the value's first in-text token")
        // With GPT-2's rule the Llama tokens of " Boston" start with the bare '▁▁' piece, which is not in the text.
        let wrong = record.tokenized(encoder: llama, eos: llama.eosTokenId, blockSize: 64, bos: 1, markLeadingSpace: true)
        XCTAssertNil(wrong.attributeMask.firstIndex { $0 != 0 })
    }
}
