import Foundation
import XCTest
@testable import Core
@testable import Models
@testable import DistTrain
@testable import DistCircuits

/// Bounded, deterministic fuzzing of every reader of untrusted files (docs/input-validation.md): each parser
/// gets a few thousand mutations of a valid input (truncation, bit flips, huge numbers, wrong types, deep
/// nesting, deleted and repeated chunks) from a fixed seed, and every case must end in success or a named
/// error (`UserFacingError`), never a trap. Each case is written to disk before it is parsed, so a case that
/// crashes the process is left in the printed folder; such files are kept under Tests/Fuzz/regressions/<parser>/
/// and replayed by `testRegressionFilesEndInNamedErrors`.
final class ParserFuzzTests: XCTestCase {
    /// Cases per parser (NetCDF readers take fewer: each case is a file opened through the HDF5 library).
    static let cases = 2_000
    static let netCDFCases = 600

    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-fuzz-\(getpid())-\(name.filter(\.isLetter))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    // MARK: - Mutations

    /// Byte-level mutations of a valid input, drawn from a seeded generator.
    struct Mutator {
        var rng: SplitMix64

        init(seed: UInt64) { rng = SplitMix64(seed: seed) }

        mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(rng.next() % UInt64(n)) }

        static let hugeNumbers = ["18446744073709551616", "9223372036854775807", "-9223372036854775809", "1e308", "-1e309",
                                  "288230376151711744", "4294967296", "2147483648", "-1", "0", "99999999999999999999999999",
                                  "1.5", "NaN", "3e15", "-0"]
        static let wrongTypes = ["\"x\"", "[]", "{}", "true", "false", "null", "[1,2]", "{\"a\":1}", "\"\"", "[[[[]]]]", "1e400"]
        static let interestingBytes: [UInt8] = [0, 0xFF, 0x22, 0x7B, 0x7D, 0x5B, 0x5D, 0x3A, 0x2C, 0x39, 0x2D, 0x0A, 0x5C, 0x80, 0xC3, 0x20, 0x3D]

        /// One to three mutations of `input`.
        mutating func mutate(_ input: [UInt8]) -> [UInt8] {
            var b = input
            for _ in 0...below(3) { b = once(b) }
            return b
        }

        mutating func once(_ input: [UInt8]) -> [UInt8] {
            var b = input
            let n = b.count
            switch below(9) {
            case 0:  // truncation
                return Array(b.prefix(below(n + 1)))
            case 1:  // bit flips
                guard n > 0 else { return b }
                for _ in 0...below(8) { b[below(n)] ^= UInt8(1) << UInt8(below(8)) }
                return b
            case 2:  // an interesting byte
                guard n > 0 else { return b }
                b[below(n)] = Self.interestingBytes[below(Self.interestingBytes.count)]
                return b
            case 3:  // a number replaced by a huge (or otherwise awkward) one
                return replaceRun(b, where: { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E },
                                  with: Self.hugeNumbers[below(Self.hugeNumbers.count)])
            case 4:  // a value replaced by one of the wrong type
                return replaceValue(b, with: Self.wrongTypes[below(Self.wrongTypes.count)])
            case 5:  // deep nesting
                let depth = [10, 600, 5_000, 100_000][below(4)]
                let open: UInt8 = below(2) == 0 ? 0x5B : 0x7B
                let at = below(n + 1)
                var filler = [UInt8](repeating: open, count: depth)
                if open == 0x7B { filler = Array(repeating: Array("{\"a\":".utf8), count: depth).flatMap { $0 } }
                b.insert(contentsOf: filler, at: at)
                return b
            case 6:  // a chunk deleted
                guard n > 0 else { return b }
                let at = below(n), len = 1 + below(min(64, n - at))
                b.removeSubrange(at..<(at + len))
                return b
            case 7:  // a chunk repeated elsewhere
                guard n > 0 else { return b }
                let at = below(n), len = 1 + below(min(64, n - at))
                b.insert(contentsOf: b[at..<(at + len)], at: below(n + 1))
                return b
            default:  // a random byte
                guard n > 0 else { return b }
                b[below(n)] = UInt8(truncatingIfNeeded: rng.next())
                return b
            }
        }

        /// Replaces the run of bytes satisfying `inRun` that contains a random position with `text`.
        mutating func replaceRun(_ b: [UInt8], where inRun: (UInt8) -> Bool, with text: String) -> [UInt8] {
            let starts = b.indices.filter { inRun(b[$0]) && ($0 == 0 || !inRun(b[$0 - 1])) }
            guard !starts.isEmpty else { return b }
            let s = starts[below(starts.count)]
            var e = s
            while e < b.count, inRun(b[e]) { e += 1 }
            var out = b
            out.replaceSubrange(s..<e, with: Array(text.utf8))
            return out
        }

        /// Replaces what follows a random ':' or '=' up to the next ',', '}', ']' or newline with `text`.
        mutating func replaceValue(_ b: [UInt8], with text: String) -> [UInt8] {
            let colons = b.indices.filter { b[$0] == 0x3A || b[$0] == 0x3D }
            guard !colons.isEmpty else { return b }
            let s = colons[below(colons.count)] + 1
            var e = s
            while e < b.count, ![0x2C, 0x7D, 0x5D, 0x0A].contains(b[e]) { e += 1 }
            var out = b
            out.replaceSubrange(s..<e, with: Array(text.utf8))
            return out
        }
    }

    /// Runs `cases` mutations of `seeds` (one input file each, the case mutating one of them) through `parse`,
    /// which reads the files at the given URLs. Returns (successes, named errors) and prints the counts.
    @discardableResult
    func fuzz(_ parser: String, seeds: [String: [UInt8]], cases: Int = ParserFuzzTests.cases, seed: UInt64,
              accept: (Error) -> Bool = { $0 is UserFacingError },
              parse: (URL) throws -> Void) throws -> (ok: Int, errors: Int) {
        var m = Mutator(seed: seed)
        let names = seeds.keys.sorted()
        var ok = 0, errors = 0
        let started = Date()
        for k in 0..<cases {
            let dir = folder.appendingPathComponent(parser)
            try? FileManager.default.removeItem(at: dir)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let target = names[m.below(names.count)]
            for name in names {
                let bytes = name == target ? m.mutate(seeds[name]!) : seeds[name]!
                try Data(bytes).write(to: dir.appendingPathComponent(name))
            }
            do {
                try parse(dir)
                ok += 1
            } catch {
                errors += 1
                if !accept(error) || "\(error)".isEmpty {
                    XCTFail("\(parser) case \(k) (\(target) mutated): not a named error: \(type(of: error)): \(error)")
                }
            }
        }
        print(String(format: "fuzz %@: %d cases, %d parsed, %d named errors, %.1f s", parser, cases, ok, errors, Date().timeIntervalSince(started)))
        XCTAssertEqual(ok + errors, cases)
        return (ok, errors)
    }

    // MARK: - Valid inputs

    static let tinyModel = GPT2Config(nLayer: 1, nHead: 2, nEmbd: 8, nPositions: 16, vocabSize: 20)

    /// A small model folder's files: config.json and model.safetensors (F32, one tensor in BF16).
    func modelFolderBytes() throws -> [String: [UInt8]] {
        let arena = ParameterArena(config: Self.tinyModel)
        arena.initializeGPT2(seed: 5)
        let out = folder.appendingPathComponent("model-seed")
        try HFCheckpoint.save(arena, to: out)
        return ["config.json": [UInt8](try Data(contentsOf: out.appendingPathComponent("config.json"))),
                "model.safetensors": [UInt8](try Data(contentsOf: out.appendingPathComponent("model.safetensors")))]
    }

    /// A byte-level vocabulary (the 256 bytes, three merges, `<|endoftext|>`) as vocab.json and merges.txt.
    static func tokenizerFiles() -> (vocab: String, merges: String) {
        var entries: [String] = []
        for b in 0..<256 {
            let token = ByteLevel.token(ofBytes: [UInt8(b)])
            var quoted = "\""
            for u in token.unicodeScalars {
                quoted += u == "\"" ? "\\\"" : u == "\\" ? "\\\\" : (u.value < 0x20 || u.value > 0x7E ? String(format: "\\u%04x", u.value) : String(u))
            }
            entries.append(quoted + "\": \(b)")
        }
        entries += ["\"ab\": 256", "\"abc\": 257", "\"Ġa\": 258", "\"<|endoftext|>\": 259"]
        return ("{" + entries.joined(separator: ",\n") + "}", "#version: 0.2\na b\nab c\nĠ a\n")
    }

    // MARK: - Parsers

    func testFuzzSafetensors() throws {
        let files = try modelFolderBytes()
        var extra: [SafetensorsWriter.Entry] = [.int64("step", shape: [2], values: [1, 1 << 40]),
                                                .raw("half", dtype: .F16, shape: [2, 2], bytes: Data(count: 8)),
                                                .float64("d", shape: [], values: [0.5])]
        extra.append(.float32("empty", shape: [0, 4], values: []))
        let mixed = folder.appendingPathComponent("mixed.safetensors")
        try SafetensorsWriter.write(extra, metadata: ["format": "pt"], to: mixed)
        for (name, bytes, seed) in [("safetensors-model", files["model.safetensors"]!, UInt64(11)),
                                    ("safetensors-mixed", [UInt8](try Data(contentsOf: mixed)), 12)] {
            try fuzz(name, seeds: ["t.safetensors": bytes], seed: seed) { dir in
                let f = try SafetensorsFile(url: dir.appendingPathComponent("t.safetensors"))
                for t in f.tensors {
                    if t.dtype.isFloatingPoint { _ = try f.floats(t.name); _ = try f.doubles(t.name) } else { _ = try f.int64s(t.name) }
                }
            }
        }
    }

    /// config.json and model.safetensors of a model folder, loaded as `dkc` loads a checkpoint.
    func testFuzzModelFolder() throws {
        let files = try modelFolderBytes()
        try fuzz("config.json", seeds: ["config.json": files["config.json"]!], seed: 21) { dir in
            _ = try GPT2Config.load(from: dir.appendingPathComponent("config.json"))
        }
        try fuzz("model-folder", seeds: files, seed: 22) { dir in
            _ = try HFCheckpoint.load(folder: dir)
        }
    }

    func testFuzzTokenizerFiles() throws {
        let (vocab, merges) = Self.tokenizerFiles()
        let check: (URL) throws -> Void = { dir in
            let tok = try GPT2Tokenizer(directory: dir)
            let ids = tok.encode("abc ab a<|endoftext|>é")
            XCTAssertEqual(tok.decodeBytes(ids), Array("abc ab a<|endoftext|>é".utf8))
        }
        try fuzz("vocab.json+merges.txt", seeds: ["vocab.json": Array(vocab.utf8), "merges.txt": Array(merges.utf8)], seed: 31, parse: check)
        let json = """
        {"version": "1.0", "added_tokens": [{"id": 259, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false}],
         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
         "model": {"type": "BPE", "dropout": null, "ignore_merges": false, "vocab": \(vocab), "merges": ["a b", ["ab", "c"], "Ġ a"]}}
        """
        try fuzz("tokenizer.json", seeds: ["tokenizer.json": Array(json.utf8)], seed: 32, parse: check)
    }

    func testFuzzTOMLConfigs() throws {
        let configs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs").standardizedFileURL
        for (k, schema) in [ConfigSchema.data, .train, .sweep].enumerated() {
            let file = configs.appendingPathComponent("\(schema.kind)/tiny.toml")
            let bytes = [UInt8](try Data(contentsOf: file))
            try fuzz("\(schema.kind) TOML", seeds: ["c.toml": bytes], seed: 41 + UInt64(k)) { dir in
                let resolved = try ConfigLoader.load(schema: schema, file: dir.appendingPathComponent("c.toml"), workingDirectory: dir)
                switch schema.kind {
                case "train": _ = try TrainConfig(resolved)
                case "data": _ = try DataConfig(resolved)
                default: _ = try SweepConfig(resolved)
                }
            }
        }
    }

    func testFuzzCircuitJSONL() throws {
        let lines = (0..<6).map { i in
            #"{"clean_subject": "Ann Lee\#(i)", "clean_label": " Paris", "clean_label_idx": \#(6342 + i), "corrupted_subject": "Bob Ray\#(i)", "#
                + #""corrupted_label": " Rome", "corrupted_label_idx": \#(10598 - i), "frequency": \#(i + 1), "type": "\#(i % 2 == 0 ? "new" : "revised")"}"#
        }
        try fuzz("circuit JSONL", seeds: ["city.jsonl": Array(lines.joined(separator: "\n").utf8)], seed: 51) { dir in
            let samples = try CircuitSample.readJSONL(dir.appendingPathComponent("city.jsonl"))
            _ = CircuitSample.filter(samples, type: "new", bucket: FrequencyBucket(name: "high", min: 6, max: Int.max))
        }
    }

    /// trainer_state.json, parsing only (what the state means on resume is checked by TrainerState).
    func testFuzzTrainerStateJSON() throws {
        let text = """
        {"best_metric": null, "epoch": 2.0, "global_step": 244, "is_world_process_zero": true,
         "log_history": [{"epoch": 1.0, "loss": 3.25, "step": 122}, {"epoch": 2.0, "eval_loss": 2.5, "step": 244}],
         "max_steps": 732, "num_train_epochs": 6, "save_steps": 122, "train_batch_size": 8,
         "dkc": {"stage": "continual", "steps_per_epoch": 122, "global_batch_size": 16, "data_seed": 42, "rng": [1, 2, 3]}}
        """
        try fuzz("trainer_state.json", seeds: ["trainer_state.json": Array(text.utf8)], seed: 61,
                 accept: { $0 is JSONValue.ParseError }) { dir in
            let v = try JSONValue(parsing: Data(contentsOf: dir.appendingPathComponent("trainer_state.json")))
            _ = v["global_step"]?.intValue
            _ = v["log_history"]?.arrayValue?.first?["loss"]?.doubleValue
        }
    }

    /// scores.nc, circuits.nc and acquisition.nc as a resumed sweep reads them and as `dkc analyze` reads them.
    /// Only truncations and flips in the last quarter of the file (the data chunks) are fed to the HDF5 library:
    /// arbitrary damage to HDF5's own metadata can crash the library itself, which dkc cannot guard against
    /// (docs/input-validation.md).
    func testFuzzNetCDFOutputs() throws {
        let edges = try OutputFilesTests.graph()
        let seedDir = folder.appendingPathComponent("nc-seed")
        try FileManager.default.createDirectory(at: seedDir, withIntermediateDirectories: true)
        let provenance = try OutputFilesTests.provenance()
        try OutputFilesTests.scoresTable(cells: OutputFilesTests.cellsOrder, edges: edges)
            .write(to: seedDir.appendingPathComponent("scores.nc"), provenance: provenance)
        try OutputFilesTests.circuitsTable(cells: OutputFilesTests.cellsOrder, edges: edges)
            .write(to: seedDir.appendingPathComponent("circuits.nc"), provenance: provenance)
        try OutputFilesTests.acquisitionTable(cells: OutputFilesTests.acquisitionCells)
            .write(to: seedDir.appendingPathComponent("acquisition.nc"), provenance: provenance)
        var seeds: [String: [UInt8]] = [:]
        for name in ["scores.nc", "circuits.nc", "acquisition.nc"] {
            seeds[name] = [UInt8](try Data(contentsOf: seedDir.appendingPathComponent(name)))
        }
        // A mutator restricted to what HDF5 survives: truncation anywhere, bit flips in the data chunks.
        var m = Mutator(seed: 71)
        var ok = 0, errors = 0
        for k in 0..<Self.netCDFCases {
            let dir = folder.appendingPathComponent("nc")
            try? FileManager.default.removeItem(at: dir)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let target = seeds.keys.sorted()[m.below(3)]
            for (name, bytes) in seeds {
                var b = bytes
                if name == target {
                    if m.below(2) == 0 {
                        b = Array(b.prefix(m.below(b.count)))
                    } else {
                        for _ in 0...m.below(4) { b[b.count * 3 / 4 + m.below(b.count / 4)] ^= UInt8(1) << UInt8(m.below(8)) }
                    }
                }
                try Data(b).write(to: dir.appendingPathComponent(name))
            }
            do {
                switch target {
                case "scores.nc": _ = try ScoresTable.read(from: dir.appendingPathComponent(target))
                case "circuits.nc": _ = try CircuitsTable.read(from: dir.appendingPathComponent(target))
                default: _ = try AcquisitionTable.read(from: dir.appendingPathComponent(target))
                }
                _ = try Analysis.run(inputs: AnalysisInputPaths(scores: dir.appendingPathComponent("scores.nc").path,
                                                                circuits: dir.appendingPathComponent("circuits.nc").path,
                                                                acquisition: dir.appendingPathComponent("acquisition.nc").path))
                ok += 1
            } catch {
                errors += 1
                if !(error is UserFacingError) { XCTFail("NetCDF case \(k) (\(target)): not a named error: \(type(of: error)): \(error)") }
            }
        }
        print("fuzz NetCDF outputs: \(Self.netCDFCases) cases, \(ok) read, \(errors) named errors")
    }

    // MARK: - Regressions

    /// Every file kept under Tests/Fuzz/regressions/<parser>/ ends in success or a named error.
    func testRegressionFilesEndInNamedErrors() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fuzz/regressions").standardizedFileURL
        let fm = FileManager.default
        let parsers: [String: (URL) throws -> Void] = [
            "safetensors": { _ = try SafetensorsFile(url: $0) },
            "config.json": { _ = try GPT2Config.load(from: $0) },
            "circuit-jsonl": { _ = try CircuitSample.readJSONL($0) },
            "toml": { _ = try ConfigLoader.load(schema: .data, file: $0, workingDirectory: $0.deletingLastPathComponent()) },
            "vocab.json": { url in
                let dir = self.folder.appendingPathComponent("regression-vocab")
                try? fm.removeItem(at: dir)
                try fm.createDirectory(at: dir, withIntermediateDirectories: true)
                try fm.copyItem(at: url, to: dir.appendingPathComponent("vocab.json"))
                try Data(Self.tokenizerFiles().merges.utf8).write(to: dir.appendingPathComponent("merges.txt"))
                _ = try GPT2Tokenizer(directory: dir)
            },
        ]
        var replayed = 0
        for (parser, parse) in parsers {
            let dir = root.appendingPathComponent(parser)
            guard let files = try? fm.contentsOfDirectory(atPath: dir.path) else { continue }
            for name in files.sorted() {
                do { try parse(dir.appendingPathComponent(name)) } catch {
                    XCTAssertTrue(error is UserFacingError, "\(parser)/\(name): \(type(of: error)): \(error)")
                }
                replayed += 1
            }
        }
        print("fuzz regressions replayed: \(replayed)")
        XCTAssertGreaterThan(replayed, 0, "no regression files found under \(root.path)")
    }
}
