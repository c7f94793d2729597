import Foundation
import XCTest
@testable import Core

/// The forgetting sets of `dkc data generate` (`[forget]`, docs/forgetting.md): determinism, the
/// overlap with the continual corpus counted exactly, conflict values, record fields.
final class ForgetDataTests: XCTestCase {
    private let encoder = ThreeLetterEncoder()
    /// 2,000 people: 1,600 new and 400 revised in the continual corpus.
    private let small = ["n_entities=2000", "validation_size=300", "test_per_cell=20", "circuit_n=30", "test_set=independent"]

    private func build(_ overrides: [String]) throws -> DataGeneration.Result {
        let c = try DataConfig.load(file: nil, overrides: overrides)
        let (p, t, r) = try DataGeneration.inputs(for: c)
        return try DataGeneration.build(config: c, pools: p, templates: t, revisedNames: r, encoder: encoder)
    }

    private func file(_ r: DataGeneration.Result, _ path: String) -> [UInt8]? {
        r.files.first(where: { $0.path == path })?.bytes
    }

    private func records(_ r: DataGeneration.Result, _ path: String) throws -> [[String: Any]] {
        let bytes = try XCTUnwrap(file(r, path), "no \(path)")
        return try bytes.split(separator: 0x0A).map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])
        }
    }

    private func forgetManifest(_ r: DataGeneration.Result) throws -> [String: Any] {
        let data = Data(r.manifest.prettyText().utf8)
        let m = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try XCTUnwrap(m["forget"] as? [String: Any], "manifest has no forget object")
    }

    private let forgetFiles = ["forget/new.jsonl", "forget/train.jsonl", "forget/replay.jsonl", "forget/conflict.jsonl", "forget/validation.jsonl"]

    func testNoForgetFilesWhenNNewIsZero() throws {
        let r = try build(small)
        XCTAssertTrue(r.files.allSatisfy { !$0.path.hasPrefix("forget/") })
        guard case .object(let m) = r.manifest else { return XCTFail("manifest is not an object") }
        XCTAssertNil(m.first { $0.0 == "forget" })
    }

    func testDeterministicAndIndependentOfTheOtherStreams() throws {
        let on = small + ["forget.n_new=2000", "forget.conflict=true", "forget.validation_size=50"]
        let a = try build(on), b = try build(on)
        XCTAssertEqual(a.files.map(\.path), b.files.map(\.path))
        for (x, y) in zip(a.files, b.files) { XCTAssertTrue(x.bytes == y.bytes, "\(x.path) differs between identical runs") }
        for path in forgetFiles { XCTAssertNotNil(file(a, path), path) }

        // The forgetting sets leave every continual file as it was.
        let off = try build(small)
        for f in off.files { XCTAssertTrue(file(a, f.path) == f.bytes, "\(f.path) changed when the forgetting sets were added") }

        // forget.seed changes every forgetting file and nothing else.
        let c = try build(on + ["forget.seed=21"])
        for path in forgetFiles { XCTAssertFalse(file(a, path) == file(c, path), "\(path) did not change with forget.seed") }
        for f in off.files { XCTAssertTrue(file(c, f.path) == f.bytes, "\(f.path) changed with forget.seed") }

        // Each set has its own stream: the conflict set and validation size leave the others alone.
        let d = try build(small + ["forget.n_new=2000"])
        for path in ["forget/new.jsonl", "forget/train.jsonl", "forget/replay.jsonl"] {
            XCTAssertTrue(file(a, path) == file(d, path), "\(path) changed with forget.conflict / validation_size")
        }
        XCTAssertNil(file(d, "forget/conflict.jsonl"))
        XCTAssertNil(file(d, "forget/validation.jsonl"))
    }

    func testOverlapWithTheContinualCorpusCountedExactly() throws {
        let base = try build(small)
        let cptNew = Set(try records(base, "new.jsonl").map { try XCTUnwrap($0["full_name"] as? String) })
        XCTAssertEqual(cptNew.count, 1600)
        let cptRevised = Set(try records(base, "revised.jsonl").map { try XCTUnwrap($0["full_name"] as? String) })
        XCTAssertEqual(cptRevised.count, 400)

        // (n_new, include_cpt_new) → expected people from the continual new set.
        for (n, include, expectedCPT) in [(2000, true, 1600), (500, true, 500), (2000, false, 0)] {
            let r = try build(small + ["forget.n_new=\(n)", "forget.include_cpt_new=\(include)"])
            let people = try records(r, "forget/new.jsonl")
            let names = try people.map { try XCTUnwrap($0["full_name"] as? String) }
            XCTAssertEqual(names.count, n)
            XCTAssertEqual(Set(names).count, n, "forgetting names are not unique")
            let overlapNew = names.filter { cptNew.contains($0) }.count
            let overlapRevised = names.filter { cptRevised.contains($0) }.count
            XCTAssertEqual(overlapNew, expectedCPT, "n_new \(n) include \(include)")
            XCTAssertEqual(overlapRevised, 0)
            let m = try forgetManifest(r)
            let counted = try XCTUnwrap(m["people"] as? [String: Int])
            XCTAssertEqual(counted, ["total": n, "cpt_new": expectedCPT, "cpt_revised": 0, "fresh": n - expectedCPT])
            XCTAssertEqual(m["include_cpt_new"] as? Bool, include)
            XCTAssertEqual(m["seed"] as? Int, 20)
            let texts = try XCTUnwrap(m["texts"] as? [String: Int])
            XCTAssertEqual(texts["train"], n)
            XCTAssertEqual(texts["replay"], 2000)
            XCTAssertEqual(texts["replay_new"], 1600)
            XCTAssertEqual(texts["replay_revised"], 400)
            XCTAssertEqual(try records(r, "forget/train.jsonl").map { $0["full_name"] as? String }, names,
                           "train.jsonl must hold one text per person, in new.jsonl's order")
        }
    }

    func testOriginAndCPTFrequencyFields() throws {
        let base = try build(small)
        var cpt: [String: (freq: String, type: String, city: String)] = [:]
        for path in ["new.jsonl", "revised.jsonl"] {
            for e in try records(base, path) {
                cpt[try XCTUnwrap(e["full_name"] as? String)] = (try XCTUnwrap(e["frequency"] as? String), try XCTUnwrap(e["type"] as? String),
                                                                  try XCTUnwrap(e["city"] as? String))
            }
        }
        let r = try build(small + ["forget.n_new=1800", "forget.conflict=true"])
        for path in ["forget/new.jsonl", "forget/train.jsonl"] {
            for e in try records(r, path) {
                let name = try XCTUnwrap(e["full_name"] as? String)
                XCTAssertEqual(e["origin"] as? String, "forget_new")
                XCTAssertEqual(e["frequency"] as? String, "1")
                XCTAssertEqual(e["type"] as? String, "new")
                XCTAssertEqual(e["cpt_frequency"] as? String, cpt[name]?.freq ?? "0", name)
            }
        }
        let replay = try records(r, "forget/replay.jsonl")
        XCTAssertEqual(replay.count, 2000)
        for e in replay {
            let name = try XCTUnwrap(e["full_name"] as? String)
            let c = try XCTUnwrap(cpt[name], "replay person \(name) is not a continual person")
            XCTAssertEqual(e["origin"] as? String, "replay")
            XCTAssertEqual(e["frequency"] as? String, "1")
            XCTAssertEqual(e["type"] as? String, c.type, "replay keeps the continual type")
            XCTAssertEqual(e["cpt_frequency"] as? String, c.freq)
            XCTAssertEqual(e["city"] as? String, c.city, "replay keeps the continual attributes")
            let text = try XCTUnwrap(e["text"] as? String)
            XCTAssertTrue(text.contains(c.city), "replay text does not state the continual city")
        }
        XCTAssertEqual(Set(replay.map { $0["full_name"] as! String }), Set(cpt.keys))
        XCTAssertEqual(Set(try records(r, "forget/conflict.jsonl").map { $0["origin"] as! String }), ["conflict"])
    }

    func testConflictValuesDifferFromTheContinualOnes() throws {
        let r = try build(small + ["forget.n_new=100", "forget.conflict=true"])
        let replay = try records(r, "forget/replay.jsonl"), conflict = try records(r, "forget/conflict.jsonl")
        XCTAssertEqual(conflict.count, replay.count)
        let keys = ["birth_date", "birth_month", "birth_year", "city", "major", "university", "company"]
        for (old, new) in zip(replay, conflict) {
            XCTAssertEqual(old["full_name"] as? String, new["full_name"] as? String)
            XCTAssertEqual(old["type"] as? String, new["type"] as? String)
            XCTAssertEqual(old["cpt_frequency"] as? String, new["cpt_frequency"] as? String)
            for k in keys {
                XCTAssertNotEqual(old[k] as? String, new[k] as? String, "\(k) of \(old["full_name"] ?? "") was not changed")
            }
            XCTAssertNotEqual(old["birthday"] as? String, new["birthday"] as? String)
            let text = try XCTUnwrap(new["text"] as? String)
            XCTAssertTrue(text.contains(try XCTUnwrap(new["city"] as? String)))
        }
    }

    func testValidationSampledFromTheForgettingTexts() throws {
        let r = try build(small + ["forget.n_new=300", "forget.validation_size=40"])
        let train = Set(try XCTUnwrap(file(r, "forget/train.jsonl")).split(separator: 0x0A).map { Array($0) })
        let validation = try XCTUnwrap(file(r, "forget/validation.jsonl")).split(separator: 0x0A).map { Array($0) }
        XCTAssertEqual(validation.count, 40)
        XCTAssertEqual(Set(validation).count, 40, "validation lines drawn twice")
        XCTAssertTrue(validation.allSatisfy { train.contains($0) })
        XCTAssertEqual((try forgetManifest(r)["texts"] as? [String: Int])?["validation"], 40)
    }

    func testConfigErrorsNameTheForgetKey() throws {
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["forget.n_new=-1"])) { error in
            guard case .invalidValue(let key, _, _)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "forget.n_new")
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["forget.n_nwe=5"])) { error in
            guard case .unknownKey(_, _, let suggestion)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(suggestion, "forget.n_new")
        }
        let c = try DataConfig.load(file: nil, overrides: ["forget.seed=7", "seed=3"])
        XCTAssertEqual(c.forget.seed, 7)
        XCTAssertEqual(c.seed, 3)
        XCTAssertEqual(try DataConfig.load(file: nil).forget.seed, 20)
        // The resolved TOML reads back to the same forgetting settings.
        let text = c.resolved.tomlText
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-forget-\(UUID().uuidString).toml")
        try Data(text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let back = try DataConfig.load(file: file)
        XCTAssertEqual(back.forget.seed, 7)
        XCTAssertEqual(back.forget.nNew, 0)
    }
}
