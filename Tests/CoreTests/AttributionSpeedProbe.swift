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
        func roof(_ M: Int = 1024) -> Double {
            let K = 768, N = 3072
            let a = [Float](repeating: 0.01, count: M * K), b = [Float](repeating: 0.02, count: K * N)
            var c = [Float](repeating: 0, count: M * N)
            var best = 0.0
            for _ in 0..<5 {
                let t = Date()
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    Matmul.sgemm(false, false, M: M, N: N, K: K, alpha: 1, A: ap.baseAddress!, lda: K, B: bp.baseAddress!, ldb: N, beta: 0, C: cp.baseAddress!, ldc: N)
                } } }
                best = max(best, 2.0 * Double(M * N * K) / Date().timeIntervalSince(t) / 1e9)
            }
            return best
        }
        print("probe sgemm roof: \(String(format: "%.0f", roof())) GFLOP/s; M=176: \(String(format: "%.0f", roof(176))), M=704: \(String(format: "%.0f", roof(704))), M=880: \(String(format: "%.0f", roof(880)))")
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
                print("probe sgemm roof now: \(String(format: "%.0f", roof())) GFLOP/s")
                print("probe \(which) \(method.rawValue) batch \(bs): \(String(format: "%.2f", Double(n) / dt)) samples/s (\(String(format: "%.2f", dt)) s, threads \(BLAS.threads), core \(BLAS.coreName))")
            }
        }
    }
}
