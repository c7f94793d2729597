import Foundation
import XCTest
import Core
@testable import MPIShim

final class CommunicatorTests: XCTestCase {
    func testChunksCoverEveryElementOnceInOrder() {
        XCTAssertEqual(mpiChunks(count: 0, limit: 4), [])
        XCTAssertEqual(mpiChunks(count: 10, limit: 4), [0..<4, 4..<8, 8..<10])
        XCTAssertEqual(mpiChunks(count: 8, limit: 4), [0..<4, 4..<8])
        // A buffer longer than Int32.max splits into pieces MPI can take.
        let big = Int(Int32.max) * 2 + 5
        let chunks = mpiChunks(count: big)
        XCTAssertEqual(chunks.count, 3)
        XCTAssertEqual(chunks.map(\.count).reduce(0, +), big)
        XCTAssertTrue(chunks.allSatisfy { $0.count <= Int(Int32.max) })
        XCTAssertEqual(chunks.last, (Int(Int32.max) * 2)..<big)
    }

    func testLauncherMismatchIsDetected() {
        XCTAssertNil(MPICommunicator.launcherMismatch(worldSize: 1, environment: [:]))
        XCTAssertNil(MPICommunicator.launcherMismatch(worldSize: 2, environment: ["OMPI_COMM_WORLD_SIZE": "2", "SLURM_NTASKS": "8"]))
        let m = MPICommunicator.launcherMismatch(worldSize: 1, environment: ["SLURM_NTASKS": "2"])
        XCTAssertNotNil(m)
        XCTAssertTrue(m!.contains("SLURM_NTASKS=2"), m!)
        XCTAssertNotNil(MPICommunicator.launcherMismatch(worldSize: 1, environment: ["PMI_SIZE": "4"]))
    }

    func testCollectivesAsSingleton() throws {
        let r = try Launch.run(try Launch.executable("MPISelfTest"), ["collectives"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("PASS rank 0 of 1"), r.stdout + r.stderr)
    }

    func testCollectivesUnderMpirun() throws {
        for n in [2, 3] {
            let r = try Launch.run(try Launch.executable("MPISelfTest"), ["collectives"], ranks: n)
            XCTAssertEqual(r.status, 0, "np \(n): " + r.stdout + r.stderr)
            for rank in 0..<n {
                XCTAssertTrue(r.stdout.contains("PASS rank \(rank) of \(n) (chunk limit 5)"), "np \(n): " + r.stdout + r.stderr)
            }
        }
    }

    func testAbortFromOneRankEndsTheJob() throws {
        let r = try Launch.run(try Launch.executable("MPISelfTest"), ["abort"], ranks: 3, timeout: 60)
        XCTAssertFalse(r.timedOut, "the job hung after one rank aborted")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue((r.stdout + r.stderr).contains("deliberate failure on the last rank"), r.stdout + r.stderr)
        XCTAssertLessThan(r.seconds, 30)
    }

    func testDoctorShowsEveryRank() throws {
        let r = try Launch.run(try Launch.executable("dkc"), ["doctor"], ranks: 2)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("world size 2"), r.stdout)
        XCTAssertTrue(r.stdout.contains("rank 0/2"), r.stdout)
        XCTAssertTrue(r.stdout.contains("rank 1/2"), r.stdout)
        XCTAssertLessThan(r.stdout.range(of: "rank 0/2")!.lowerBound, r.stdout.range(of: "rank 1/2")!.lowerBound)
        // Every rank runs with dkc's shorter OpenBLAS idle spin unless the environment chose one (BLAS.applyIdleSpin).
        let timeout = ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"] ?? String(BLAS.idleSpinExponent)
        XCTAssertEqual(r.stdout.components(separatedBy: "OPENBLAS_THREAD_TIMEOUT=\(timeout)").count - 1, 2, r.stdout)
    }

    func testSingletonUnderUnwiredLauncherStops() throws {
        let r = try Launch.run(try Launch.executable("dkc"), ["doctor"], env: ["SLURM_NTASKS": "2"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("SLURM_NTASKS=2"), r.stderr)
    }
}
