import Foundation
import XCTest

/// `dkc config show` as a user runs it.
final class ConfigShowTests: XCTestCase {
    func testShowsResolvedConfigurationThatLoadsBack() throws {
        let dkc = try Launch.executable("dkc")
        let r = try Launch.run(dkc, ["config", "show", "tiny", "--kind", "data"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("n_entities = 400"), r.stdout)
        // The printed TOML is accepted back and resolves to the same text.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-config-\(UUID().uuidString).toml")
        defer { try? FileManager.default.removeItem(at: file) }
        let body = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().joined(separator: "\n")
        try body.write(to: file, atomically: true, encoding: .utf8)
        let again = try Launch.run(dkc, ["config", "show", file.path, "--kind", "data"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let strip = { (s: String) in s.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: "\n") }
        XCTAssertEqual(strip(again.stdout), strip(r.stdout))
    }

    func testUnknownKeyIsAnErrorNamingTheNearestKey() throws {
        let r = try Launch.run(try Launch.executable("dkc"), ["config", "show", "tiny", "--set", "n_entitys=3"])
        XCTAssertEqual(r.status, 65)
        XCTAssertTrue(r.stderr.contains("n_entitys") && r.stderr.contains("n_entities"), r.stderr)
    }

    func testUnknownNameListsTheAvailableOnes() throws {
        let r = try Launch.run(try Launch.executable("dkc"), ["config", "show", "no-such-config"])
        XCTAssertEqual(r.status, 65)
        XCTAssertTrue(r.stderr.contains("tiny"), r.stderr)
    }

    func testEveryKindIsListed() throws {
        // The executable is the one place that lists the kinds (each is defined in the target that reads it).
        let r = try Launch.run(try Launch.executable("dkc"), ["config", "show", "tiny"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for kind in ["data", "train", "sweep"] { XCTAssertTrue(r.stdout.contains("# \(kind): "), kind) }
    }
}
