import Foundation
import XCTest
import Core
@testable import DistCircuits

/// A tiny run folder for sweep tests, made once per test class: a data set generated with the fixture
/// tokenizer and two tiny random GPT-2 checkpoints; tests work on copies of it.
enum SweepFixture {
    private static var root: URL?

    static func cleanUp() {
        if let root { try? FileManager.default.removeItem(at: root) }
        root = nil
    }

    /// The template run folder: `data/` (600 entities, 10 circuit entities and 2 independent test entities per cell) and
    /// `train/continual/checkpoints/checkpoint-{10,20}` (2 layers, 2 heads, d_model 32, different seeds).
    static func template() throws -> URL {
        if let root { return root.appendingPathComponent("template") }
        let tokenizer = Paths.fixtures.appendingPathComponent("tokenizer")
        guard FileManager.default.fileExists(atPath: tokenizer.appendingPathComponent("vocab.json").path) else {
            throw missingFixtures(Paths.fixtures.path)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-sweep-\(UUID().uuidString)")
        let template = dir.appendingPathComponent("template")
        try FileManager.default.createDirectory(at: template, withIntermediateDirectories: true)
        let data = try DataConfig.load(file: nil, overrides: ["n_entities=600", "test_per_cell=2", "circuit_n=10", "test_set=independent", "validation_size=10",
                                                             "tasks=[\"city\", \"company\"]", "tokenizer=\(tokenizer.path)"])
        try DataGeneration.run(config: data, out: template.appendingPathComponent("data"), force: false) { try GPT2Tokenizer(directory: $0) }
        let config = GPT2Config(nLayer: 2, nHead: 2, nEmbd: 32, nPositions: 64)
        for (i, step) in [10, 20].enumerated() {
            let arena = ParameterArena(config: config)
            arena.initializeGPT2(seed: UInt64(100 + i))
            try HFCheckpoint.save(arena, to: template.appendingPathComponent("train/continual/checkpoints/checkpoint-\(step)"),
                                  extraFiles: ["vocab.json", "merges.txt"].map { tokenizer.appendingPathComponent($0) })
        }
        root = dir
        return template
    }

    /// A fresh copy of the template run folder named `name`.
    static func run(_ name: String) throws -> URL {
        let template = try template()
        let run = template.deletingLastPathComponent().appendingPathComponent(name)
        try? FileManager.default.removeItem(at: run)
        try FileManager.default.copyItem(at: template, to: run)
        return run
    }

    /// `sweep --config tiny --set run_dir=<run> --set <setting> ...`.
    static func arguments(_ run: URL, _ settings: [String]) -> [String] {
        ["sweep", "--config", "tiny", "--set", "run_dir=\(run.path)"] + settings.flatMap { ["--set", $0] }
    }

    /// The grid of most tests: 2 checkpoints × city × 2 types × 3 buckets + 2 acquisitions = 14 items, plus 4 transplants
    /// (sources: the first = middle and the final checkpoint, each on both checkpoints) = 18.
    static let grid = ["tasks=[\"city\"]"]
}

/// `dkc sweep` as users run it (the built binary, under mpirun): plan, rank independence, exactly-once
/// cells, readable files.
final class SweepTests: XCTestCase {
    override class func tearDown() {
        SweepFixture.cleanUp()
        super.tearDown()
    }

    func run(_ name: String) throws -> URL { try SweepFixture.run(name) }
    func sweepArguments(_ run: URL, _ settings: [String]) -> [String] { SweepFixture.arguments(run, settings) }

    func sweep(_ run: URL, ranks: Int?, _ settings: [String] = [], timeout: Double = 300) throws -> Launch.Result {
        try Launch.run(try Launch.executable("dkc"), sweepArguments(run, settings), ranks: ranks, timeout: timeout)
    }

    static let grid = SweepFixture.grid

    // MARK: - Tests

    func testPlanCountsTheCellsAndComputesNothing() throws {
        let run = try run("plan")
        let r = try Launch.run(try Launch.executable("dkc"),
                               sweepArguments(run, ["tasks=[\"city\", \"company\"]", "frequencies=[\"high\", \"low\"]"]) + ["--plan"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("cells: 16 = 2 checkpoints × 2 tasks × 2 types × 2 frequencies"), r.stdout)
        XCTAssertTrue(r.stdout.contains("items: 22 (16 cells + 2 acquisitions + 4 transplants)"), r.stdout)
        XCTAssertTrue(r.stdout.contains(": 0 of 22"), "already done: 0 of 22; " + r.stdout)
        // A part of the grid: its range of items and checkpoints.
        let part = try Launch.run(try Launch.executable("dkc"),
                                  sweepArguments(run, ["tasks=[\"city\", \"company\"]", "frequencies=[\"high\", \"low\"]"]) + ["--plan", "--part", "1/2"])
        XCTAssertEqual(part.status, 0, part.stdout + part.stderr)
        XCTAssertTrue(part.stdout.contains("part 1/2: items 10–18 of 18, checkpoints 20–20"), part.stdout)
        XCTAssertTrue(part.stdout.contains("circuits/parts/part-1-of-2: 0 of 9"), part.stdout)
        XCTAssertTrue(r.stdout.contains("GFLOP") && r.stdout.contains("estimate:"), r.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("circuits").path), "--plan writes nothing")
        // A bucket the data does not define is an error naming the key and the valid names.
        let bad = try Launch.run(try Launch.executable("dkc"), sweepArguments(run, ["frequencies=[\"often\"]"]) + ["--plan"])
        XCTAssertEqual(bad.status, 65, bad.stdout + bad.stderr)
        XCTAssertTrue(bad.stderr.contains("frequencies: unknown frequency bucket 'often'") && bad.stderr.contains("high, medium, low"), bad.stderr)
    }

    /// Every cell is computed by exactly one rank; scores, circuits and acquisition are identical bit for bit
    /// for 1, 2 and 3 ranks; the files open with ncdump and xarray.
    func testSameResultsForOneTwoThreeRanks() throws {
        var tables: [(Int, ScoresTable, CircuitsTable, AcquisitionTable)] = []
        var testSet: String?
        var componentTables: [ComponentsTable] = []
        for ranks in [1, 2, 3] {
            let run = try run("ranks\(ranks)")
            let r = try sweep(run, ranks: ranks == 1 ? nil : ranks, Self.grid)
            XCTAssertEqual(r.status, 0, "R=\(ranks): " + r.stdout + r.stderr)
            XCTAssertTrue(r.stdout.contains("done: 18 of 18 items"), r.stdout)
            let out = run.appendingPathComponent("circuits")
            let lines = SweepStore.readManifest(out.appendingPathComponent("manifest.jsonl"))
            let cells = lines.filter { $0["event"]?.stringValue == "cell" }.map { o in ["checkpoint", "task", "type", "frequency"].map { o[$0]!.compactText }.joined(separator: "/") }
            XCTAssertEqual(cells.count, 12, "R=\(ranks): one manifest line per cell")
            XCTAssertEqual(Set(cells).count, 12, "R=\(ranks): every cell computed exactly once")
            XCTAssertEqual(lines.filter { $0["event"]?.stringValue == "acquisition" }.count, 2)
            XCTAssertEqual(lines.filter { $0["event"]?.stringValue == "transplant" }.count, 4, "2 sources (first = middle, final) × 2 checkpoints")
            let ranksSeen = Set(lines.compactMap { $0["rank"]?.intValue })
            XCTAssertTrue(ranksSeen.isSubset(of: Set(0..<ranks)))
            tables.append((ranks, try ScoresTable.read(from: out.appendingPathComponent("scores.nc")),
                           try CircuitsTable.read(from: out.appendingPathComponent("circuits.nc")),
                           try AcquisitionTable.read(from: out.appendingPathComponent("acquisition.nc"))))
            componentTables.append(try ComponentsTable.read(from: out.appendingPathComponent("components.nc")))
            if ranks == 1 {
                try checkReaders(out)
                testSet = try OutputFileHeader.read(from: out.appendingPathComponent("acquisition.nc")).testSet
            }
        }
        let (_, s1, c1, a1) = tables[0]
        XCTAssertEqual(s1.cells.count, 12)
        XCTAssertTrue(s1.cells.values.allSatisfy { $0.scores.contains { !$0.isNaN && $0 != 0 } }, "every cell has nonzero scores")
        for (ranks, s, c, a) in tables.dropFirst() {
            XCTAssertEqual(Set(s.cells.keys), Set(s1.cells.keys))
            for (cell, value) in s1.cells {
                XCTAssertEqual(s.cells[cell]!.scores.map(\.bitPattern), value.scores.map(\.bitPattern), "R=\(ranks) \(cell): scores")
                XCTAssertEqual(s.cells[cell]!.nSamples, value.nSamples)
            }
            XCTAssertEqual(c.cells, c1.cells, "R=\(ranks): circuits")
            XCTAssertEqual(a.cells, a1.cells, "R=\(ranks): acquisition")
            XCTAssertEqual(a.testEntities, a1.testEntities, "R=\(ranks): test entities")
            XCTAssertEqual(a.entityResults, a1.entityResults, "R=\(ranks): per-entity acquisition")
            XCTAssertEqual(c.transplants, c1.transplants, "R=\(ranks): transplants")
        }
        // Per-entity results: every test entity (2 per cell, test.jsonl's order) × attribute at both checkpoints,
        // and each cell's query accuracy and exact match are their means.
        XCTAssertEqual(a1.testEntities.count, 12)
        XCTAssertEqual(a1.testEntities.map(\.type), [String](repeating: "new", count: 6) + [String](repeating: "revised", count: 6))
        XCTAssertEqual(a1.testEntities.map(\.frequency), ["high", "high", "medium", "medium", "low", "low", "high", "high", "medium", "medium", "low", "low"])
        XCTAssertEqual(Set(a1.entityResults.keys), [10, 20])
        for (step, r) in a1.entityResults {
            XCTAssertEqual(Set(r.query.keys), Set(Acquisition.attributes.map(\.rawValue)))
            for (cell, v) in a1.cells where cell.checkpoint == step {
                let rows = a1.testEntities.indices.filter { a1.testEntities[$0].type == cell.type && a1.testEntities[$0].frequency == cell.frequency }
                XCTAssertEqual(rows.count, v.nEntities)
                let q = rows.map { Int(r.query[cell.attribute]![$0]) }, x = rows.map { Int(r.exact[cell.attribute]![$0]) }
                XCTAssertTrue((q + x).allSatisfy { $0 == 0 || $0 == 1 }, "\(cell)")
                XCTAssertEqual(v.queryAccuracy, Double(q.reduce(0, +)) / Double(rows.count), "\(cell)")
                XCTAssertEqual(v.exactMatch, Double(x.reduce(0, +)) / Double(rows.count), "\(cell)")
                XCTAssertTrue(zip(q, x).allSatisfy { $0 >= $1 }, "an exact match is a query match: \(cell)")
            }
        }
        XCTAssertEqual(testSet, "independent", "the template data set samples its test people independently")
        // Transplants: 2 sources × 12 cells, each top-n; a checkpoint's own circuits on its own model repeat the
        // cell's own faithfulness and hits@10 (target = source cell).
        XCTAssertEqual(c1.transplantSources, [10, 20])
        XCTAssertEqual(c1.transplants.count, 24)
        for (key, t) in c1.transplants where key.source == key.cell.checkpoint {
            let own = c1.cells[key.cell]!
            XCTAssertEqual(t.cleanBaseline, own.cleanBaseline, "\(key)")
            for (n, tc) in t.circuits {
                XCTAssertEqual(tc.performance, own.circuits[n]!.performance, "\(key) top-\(n)")
                let target = own.circuits[n]!.targets[CircuitsTable.Target(type: key.cell.type, frequency: key.cell.frequency)]
                XCTAssertTrue(tc.hitsAt10 == target?.hitsAt10 ?? .nan || (tc.hitsAt10.isNaN && target == nil), "\(key) top-\(n) hits@10")
            }
        }
        XCTAssertTrue(c1.transplants.contains { $0.key.source != $0.key.cell.checkpoint && !$0.value.circuits.isEmpty })
        // components.nc: every cell analysed (10 circuit samples, the tiny config's top-n circuits), identical for 1, 2, 3 ranks.
        let k1 = componentTables[0]
        XCTAssertEqual(Set(k1.cells.keys), Set(s1.cells.keys))
        XCTAssertTrue(k1.cells.allSatisfy { $0.value.nEntities == s1.cells[$0.key]!.nSamples && !$0.value.circuitHeads.isEmpty
            && $0.value.rankPlus1.allSatisfy { $0 >= 1 } }, "every cell's lens means and circuit heads")
        for (i, k) in componentTables.enumerated().dropFirst() { XCTAssertEqual(k.cells, k1.cells, "R=\(i + 1): components") }
    }

    /// A sweep split into parts (`--part I/3`, as the job array runs it, one part with 2 ranks) and joined
    /// with `--merge` gives the files of one uninterrupted sweep (wall times, creation time and history
    /// aside); an incomplete merge exits 65 naming the missing part; bad --part values are usage errors.
    func testPartsMergeToTheSingleJobFiles() throws {
        // Both sweeps use one run folder (the files record its paths); the single job's files move aside.
        let split = try run("split")
        let single = try sweep(split, ranks: 2, Self.grid)
        XCTAssertEqual(single.status, 0, single.stdout + single.stderr)
        let whole = split.appendingPathComponent("circuits-single")
        try FileManager.default.moveItem(at: split.appendingPathComponent("circuits"), to: whole)
        let dkc = try Launch.executable("dkc")
        for i in [0, 2] {
            let r = try Launch.run(dkc, sweepArguments(split, Self.grid) + ["--part", "\(i)/3"], ranks: i == 0 ? 2 : nil, timeout: 300)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            XCTAssertTrue(r.stdout.contains("part \(i)/3"), r.stdout)
        }
        let parts = split.appendingPathComponent("circuits/parts")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parts.path).sorted(), ["part-0-of-3", "part-2-of-3"])
        // Part 1 has not run: the merge writes what there is, names what is missing and fails.
        let early = try Launch.run(dkc, sweepArguments(split, Self.grid) + ["--merge"])
        XCTAssertEqual(early.status, 65, early.stdout + early.stderr)
        XCTAssertTrue(early.stderr.contains("no folder for part(s) 1 of 3"), early.stderr)

        let middle = try Launch.run(dkc, sweepArguments(split, Self.grid) + ["--part", "1/3"], timeout: 300)
        XCTAssertEqual(middle.status, 0, middle.stdout + middle.stderr)
        let merged = try Launch.run(dkc, sweepArguments(split, Self.grid) + ["--merge"])
        XCTAssertEqual(merged.status, 0, merged.stdout + merged.stderr)
        XCTAssertTrue(merged.stdout.contains("done: the grid's 14 items") && merged.stdout.contains("4 transplant item(s) left"), merged.stdout)
        // Transplants need every part's cells: the plain sweep after the merge computes only them.
        let transplants = try sweep(split, ranks: 2, Self.grid)
        XCTAssertEqual(transplants.status, 0, transplants.stdout + transplants.stderr)
        XCTAssertTrue(transplants.stdout.contains("14 already done") && transplants.stdout.contains("done: 18 of 18 items"), transplants.stdout)

        let items = (0..<3).map { i in
            SweepStore.readManifest(parts.appendingPathComponent("part-\(i)-of-3/manifest.jsonl")).filter { $0["event"]?.stringValue != "start" }.count
        }
        XCTAssertEqual(items.reduce(0, +), 14, "every item computed by exactly one part: \(items)")
        XCTAssertTrue(items.allSatisfy { $0 >= 4 }, "near-equal parts: \(items)")
        for name in ["scores.nc", "circuits.nc", "acquisition.nc", "components.nc"] {
            let mine = try SweepInterruptTests.contents(split.appendingPathComponent("circuits").appendingPathComponent(name))
            let theirs = try SweepInterruptTests.contents(whole.appendingPathComponent(name))
            XCTAssertEqual(mine.differences(from: theirs, ignoringGlobalAttributes: ["created", "history"]), [], "\(name): merged parts vs one job")
        }
        // A second merge changes nothing; a plain sweep afterwards finds everything done.
        let again = try sweep(split, ranks: nil, Self.grid)
        XCTAssertTrue(again.stdout.contains("18 already done"), again.stdout)

        for bad in ["3/3", "1", "a/b", "0/0"] {
            let r = try Launch.run(dkc, sweepArguments(split, Self.grid) + ["--part", bad])
            XCTAssertEqual(r.status, 64, "--part \(bad): " + r.stdout + r.stderr)
            XCTAssertTrue(r.stderr.contains("--part"), r.stderr)
        }
        let tooMany = try Launch.run(dkc, sweepArguments(split, Self.grid) + ["--part", "0/15"])
        XCTAssertEqual(tooMany.status, 64, tooMany.stderr)
        XCTAssertTrue(tooMany.stderr.contains("15 parts for 14 work items"), tooMany.stderr)
    }

    /// ncdump -h reads every file; xarray opens them and selects a cell by labels (skipped without xarray).
    func checkReaders(_ out: URL) throws {
        for name in ["scores.nc", "circuits.nc", "acquisition.nc", "components.nc"] {
            let path = out.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/ncdump") {
                let r = try Launch.run(URL(fileURLWithPath: "/usr/bin/ncdump"), ["-h", path])
                XCTAssertEqual(r.status, 0, "ncdump -h \(name): " + r.stderr)
            }
        }
        let script = """
        import sys
        try:
            import xarray
        except ImportError:
            print("no xarray"); sys.exit(3)
        s = xarray.open_dataset(sys.argv[1] + "/scores.nc")
        c = xarray.open_dataset(sys.argv[1] + "/circuits.nc")
        a = xarray.open_dataset(sys.argv[1] + "/acquisition.nc")
        print("score", s.score.sel(task="city", type="new", frequency="high").shape)
        print("faithfulness", c.faithfulness.sel(task="city", type="revised", frequency="low", topn=10).shape)
        print("exact_match", a.exact_match.sel(attribute="city", type="new").shape)
        print("query_correct", a.query_correct.shape, a.attrs["test_set"])
        """
        let r = try Launch.run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, out.path])
        // xarray is a test dependency (scripts/bootstrap --tests installs it; make test runs that): its absence
        // fails the check instead of letting it pass unseen.
        if r.status == 3 && r.stdout.contains("no xarray") {
            XCTFail("python3 without xarray (run scripts/bootstrap --tests): the xarray check of the sweep files could not run")
            return
        }
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("score (2, 7, 15)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("faithfulness (2,)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("exact_match (2, 3)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("query_correct (2, 12, 5) independent"), r.stdout)
    }
}
