import Foundation
import XCTest
@testable import Core

/// Shared helpers of the model and checkpoint tests.
enum ModelFixtures {
    /// The fixtures folder, or an XCTSkip naming where it was looked for.
    static func root() throws -> URL {
        let url = Paths.fixtures
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("README.md").path) else {
            throw XCTSkip("fixtures not found at \(url.path): set DKC_FIXTURES")
        }
        return url
    }

    static func model() throws -> URL { try root().appendingPathComponent("model") }
    static func reference(_ name: String) throws -> URL { try root().appendingPathComponent("reference/\(name)") }

    /// A JSON companion file as a dictionary.
    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: try reference(name))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// A fresh empty temporary folder, removed at the end of the test.
    static func tempDir(_ test: XCTestCase) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}

/// Comparison statistics of two float arrays, for messages that name the tensor.
struct Diff {
    var maxAbs: Double = 0
    var maxRel: Double = 0      // max |a − b| / max(|b|, 1e-12) at the worst-abs element
    var relL2: Double = 0       // ‖a − b‖ / ‖b‖
    var worstIndex = 0

    init<A: Collection, B: Collection>(_ a: A, _ b: B) where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
        precondition(a.count == b.count)
        var num = 0.0, den = 0.0
        for (i, (x, y)) in zip(a, b).enumerated() {
            let d = Double(x) - Double(y)
            num += d * d
            den += Double(y) * Double(y)
            if abs(d) > maxAbs {
                maxAbs = abs(d); worstIndex = i
                maxRel = abs(d) / max(abs(Double(y)), 1e-12)
            }
        }
        relL2 = den > 0 ? (num / den).squareRoot() : num.squareRoot()
    }

    var summary: String {
        "max abs \(String(format: "%.3g", maxAbs)) (rel \(String(format: "%.3g", maxRel)) at index \(worstIndex)), rel L2 \(String(format: "%.3g", relL2))"
    }
}
