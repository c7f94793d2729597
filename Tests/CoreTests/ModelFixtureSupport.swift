import Foundation
import XCTest
@testable import Core

/// Shared helpers of the model and checkpoint tests.
enum ModelFixtures {
    /// The fixtures folder, or an XCTSkip naming where it was looked for.
    static func root() throws -> URL {
        let url = Paths.fixtures
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("README.md").path) else {
            throw missingFixtures(url.path)
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

/// The error a test throws when the reference fixtures are missing: a skip, or under CI (`CI=true`,
/// `Paths.fixtureSkipAllowed`) a failure, so a CI run never passes without its parity tests.
func missingFixtures(_ where: String) -> Error {
    let text = "fixtures not found at \(`where`): set DKC_FIXTURES, or keep Tests/Fixtures (scripts/compact-fixtures remakes it)"
    return Paths.fixtureSkipAllowed ? XCTSkip(text) : MissingFixturesError(text: text + " (CI=true: a missing fixture fails the run)")
}

struct MissingFixturesError: Error, CustomStringConvertible { let text: String; var description: String { text } }

/// A tensor of a reference safetensors file that may hold only some slices of the original along one
/// axis (the compact fixtures, Tests/Fixtures/README.md): `X` holds the kept slices, `X.kept` their
/// indices, the metadata `compact.X = "axis=A shape=D0,D1,..."` the original axis and shape. For a
/// full tensor every index is kept. Tests compare the kept entries with the full tensor's tolerance.
struct ReferenceTensor {
    let shape: [Int]       // the original shape
    let axis: Int
    let kept: [Int]        // indices along `axis`, ascending
    let values: [Float]    // row-major over shape with `axis` reduced to kept.count
    var isReduced: Bool { kept.count != shape[axis] }

    init(_ file: SafetensorsFile, _ name: String) throws {
        values = try file.floats(name)
        if let spec = file.metadata["compact." + name] {
            let fields = Dictionary(uniqueKeysWithValues: spec.split(separator: " ").map { f -> (String, String) in
                let kv = f.split(separator: "=", maxSplits: 1)
                return (String(kv[0]), kv.count > 1 ? String(kv[1]) : "")
            })
            axis = try XCTUnwrap(Int(fields["axis"] ?? ""), "compact.\(name): \(spec)")
            shape = try XCTUnwrap(fields["shape"]).split(separator: ",").compactMap { Int($0) }
            kept = try file.ints(name + ".kept")
            var reduced = shape; reduced[axis] = kept.count
            XCTAssertEqual(reduced.reduce(1, *), values.count, "\(name): reduced shape \(reduced)")
            XCTAssertTrue(kept.allSatisfy { (0..<shape[axis]).contains($0) }, "\(name).kept out of range")
        } else {
            shape = try file.info(name).shape
            axis = 0
            kept = Array(0..<(shape.first ?? 1))
        }
    }

    /// The stored indices along `axis`: the kept ones on the reduced axis, all of them on any other.
    func kept(along axis: Int) -> [Int] { axis == self.axis ? kept : Array(0..<shape[axis]) }

    /// Flat indices into the original tensor of the stored values, in their order.
    var originalIndices: [Int] {
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), n = shape[axis]
        var out: [Int] = []
        out.reserveCapacity(values.count)
        for o in 0..<outer { for k in kept { for i in 0..<inner { out.append((o * n + k) * inner + i) } } }
        return out
    }

    /// The entries of a full tensor (same original shape) at the stored positions.
    func gather<C: RandomAccessCollection>(_ full: C) -> [Float] where C.Element == Float, C.Index == Int {
        let base = full.startIndex
        return originalIndices.map { full[base + $0] }
    }
}
