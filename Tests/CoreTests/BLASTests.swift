import Foundation
import XCTest
@testable import Core

final class BLASTests: XCTestCase {
    /// OpenBLAS names the kernel it selected (e.g. "Haswell", "SkylakeX", "Zen"); `coreName` falls back to
    /// "unknown" only when the library returns no name, which is what this test must catch.
    func testCoreNameIsReported() {
        let name = BLAS.coreName
        XCTAssertNotEqual(name, "unknown", "openblas_get_corename returned no name")
        XCTAssertFalse(name.isEmpty)
        XCTAssertTrue(name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }, "not a core name: \(name.debugDescription)")
        XCTAssertGreaterThan(BLAS.threads, 0)
    }
}

extension BLASTests {
    /// dkc shortens OpenBLAS's idle spin (`BLAS.applyIdleSpin`) by restarting its thread pool; products on two
    /// threads must still be right afterwards.
    func testIdleSpinSettingKeepsThreadedProductsRight() {
        let timeout = BLAS.applyIdleSpin()
        XCTAssertNotNil(getenv("OPENBLAS_THREAD_TIMEOUT"), "applyIdleSpin leaves the environment without a timeout")
        XCTAssertNotNil(timeout, "this OpenBLAS (Debian's pthreads build) takes the setting")
        let saved = BLAS.threads
        BLAS.setThreads(2)
        defer { BLAS.setThreads(saved) }
        let M = 300, N = 200, K = 150
        var rng = SplitMix64(seed: 1)
        let a = (0..<(M * K)).map { _ in rng.nextGaussian() }, b = (0..<(K * N)).map { _ in rng.nextGaussian() }
        var c = [Float](repeating: 0, count: M * N)
        for _ in 0..<3 {
            Matmul.sgemm(false, false, M: M, N: N, K: K, alpha: 1, A: a, lda: K, B: b, ldb: N, beta: 0, C: &c, ldc: N)
            for (i, j) in [(0, 0), (17, 101), (299, 199), (150, 3)] {
                var s: Double = 0
                for k in 0..<K { s += Double(a[i * K + k]) * Double(b[k * N + j]) }
                XCTAssertEqual(Double(c[i * N + j]), s, accuracy: 1e-3 * max(1, abs(s)))
            }
        }
    }
}
