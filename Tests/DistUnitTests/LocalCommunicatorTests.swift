import Foundation
import XCTest
@testable import MPIShim

/// The `Communicator` contract on in-process ranks (`LocalGroup`), for R = 1…4: every collective with
/// every op and root, point to point with tags and wildcards, and the failure paths (abort, a throwing
/// rank, a mismatched collective, a hang caught by the timeout). Expected values are worked out by hand
/// from the per-rank inputs.
final class LocalCommunicatorTests: XCTestCase {
    static let rankCounts = 1...4

    // MARK: Reductions

    /// Rank r contributes x_r[i] = 10·r + i (+ 0.5 for floating types): sum = 10·R(R−1)/2 + R·i (+ R/2),
    /// max = 10(R−1) + i, min = i.
    func testAllreduceEveryTypeAndOp() throws {
        for R in Self.rankCounts {
            let results = try LocalGroup.runAll(ranks: R, timeout: 20) { comm -> [String: [Double]] in
                let r = comm.rank
                var out: [String: [Double]] = [:]
                for op in ReduceOp.allCases {
                    var f = (0..<5).map { Float(10 * r + $0) + 0.5 }
                    try comm.allreduce(&f, op: op)
                    out["Float \(op)"] = f.map(Double.init)
                    var d = (0..<5).map { Double(10 * r + $0) + 0.5 }
                    try d.withUnsafeMutableBufferPointer { try comm.allreduce($0.baseAddress!, count: 5, op: op) }
                    out["Double \(op)"] = d
                    var i32 = (0..<5).map { Int32(10 * r + $0) }
                    try comm.allreduce(&i32, op: op)
                    out["Int32 \(op)"] = i32.map(Double.init)
                    var i64 = (0..<5).map { Int64(10 * r + $0) }
                    try comm.allreduce(&i64, op: op)
                    out["Int64 \(op)"] = i64.map(Double.init)
                    var u8 = (0..<5).map { UInt8(10 * r + $0) }
                    try comm.allreduce(&u8, op: op)
                    out["UInt8 \(op)"] = u8.map(Double.init)
                    out["value \(op)"] = [Double(try comm.allreduce(Int64(7 * r + 1), op: op))]
                }
                return out
            }
            let sum = Double(10 * R * (R - 1) / 2)
            for (rank, out) in results.enumerated() {
                for type in ["Float", "Double", "Int32", "Int64", "UInt8"] {
                    let half = type == "Float" || type == "Double" ? 0.5 : 0
                    XCTAssertEqual(out["\(type) sum"], (0..<5).map { sum + Double(R * $0) + Double(R) * half }, "R \(R) rank \(rank) \(type)")
                    XCTAssertEqual(out["\(type) max"], (0..<5).map { Double(10 * (R - 1) + $0) + half }, "R \(R) rank \(rank) \(type)")
                    XCTAssertEqual(out["\(type) min"], (0..<5).map { Double($0) + half }, "R \(R) rank \(rank) \(type)")
                }
                XCTAssertEqual(out["value sum"], [Double(7 * R * (R - 1) / 2 + R)])
                XCTAssertEqual(out["value max"], [Double(7 * (R - 1) + 1)])
                XCTAssertEqual(out["value min"], [1])
            }
        }
    }

    /// The documented order: a left fold in rank order. Float 1 + 1e8 rounds to 1e8 (the spacing of floats
    /// there is 8), so ((1 + 1e8) + (−1e8)) = 0 on every rank, where the reverse order ((−1e8) + 1e8) + 1 gives 1.
    func testReductionFoldsInRankOrder() throws {
        let values: [Float] = [1, 1e8, -1e8]
        let results = try LocalGroup.runAll(ranks: 3) { comm in try comm.allreduce(values[comm.rank], op: .sum) }
        XCTAssertEqual(results, [0, 0, 0])
        // Integer sums wrap, as MPI's do.
        let wrapped = try LocalGroup.runAll(ranks: 2) { comm in try comm.allreduce(UInt8(200), op: .sum) }
        XCTAssertEqual(wrapped, [144, 144])
    }

    // MARK: Broadcast and gather

    func testBroadcastFromEveryRoot() throws {
        for R in Self.rankCounts {
            for root in 0..<R {
                let results = try LocalGroup.runAll(ranks: R) { comm -> ([Float], [Int64], [UInt8]) in
                    let mine = comm.rank == root
                    var buffer: [Float] = mine ? [1.5, -2, 3] : [0, 0, 0]
                    try buffer.withUnsafeMutableBufferPointer { try comm.broadcast($0.baseAddress!, count: 3, root: root) }
                    var array: [Int64] = mine ? [Int64(root), 42] : [-1, -1]
                    try comm.broadcast(&array, root: root)
                    // Only the root knows the length.
                    let bytes = try comm.broadcast(bytes: mine ? Array("root \(root)".utf8) : [], root: root)
                    return (buffer, array, bytes)
                }
                for (rank, r) in results.enumerated() {
                    XCTAssertEqual(r.0, [1.5, -2, 3], "R \(R) root \(root) rank \(rank)")
                    XCTAssertEqual(r.1, [Int64(root), 42], "R \(R) root \(root) rank \(rank)")
                    XCTAssertEqual(String(decoding: r.2, as: UTF8.self), "root \(root)", "R \(R) root \(root) rank \(rank)")
                }
            }
        }
    }

    func testGathersArriveInRankOrderOnTheRootOnly() throws {
        for R in Self.rankCounts {
            for root in 0..<R {
                let results = try LocalGroup.runAll(ranks: R) { comm -> ([Int32], [[Double]], [String]) in
                    let r = comm.rank
                    let fixed = try comm.gather([Int32(r), Int32(100 + r)], root: root)
                    // Rank r sends r + 1 values (rank 0 one, …), so lengths differ.
                    let varying = try comm.gatherv((0...r).map { Double(r) + Double($0) / 10 }, root: root)
                    let strings = try comm.gather(string: String(repeating: "é", count: r) + "\(r)", root: root)
                    return (fixed, varying, strings)
                }
                for (rank, r) in results.enumerated() {
                    if rank == root {
                        XCTAssertEqual(r.0, (0..<R).flatMap { [Int32($0), Int32(100 + $0)] }, "R \(R) root \(root)")
                        XCTAssertEqual(r.1, (0..<R).map { s in (0...s).map { Double(s) + Double($0) / 10 } }, "R \(R) root \(root)")
                        XCTAssertEqual(r.2, (0..<R).map { String(repeating: "é", count: $0) + "\($0)" }, "R \(R) root \(root)")
                    } else {
                        XCTAssertTrue(r.0.isEmpty && r.1.isEmpty && r.2.isEmpty, "R \(R) root \(root): rank \(rank) got data")
                    }
                }
            }
        }
    }

    /// Nobody leaves the barrier before everyone has entered it.
    func testBarrierWaitsForEveryRank() throws {
        for R in Self.rankCounts {
            let entered = Counter()
            let seen = try LocalGroup.runAll(ranks: R) { comm -> Int in
                // Late ranks arrive late.
                Thread.sleep(forTimeInterval: 0.01 * Double(comm.rank))
                entered.increment()
                try comm.barrier()
                return entered.value
            }
            XCTAssertEqual(seen, [Int](repeating: R, count: R), "R \(R)")
        }
    }

    // MARK: Point to point

    /// Every other rank sends three messages (tags 5, 6, 5) to rank 0, which takes tag 6 first (passing
    /// over the earlier tag-5 message), then everything else from any source, checking the per-pair order.
    func testSendReceiveWithTagsAndAnySource() throws {
        for R in Self.rankCounts {
            let results = try LocalGroup.runAll(ranks: R) { comm -> [String] in
                if comm.rank != 0 {
                    for (k, tag) in [5, 6, 5].enumerated() {
                        try comm.send(bytes: [UInt8(comm.rank), UInt8(k)], to: 0, tag: tag)
                    }
                    // The reply: addressed to this rank only.
                    let reply = try comm.receive(from: 0)
                    return ["\(reply.tag):\(reply.bytes)"]
                }
                var log: [String] = []
                for source in 1..<comm.size {
                    let m = try comm.receive(from: source, tag: 6)
                    log.append("\(m.source) \(m.tag) \(m.bytes)")
                }
                for _ in 0..<(2 * (comm.size - 1)) {
                    let m = try comm.receive()
                    log.append("\(m.source) \(m.tag) \(m.bytes)")
                }
                XCTAssertNil(try comm.poll())
                for dest in 1..<comm.size {
                    try comm.send(bytes: [UInt8(dest)], to: dest, tag: 9)
                }
                return log
            }
            let expected: [String] = (1..<R).map { "\($0) 6 [\($0), 1]" }
            let rest = results[0].dropFirst(R - 1)
            XCTAssertEqual(Array(results[0].prefix(R - 1)), expected, "R \(R)")
            // Any-source order between ranks is free; per rank, tag-5 messages keep their order.
            for source in 1..<R {
                let mine = rest.filter { $0.hasPrefix("\(source) ") }
                XCTAssertEqual(mine, ["\(source) 5 [\(source), 0]", "\(source) 5 [\(source), 2]"], "R \(R) source \(source)")
            }
            XCTAssertEqual(rest.count, 2 * (R - 1))
            for rank in 1..<R { XCTAssertEqual(results[rank], ["9:[\(rank)]"]) }
        }
    }

    func testPollSeesPendingMessagesWithoutTakingThem() throws {
        let results = try LocalGroup.runAll(ranks: 3) { comm -> [String] in
            if comm.rank == 2 { try comm.send(bytes: [7], to: 0, tag: 11) }
            try comm.barrier()  // the message is posted before anyone passes this
            guard comm.rank == 0 else { return [] }
            var log: [String] = []
            log.append("\(try comm.poll(from: 1).map { "\($0)" } ?? "nil")")
            log.append("\(try comm.poll(tag: 12).map { "\($0)" } ?? "nil")")
            let p = try XCTUnwrap(try comm.poll())
            log.append("\(p.source) \(p.tag)")
            let again = try XCTUnwrap(try comm.poll(from: 2, tag: 11))
            log.append("\(again.source) \(again.tag)")
            let m = try comm.receive(tag: 11)
            log.append("\(m.source) \(m.bytes)")
            log.append("\(try comm.poll().map { "\($0)" } ?? "nil")")
            return log
        }
        XCTAssertEqual(results[0], ["nil", "nil", "2 11", "2 11", "2 [7]", "nil"])
    }

    func testMisuseIsANamedError() throws {
        let outcomes = try LocalGroup.run(ranks: 2) { comm in
            try comm.send(bytes: [], to: 2, tag: 0)
        }
        for o in outcomes {
            XCTAssertThrowsError(try o.get()) { XCTAssertTrue("\($0)".contains("rank 2"), "\($0)") }
        }
    }

    // MARK: Failure paths

    /// Rank 0 in a barrier, rank 1 in an allreduce at the same position: both get the mismatch, no hang.
    func testMismatchedCollectivesFailOnEveryRank() throws {
        let outcomes = try LocalGroup.run(ranks: 2, timeout: 10) { comm in
            if comm.rank == 0 { try comm.barrier() } else { _ = try comm.allreduce(Int32(1), op: .sum) }
        }
        for (rank, o) in outcomes.enumerated() {
            XCTAssertThrowsError(try o.get(), "rank \(rank)") { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("mismatch") && text.contains("barrier") && text.contains("allreduce"), text)
            }
        }
    }

    /// The last rank aborts while the others wait in a receive and a barrier: their calls throw an error
    /// naming it and its message, the launcher reports it, and the test process goes on.
    func testAbortWakesEveryRankWithTheMessage() throws {
        for R in 2...4 {
            let start = Date()
            let outcomes = try LocalGroup.run(ranks: R, timeout: 10) { comm -> Int in
                if comm.rank == comm.size - 1 {
                    Thread.sleep(forTimeInterval: 0.05)
                    comm.abort("deliberate failure on the last rank", code: 3)
                }
                if comm.rank == 0 { _ = try comm.receive() } else { try comm.barrier() }
                return comm.rank
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 5)
            for o in outcomes {
                XCTAssertThrowsError(try o.get()) { error in
                    XCTAssertEqual(error as? LocalGroupError, .aborted(rank: R - 1, message: "deliberate failure on the last rank", code: 3))
                }
            }
        }
    }

    /// A rank whose body throws brings the group down like an abort; `runAll` reports that rank's own error.
    func testThrowingRankBringsTheGroupDown() throws {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom on rank 1" } }
        let outcomes = try LocalGroup.run(ranks: 3, timeout: 10) { comm in
            if comm.rank == 1 { throw Boom() }
            _ = try comm.receive(from: 1)
        }
        XCTAssertThrowsError(try outcomes[1].get()) { XCTAssertTrue($0 is Boom) }
        for rank in [0, 2] {
            XCTAssertThrowsError(try outcomes[rank].get()) { error in
                XCTAssertEqual(error as? LocalGroupError, .aborted(rank: 1, message: "boom on rank 1", code: 1))
            }
        }
        XCTAssertThrowsError(try LocalGroup.runAll(ranks: 3, timeout: 10) { comm in
            if comm.rank == 1 { throw Boom() }
            try comm.barrier()
        }) { XCTAssertTrue($0 is Boom, "\($0)") }
    }

    /// A rank that waits for a message nobody sends: the launcher gives up after its timeout and names it.
    func testTimeoutNamesTheWaitingRanks() throws {
        let start = Date()
        XCTAssertThrowsError(try LocalGroup.run(ranks: 3, timeout: 0.5) { comm in
            if comm.rank == 0 { _ = try comm.receive(from: 2, tag: 4) }
            if comm.rank == 1 { try comm.barrier() }
        }) { error in
            guard case let .timedOut(_, waiting)? = error as? LocalGroupError else { return XCTFail("\(error)") }
            XCTAssertEqual(waiting, [0: "receive(from: 2, tag: 4)", 1: "barrier"])
            XCTAssertTrue("\(error)".contains("rank 0 in receive(from: 2, tag: 4)"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    /// `agree` (the clean collective failure) over in-process ranks: one failing rank, every rank throws
    /// the agreed failure and the group is not aborted.
    func testAgreeReportsTheFailingRank() throws {
        struct Bad: Error, CustomStringConvertible { var description: String { "bad input" } }
        let outcomes = try LocalGroup.run(ranks: 3, timeout: 10) { comm in
            try comm.agree(exitCode: { _ in 65 }) { if comm.rank == 2 { throw Bad() } }
        }
        for (rank, o) in outcomes.enumerated() {
            XCTAssertThrowsError(try o.get()) { error in
                let failure = error as? CollectiveFailure
                XCTAssertEqual(failure?.exitCode, 65)
                XCTAssertEqual(failure?.message, rank == 0 ? "rank 2: bad input" : "")
            }
        }
    }
}

/// A thread-safe counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
