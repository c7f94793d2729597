import Foundation
import XCTest
import Core

/// `dkc components` as a user runs it, on the fixture model and the circuit samples of reference/eap/city.jsonl,
/// against the study's numbers in reference/components.json (fixtures README; float64 run, its tolerances).
final class ComponentsCommandTests: XCTestCase {
    private func fixtures() throws -> URL {
        let root = Paths.fixtures
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent("reference/components.json").path) else {
            throw missingFixtures(root.path)
        }
        return root
    }

    private func temp() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-components-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func reference(_ f: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: f.appendingPathComponent("reference/components.json"))) as? [String: Any])
    }

    private func ints(_ a: Any?) -> [Int] { (a as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } ?? [] }
    private func doubles(_ a: Any?) -> [Double] { (a as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? [] }
    private func flat(_ a: Any?) -> [Double] { ((a as? [Any]) ?? []).flatMap { doubles($0) } }

    /// The study's cell (city, new, high): per-entity lens and DLA numbers, head means and classes of cell 34.
    func testCellNewHighMatchesTheStudy() throws {
        let f = try fixtures(), dir = try temp(), dkc = try Launch.executable("dkc")
        let ref = try reference(f)
        let out = dir.appendingPathComponent("components.nc")
        let r = try Launch.run(dkc, ["components", "--model", f.appendingPathComponent("model").path,
                                     "--data", f.appendingPathComponent("reference/eap/city.jsonl").path,
                                     "--task", "city", "--type", "new", "--frequency", "high", "--batch-size", "5", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let file = try NetCDFFile.open(path: out.path)
        defer { try? file.close() }
        XCTAssertEqual(try OutputFileHeader.read(from: out).kind, "components")
        XCTAssertTrue(try OutputFileHeader.read(from: out).history.last?.contains("components --model") ?? false)
        let entities = try file.readStrings("entity")
        let heads = ref["heads"] as! [String: Any]
        let idx = ints(heads["eval_entities"])
        let refEntities = ref["entities"] as! [[String: Any]], ref64 = ref["entities_f64"] as! [[String: Any]]
        XCTAssertEqual(entities, idx.map { refEntities[$0]["clean_subject"] as! String })
        XCTAssertEqual(try file.readStrings("lens"), ["0_pre", "1_pre", "final_post"])
        let rank: [Int64] = try file.read("logit_lens_rank"), minRank: [Int64] = try file.read("min_rank_at_subject")
        let prob: [Double] = try file.read("logit_lens_prob"), subj: [Double] = try file.read("subject_token_prob")
        let dlaS: [Double] = try file.read("dla_subject_ratio"), dlaR: [Double] = try file.read("dla_relation_ratio")
        for (e, i) in idx.enumerated() {
            let r64 = ref64[i]
            let windows = (r64["rank_last_window"] as! [Any]).map { ints($0) }
            for k in 0..<3 {
                XCTAssertTrue((windows[k][0]...windows[k][1]).contains(Int(rank[e * 3 + k])), "entity \(i) lens \(k) rank")
                XCTAssertEqual(Int(minRank[e * 3 + k]), ints(r64["min_rank_subject"])[k], "entity \(i) lens \(k) min rank")
                let p = doubles(r64["prob"])[k], s = doubles(r64["prob_subject_last_token"])[k]
                XCTAssertLessThanOrEqual(abs(prob[e * 3 + k] - p), 1e-4 * p + 1e-9, "entity \(i) lens \(k) prob")
                XCTAssertLessThanOrEqual(abs(subj[e * 3 + k] - s), 1e-4 * s + 1e-9, "entity \(i) lens \(k) subject token prob")
            }
            let rs = flat(r64["dla_subject_ratio"]), rr = flat(r64["dla_relation_ratio"])
            for j in 0..<8 {
                XCTAssertLessThanOrEqual(abs(dlaS[e * 8 + j] - rs[j]), 1e-5 + 2e-3 * abs(rs[j]), "entity \(i) head \(j) subject ratio")
                XCTAssertLessThanOrEqual(abs(dlaR[e * 8 + j] - rr[j]), 1e-5 + 2e-3 * abs(rr[j]), "entity \(i) head \(j) relation ratio")
            }
        }
        // Mean ratios: |Δ| ≤ 1e-5 + 2e-3 · (mean of the samples' |ratio|) (README).
        let meanS: [Double] = try file.read("head_subject_ratio"), meanR: [Double] = try file.read("head_relation_ratio")
        for (name, mine, refMeans, key) in [("subject", meanS, flat(heads["mean_subject_ratio_f64"]), "dla_subject_ratio"),
                                            ("relation", meanR, flat(heads["mean_relation_ratio_f64"]), "dla_relation_ratio")] {
            for j in 0..<8 {
                let scale = idx.map { abs(flat(ref64[$0][key])[j]) }.reduce(0, +) / Double(idx.count)
                XCTAssertLessThanOrEqual(abs(mine[j] - refMeans[j]), 1e-5 + 2e-3 * scale, "head \(j) mean \(name) ratio")
            }
        }
        XCTAssertEqual(try file.readStrings("head_class"), ((heads["class"] as! [Any]).flatMap { $0 as! [String] }))
        XCTAssertFalse(try file.variableNames().contains("circuit_heads"), "no circuits without --scores")
    }

    /// With --scores: the heads of the top-n circuits of the cell (city, new, all) by class and layer. The
    /// expected counts come from the reference's circuit head lists and its classes over all new samples.
    func testCircuitHeadsFromScores() throws {
        let f = try fixtures(), dir = try temp(), dkc = try Launch.executable("dkc")
        let ref = try reference(f)
        let model = f.appendingPathComponent("model").path, data = f.appendingPathComponent("reference/eap/city.jsonl").path
        let scores = dir.appendingPathComponent("scores.nc"), out = dir.appendingPathComponent("components.nc")
        let d = try Launch.run(dkc, ["discover", "--model", model, "--data", data, "--task", "city", "--type", "new", "--batch-size", "8", "--out", scores.path])
        XCTAssertEqual(d.status, 0, d.stdout + d.stderr)
        let r = try Launch.run(dkc, ["components", "--model", model, "--data", data, "--task", "city", "--type", "new",
                                     "--scores", scores.path, "--topn", "10,50,200", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let file = try NetCDFFile.open(path: out.path)
        defer { try? file.close() }
        let classes = ((ref["heads_all"] as! [String: Any])["class"] as! [Any]).flatMap { $0 as! [String] }
        XCTAssertEqual(try file.readStrings("head_class"), classes)
        XCTAssertEqual(try file.readStrings("class"), ["mover", "relation", "mixture"])
        let topn: [Int64] = try file.read("topn"), counts: [Int64] = try file.read("circuit_heads"), nodes: [Int64] = try file.read("circuit_nodes")
        XCTAssertEqual(topn, [10, 50, 200])
        let circuits = ref["circuits"] as! [String: [String: Any]]
        for (t, n) in [10, 50, 200].enumerated() {
            let c = circuits[String(n)]!
            XCTAssertEqual(Int(nodes[t]), (c["count_included_nodes"] as! NSNumber).intValue, "top-\(n) nodes")
            var expected = [Int](repeating: 0, count: 3 * 2)
            for h in (c["heads_in_circuit"] as! [Any]).map({ ints($0) }) {
                let cls = ["mover", "relation", "mixture"].firstIndex(of: classes[h[0] * 4 + h[1]])!
                expected[cls * 2 + h[0]] += 1
            }
            XCTAssertEqual(counts[(t * 6)..<(t * 6 + 6)].map { Int($0) }, expected, "top-\(n) heads per class and layer")
        }
    }

    func testErrorsNameTheOptionOrFile() throws {
        let f = try fixtures(), dir = try temp(), dkc = try Launch.executable("dkc")
        let model = f.appendingPathComponent("model").path, data = f.appendingPathComponent("reference/eap/city.jsonl").path
        let out = dir.appendingPathComponent("c.nc").path
        let cases: [([String], String, Int32)] = [
            (["--model", model, "--data", data, "--task", "town", "--out", out], "'town' is invalid for '--task <task>'", 64),
            (["--model", model, "--data", dir.appendingPathComponent("none.jsonl").path, "--task", "city", "--out", out], "--data:", 65),
            (["--model", dir.path, "--data", data, "--task", "city", "--out", out], "config.json", 65),
            (["--model", model, "--data", data, "--task", "city", "--type", "revised", "--out", out], "--data: no record", 65),
            (["--model", model, "--data", data, "--task", "city", "--frequency", "often", "--out", out], "--frequency: unknown frequency bucket 'often'", 65),
            (["--model", model, "--data", data, "--task", "city", "--topn", "10", "--out", out], "--topn: is given without --scores", 64),
            (["--model", model, "--data", data, "--task", "city", "--scores", data, "--topn", "x", "--out", out], "'x' is invalid for '--topn <topn>': 'x' is not a list", 64),
            (["--model", model, "--data", data, "--task", "city", "--scores", data, "--topn", "10", "--out", out], data, 65),
            (["--model", model, "--data", data, "--task", "city", "--batch-size", "0", "--out", out], "--batch-size: is 0", 65),
            (["--model", model, "--data", data, "--task", "city", "--out", "/no/such/folder/c.nc"], "--out: the folder /no/such/folder does not exist", 65),
        ]
        for (args, expected, code) in cases {
            let r = try Launch.run(dkc, ["components"] + args)
            XCTAssertEqual(r.status, code, args.joined(separator: " ") + ": " + r.stderr)
            XCTAssertTrue(r.stderr.contains("dkc components: ") && r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
    }
}
