import Foundation
import XCTest
@testable import Core

final class StopRequestTests: XCTestCase {
    func testSignalSetsTheFlagWithoutKillingTheProcess() {
        let stop = StopRequest.shared
        stop.install()
        stop.reset()
        XCTAssertFalse(stop.isRequested)
        kill(getpid(), SIGUSR1)
        let deadline = Date().addingTimeInterval(5)
        while !stop.isRequested && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertTrue(stop.isRequested)
        XCTAssertEqual(stop.signalName, "SIGUSR1")
        stop.reset()
    }
}
