import Foundation
import XCTest
@testable import Core

/// A deterministic stand-in tokenizer: one token per three Unicode scalars, the id a hash of them.
/// Names of different lengths get different token counts, which is all circuit sampling needs.
struct ThreeLetterEncoder: TextEncoder {
    func encode(_ text: String) -> [Int] {
        let s = Array(text.unicodeScalars)
        return stride(from: 0, to: s.count, by: 3).map { i in
            var h: UInt64 = 1469598103934665603
            for c in s[i..<min(i + 3, s.count)] { h = (h ^ UInt64(c.value)) &* 1099511628211 }
            return Int(h % 50257)
        }
    }
}

/// `dkc data generate`: determinism, the study's procedures, and every rejected input.
final class DataGenerationTests: XCTestCase {
    private var folder: URL!
    private let encoder = ThreeLetterEncoder()
    /// A world of 2,000 entities: every cell holds ≥ 30 entities (revised × high about 44).
    private let small = ["n_entities=2000", "validation_size=300", "test_per_cell=20", "circuit_n=30", "test_set=independent"]

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func build(_ overrides: [String], encoder: TextEncoder? = nil) throws -> DataGeneration.Result {
        let c = try DataConfig.load(file: nil, overrides: overrides)
        let (p, t, r) = try DataGeneration.inputs(for: c)
        return try DataGeneration.build(config: c, pools: p, templates: t, revisedNames: r, encoder: encoder ?? self.encoder)
    }

    private func file(_ r: DataGeneration.Result, _ path: String) -> [UInt8] {
        guard let f = r.files.first(where: { $0.path == path }) else { XCTFail("no \(path)"); return [] }
        return f.bytes
    }

    private func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map(Array.init)
    }

    private func records(_ r: DataGeneration.Result, _ path: String) throws -> [[String: Any]] {
        try lines(file(r, path)).map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]) }
    }

    // MARK: - Determinism

    func testSameSeedByteIdenticalDifferentSeedDifferent() throws {
        let a = try build(small), b = try build(small)
        XCTAssertEqual(a.files.map(\.path), b.files.map(\.path))
        for (x, y) in zip(a.files, b.files) { XCTAssertTrue(x.bytes == y.bytes, "\(x.path) differs between identical runs") }
        XCTAssertEqual(a.manifest, b.manifest)

        let c = try build(small + ["seed=43"])
        for path in ["new.jsonl", "revised.jsonl", "train.jsonl", "validation.jsonl", "base.jsonl", "test.jsonl"] {
            XCTAssertFalse(file(a, path) == file(c, path), "\(path) did not change with the seed")
        }
        // circuit_seed changes only the circuit files: streams are independent.
        let d = try build(small + ["circuit_seed=7"])
        for path in ["new.jsonl", "revised.jsonl", "train.jsonl", "validation.jsonl", "base.jsonl", "test.jsonl"] {
            XCTAssertTrue(file(a, path) == file(d, path), "\(path) changed with circuit_seed")
        }
        XCTAssertFalse(file(a, "circuit_30/gpt2/city.jsonl") == file(d, "circuit_30/gpt2/city.jsonl"))
        // validation_size changes only validation.jsonl.
        let e = try build(small + ["validation_size=10"])
        XCTAssertTrue(file(a, "train.jsonl") == file(e, "train.jsonl"))
        XCTAssertEqual(lines(file(e, "validation.jsonl")).count, 10)
    }

    func testWrittenFolderAndManifestDigests() throws {
        let out = folder.appendingPathComponent("world")
        let tiny = ["n_entities=600", "validation_size=50", "test_per_cell=5", "circuit_n=10", "test_set=independent"]
        let c = try DataConfig.load(file: nil, overrides: tiny)
        let r = try DataGeneration.run(config: c, out: out, force: false, makeEncoder: { _ in self.encoder })
        let fm = FileManager.default
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("manifest.json"))) as? [String: Any])
        let files = try XCTUnwrap(manifest["files"] as? [String: [String: Any]])
        XCTAssertEqual(Set(files.keys), Set(r.files.map(\.path)))
        for (path, info) in files {
            let url = out.appendingPathComponent(path)
            XCTAssertEqual(info["sha256"] as? String, try SHA256.hex(fileAt: url), path)
            XCTAssertEqual(info["bytes"] as? Int, try fm.attributesOfItem(atPath: url.path)[.size] as? Int, path)
        }
        XCTAssertEqual((manifest["dkc"] as? [String: Any])?["version"] as? String, DKCVersion.version)
        XCTAssertEqual((manifest["config"] as? [String: Any])?["n_entities"] as? Int, 600)
        XCTAssertEqual(manifest["seed"] as? Int, 42)
        XCTAssertFalse(fm.fileExists(atPath: out.path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"))

        // A complete output is not overwritten without force; with force it is replaced.
        XCTAssertThrowsError(try DataGeneration.run(config: c, out: out, force: false, makeEncoder: { _ in self.encoder })) { error in
            XCTAssertEqual(error as? DataError, .outputExists(path: out.path))
        }
        let c2 = try DataConfig.load(file: nil, overrides: tiny + ["seed=5"])
        try DataGeneration.run(config: c2, out: out, force: true, makeEncoder: { _ in self.encoder })
        let replaced = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("manifest.json"))) as? [String: Any])
        XCTAssertEqual(replaced["seed"] as? Int, 5)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: folder.path), ["world"], "temporary or old folders left behind")

        // A folder with other things in it is refused; an empty folder is used.
        let other = folder.appendingPathComponent("other")
        try fm.createDirectory(at: other, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: other.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try DataGeneration.run(config: c, out: other, force: false, makeEncoder: { _ in self.encoder })) { error in
            XCTAssertEqual(error as? DataError, .outputNotEmpty(path: other.path))
        }
        let empty = folder.appendingPathComponent("empty")
        try fm.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertNoThrow(try DataGeneration.run(config: c, out: empty, force: false, makeEncoder: { _ in self.encoder }))
    }

    // MARK: - The study's procedures

    func testCountsPerTypeAndBucket() throws {
        let r = try build(small)
        let c = try DataConfig.load(file: nil, overrides: small)
        XCTAssertEqual(r.world.new.count, 1600)
        XCTAssertEqual(r.world.revised.count, 400)
        let newRecords = try records(r, "new.jsonl"), revRecords = try records(r, "revised.jsonl")
        XCTAssertEqual(newRecords.count, 1600)
        XCTAssertEqual(revRecords.count, 400)
        XCTAssertTrue(newRecords.allSatisfy { $0["type"] as? String == "new" && $0["frequency"] is String })
        XCTAssertTrue(revRecords.allSatisfy { $0["type"] as? String == "revised" })
        XCTAssertEqual(Array(newRecords[0].keys).count, 11)

        guard case .object(let manifest) = r.manifest, let perCell = manifest.first(where: { $0.0 == "entities_per_cell" })?.1 else {
            return XCTFail("manifest lacks entities_per_cell")
        }
        let test = try records(r, "test.jsonl")
        XCTAssertEqual(test.count, 6 * 20)
        for (t, type) in EntityType.allCases.enumerated() {
            for (b, bucket) in c.frequencyBuckets.enumerated() {
                let expected = r.world.entities(of: type).filter { bucket.contains($0.frequency) }.count
                guard case .object(let types) = perCell, case .object(let buckets)? = types.first(where: { $0.0 == type.rawValue })?.1,
                      case .int(let n)? = buckets.first(where: { $0.0 == bucket.name })?.1 else { return XCTFail("no count for \(type)/\(bucket.name)") }
                XCTAssertEqual(n, expected, "\(type)/\(bucket.name)")
                // Test entities: the cell's block of test.jsonl, all of that type and bucket, no repeats.
                let block = test[(t * 3 + b) * 20..<(t * 3 + b + 1) * 20]
                XCTAssertTrue(block.allSatisfy { $0["type"] as? String == type.rawValue && bucket.contains(Int($0["frequency"] as! String)!) })
                XCTAssertEqual(Set(block.map { $0["full_name"] as! String }).count, 20)
            }
        }
        // Test entities carry exactly the entities' records.
        let byName = Dictionary(uniqueKeysWithValues: (newRecords + revRecords).map { ($0["full_name"] as! String, $0 as NSDictionary) })
        for t in test { XCTAssertEqual(byName[t["full_name"] as! String], t as NSDictionary) }
    }

    func testFrequencyDistributionAtPaperScale() throws {
        let c = try DataConfig.load(file: nil)  // N = 50,000, λ = 0.4
        let pools = try DataPools.load(from: c.pools)
        let world = try EntityGenerator.generate(config: c, pools: pools)
        XCTAssertEqual(world.new.count, 40_000)
        XCTAssertEqual(world.revised.count, 10_000)
        let f = world.new.map(\.frequency)
        XCTAssertEqual(f, f.sorted(), "new entities are in ascending frequency")
        XCTAssertTrue(f.allSatisfy { $0 >= 1 })

        // Rounded exponential, X ~ Exp(λ), F = round(X), 0 → 1:
        // P(F = 1) = 1 − e^{−1.5λ}; P(F = k ≥ 2) = e^{−λ(k−½)} (1 − e^{−λ});
        // E[F] = e^{−λ/2} / (1 − e^{−λ}) + 1 − e^{−λ/2}.
        let lam = 0.4, n = Double(f.count)
        let pLow = 1 - exp(-1.5 * lam), pHigh = exp(-5.5 * lam), pMedium = 1 - pLow - pHigh
        let mean = exp(-lam / 2) / (1 - exp(-lam)) + 1 - exp(-lam / 2)
        var second = pLow
        for k in 2..<4000 { second += Double(k * k) * exp(-lam * (Double(k) - 0.5)) * (1 - exp(-lam)) }
        let sd = (second - mean * mean).squareRoot()
        XCTAssertEqual(mean, 2.66468, accuracy: 1e-5)
        let observedMean = Double(f.reduce(0, +)) / n
        XCTAssertEqual(observedMean, mean, accuracy: 4 * sd / n.squareRoot(), "mean frequency")
        for (p, lo, hi, name) in [(pLow, 1, 1, "low"), (pMedium, 2, 5, "medium"), (pHigh, 6, Int.max, "high")] {
            let share = Double(f.filter { $0 >= lo && $0 <= hi }.count) / n
            XCTAssertEqual(share, p, accuracy: 4 * (p * (1 - p) / n).squareRoot(), "\(name) share")
        }
        // Revised: the sorted array thinned evenly.
        XCTAssertEqual(world.revised.map(\.frequency), (0..<10_000).map { f[$0 * 40_000 / 10_000] })
        XCTAssertEqual(world.original.map(\.frequency), world.revised.map(\.frequency))
        XCTAssertEqual(world.original.map(\.fullName), world.revised.map(\.fullName))

        // Names: unique, new ones three parts, revised two or three, the two types disjoint.
        let newNames = world.new.map(\.fullName), revNames = world.revised.map(\.fullName)
        XCTAssertEqual(Set(newNames).count, newNames.count)
        XCTAssertEqual(Set(revNames).count, revNames.count)
        XCTAssertTrue(Set(newNames).isDisjoint(with: revNames))
        XCTAssertTrue(newNames.allSatisfy { $0.split(separator: " ").count == 3 })
        let parts = revNames.map { $0.split(separator: " ").count }
        XCTAssertTrue(parts.allSatisfy { $0 == 2 || $0 == 3 })
        XCTAssertTrue(parts.contains(2) && parts.contains(3))
        // Original attributes are an independent draw: most differ from the revised ones.
        let sameCity = zip(world.revised, world.original).filter { $0.city == $1.city }.count
        XCTAssertLessThan(sameCity, 300)
    }

    func testRoundingAndThinning() {
        XCTAssertEqual([0.2, 0.5, 0.51, 1.5, 2.5, 3.5, 4.49].map(EntityGenerator.frequency(fromDraw:)), [1, 1, 1, 2, 2, 4, 4])
        XCTAssertEqual(EntityGenerator.thin([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], to: 4), [1, 3, 6, 8])
        XCTAssertEqual(EntityGenerator.thin([1, 2, 3], to: 5), [1, 1, 2, 2, 3])
    }

    func testBiographiesHoldAllFiveValues() throws {
        let r = try build(small)
        let c = try DataConfig.load(file: nil, overrides: small)
        let templates = try BiographyTemplates.load(from: c.templates)
        let train = try records(r, "train.jsonl")
        XCTAssertEqual(train.count, (r.world.new + r.world.revised).reduce(0) { $0 + $1.frequency })
        var perName: [String: Int] = [:]
        let entities = Dictionary(uniqueKeysWithValues: (r.world.new + r.world.revised).map { ($0.fullName, $0) })
        for rec in train {
            let text = rec["text"] as! String
            let e = try XCTUnwrap(entities[rec["full_name"] as! String])
            XCTAssertEqual(Entity(jsonObject: JSONValue(foundation: rec)), e)
            perName[e.fullName, default: 0] += 1
            try assertBiography(text, of: e, templates: templates)
        }
        for e in entities.values { XCTAssertEqual(perName[e.fullName], e.frequency, e.fullName) }

        // The base corpus: the revised people with their original attributes.
        let base = try records(r, "base.jsonl")
        XCTAssertEqual(base.count, r.world.original.reduce(0) { $0 + $1.frequency })
        let originals = Dictionary(uniqueKeysWithValues: r.world.original.map { ($0.fullName, $0) })
        for rec in base {
            let e = try XCTUnwrap(originals[rec["full_name"] as! String])
            XCTAssertEqual(Entity(jsonObject: JSONValue(foundation: rec)), e)
            try assertBiography(rec["text"] as! String, of: e, templates: templates)
        }
    }

    private var sentenceCache: [String: [[[UInt8]]]] = [:]

    /// The text is five sentences, one filled template of each group, joined by single spaces:
    /// it is read sentence by sentence, each a filled template of a group not seen yet.
    private func assertBiography(_ text: String, of e: Entity, templates: BiographyTemplates,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = Array(text.utf8)
        let candidates: [[[UInt8]]]
        if let cached = sentenceCache[e.fields.map(\.1).joined(separator: "|")] {
            candidates = cached
        } else {
            candidates = AttributeGroup.allCases.map { g in
                templates[g].map { Array($0.fill(fullName: e.fullName, value: e.value(of: g)).utf8) }
            }
            sentenceCache[e.fields.map(\.1).joined(separator: "|")] = candidates
        }
        var position = 0
        var seen = Set<Int>()
        for k in 0..<5 {
            if k > 0 {
                guard position < bytes.count, bytes[position] == 0x20 else { return XCTFail("no single space between sentences: \(text)", file: file, line: line) }
                position += 1
            }
            var matched: (group: Int, length: Int)?
            bytes.withUnsafeBufferPointer { text in
                for (g, sentences) in candidates.enumerated() where !seen.contains(g) {
                    for s in sentences where s.count > (matched?.length ?? 0) && text.count - position >= s.count {
                        if s.withUnsafeBufferPointer({ memcmp(text.baseAddress! + position, $0.baseAddress!, s.count) }) == 0 {
                            matched = (g, s.count)
                        }
                    }
                }
            }
            guard let m = matched else { return XCTFail("sentence \(k + 1) is no filled template of a remaining group: \(text)", file: file, line: line) }
            seen.insert(m.group)
            position += m.length
        }
        XCTAssertEqual(position, bytes.count, "text continues after five sentences: \(text)", file: file, line: line)
        for g in AttributeGroup.allCases { XCTAssertTrue(text.contains(e.value(of: g)), "\(g) value missing", file: file, line: line) }
    }

    func testValidationIsSampleOfTrain() throws {
        let r = try build(small)
        var trainCounts: [[UInt8]: Int] = [:]
        for l in lines(file(r, "train.jsonl")) { trainCounts[l, default: 0] += 1 }
        let validation = lines(file(r, "validation.jsonl"))
        XCTAssertEqual(validation.count, 300)
        var used: [[UInt8]: Int] = [:]
        for l in validation {
            used[l, default: 0] += 1
            XCTAssertLessThanOrEqual(used[l]!, trainCounts[l] ?? 0, "validation line not drawn from train: \(String(decoding: l, as: UTF8.self))")
        }
        // min(size, count): asking for more than there are gives them all, once each.
        let all = try build(["n_entities=100", "validation_size=100000", "test_per_cell=1", "circuit_n=20", "test_set=independent", "frequency_buckets={ any = [1, 1000] }"])
        XCTAssertEqual(lines(file(all, "validation.jsonl")).sorted { $0.lexicographicallyPrecedes($1) },
                       lines(file(all, "train.jsonl")).sorted { $0.lexicographicallyPrecedes($1) })
    }

    /// The default `test_set = "circuit"`: each cell's test people are its circuit sample (the study's test and
    /// circuit scripts draw the same sample), so every circuit subject is a test person of its own cell, and
    /// the test people missing from the circuit files are exactly those whose token length had ≤ 5 names.
    func testTestSetIsTheCircuitSampleByDefault() throws {
        let overrides = ["n_entities=2000", "validation_size=300", "test_per_cell=30", "circuit_n=30"]
        let c = try DataConfig.load(file: nil, overrides: overrides)
        XCTAssertEqual(c.testSet, .circuit)
        let r = try build(overrides)
        let test = try records(r, "test.jsonl")
        XCTAssertEqual(test.count, 6 * 30)
        var cellOf: [String: String] = [:]
        for (t, type) in EntityType.allCases.enumerated() {
            for (b, bucket) in c.frequencyBuckets.enumerated() {
                let block = test[(t * 3 + b) * 30..<(t * 3 + b + 1) * 30]
                XCTAssertTrue(block.allSatisfy { $0["type"] as? String == type.rawValue && bucket.contains(Int($0["frequency"] as! String)!) })
                XCTAssertEqual(Set(block.map { $0["full_name"] as! String }).count, 30)
                for e in block { cellOf[e["full_name"] as! String] = "\(type.rawValue)/\(bucket.name)" }
            }
        }
        let circuit = try records(r, "circuit_30/gpt2/city.jsonl")
        let subjects = circuit.map { $0["clean_subject"] as! String }
        for rec in circuit {
            let name = rec["clean_subject"] as! String
            let bucket = try XCTUnwrap(c.frequencyBuckets.first { $0.contains(Int(rec["frequency"] as! String)!) })
            XCTAssertEqual(cellOf[name], "\(rec["type"] as! String)/\(bucket.name)", "circuit subject \(name) is not a test person of its cell")
        }
        // Test people left out of the circuit files: exactly the short token-length groups of the sample.
        var perLength: [Int: Int] = [:]
        for e in test { perLength[encoder.encode(e["full_name"] as! String).count, default: 0] += 1 }
        let inCircuit = Set(subjects)
        for e in test {
            let name = e["full_name"] as! String
            XCTAssertEqual(inCircuit.contains(name), perLength[encoder.encode(name).count]! > 5, name)
        }
        XCTAssertEqual(Set(test.map { $0["full_name"] as! String }).count, test.count)
        guard case .object(let manifest) = r.manifest else { return XCTFail("manifest is not an object") }
        XCTAssertEqual(manifest.first { $0.0 == "test_set" }?.1, .string("circuit"))

        // The circuit seed now moves the test people with the circuit sample.
        let moved = try build(overrides + ["circuit_seed=7"])
        XCTAssertFalse(file(r, "test.jsonl") == file(moved, "test.jsonl"))

        // "independent": another sample of the same cells, recorded as such.
        let independent = try build(overrides + ["test_set=independent"])
        XCTAssertFalse(file(r, "test.jsonl") == file(independent, "test.jsonl"))
        XCTAssertTrue(file(r, "circuit_30/gpt2/city.jsonl") == file(independent, "circuit_30/gpt2/city.jsonl"))
        guard case .object(let m2) = independent.manifest else { return XCTFail("manifest is not an object") }
        XCTAssertEqual(m2.first { $0.0 == "test_set" }?.1, .string("independent"))

        // The circuit sample has circuit_n people per cell: another test_per_cell is a configuration error.
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["test_per_cell=20", "circuit_n=30"])) { error in
            guard case .invalidValue(let key, _, let reason)? = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "test_per_cell")
            XCTAssertTrue(reason.contains("test_set"), reason)
        }
        XCTAssertNoThrow(try DataConfig.load(file: nil, overrides: ["test_per_cell=20", "circuit_n=30", "test_set=independent"]))
    }

    func testCircuitRecords() throws {
        let r = try build(small + ["tasks=[\"city\", \"company\", \"major\", \"birthday\", \"university\"]"])
        let entities = Dictionary(uniqueKeysWithValues: (r.world.new + r.world.revised).map { ($0.fullName, $0) })
        var perTask: [[[String: Any]]] = []
        for task in CircuitTask.allCases {
            let recs = try records(r, "circuit_30/gpt2/\(task.rawValue).jsonl")
            XCTAssertGreaterThan(recs.count, 0)
            perTask.append(recs)
            var lengthCounts: [Int: Set<String>] = [:]
            for rec in recs {
                XCTAssertEqual(Array(rec.keys).sorted(), ["clean_label", "clean_label_idx", "clean_subject", "corrupted_label",
                                                          "corrupted_label_idx", "corrupted_subject", "frequency", "type"])
                let clean = try XCTUnwrap(entities[rec["clean_subject"] as! String])
                let corrupted = try XCTUnwrap(entities[rec["corrupted_subject"] as! String])
                XCTAssertNotEqual(clean.fullName, corrupted.fullName)
                let len = encoder.encode(clean.fullName).count
                XCTAssertEqual(len, encoder.encode(corrupted.fullName).count, "corrupted subject of another token length")
                lengthCounts[len, default: []].insert(clean.fullName)
                XCTAssertEqual(rec["clean_label"] as? String, " " + clean.value(of: task))
                XCTAssertEqual(rec["corrupted_label"] as? String, " " + corrupted.value(of: task))
                XCTAssertEqual(rec["clean_label_idx"] as? Int, encoder.encode(" " + clean.value(of: task)).first)
                XCTAssertEqual(rec["corrupted_label_idx"] as? Int, encoder.encode(" " + corrupted.value(of: task)).first)
                XCTAssertEqual(rec["frequency"] as? String, String(clean.frequency))
                XCTAssertEqual(rec["type"] as? String, clean.type.rawValue)
            }
            // Every kept token length had more than 5 names.
            XCTAssertTrue(lengthCounts.values.allSatisfy { $0.count > 5 }, "\(lengthCounts.mapValues(\.count))")
        }
        // All tasks pair the same subjects in the same order.
        for recs in perTask.dropFirst() {
            XCTAssertEqual(recs.map { $0["clean_subject"] as! String }, perTask[0].map { $0["clean_subject"] as! String })
            XCTAssertEqual(recs.map { $0["corrupted_subject"] as! String }, perTask[0].map { $0["corrupted_subject"] as! String })
        }
        // At most circuit_n per cell, in the study's cell order (new before revised).
        let types = perTask[0].map { $0["type"] as! String }
        XCTAssertEqual(types, types.sorted())
        XCTAssertLessThanOrEqual(types.filter { $0 == "new" }.count, 90)
        XCTAssertEqual(Set(perTask[0].map { $0["clean_subject"] as! String }).count, perTask[0].count)
    }

    // MARK: - Rejected input

    /// A copy of the repository's pools and templates that a test may spoil.
    private func copyOfInputs() throws -> (pools: URL, templates: URL) {
        let pools = folder.appendingPathComponent("pools"), templates = folder.appendingPathComponent("templates")
        try FileManager.default.copyItem(at: Paths.sourceRoot.appendingPathComponent("data/pools"), to: pools)
        try FileManager.default.copyItem(at: Paths.sourceRoot.appendingPathComponent("data/templates"), to: templates)
        return (pools, templates)
    }

    /// Runs the whole command body into `folder/out` and checks that it fails with `expected`
    /// and leaves neither an output folder nor a temporary one.
    private func assertRejected(_ overrides: [String], _ expected: DataError, encoder: TextEncoder? = nil,
                                file: StaticString = #filePath, line: UInt = #line) {
        assertRejected(overrides, where: { $0 == expected }, encoder: encoder, file: file, line: line)
    }

    private func assertRejected(_ overrides: [String], where matches: (DataError) -> Bool, encoder: TextEncoder? = nil,
                                file: StaticString = #filePath, line: UInt = #line) {
        let out = folder.appendingPathComponent("out")
        XCTAssertThrowsError(try DataGeneration.run(config: DataConfig.load(file: nil, overrides: overrides), out: out, force: false,
                                                    makeEncoder: { _ in encoder ?? self.encoder }), file: file, line: line) { error in
            guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)", file: file, line: line) }
            XCTAssertTrue(matches(e), "unexpected error: \(e)", file: file, line: line)
            XCTAssertEqual(e.exitCode, 65, file: file, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "output folder left behind", file: file, line: line)
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("out") }
        XCTAssertEqual(leftovers, [], "temporary folder left behind", file: file, line: line)
    }

    private func replaceLine(_ url: URL, _ lineNo: Int, with text: String) throws {
        var lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
        lines[lineNo - 1] = text
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    func testBadPoolFilesRejectedWithFileAndLine() throws {
        let (pools, templates) = try copyOfInputs()
        let base = small + ["pools=\(pools.path)", "templates=\(templates.path)"]
        let cities = pools.appendingPathComponent("cities.txt")

        try FileManager.default.removeItem(at: cities)
        assertRejected(base, .missingFile(path: cities.path, what: "pool file"))

        try "# cities\nAkron, OH\nBoise, ID\nAkron, OH\n".write(to: cities, atomically: true, encoding: .utf8)
        assertRejected(base, .duplicateEntry(file: cities.path, line: 4, firstLine: 2, entry: "Akron, OH"))

        try "Akron, OH\n   \nBoise, ID\n".write(to: cities, atomically: true, encoding: .utf8)
        assertRejected(base, .emptyEntry(file: cities.path, line: 2))

        try "Akron, OH\nBoise, ID \n".write(to: cities, atomically: true, encoding: .utf8)
        assertRejected(base, .surroundingWhitespace(file: cities.path, line: 2))

        try "# only comments\n\n".write(to: cities, atomically: true, encoding: .utf8)
        assertRejected(base, .noEntries(file: cities.path))

        try Data([0x41, 0xFF, 0x0A]).write(to: cities)
        assertRejected(base, .unreadable(path: cities.path, reason: "not UTF-8 text"))

        // Blank lines and CRLF endings are fine.
        try "Akron, OH\r\n\r\nBoise, ID\r\n".write(to: cities, atomically: true, encoding: .utf8)
        XCTAssertEqual(try DataPools.load(from: pools).cities, ["Akron, OH", "Boise, ID"])

        assertRejected(base + ["pools=\(folder.appendingPathComponent("nowhere").path)"],
                       .missingFile(path: folder.appendingPathComponent("nowhere").path, what: "pools folder"))
    }

    func testBadTemplatesRejectedWithFileAndLine() throws {
        let (pools, templates) = try copyOfInputs()
        let base = small + ["pools=\(pools.path)", "templates=\(templates.path)"]
        let city = templates.appendingPathComponent("city.txt")
        try replaceLine(city, 5, with: "{full_name} moved somewhere.")
        assertRejected(base, .templateMissingPlaceholder(file: city.path, line: 5, placeholder: "{city}"))
        try replaceLine(city, 5, with: "Someone lives in {city}.")
        assertRejected(base, .templateMissingPlaceholder(file: city.path, line: 5, placeholder: "{full_name}"))
        try replaceLine(city, 5, with: "{full_name} lives in {town}.")
        assertRejected(base, .templateUnknownPlaceholder(file: city.path, line: 5, placeholder: "{town}", allowed: ["{full_name}", "{city}"]))
        try replaceLine(city, 5, with: "{full_name} lives in {city.")
        assertRejected(base, .templateBrace(file: city.path, line: 5))
        try replaceLine(city, 5, with: "{full_name} lives in {city}}.")
        assertRejected(base, .templateBrace(file: city.path, line: 5))
        try replaceLine(city, 5, with: "{full_name} dwells happily in {city}.")
        XCTAssertNoThrow(try BiographyTemplates.load(from: templates))
        try FileManager.default.removeItem(at: templates.appendingPathComponent("major.txt"))
        assertRejected(base, .missingFile(path: templates.appendingPathComponent("major.txt").path, what: "template file"))
    }

    func testWorldTooSmallRejected() throws {
        // The first cell (study order: new high, medium, low, then revised) smaller than a sample.
        func firstShortCell(_ overrides: [String], _ n: Int) throws -> (String, String, Int) {
            let c = try DataConfig.load(file: nil, overrides: overrides)
            let world = try EntityGenerator.generate(config: c, pools: DataPools.load(from: c.pools))
            let cell = try XCTUnwrap(EvaluationSets.cells(of: world, buckets: c.frequencyBuckets).first { $0.entities.count < n })
            return (cell.type.rawValue, cell.bucket.name, cell.entities.count)
        }
        // Too few entities for the test sample: N = 200 has 20 new and about 4 revised high-frequency entities.
        let tooFew = ["n_entities=200", "test_per_cell=50", "circuit_n=5", "test_set=independent"]
        let (t1, b1, n1) = try firstShortCell(tooFew, 50)
        XCTAssertEqual([t1, b1], ["new", "high"])
        assertRejected(tooFew, .cellTooSmall(type: t1, bucket: b1, entities: n1, key: "test_per_cell", requested: 50))
        // Circuit size larger than a cell: at N = 2,000 only the revised × high cell (about 44) is below 100.
        let tooMany = ["n_entities=2000", "test_per_cell=5", "circuit_n=100", "test_set=independent"]
        let (t2, b2, n2) = try firstShortCell(tooMany, 100)
        XCTAssertEqual([t2, b2], ["revised", "high"])
        XCTAssertEqual(Double(n2), 400 * exp(-2.2), accuracy: 12)
        assertRejected(tooMany, .cellTooSmall(type: t2, bucket: b2, entities: n2, key: "circuit_n", requested: 100))
        // Name pools that cannot give enough distinct names.
        let (pools, _) = try copyOfInputs()
        for name in ["first_names.txt", "middle_names.txt", "last_names.txt"] {
            try "A\nB\n".write(to: pools.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        assertRejected(["n_entities=100", "test_per_cell=1", "circuit_n=1", "pools=\(pools.path)"],
                       .notEnoughNames(needed: 80, possible: 8, folder: pools.path))
        // Revised names from a file that is too short.
        let names = folder.appendingPathComponent("people.txt")
        try "Ada Lovelace\nAlan Turing\n".write(to: names, atomically: true, encoding: .utf8)
        assertRejected(small + ["revised_names=\(names.path)"], .notEnoughRevisedNames(file: names.path, needed: 400, available: 2))
        // A tokenizer that gives no tokens for a label.
        struct Mute: TextEncoder { func encode(_ text: String) -> [Int] { text.hasPrefix(" ") ? [] : [1, 2, 3, 4, 5].prefix(text.count % 5 + 1).map { $0 } } }
        assertRejected(small, where: { if case .emptyEncoding(let text) = $0 { return text.hasPrefix(" ") && text.count > 3 } else { return false } },
                       encoder: Mute())
    }

    func testEmptyEncodingMessageNamesLabel() {
        // (covered by testWorldTooSmallRejected through `Mute`; here the message itself)
        XCTAssertTrue(DataError.emptyEncoding(text: " Boise, ID").description.contains("\" Boise, ID\""))
    }

    func testRevisedNamesFromFile() throws {
        let names = folder.appendingPathComponent("people.txt")
        try (["# real people"] + (0..<500).map { "Person Number\($0)" }).joined(separator: "\n").write(to: names, atomically: true, encoding: .utf8)
        let r = try build(small + ["revised_names=\(names.path)"])
        XCTAssertTrue(r.world.revised.allSatisfy { $0.fullName.hasPrefix("Person Number") })
        XCTAssertEqual(Set(r.world.revised.map(\.fullName)).count, 400)
    }

    func testUnknownConfigKeyRejectedBeforeAnyOutput() {
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["n_entity=5"])) { error in
            XCTAssertEqual(error as? ConfigError, .unknownKey(key: "n_entity", location: "--set n_entity=5", suggestion: "n_entities"))
            XCTAssertEqual((error as? UserFacingError)?.exitCode, 65)
        }
    }

    // MARK: - Building blocks

    func testRandomStreamsMatchReferenceAlgorithm() {
        // xoshiro256** seeded by SplitMix64(seed ^ FNV-1a-64(name)); values from an independent
        // implementation of the published algorithms.
        XCTAssertEqual(DeterministicRandom.fnv1a64("names"), 0xAFB7_28FF_F268_814F)
        var a = DeterministicRandom(seed: 42, stream: "names")
        XCTAssertEqual((0..<4).map { _ in a.next() }, [0x356A_83EF_E0E8_17BA, 0x043F_ABFE_0863_0D20, 0xD169_5E1E_394B_0D2B, 0xD9D1_D416_22F7_D464])
        var b = DeterministicRandom(seed: 0, stream: "")
        XCTAssertEqual((0..<3).map { _ in b.next() }, [0x2138_2EF0_92ED_7068, 0x5B54_C052_757A_DF62, 0xA64C_B2CF_6879_5072])

        var r = DeterministicRandom(seed: 1, stream: "t")
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[r.below(7)] += 1 }
        XCTAssertTrue(counts.allSatisfy { abs($0 - 10_000) < 500 }, "\(counts)")
        let s = r.sample(100, 100)
        XCTAssertEqual(s.sorted(), Array(0..<100))
        var sum = 0.0
        for _ in 0..<100_000 { sum += r.exponential(scale: 2.5) }
        XCTAssertEqual(sum / 100_000, 2.5, accuracy: 4 * 2.5 / 100_000.0.squareRoot())
    }

    func testDeterministicLogAccuracy() {
        var r = DeterministicRandom(seed: 3, stream: "log")
        var worst = 0.0
        for i in 0..<200_000 {
            let x = i < 100_000 ? 1.0 - r.uniform() : exp((r.uniform() - 0.5) * 1400)
            let ref = Foundation.log(x)
            let err = abs(DeterministicRandom.log(x) - ref) / max(abs(ref), Double.leastNormalMagnitude)
            if ref != 0 { worst = max(worst, err) }
        }
        print("DeterministicRandom.log: worst relative error \(worst)")
        XCTAssertLessThan(worst, 2.3e-16, "relative error of DeterministicRandom.log (about 1 ulp)")
        XCTAssertEqual(DeterministicRandom.log(1), 0)
        XCTAssertEqual(DeterministicRandom.log(0x1.0p-53), -53 * Foundation.log(2.0), accuracy: 1e-13)
    }

    func testJSONTextMatchesPython() {
        // Expected strings are what Python's json.dumps prints.
        let cases: [(String, String)] = [
            ("He said \"hi\"\\ \n\t\r\u{08}\u{0C}", "\"He said \\\"hi\\\"\\\\ \\n\\t\\r\\b\\f\""),
            ("Zoë Brontë", "\"Zo\\u00eb Bront\\u00eb\""),
            ("emoji 😀 ok", "\"emoji \\ud83d\\ude00 ok\""),
            ("\u{01}\u{1F}\u{7F}", "\"\\u0001\\u001f\\u007f\""),
            ("Deere & Company", "\"Deere & Company\""),
            ("Lowe's", "\"Lowe's\""),
        ]
        for (input, expected) in cases {
            var out: [UInt8] = []
            JSONText.appendString(input, to: &out)
            XCTAssertEqual(String(decoding: out, as: UTF8.self), expected)
        }
        XCTAssertEqual(JSONValue.object([("a", .int(1)), ("b", .string("x")), ("c", .array([.int(1), .int(2)]))]).compactText,
                       "{\"a\": 1, \"b\": \"x\", \"c\": [1, 2]}")
    }

    func testSHA256Vectors() {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Streaming in odd pieces gives the same digest.
        var s = SHA256()
        let data = [UInt8](repeating: 0x61, count: 1_000_000)
        var i = 0
        for step in [1, 63, 64, 65, 127, 1000, 7] where i < data.count {
            s.update(data[i..<min(i + step, data.count)]); i += step
        }
        s.update(data[i...])
        XCTAssertEqual(s.finalize().map { String(format: "%02x", $0) }.joined(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testShippedPoolsAndTemplatesAreLargeEnough() throws {
        let c = try DataConfig.load(file: nil)
        let p = try DataPools.load(from: c.pools)
        XCTAssertGreaterThanOrEqual(p.firstNames.count, 300)
        XCTAssertGreaterThanOrEqual(p.middleNames.count, 200)
        XCTAssertGreaterThanOrEqual(p.lastNames.count, 150)
        for (name, list) in [("cities", p.cities), ("companies", p.companies), ("majors", p.majors), ("universities", p.universities)] {
            XCTAssertGreaterThanOrEqual(list.count, 150, name)
        }
        XCTAssertTrue(p.cities.allSatisfy { $0.range(of: #"^.+, [A-Z]{2}$"#, options: .regularExpression) != nil })
        XCTAssertEqual(p.months.count, 12)
        let t = try BiographyTemplates.load(from: c.templates)
        for g in AttributeGroup.allCases { XCTAssertGreaterThanOrEqual(t[g].count, 40, g.rawValue) }
    }

    /// `dkc data generate` at the study's size (N = 50,000) on one core. Run with DKC_BENCH=1
    /// (use `swift test -c release` for the figure worth reporting).
    func testPaperScaleTiming() throws {
        guard ProcessInfo.processInfo.environment["DKC_BENCH"] == "1" else { throw XCTSkip("set DKC_BENCH=1 to time the paper-size generation") }
        let c = try DataConfig.load(file: ConfigLoader.locate("paper", kind: "data"))
        let out = folder.appendingPathComponent("paper")
        let start = Date()
        let r = try DataGeneration.run(config: c, out: out, force: false, makeEncoder: { _ in self.encoder })
        let seconds = Date().timeIntervalSince(start)
        let bytes = r.files.reduce(0) { $0 + $1.bytes.count }
        print("paper-size data generate: \(String(format: "%.2f", seconds)) s, \(r.trainCount) train texts, \(r.baseCount) base texts, \(bytes) bytes")
        XCTAssertEqual(r.world.new.count, 40_000)
    }
}
