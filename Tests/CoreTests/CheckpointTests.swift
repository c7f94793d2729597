import Foundation
import XCTest
@testable import Core

final class CheckpointTests: XCTestCase {

    // MARK: safetensors

    func testSafetensorsRoundTrip() throws {
        let dir = try ModelFixtures.tempDir(self)
        let url = dir.appendingPathComponent("t.safetensors")
        let a: [Float] = (0..<24).map { Float($0) * 0.25 - 3 }
        let b: [Int64] = [7, -1, 1 << 40]
        let c: [Double] = [1.0 / 3.0, -2.5]
        try SafetensorsWriter.write([
            .float32("b.weight", shape: [4, 6], values: a),
            .int64("a.step", shape: [3], values: b),
            .float64("c_f64", shape: [2], values: c),
            .float32("empty", shape: [0, 3], values: []),
            .float32("scalar", shape: [], values: [42]),
        ], metadata: ["format": "pt"], to: url)

        let bytes = try Data(contentsOf: url)
        let n = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        XCTAssertEqual((8 + n) % 8, 0, "header padded to 8 bytes")
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{\"format\":\"pt\"},"), header)
        XCTAssertTrue(header.hasSuffix("}") || header.hasSuffix(" "))

        let f = try SafetensorsFile(url: url)
        XCTAssertEqual(f.metadata, ["format": "pt"])
        // Widest dtype first (I64, F64), then F32 by name.
        XCTAssertEqual(f.names, ["a.step", "c_f64", "b.weight", "empty", "scalar"])
        XCTAssertEqual(try f.info("b.weight").shape, [4, 6])
        XCTAssertEqual(try f.floats("b.weight"), a)
        XCTAssertEqual(try f.int64s("a.step"), b)
        XCTAssertEqual(try f.doubles("c_f64"), c)
        XCTAssertEqual(try f.floats("c_f64"), c.map(Float.init))
        XCTAssertEqual(try f.floats("empty"), [])
        XCTAssertEqual(try f.floats("scalar"), [42])
        XCTAssertThrowsError(try f.floats("a.step")) { XCTAssertTrue("\($0)".contains("a.step")) }
        XCTAssertThrowsError(try f.floats("nope")) { XCTAssertTrue("\($0)".contains("nope") && "\($0)".contains(url.path)) }
    }

    func testHalfAndBFloat16AreConverted() throws {
        let dir = try ModelFixtures.tempDir(self)
        let url = dir.appendingPathComponent("h.safetensors")
        let values: [Float] = [1, -2, 0.5, 3.25]
        let f16 = values.map { Float16($0).bitPattern }
        let bf16 = values.map { UInt16($0.bitPattern >> 16) }
        try SafetensorsWriter.write([
            .raw("h", dtype: .F16, shape: [4], bytes: f16.withUnsafeBytes { Data($0) }),
            .raw("bf", dtype: .BF16, shape: [2, 2], bytes: bf16.withUnsafeBytes { Data($0) }),
        ], to: url)
        let f = try SafetensorsFile(url: url)
        XCTAssertEqual(try f.floats("h"), values)
        XCTAssertEqual(try f.floats("bf"), values)
    }

    /// Every kind of damage is rejected, and the message names the file (and the tensor where there is one).
    func testCorruptFilesAreRejectedNamingTheFile() throws {
        let dir = try ModelFixtures.tempDir(self)
        let good = dir.appendingPathComponent("good.safetensors")
        try SafetensorsWriter.write([.float32("w", shape: [2, 3], values: [1, 2, 3, 4, 5, 6]),
                                     .float32("v", shape: [2], values: [7, 8])], to: good)
        let bytes = try Data(contentsOf: good)
        let n = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)

        func withHeader(_ h: String, data: Data) -> Data {
            var hb = Data(h.utf8)
            while hb.count % 8 != 0 { hb.append(0x20) }
            var len = UInt64(hb.count).littleEndian
            var out = Data(bytes: &len, count: 8)
            out.append(hb)
            out.append(data)
            return out
        }
        let payload = bytes[(8 + n)...]
        var cases: [(String, Data, [String])] = [
            ("empty", Data(), ["truncated"]),
            ("short", bytes.prefix(5), ["truncated"]),
            ("truncated-data", bytes.prefix(bytes.count - 4), ["truncated"]),
            ("header-past-end", bytes.prefix(8 + n - 3), ["truncated"]),
            ("not-json", withHeader("{not json", data: Data(payload)), ["corrupt header"]),
            ("unknown-dtype", withHeader(header.replacingOccurrences(of: "\"F32\"", with: "\"F99\""), data: Data(payload)), ["unknown dtype"]),
            ("overlap", withHeader(#"{"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[4,28]}}"#, data: Data(payload)), ["w", "overlaps"]),
            ("gap", withHeader(#"{"v":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]}}"#, data: Data(payload)), ["w", "gap"]),
            ("wrong-size", withHeader(#"{"v":{"dtype":"F32","shape":[3],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]}}"#, data: Data(payload)), ["v", "needs 12"]),
            ("trailing", withHeader(header, data: Data(payload) + Data([1, 2, 3, 4])), ["not described"]),
            ("negative", withHeader(#"{"v":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: Data(payload)), ["v", "shape"]),
        ]
        var huge = Data(bytes)
        huge.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
        cases.append(("huge-header", huge, ["header length"]))
        for (label, data, needles) in cases {
            let url = dir.appendingPathComponent("\(label).safetensors")
            try data.write(to: url)
            XCTAssertThrowsError(try SafetensorsFile(url: url), label) { error in
                let msg = "\(error)"
                XCTAssertTrue(error is CheckpointError, "\(label): \(type(of: error))")
                XCTAssertTrue(msg.contains(url.path), "\(label): message does not name the file: \(msg)")
                for needle in needles { XCTAssertTrue(msg.contains(needle), "\(label): '\(needle)' not in: \(msg)") }
            }
        }
        XCTAssertThrowsError(try SafetensorsFile(url: dir.appendingPathComponent("missing.safetensors"))) {
            XCTAssertTrue("\($0)".contains("missing.safetensors"))
        }
    }

    // MARK: config

    func testConfigRejectsUnsupportedValuesByName() throws {
        let base = try String(contentsOf: try ModelFixtures.model().appendingPathComponent("config.json"), encoding: .utf8)
        func expectError(_ edit: (String) -> String, _ field: String) {
            XCTAssertThrowsError(try GPT2Config(json: Data(edit(base).utf8), source: "x/config.json"), field) { e in
                XCTAssertTrue("\(e)".contains(field) && "\(e)".contains("x/config.json"), "\(e)")
            }
        }
        expectError({ $0.replacingOccurrences(of: "\"gelu_new\"", with: "\"relu\"") }, "activation_function")
        expectError({ $0.replacingOccurrences(of: "\"n_head\": 4", with: "\"n_head\": 3") }, "n_embd")
        expectError({ $0.replacingOccurrences(of: "\"model_type\": \"gpt2\"", with: "\"model_type\": \"llama\"") }, "model_type")
        expectError({ $0.replacingOccurrences(of: "\"GPT2LMHeadModel\"", with: "\"LlamaForCausalLM\"") }, "architectures")
        expectError({ $0.replacingOccurrences(of: "\"tie_word_embeddings\": true", with: "\"tie_word_embeddings\": false") }, "tie_word_embeddings")
        expectError({ $0.replacingOccurrences(of: "\"n_ctx\": 128", with: "\"n_ctx\": 64") }, "n_ctx")
        expectError({ $0.replacingOccurrences(of: "\"n_inner\": null", with: "\"n_inner\": 100") }, "n_inner")
        expectError({ $0.replacingOccurrences(of: "\"n_layer\": 2", with: "\"n_layer\": \"two\"") }, "n_layer")
        let ok = try GPT2Config(json: Data(base.replacingOccurrences(of: "\"gelu_new\"", with: "\"gelu_pytorch_tanh\"").utf8), source: "x")
        XCTAssertEqual(ok.activationFunction, "gelu_pytorch_tanh")
    }

    func testConfigRoundTrip() throws {
        let cfg = GPT2Config(nLayer: 3, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 99, layerNormEpsilon: 1e-5)
        let back = try GPT2Config(json: cfg.jsonData(), source: "mem")
        XCTAssertEqual(back, cfg)
        let text = String(decoding: cfg.jsonData(), as: UTF8.self)
        for key in ["\"model_type\": \"gpt2\"", "\"n_ctx\": 32", "\"tie_word_embeddings\": true", "\"bos_token_id\": 50256",
                    "\"layer_norm_epsilon\": 1e-05", "\"GPT2LMHeadModel\""] {
            XCTAssertTrue(text.contains(key), "\(key) missing from\n\(text)")
        }
    }

    // MARK: HF folders

    func testLoadFixtureModel() throws {
        let folder = try ModelFixtures.model()
        let arena = try HFCheckpoint.load(folder: folder)
        let cfg = arena.config
        XCTAssertEqual([cfg.nLayer, cfg.nHead, cfg.nEmbd, cfg.nPositions, cfg.vocabSize], [2, 4, 64, 128, 50257])
        XCTAssertEqual(cfg.layerNormEpsilon, 1e-5)
        XCTAssertEqual(arena.layout.tensors.count, 28)
        let st = try SafetensorsFile(url: folder.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(st.metadata, ["format": "pt"])
        XCTAssertEqual(Set(st.names), Set(arena.layout.tensors.map(\.name)))
        for t in arena.layout.tensors {
            XCTAssertEqual(try st.info(t.name).shape, t.shape, t.name)
            XCTAssertEqual(try st.floats(t.name), Array(arena.buffer(t)), t.name)
        }
        XCTAssertEqual(arena.layout.tensors.filter(\.decay).map(\.name),
                       try ModelFixtures.json("train_step.json")["decay_parameters"] as? [String])
    }

    func testSavedCheckpointLoadsBackBitIdenticalIntoTheSameArena() throws {
        let dir = try ModelFixtures.tempDir(self)
        let original = try HFCheckpoint.load(folder: try ModelFixtures.model())
        let out = dir.appendingPathComponent("ckpt")
        try HFCheckpoint.save(original, to: out)
        try HFCheckpoint.save(original, to: out) // replacing an existing folder works
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["ckpt"], "no temporary folders left")

        let st = try SafetensorsFile(url: out.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(st.metadata, ["format": "pt"])
        XCTAssertFalse(st.contains("lm_head.weight"))
        XCTAssertTrue(st.tensors.allSatisfy { $0.dtype == .F32 && $0.name.hasPrefix("transformer.") })

        // Load into an arena that already holds other numbers: same memory, identical bits.
        let arena = ParameterArena(config: original.config)
        arena.initializeGPT2(seed: 1)
        let base = arena.base
        try HFCheckpoint.load(folder: out, into: arena)
        XCTAssertEqual(arena.base, base)
        XCTAssertEqual(arena.config, original.config)
        for i in 0..<arena.count where arena.base[i].bitPattern != original.base[i].bitPattern {
            XCTFail("element \(i) differs"); break
        }
        // A checkpoint of another shape is refused when loading into this arena.
        let other = ParameterArena(config: GPT2Config(nLayer: 1, nHead: 4, nEmbd: 64, nPositions: 128))
        let otherDir = dir.appendingPathComponent("other")
        try HFCheckpoint.save(other, to: otherDir)
        XCTAssertThrowsError(try HFCheckpoint.load(folder: otherDir, into: arena)) { XCTAssertTrue("\($0)".contains("n_layer")) }
    }

    func testLoadingAcceptsUnprefixedNamesHalfPrecisionAndTiedHead() throws {
        let dir = try ModelFixtures.tempDir(self)
        let cfg = GPT2Config(nLayer: 1, nHead: 2, nEmbd: 8, nPositions: 16, vocabSize: 20)
        let src = ParameterArena(config: cfg)
        src.initializeGPT2(seed: 7)
        // Round everything to bf16 so the conversion is exact.
        for i in 0..<src.count { src.base[i] = Float(bitPattern: src.base[i].bitPattern & 0xFFFF_0000) }
        func bf16(_ t: ParameterLayout.Tensor) -> Data {
            Array(src.buffer(t)).map { UInt16($0.bitPattern >> 16) }.withUnsafeBytes { Data($0) }
        }
        var entries = src.layout.tensors.map {
            SafetensorsWriter.Entry.raw(String($0.name.dropFirst("transformer.".count)), dtype: .BF16, shape: $0.shape, bytes: bf16($0))
        }
        let wte = src.layout.tensors[0]
        entries.append(.raw("lm_head.weight", dtype: .BF16, shape: wte.shape, bytes: bf16(wte)))
        entries.append(.float32("h.0.attn.bias", shape: [1, 1, 16, 16], values: [Float](repeating: 1, count: 256)))
        try cfg.write(to: dir.appendingPathComponent("config.json"))
        try SafetensorsWriter.write(entries, to: dir.appendingPathComponent("model.safetensors"))
        let loaded = try HFCheckpoint.load(folder: dir)
        XCTAssertEqual(Array(loaded.buffer), Array(src.buffer))

        // An untied head, a missing tensor, a wrong shape and a stray tensor are each refused by name.
        func refuse(_ es: [SafetensorsWriter.Entry], _ needle: String) throws {
            try SafetensorsWriter.write(es, to: dir.appendingPathComponent("model.safetensors"))
            XCTAssertThrowsError(try HFCheckpoint.load(folder: dir)) { e in
                XCTAssertTrue("\(e)".contains(needle) && "\(e)".contains("model.safetensors"), "\(e)")
            }
        }
        var untied = entries
        var head = Array(src.buffer(wte)); head[3] += 1
        untied[untied.count - 2] = .float32("lm_head.weight", shape: wte.shape, values: head)
        try refuse(untied, "lm_head.weight")
        try refuse(Array(entries.dropFirst()), "transformer.wte.weight")
        var badShape = entries
        badShape[1] = .float32("wpe.weight", shape: [8, 16], values: [Float](repeating: 0, count: 128))
        try refuse(badShape, "wpe.weight")
        try refuse(entries + [.float32("h.1.ln_1.weight", shape: [8], values: [Float](repeating: 0, count: 8))], "h.1.ln_1.weight")
    }

    /// The file we write loads in Python's safetensors with the names and shapes transformers expects.
    func testPythonReadsOurCheckpoint() throws {
        let pip = Process()
        pip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        pip.arguments = ["python3", "-m", "pip", "install", "-q", "safetensors", "numpy"]
        pip.standardOutput = FileHandle.nullDevice
        pip.standardError = FileHandle.nullDevice
        do { try pip.run() } catch { throw XCTSkip("python3 not runnable: \(error)") }
        pip.waitUntilExit()
        guard pip.terminationStatus == 0 else { throw XCTSkip("pip install safetensors numpy failed (status \(pip.terminationStatus)); skipping the Python check") }

        let dir = try ModelFixtures.tempDir(self)
        let cfg = GPT2Config(nLayer: 2, nHead: 2, nEmbd: 8, nPositions: 16, vocabSize: 30)
        let arena = ParameterArena(config: cfg)
        arena.initializeGPT2(seed: 3)
        let out = dir.appendingPathComponent("ckpt")
        try HFCheckpoint.save(arena, to: out)
        var expected: [String: Any] = [:]
        for t in arena.layout.tensors { expected[t.name] = ["shape": t.shape, "sum": Array(arena.buffer(t)).reduce(0.0) { $0 + Double($1) }] }
        let expectedURL = dir.appendingPathComponent("expected.json")
        try JSONSerialization.data(withJSONObject: expected).write(to: expectedURL)
        let script = """
        import json, sys
        from safetensors import safe_open
        from safetensors.numpy import load_file
        folder, exp = sys.argv[1], json.load(open(sys.argv[2]))
        t = load_file(folder + "/model.safetensors")
        assert set(t) == set(exp), (sorted(set(t) ^ set(exp)))
        for k, v in t.items():
            assert v.dtype.name == "float32", (k, v.dtype)
            assert list(v.shape) == exp[k]["shape"], (k, v.shape, exp[k]["shape"])
            assert abs(float(v.astype("float64").sum()) - exp[k]["sum"]) <= 1e-9 * max(1.0, abs(exp[k]["sum"])), k
        with safe_open(folder + "/model.safetensors", "np") as f:
            assert f.metadata() == {"format": "pt"}, f.metadata()
        cfg = json.load(open(folder + "/config.json"))
        assert cfg["model_type"] == "gpt2" and cfg["n_ctx"] == cfg["n_positions"] == 16 and cfg["tie_word_embeddings"]
        print("ok", len(t))
        """
        let py = Process()
        py.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        py.arguments = ["python3", "-c", script, out.path, expectedURL.path]
        let pipe = Pipe()
        py.standardOutput = pipe
        py.standardError = pipe
        try py.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        py.waitUntilExit()
        XCTAssertEqual(py.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("ok 28"), output)
    }
}
