import Foundation
import XCTest
@testable import Core
@testable import DistCircuits

/// Reading circuit records and test entities, frequency buckets from a data manifest, cell filters, and
/// the errors users see.
final class CircuitInputsTests: XCTestCase {
    private func temp() throws -> URL { try ModelFixtures.tempDir(self) }

    func testBucketsComeFromTheNearestManifestAboveTheData() throws {
        let root = try temp()
        let folder = root.appendingPathComponent("circuit_5/gpt2")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("city.jsonl")
        try Data().write(to: file)
        XCTAssertEqual(try FrequencyBuckets.forData(at: file).buckets, FrequencyBuckets.defaultBuckets,
                       "no manifest: the default buckets")
        let manifest = #"{"format": "dkc-data 1", "frequency_buckets": [{"name": "often", "min": 3, "max": 99}, {"name": "once", "min": 1, "max": 1}]}"#
        try Data(manifest.utf8).write(to: root.appendingPathComponent("manifest.json"))
        let b = try FrequencyBuckets.forData(at: file)
        XCTAssertEqual(b.names, ["often", "once"])
        XCTAssertEqual(b.manifest?.lastPathComponent, "manifest.json")
        XCTAssertEqual(b.name(of: 5), "often")
        XCTAssertNil(b.name(of: 2), "2 falls in no bucket")
        XCTAssertThrowsError(try CellFilter(type: "new", frequency: "high", buckets: b)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("--frequency") && text.contains("often, once") && text.contains("manifest.json"), text)
        }
        XCTAssertThrowsError(try CellFilter(type: "old", frequency: "all", buckets: b)) { e in
            XCTAssertTrue("\(e)".contains("--type"), "\(e)")
        }
        let f = try CellFilter(type: "revised", frequency: "often", buckets: b)
        XCTAssertTrue(f.accepts(type: "revised", frequency: 3))
        XCTAssertFalse(f.accepts(type: "new", frequency: 3))
        XCTAssertFalse(f.accepts(type: "revised", frequency: 1))
        XCTAssertEqual(f.frequency, "often")
    }

    /// The data set's test_set as the nearest data manifest above a file states it; older manifests without
    /// the key held an independent sample; a folder inside no data set has none.
    func testTestSetComesFromTheNearestDataManifest() throws {
        let root = try temp()
        let test = root.appendingPathComponent("data/test.jsonl")
        try FileManager.default.createDirectory(at: test.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data().write(to: test)
        XCTAssertNil(DataManifest.testSet(forData: test))
        // A manifest.json that is not a data manifest (no frequency_buckets) is passed over.
        try Data(#"{"format": "something else"}"#.utf8).write(to: root.appendingPathComponent("data/manifest.json"))
        XCTAssertNil(DataManifest.testSet(forData: test))
        try Data(#"{"frequency_buckets": [{"name": "low", "min": 1, "max": 1}]}"#.utf8).write(to: root.appendingPathComponent("manifest.json"))
        XCTAssertEqual(DataManifest.testSet(forData: test), "independent")
        try Data(#"{"frequency_buckets": [{"name": "low", "min": 1, "max": 1}], "test_set": "circuit"}"#.utf8)
            .write(to: root.appendingPathComponent("data/manifest.json"))
        XCTAssertEqual(DataManifest.testSet(forData: test), "circuit")
    }

    func testRecordsAndErrorsNameFileLineAndField() throws {
        let dir = try temp()
        let file = dir.appendingPathComponent("city.jsonl")
        let good = #"{"clean_subject": "Ann Lee", "clean_label": " Boston, MA", "clean_label_idx": 6182, "corrupted_subject": "Bo Kim", "corrupted_label": " Reno, NV", "corrupted_label_idx": 37819, "frequency": "7", "type": "new"}"#
        try Data((good + "\n\n" + good.replacingOccurrences(of: #""frequency": "7""#, with: #""frequency": 1"#) + "\n").utf8).write(to: file)
        let records = try CircuitSample.read(file)
        XCTAssertEqual(records.map(\.frequency), [7, 1], "frequency as a string or an integer")
        XCTAssertEqual(records[0].cleanLabelIndex, 6182)

        try Data((good + "\n" + good.replacingOccurrences(of: #""clean_label_idx": 6182, "#, with: "") + "\n").utf8).write(to: file)
        XCTAssertThrowsError(try CircuitSample.read(file)) { e in
            XCTAssertTrue("\(e)".contains("\(file.path):2") && "\(e)".contains("clean_label_idx"), "\(e)")
        }
        try Data("not json\n".utf8).write(to: file)
        XCTAssertThrowsError(try CircuitSample.read(file)) { e in XCTAssertTrue("\(e)".contains(":1: is not a JSON object"), "\(e)") }
        XCTAssertThrowsError(try CircuitSample.read(dir.appendingPathComponent("none.jsonl"))) { e in
            XCTAssertTrue("\(e)".contains("none.jsonl: circuit data file not found"), "\(e)")
        }

        // A filter that keeps nothing names the file and the filter.
        try Data((good + "\n").utf8).write(to: file)
        let tok = try EAPParityTests.tokenizer()
        let buckets = FrequencyBuckets(buckets: FrequencyBuckets.defaultBuckets, manifest: nil)
        XCTAssertThrowsError(try CircuitSample.pairs(try CircuitSample.read(file), filter: try CellFilter(type: "revised", frequency: "all", buckets: buckets),
                                                     task: .city, encoder: tok, source: file.path)) { e in
            XCTAssertTrue("\(e)".contains("no record has type revised, frequency all"), "\(e)")
        }
        // Unequal token counts of clean and corrupted prompts are reported with the line.
        try Data((good.replacingOccurrences(of: "Bo Kim", with: "Bartholomew Xylophone Quaternion") + "\n").utf8).write(to: file)
        XCTAssertThrowsError(try CircuitSample.pairs(try CircuitSample.read(file), filter: try CellFilter(type: "all", frequency: "all", buckets: buckets),
                                                     task: .city, encoder: tok, source: file.path)) { e in
            XCTAssertTrue("\(e)".contains("record 1") && "\(e)".contains("prompt tokens"), "\(e)")
        }
    }

    func testTestEntitiesAndTargets() throws {
        let dir = try temp()
        let file = dir.appendingPathComponent("test.jsonl")
        func line(_ name: String, _ f: String, _ type: String) -> String {
            #"{"full_name": "\#(name)", "birth_date": "2", "birth_month": "April", "birth_year": "1904", "city": "Reno, NV", "major": "Law", "university": "Yale University", "company": "IBM", "birthday": "2 April, 1904", "frequency": "\#(f)", "type": "\#(type)"}"#
        }
        try Data([line("A B", "1", "new"), line("C D", "9", "revised"), line("E F", "1", "new")].joined(separator: "\n").utf8).write(to: file)
        let entities = try TestEntities.read(file)
        let targets = TestTarget.all(entities, buckets: FrequencyBuckets(buckets: FrequencyBuckets.defaultBuckets, manifest: nil))
        XCTAssertEqual(targets.map { "\($0.type)/\($0.frequency):\($0.entities.map(\.fullName))" }, ["new/low:[\"A B\", \"E F\"]", "revised/high:[\"C D\"]"])
        try Data(line("A B", "x", "new").utf8).write(to: file)
        XCTAssertThrowsError(try TestEntities.read(file)) { e in XCTAssertTrue("\(e)".contains("test.jsonl line 1"), "\(e)") }
        XCTAssertEqual(try CircuitTask.named("major", option: "--task"), .major)
        XCTAssertThrowsError(try CircuitTask.named("town", option: "--task")) { e in
            XCTAssertTrue("\(e)".contains("--task: unknown task 'town'") && "\(e)".contains("city"), "\(e)")
        }
        XCTAssertEqual(checkpointStep(of: URL(fileURLWithPath: "/r/train/continual/checkpoints/checkpoint-1200")), 1200)
        XCTAssertNil(checkpointStep(of: URL(fileURLWithPath: "/r/model")))
        XCTAssertEqual(CircuitTask.company.prompt(subject: "Ann Lee"), "Ann Lee works for the company of")
    }
}
