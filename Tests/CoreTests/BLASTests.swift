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

extension BLASTests {
    /// `GemmProfile` counts the products made while it records, by shape and OpenBLAS thread count, and nothing else.
    func testGemmProfileCountsProductsByShapeWhileOn() {
        let a = [Float](repeating: 1, count: 37 * 13), b = [Float](repeating: 2, count: 13 * 29)
        var c = [Float](repeating: 0, count: 37 * 29)
        GemmProfile.reset()
        defer { GemmProfile.record(false); GemmProfile.reset() }
        Matmul.sgemm(false, false, M: 37, N: 29, K: 13, alpha: 1, A: a, lda: 13, B: b, ldb: 29, beta: 0, C: &c, ldc: 29)
        GemmProfile.record(true)
        for _ in 0..<3 { Matmul.sgemm(false, false, M: 37, N: 29, K: 13, alpha: 1, A: a, lda: 13, B: b, ldb: 29, beta: 0, C: &c, ldc: 29) }
        for _ in 0..<2 { Matmul.sgemm(false, true, M: 29, N: 37, K: 13, alpha: 1, A: b, lda: 13, B: a, ldb: 13, beta: 0, C: &c, ldc: 37) }
        Matmul.sgemm(false, false, M: 0, N: 29, K: 13, alpha: 1, A: a, lda: 13, B: b, ldb: 29, beta: 0, C: &c, ldc: 29)
        GemmProfile.record(false)
        Matmul.sgemm(false, false, M: 37, N: 29, K: 13, alpha: 1, A: a, lda: 13, B: b, ldb: 29, beta: 0, C: &c, ldc: 29)
        XCTAssertEqual(c[0], 26, "the product itself is unchanged")
        let e = GemmProfile.entries
        XCTAssertEqual(e.count, 2, "\(e.map(\.shape.label))")
        let nn = e.first { !$0.shape.transB }, nt = e.first { $0.shape.transB }
        XCTAssertEqual(nn?.calls, 3)
        XCTAssertEqual(nn?.shape, GemmProfile.Shape(transA: false, transB: false, M: 37, N: 29, K: 13, blasThreads: BLAS.threads))
        XCTAssertEqual(nn?.flops, 3 * 2 * 37 * 29 * 13)
        XCTAssertEqual(nt?.calls, 2)
        XCTAssertEqual(nt?.shape.label, "NT 29×37×13")
        XCTAssertEqual(nt?.coreSeconds ?? -1, (nt?.seconds ?? 0) * Double(BLAS.threads), accuracy: 1e-12)
        XCTAssertGreaterThanOrEqual(e[0].coreSeconds, e[1].coreSeconds, "longest first")
        // Both are small (every side under 128): one group; a large product gets a group of its own, labelled by M range.
        let big = GemmProfile.Entry(shape: .init(transA: false, transB: true, M: 300, N: 768, K: 64, blasThreads: 1), calls: 4, seconds: 0.5)
        let big2 = GemmProfile.Entry(shape: .init(transA: false, transB: true, M: 200, N: 768, K: 64, blasThreads: 1), calls: 2, seconds: 0.25)
        let groups = GemmProfile.groups(e + [big, big2])
        XCTAssertEqual(groups.map(\.label), ["NT (200–300)×768×64 @1", "2 shapes with every side under 128"])
        XCTAssertEqual(groups[0].calls, 6)
        XCTAssertEqual(groups[0].flops, (4 * 300 + 2 * 200) * 2 * 768 * 64)
        XCTAssertEqual(groups[1].calls, 5)
        GemmProfile.reset()
        XCTAssertTrue(GemmProfile.entries.isEmpty)
    }
}
