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
