import Foundation
import XCTest
@testable import Core

/// A development probe, not a timed test: runs only with DKC_ATTRIBUTION_PROBE=tiny|gpt2 and prints samples/s.
final class AttributionSpeedProbe: XCTestCase {
    func testProbe() throws {
        guard let which = ProcessInfo.processInfo.environment["DKC_ATTRIBUTION_PROBE"] else { throw XCTSkip("set DKC_ATTRIBUTION_PROBE=tiny|gpt2") }
        let cfg = which == "gpt2" ? GPT2Config.gpt2Small : GPT2Config.tiny
        let arena = ParameterArena(config: cfg)
        arena.initializeGPT2(seed: 1)
        let model = InstrumentedGPT2(parameters: arena)
        let batchSizes = (ProcessInfo.processInfo.environment["DKC_PROBE_BATCH"] ?? "16,64").split(separator: ",").map { Int($0)! }
        let methods = (ProcessInfo.processInfo.environment["DKC_PROBE_METHODS"] ?? "EAP-IG,EAP").split(separator: ",").map { AttributionMethod(rawValue: String($0))! }
        var rng = SplitMix64(seed: 5)
        for bs in batchSizes {
            let n = max(bs, 64)
            let pairs = (0..<n).map { _ -> PromptPair in
                let nameLen = 3 + Int(rng.next() % 3)
                let name = (0..<nameLen).map { _ in Int(rng.next() % 50000) }
                let other = (0..<nameLen).map { _ in Int(rng.next() % 50000) }
                let tail = [3160, 287, 262, 1748, 286]
                return PromptPair(clean: name + tail, corrupted: other + tail, cleanLabel: Int(rng.next() % 50257), corruptedLabel: Int(rng.next() % 50257))
            }
            for method in methods {
                _ = try EdgeAttribution.scores(model: model, pairs: Array(pairs.prefix(bs)), batchSize: bs, options: .init(method: method))
                let t0 = Date()
                _ = try EdgeAttribution.scores(model: model, pairs: pairs, batchSize: bs, options: .init(method: method))
                let dt = Date().timeIntervalSince(t0)
                print("probe \(which) \(method.rawValue) batch \(bs): \(String(format: "%.2f", Double(n) / dt)) samples/s (\(String(format: "%.2f", dt)) s, threads \(BLAS.threads), core \(BLAS.coreName))")
            }
        }
    }
}
