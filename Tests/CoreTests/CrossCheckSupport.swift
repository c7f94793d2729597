import Foundation
import XCTest
@testable import Core

/// The checks against code dkc does not ship — transformers loading a checkpoint dkc wrote, transformers'
/// `generate`, the study's analyzer.py — and where their reference comes from (docs/fixtures.md):
///
/// - live, where `$DKC_PYTHON` (else python3) imports torch and transformers and, for the analyzer, `$DKC_STUDY_CODE`
///   holds the study's code: the Python runs and its output is the reference. With `DKC_RECORD_CROSSCHECKS=1` the
///   run also records that output and the inputs dkc gave it under Tests/CrossChecks/<family>/ (scripts/record-crosschecks).
/// - recorded, everywhere else (a bare clone, CI): the test first checks that dkc gives the recorded run the same
///   inputs byte for byte, then compares dkc's numbers with the recorded output under the same tolerances.
///
/// With neither, the check is a missing fixture: a skip, or a failure under CI.
enum CrossCheck {
    enum Mode { case live, recorded }

    static let folder = Paths.sourceRoot.appendingPathComponent("Tests/CrossChecks")
    static var recording: Bool { ProcessInfo.processInfo.environment["DKC_RECORD_CROSSCHECKS"] == "1" }

    /// The study's code for the analyzer check: `$DKC_STUDY_CODE` when it holds analyzer.py.
    static var studyCode: String? {
        guard let path = ProcessInfo.processInfo.environment["DKC_STUDY_CODE"],
              FileManager.default.fileExists(atPath: path + "/analyzer.py") else { return nil }
        return path
    }

    /// Whether the Python imports torch and transformers (asked once per test process).
    static let pythonReady: Bool = {
        guard let probe = try? FamilyFixtures.runPython("import transformers, torch", []) else { return false }
        return probe.0 == 0
    }()

    static func file(_ family: String, _ name: String) -> URL {
        folder.appendingPathComponent(family).appendingPathComponent(name)
    }

    /// Live when the Python (and, with `needsStudy`, the study's code) is at hand; else recorded when every file
    /// of `recorded` exists. Recording without a live reference is an error, not a silent fallback.
    static func mode(needsStudy: Bool, recorded: [URL]) throws -> Mode {
        if pythonReady && (!needsStudy || studyCode != nil) { return .live }
        if recording {
            throw ItemError(item: "DKC_RECORD_CROSSCHECKS=1", problem: "there is no live reference to record",
                            fix: "give a Python with torch and transformers (DKC_PYTHON)" + (needsStudy ? " and the study's code (DKC_STUDY_CODE)" : ""))
        }
        guard let missing = recorded.first(where: { !FileManager.default.fileExists(atPath: $0.path) }) else { return .recorded }
        throw missingFixtures(missing.path + " (no live Python with torch and transformers" + (needsStudy ? " and DKC_STUDY_CODE" : "") + " either)")
    }

    /// The inputs dkc gives the reference. Recording writes them; a recorded run requires them equal to the
    /// recorded ones, since the recorded output answers those inputs only.
    static func inputs(_ data: Data, _ file: URL, _ mode: Mode, caller: StaticString = #filePath, line: UInt = #line) throws {
        switch mode {
        case .live:
            if recording { try write(data, file) }
        case .recorded:
            let recorded = try Data(contentsOf: file)
            XCTAssertTrue(recorded == data, "dkc no longer gives the recorded run the inputs in \(file.path): re-record with scripts/record-crosschecks where the reference code runs", file: caller, line: line)
        }
    }

    /// The reference's output: `live()` (recorded to `file` when recording), or the recorded file.
    static func output(_ file: URL, _ mode: Mode, live: () throws -> Data) throws -> Data {
        switch mode {
        case .live:
            let data = try live()
            if recording { try write(data, file) }
            return data
        case .recorded:
            return try Data(contentsOf: file)
        }
    }

    private static func write(_ data: Data, _ file: URL) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: file, options: .atomic)
    }

    /// A checkpoint folder as a loader sees it: every JSON file's text and every safetensors file's tensors
    /// (name, dtype, shape), files in name order. The values are left out: the logits compare them.
    static func manifest(of folder: URL) throws -> Data {
        var lines: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() {
            let url = folder.appendingPathComponent(name)
            if name.hasSuffix(".json") {
                lines.append("== \(name)")
                lines.append(try String(contentsOf: url, encoding: .utf8))
            } else if name.hasSuffix(".safetensors") {
                lines.append("== \(name)")
                for t in try SafetensorsFile(url: url).tensors.sorted(by: { $0.name < $1.name }) {
                    lines.append("\(t.name) \(t.dtype) \(t.shape.map(String.init).joined(separator: "x"))")
                }
            }
        }
        return Data((lines.joined(separator: "\n") + "\n").utf8)
    }
}
