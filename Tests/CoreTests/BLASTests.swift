import XCTest
@testable import Core

final class BLASTests: XCTestCase {
    func testCoreNameIsReported() {
        XCTAssertFalse(BLAS.coreName.isEmpty)
        XCTAssertGreaterThan(BLAS.threads, 0)
    }
}
