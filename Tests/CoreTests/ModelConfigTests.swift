import Foundation
import XCTest
@testable import Core

/// `ModelConfig`: one configuration type for GPT-2, Llama and Phi read from config.json, with unsupported keys
/// and values refused by name, and shapes validated before anything is allocated.
final class ModelConfigTests: XCTestCase {
    func fixtureConfig(_ family: String) throws -> [String: Any] {
        let url = try FamilyFixtures.model(family).appendingPathComponent("config.json")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func parse(_ d: [String: Any]) throws -> ModelConfig {
        try ModelConfig(json: JSONSerialization.data(withJSONObject: d), source: "test config.json")
    }

    /// The error's item for a config `d` (fails the test when it parses).
    func refusedItem(_ d: [String: Any], file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            _ = try parse(d)
            XCTFail("accepted \(d)", file: file, line: line)
            return nil
        } catch let e as CheckpointError {
            XCTAssertFalse(e.description.isEmpty)
            return e.item
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return nil
        }
    }

    func testFixtureConfigsOfThreeFamilies() throws {
        let llama = try parse(try fixtureConfig("llama"))
        XCTAssertEqual(llama.family, .llama)
        XCTAssertEqual([llama.numLayers, llama.numHeads, llama.numKVHeads, llama.hiddenSize, llama.intermediateSize, llama.vocabSize,
                        llama.maxPositions, llama.headSize, llama.rotaryDim, llama.kvSize], [2, 32, 4, 128, 352, 2048, 256, 4, 4, 16])
        XCTAssertFalse(llama.tieWordEmbeddings)
        XCTAssertFalse(llama.hasBiases)
        XCTAssertEqual(llama.normEps, 1e-5)
        XCTAssertEqual([llama.bosTokenId, llama.eosTokenId], [1, 2])

        let phi = try parse(try fixtureConfig("phi"))
        XCTAssertEqual(phi.family, .phi)
        XCTAssertEqual([phi.numLayers, phi.numHeads, phi.numKVHeads, phi.hiddenSize, phi.intermediateSize, phi.vocabSize,
                        phi.headSize, phi.rotaryDim], [2, 4, 4, 64, 256, 3039, 16, 8])
        XCTAssertTrue(phi.hasBiases)
        XCTAssertEqual(phi.hiddenAct, "gelu_new")
        XCTAssertEqual([phi.bosTokenId, phi.eosTokenId], [3000, 3000])

        // GPT-2 goes through the same entry point and keeps its own validation.
        let gpt2URL = Paths.fixtures.appendingPathComponent("model/config.json")
        guard FileManager.default.fileExists(atPath: gpt2URL.path) else { throw missingFixtures(gpt2URL.path) }
        let gpt2 = try ModelConfig.load(from: gpt2URL)
        XCTAssertEqual(gpt2.family, .gpt2)
        XCTAssertEqual(gpt2.gpt2, try GPT2Config.load(from: gpt2URL))
        XCTAssertEqual(gpt2.checkedParameterCount, gpt2.gpt2?.parameterCount)
    }

    func testParameterCountsMatchLayouts() throws {
        for family in ["llama", "phi"] {
            let c = try parse(try fixtureConfig(family))
            XCTAssertEqual(c.checkedParameterCount, FamilyLayout(config: c).count, family)
        }
        // README counts.
        XCTAssertEqual(try parse(try fixtureConfig("llama")).checkedParameterCount, 868_992)
        XCTAssertEqual(try parse(try fixtureConfig("phi")).checkedParameterCount, 491_871)
        // Tied embeddings drop lm_head.weight.
        var d = try fixtureConfig("llama")
        d["tie_word_embeddings"] = true
        let tied = try parse(d)
        XCTAssertEqual(tied.checkedParameterCount, 868_992 - 2048 * 128)
        let layout = FamilyLayout(config: tied)
        XCTAssertEqual(layout.count, tied.checkedParameterCount)
        XCTAssertEqual(layout.lmHead, layout.embed)
        XCTAssertNil(layout.tensor(named: "lm_head.weight"))
    }

    func testUnsupportedModelTypeAndKeysRefusedByName() throws {
        var d = try fixtureConfig("llama")
        d["model_type"] = "mistral"
        XCTAssertEqual(refusedItem(d), "model_type")
        d = try fixtureConfig("llama")
        d["sliding_window"] = 4096
        XCTAssertEqual(refusedItem(d), "sliding_window")
        d = try fixtureConfig("phi")
        d["rms_norm_eps"] = 1e-5               // a Llama key in a Phi config
        XCTAssertEqual(refusedItem(d), "rms_norm_eps")
        d = try fixtureConfig("phi")
        d["architectures"] = ["LlamaForCausalLM"]
        XCTAssertEqual(refusedItem(d), "architectures")
    }

    func testUnsupportedValuesRefusedByName() throws {
        let cases: [(String, String, Any, String)] = [
            ("llama", "rope_scaling", ["type": "linear", "factor": 2.0], "rope_scaling"),
            ("llama", "attention_bias", true, "attention_bias"),
            ("llama", "hidden_act", "relu", "hidden_act"),
            ("llama", "num_key_value_heads", 5, "num_key_value_heads"),
            ("llama", "hidden_size", 130, "hidden_size"),
            ("llama", "vocab_size", 0, "vocab_size"),
            ("llama", "vocab_size", 1e12, "vocab_size"),
            ("llama", "num_hidden_layers", 2.5, "num_hidden_layers"),
            ("llama", "rms_norm_eps", -1.0, "rms_norm_eps"),
            ("llama", "head_dim", 8, "head_dim"),
            ("phi", "qk_layernorm", true, "qk_layernorm"),
            ("phi", "resid_pdrop", 1.0, "resid_pdrop"),
            ("phi", "attention_dropout", -0.1, "attention_dropout"),
            ("llama", "resid_pdrop", 0.1, "resid_pdrop"),
            ("phi", "partial_rotary_factor", 0.01, "partial_rotary_factor"),
            ("phi", "partial_rotary_factor", 1.5, "partial_rotary_factor"),
            ("phi", "hidden_act", "silu", "hidden_act"),
        ]
        for (family, key, value, item) in cases {
            var d = try fixtureConfig(family)
            d[key] = value
            XCTAssertEqual(refusedItem(d), item, "\(family) \(key) = \(value)")
        }
        var d = try fixtureConfig("llama")
        d.removeValue(forKey: "hidden_size")
        XCTAssertEqual(refusedItem(d), "hidden_size")
    }

    /// Sizes whose parameter count overflows or exceeds the in-memory cap are refused before any allocation.
    func testHugeShapesRefusedBeforeAllocation() throws {
        var d = try fixtureConfig("llama")
        d["num_hidden_layers"] = 1024
        d["hidden_size"] = 65_536
        d["num_attention_heads"] = 1024
        d["num_key_value_heads"] = 1024
        d["intermediate_size"] = 262_144
        XCTAssertEqual(refusedItem(d), "num_hidden_layers/hidden_size/intermediate_size/vocab_size")
    }

    func testConfigJSONRoundTrip() throws {
        for family in ["llama", "phi"] {
            let c = try parse(try fixtureConfig(family))
            let again = try ModelConfig(json: c.jsonData(), source: "written")
            XCTAssertEqual(again, c, family)
        }
    }

    /// A checkpoint whose tensors do not fit config.json is refused naming the tensor, and leaves nothing loaded.
    func testMismatchedCheckpointRefusedNamingTensor() throws {
        let dir = try ModelFixtures.tempDir(self)
        let small = ModelConfig(family: .llama, numLayers: 1, numHeads: 4, numKVHeads: 2, hiddenSize: 16, intermediateSize: 24,
                                vocabSize: 50, maxPositions: 32)
        try small.validate()
        let arena = FamilyArena(layout: FamilyLayout(config: small))
        arena.initialize(seed: 7)
        let folder = dir.appendingPathComponent("m")
        try FamilyCheckpoint.save(arena, to: folder)
        XCTAssertEqual(try FamilyCheckpoint.load(folder: folder).values("model.layers.0.mlp.up_proj.weight"),
                       arena.values("model.layers.0.mlp.up_proj.weight"))
        var other = small
        other.intermediateSize = 32
        try other.jsonData().write(to: folder.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try FamilyCheckpoint.load(folder: folder)) { e in
            // Tensors are checked in file order (safetensors sorts names), so down_proj is the first misfit.
            XCTAssertEqual((e as? CheckpointError)?.item, "model.layers.0.mlp.down_proj.weight")
            XCTAssertTrue("\(e)".contains("[16, 24]"), "\(e)")
        }
    }
}
