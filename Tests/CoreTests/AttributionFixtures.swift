import Foundation
import XCTest
@testable import Core

/// Access to the EAP / evaluation reference fixtures (see the fixtures README, "reference/eap/" and "eval.json").
enum AttributionFixtures {
    static var root: URL { Paths.fixtures }

    static func requireFixtures() throws -> URL {
        let eap = root.appendingPathComponent("reference/eap/eap.json")
        guard FileManager.default.fileExists(atPath: eap.path) else {
            throw missingFixtures(root.path)
        }
        return root
    }

    static func json(_ relative: String) throws -> [String: Any] {
        let url = try requireFixtures().appendingPathComponent(relative)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        guard let d = object as? [String: Any] else { throw AttributionError(item: relative, problem: "is not a JSON object") }
        return d
    }

    static func jsonLines(_ relative: String) throws -> [[String: Any]] {
        let url = try requireFixtures().appendingPathComponent(relative)
        let text = try String(contentsOf: url, encoding: .utf8)
        return try text.split(separator: "\n").map {
            guard let d = try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] else {
                throw AttributionError(item: relative, problem: "line is not a JSON object")
            }
            return d
        }
    }

    /// A tensor of a fixture safetensors file, as Float (F64 rounded).
    static func tensor(_ relative: String, _ name: String) throws -> (shape: [Int], values: [Float]) {
        let file = try SafetensorsFile(url: try requireFixtures().appendingPathComponent(relative))
        return (try file.info(name).shape, try file.floats(name))
    }

    static func scores(_ name: String) throws -> ScoreMatrix {
        let t = try tensor("reference/eap/scores.safetensors", name)
        return ScoreMatrix(nForward: t.shape[0], nBackward: t.shape[1], values: t.values)
    }

    static func strings(_ any: Any?) -> [String] { (any as? [Any])?.compactMap { $0 as? String } ?? [] }
    static func ints(_ any: Any?) -> [Int] { (any as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } ?? [] }
    static func doubles(_ any: Any?) -> [Double] { (any as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? [] }
}
