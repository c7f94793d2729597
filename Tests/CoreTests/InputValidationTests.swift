import Foundation
import XCTest
@testable import Core
@testable import Support

/// Untrusted files end in named errors before any size derived from them is used: config.json dimensions
/// are capped and the parameter count is overflow-checked, a weights file is matched against the layout
/// before the arena is touched (docs/input-validation.md).
final class InputValidationTests: XCTestCase {
    /// The fixture model's config.json with `key` set to the JSON text `value`.
    func fixtureConfig(_ key: String, _ value: String) throws -> Data {
        let url = try ModelFixtures.model().appendingPathComponent("config.json")
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        object[key] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
        return try JSONSerialization.data(withJSONObject: object)
    }

    func assertConfigError(_ key: String, _ value: String, names field: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let data = try fixtureConfig(key, value)
        XCTAssertThrowsError(try GPT2Config(json: data, source: "crafted/config.json"), "\(key) = \(value)", file: file, line: line) { e in
            XCTAssertTrue(e is CheckpointError, "\(key) = \(value): \(type(of: e))", file: file, line: line)
            XCTAssertTrue("\(e)".contains("crafted/config.json") && "\(e)".contains(field), "\(key) = \(value): \(e)", file: file, line: line)
        }
    }

    /// A vocabulary of 2^58 rows (whose layout overflows Int) and every other dimension beyond its cap.
    func testConfigDimensionsAreCappedByName() throws {
        try assertConfigError("vocab_size", "\(1 << 58)", names: "vocab_size")
        try assertConfigError("vocab_size", "\(GPT2Config.Limits.vocabSize + 1)", names: "vocab_size")
        try assertConfigError("n_layer", "\(GPT2Config.Limits.nLayer + 1)", names: "n_layer")
        try assertConfigError("n_head", "\(GPT2Config.Limits.nHead * 2)", names: "n_head")
        try assertConfigError("n_embd", "\(1 << 62)", names: "n_embd")
        try assertConfigError("n_positions", "\(GPT2Config.Limits.nPositions + 1)", names: "n_positions")
        try assertConfigError("n_inner", "\(1 << 62)", names: "n_inner")
        try assertConfigError("n_layer", "1e300", names: "n_layer")
        try assertConfigError("vocab_size", "-50257", names: "vocab_size")
        try assertConfigError("eos_token_id", "\(1 << 40)", names: "eos_token_id")
        try assertConfigError("resid_pdrop", "1.5", names: "resid_pdrop")
        // Each dimension within its cap, but together too many parameters: 1024 layers of width 65536.
        var big = GPT2Config(nLayer: 1024, nHead: 1024, nEmbd: 65_536)
        XCTAssertThrowsError(try big.validate(source: "big")) { XCTAssertTrue("\($0)".contains("parameters"), "\($0)") }
        big.nLayer = 1
        big.nEmbd = 1024
        XCTAssertNoThrow(try big.validate(source: "big"))
    }

    /// The overflow-checked count agrees with the layout, and reports overflow instead of wrapping.
    func testCheckedParameterCount() {
        for cfg in [GPT2Config.tiny, .gpt2Small, GPT2Config(nLayer: 3, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 99)] {
            XCTAssertEqual(cfg.checkedParameterCount, ParameterLayout(config: cfg).count)
        }
        XCTAssertEqual(GPT2Config.gpt2Small.checkedParameterCount, 124_439_808)  // GPT-2 small, as transformers counts it
        XCTAssertNil(GPT2Config(nLayer: 1, nHead: 1, nEmbd: 1 << 20, vocabSize: 1 << 58).checkedParameterCount)
    }

    /// A model folder whose config.json claims 2^58 rows ends in a named error before anything is allocated.
    func testHugeVocabularyFolderIsANamedError() throws {
        let dir = try ModelFixtures.tempDir(self)
        try fixtureConfig("vocab_size", "\(1 << 58)").write(to: dir.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: try ModelFixtures.model().appendingPathComponent("model.safetensors"),
                                         to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try HFCheckpoint.load(folder: dir)) { e in
            XCTAssertTrue("\(e)".contains("vocab_size") && "\(e)".contains("config.json"), "\(e)")
        }
    }

    /// A weights file that does not match the layout (a late tensor of the wrong shape or dtype) is refused
    /// before the first copy: the arena keeps its numbers.
    func testMismatchedWeightsLeaveTheArenaUntouched() throws {
        let dir = try ModelFixtures.tempDir(self)
        let cfg = GPT2Config(nLayer: 2, nHead: 2, nEmbd: 8, nPositions: 16, vocabSize: 30)
        let src = ParameterArena(config: cfg)
        src.initializeGPT2(seed: 3)
        let last = src.layout.tensors.count - 1
        for (k, bad) in [SafetensorsWriter.Entry.float32(src.layout.tensors[last].name, shape: [4], values: [1, 2, 3, 4]),
                         .int64(src.layout.tensors[last].name, shape: [8], values: [Int64](repeating: 1, count: 8))].enumerated() {
            var entries = src.layout.tensors.map { SafetensorsWriter.Entry.float32($0.name, shape: $0.shape, values: Array(src.buffer($0))) }
            entries[last] = bad
            let file = dir.appendingPathComponent("bad\(k).safetensors")
            try SafetensorsWriter.write(entries, to: file)
            let arena = ParameterArena(config: cfg)
            for i in 0..<arena.count { arena.base[i] = 7 }
            XCTAssertThrowsError(try HFCheckpoint.loadWeights(from: file, into: arena)) { e in
                XCTAssertTrue("\(e)".contains(src.layout.tensors[last].name) && "\(e)".contains(file.path), "\(e)")
            }
            XCTAssertTrue((0..<arena.count).allSatisfy { arena.base[$0] == 7 }, "case \(k): the arena was written before the file was checked")
        }
    }

    /// Table headers that do not start with a key (they once crashed the C++ TOML parser dkc used) are
    /// named errors with the file, line and column. Valid headers still read.
    func testTOMLHeadersThatDoNotStartWithAKeyAreNamedErrors() throws {
        let dir = try ModelFixtures.tempDir(self)
        let file = dir.appendingPathComponent("c.toml")
        for (text, line) in [("seed = 1\n[[[x]]]\n", 2), ("[\nseed = 1\n", 1), ("[+x]\n", 1), ("[[ {a}]]\n", 1), ("seed = 1\n  [[\n", 2)] {
            try text.write(to: file, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try ConfigLoader.load(schema: .data, file: file), text.debugDescription) { e in
                guard case ConfigError.parse(let f, let l, _, _) = e else { return XCTFail("\(text.debugDescription): \(e)") }
                XCTAssertEqual(f, file.path)
                XCTAssertEqual(l, line, "\(e)")
            }
        }
        for text in ["seed = 1\n", "[ \"quoted\" ]\nx = 1\n", "[b-c]\n[ _x . y ]\n"] {
            XCTAssertNoThrow(try TOMLReader.parse(text, fileName: "t.toml"), text.debugDescription)
        }
    }
}
