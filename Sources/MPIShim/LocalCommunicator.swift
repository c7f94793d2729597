import Foundation

/// Why a call on a `LocalCommunicator` failed, or how a `LocalGroup` run ended badly.
public enum LocalGroupError: Error, CustomStringConvertible, Equatable {
    /// Rank `rank` called `abort(message, code:)`, or its body threw an error that is not a
    /// `CollectiveError` (what `withWorld` turns into an abort under MPI). Every other rank's pending or
    /// next call throws this.
    case aborted(rank: Int, message: String, code: Int32)
    /// The ranks disagreed about a collective (a different operation, root, count or element type at the
    /// same position in the sequence of collectives): under MPI a hang or garbage, here a named error.
    case mismatch(String)
    /// The run passed its time limit; `waiting` names each rank still running and the call it is in
    /// ("computing" when it is in none).
    case timedOut(seconds: Double, waiting: [Int: String])

    public var description: String {
        switch self {
        case let .aborted(rank, message, code):
            return "rank \(rank) aborted the job (code \(code)): \(message)"
        case let .mismatch(what):
            return "collective mismatch: \(what)"
        case let .timedOut(seconds, waiting):
            let ranks = waiting.keys.sorted().map { "rank \($0) in \(waiting[$0]!)" }.joined(separator: ", ")
            return "the in-process job did not finish within \(seconds) s; still running: \(ranks)"
        }
    }
}

/// N ranks in one process: a `LocalCommunicator` per rank over one shared rendezvous, and the launcher
/// (`run`) that runs a body on N threads, one rank each. The distributed code (DistTrain, DistCircuits)
/// runs on it unchanged, so it can be tested without `mpirun` (docs/architecture.md).
///
/// Semantics, compared with `MPICommunicator`:
/// - Collectives are matched by position: the k-th collective call of every rank forms one round. A round
///   whose ranks disagree on the operation, root, element type or (where MPI needs it) count throws
///   `LocalGroupError.mismatch` on every rank instead of hanging.
/// - Reductions fold the ranks' contributions left to right in rank order, element by element:
///   `((x₀ op x₁) op x₂) … op x_{R−1}`, computed by every rank from the same inputs, so every rank gets
///   the same bits and a run repeats bit for bit. (MPI's order depends on its algorithm; code that needs
///   rank-count-independent bits must not rely on either order — see `FixedPointSum`.)
/// - `send` never blocks (messages are buffered without limit); `receive` and `poll` match the oldest
///   message from the source with the tag, so messages between one pair of ranks with one tag arrive in
///   order, as MPI guarantees.
/// - Failure: `abort` marks the group aborted and wakes every rank, whose pending or next call then
///   throws `LocalGroupError.aborted` naming the aborting rank and its message; the aborting thread
///   then parks for the rest of the process (it cannot return: `abort` is `Never`), and the test process
///   goes on. A body that throws an error other than a `CollectiveError` aborts the group the same way,
///   as `withWorld` does under MPI. A `CollectiveError` (agreed on by every rank) does not abort.
public final class LocalGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    /// Collective rounds by sequence number, until every rank has read the result.
    private var rounds: [Int: Round] = [:]
    /// Messages waiting for each destination rank, oldest first.
    private var mailboxes: [[Message]]
    private var failure: LocalGroupError?
    /// What each rank is blocked in, for the timeout report.
    private var waitingIn: [String?]

    private final class Round {
        var kind: String
        var contributions: [Any?]
        var arrived = 0
        var readers = 0
        init(kind: String, size: Int) {
            self.kind = kind
            contributions = [Any?](repeating: nil, count: size)
        }
    }

    private struct Message {
        let source: Int
        let tag: Int
        let bytes: [UInt8]
    }

    public init(size: Int) {
        precondition(size >= 1, "a group needs at least one rank")
        self.size = size
        mailboxes = [[Message]](repeating: [], count: size)
        waitingIn = [String?](repeating: nil, count: size)
    }

    /// One communicator per rank, in rank order.
    public func communicators() -> [LocalCommunicator] {
        (0..<size).map { LocalCommunicator(group: self, rank: $0) }
    }

    /// The failure that ended the group, if any.
    public var aborted: LocalGroupError? {
        condition.lock(); defer { condition.unlock() }
        return failure
    }

    // MARK: Launcher

    /// Runs `body` on `ranks` threads, each with its own rank's communicator, and returns each rank's
    /// outcome in rank order. Throws `LocalGroupError.timedOut` (naming the ranks still running and the
    /// call each is blocked in) when the ranks have not all finished after `timeout` seconds; the group is
    /// then aborted so that blocked ranks wake up, and threads still computing are left behind.
    /// A rank that called `abort` has the outcome `.failure(.aborted(...))`.
    public static func run<T>(ranks: Int, timeout: Double = 60, stackSize: Int = 8 << 20,
                              _ body: @escaping @Sendable (LocalCommunicator) throws -> T) throws -> [Result<T, Error>] {
        let group = LocalGroup(size: ranks)
        let comms = group.communicators()
        let outcomes = Outcomes<T>(count: ranks)
        for comm in comms {
            let thread = Thread {
                let outcome: Result<T, Error>
                do { outcome = .success(try body(comm)) } catch { outcome = .failure(error) }
                if case let .failure(error) = outcome, !(error is CollectiveError) {
                    group.fail(.aborted(rank: comm.rank, message: "\(error)", code: 1), keepFirst: true)
                }
                group.finish(rank: comm.rank, outcome: outcome, into: outcomes)
            }
            thread.stackSize = stackSize
            thread.name = "rank \(comm.rank)"
            thread.start()
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        group.condition.lock()
        defer { group.condition.unlock() }
        while outcomes.missing(parked: group.parked) > 0 {
            if !group.condition.wait(until: deadline) && outcomes.missing(parked: group.parked) > 0 {
                var waiting: [Int: String] = [:]
                for r in 0..<ranks where outcomes.values[r] == nil && group.parked[r] == nil {
                    waiting[r] = group.waitingIn[r] ?? "computing"
                }
                let error = LocalGroupError.timedOut(seconds: timeout, waiting: waiting)
                if group.failure == nil { group.failure = error }
                group.condition.broadcast()
                throw error
            }
        }
        return (0..<ranks).map { r in
            if let outcome = outcomes.values[r] { return outcome }
            let (message, code) = group.parked[r]!
            return .failure(LocalGroupError.aborted(rank: r, message: message, code: code))
        }
    }

    /// `run`, returning every rank's value, or throwing the error that ended the job: the first failing
    /// rank's own error (the root cause) when it threw, else the abort or the timeout.
    public static func runAll<T>(ranks: Int, timeout: Double = 60,
                                 _ body: @escaping @Sendable (LocalCommunicator) throws -> T) throws -> [T] {
        let group = try run(ranks: ranks, timeout: timeout, body)
        var values: [T] = []
        var first: Error?
        for outcome in group {
            switch outcome {
            case .success(let v): values.append(v)
            case .failure(let e):
                // Prefer an error of the rank's own over the echo of another rank's abort.
                if first == nil || (first is LocalGroupError && !(e is LocalGroupError)) { first = e }
            }
        }
        if let first { throw first }
        return values
    }

    /// The rank outcomes of one run, written under the group's lock.
    private final class Outcomes<T>: @unchecked Sendable {
        var values: [Result<T, Error>?]
        init(count: Int) { values = [Result<T, Error>?](repeating: nil, count: count) }
        /// Ranks neither finished nor parked in `abort`.
        func missing(parked: [Int: (String, Int32)]) -> Int {
            values.indices.filter { values[$0] == nil && parked[$0] == nil }.count
        }
    }

    /// Ranks that called `abort` and are parked, with their message and code.
    private var parked: [Int: (String, Int32)] = [:]

    private func finish<T>(rank: Int, outcome: Result<T, Error>, into outcomes: Outcomes<T>) {
        condition.lock()
        outcomes.values[rank] = outcome
        waitingIn[rank] = nil
        condition.broadcast()
        condition.unlock()
    }

    /// Marks the group failed (the first failure wins when `keepFirst`) and wakes every waiting rank.
    func fail(_ error: LocalGroupError, keepFirst: Bool) {
        condition.lock()
        if failure == nil || !keepFirst { failure = error }
        condition.broadcast()
        condition.unlock()
    }

    // MARK: Rendezvous (called by LocalCommunicator)

    /// Enters collective number `sequence` of `rank` with `contribution`; returns every rank's
    /// contribution, in rank order, once all have arrived. `kind` names the operation and its parameters
    /// that must agree across ranks.
    func exchange(rank: Int, sequence: Int, kind: String, contribution: Any?) throws -> [Any?] {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        let round: Round
        if let r = rounds[sequence] { round = r } else { round = Round(kind: kind, size: size); rounds[sequence] = round }
        guard round.kind == kind else {
            let error = LocalGroupError.mismatch("collective #\(sequence): rank \(rank) called \(kind), another rank \(round.kind)")
            failure = failure ?? error
            condition.broadcast()
            throw error
        }
        round.contributions[rank] = contribution
        round.arrived += 1
        if round.arrived == size { condition.broadcast() }
        waitingIn[rank] = kind
        defer { waitingIn[rank] = nil }
        // A completed round is read even when another rank has failed meanwhile: every rank leaves an
        // agreed collective (`agree`) the same way.
        while round.arrived < size {
            if let failure { throw failure }
            condition.wait()
        }
        round.readers += 1
        if round.readers == size { rounds[sequence] = nil }
        return round.contributions
    }

    func post(from source: Int, to dest: Int, tag: Int, bytes: [UInt8]) throws {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        mailboxes[dest].append(Message(source: source, tag: tag, bytes: bytes))
        condition.broadcast()
    }

    func take(rank: Int, source: Int?, tag: Int?, block: Bool, remove: Bool) throws -> (source: Int, tag: Int, bytes: [UInt8])? {
        condition.lock()
        defer { condition.unlock() }
        waitingIn[rank] = "receive(from: \(source.map(String.init) ?? "any"), tag: \(tag.map(String.init) ?? "any"))"
        defer { waitingIn[rank] = nil }
        while true {
            if let failure { throw failure }
            if let i = mailboxes[rank].firstIndex(where: { (source == nil || $0.source == source) && (tag == nil || $0.tag == tag) }) {
                let m = mailboxes[rank][i]
                if remove { mailboxes[rank].remove(at: i) }
                return (m.source, m.tag, m.bytes)
            }
            guard block else { return nil }
            condition.wait()
        }
    }

    func abort(rank: Int, message: String, code: Int32) -> Never {
        condition.lock()
        if failure == nil { failure = .aborted(rank: rank, message: message, code: code) }
        parked[rank] = (message, code)
        waitingIn[rank] = nil
        condition.broadcast()
        // Parked for the rest of the process: `abort` may not return, and ending a thread from inside
        // Swift code is not safe. The launcher does not wait for this rank.
        while true { condition.wait() }
    }
}

/// One rank of a `LocalGroup`: the `Communicator` contract in one process (see `LocalGroup` for the
/// reduction order, buffering and failure semantics). Use it from one thread, as an MPI rank would.
public final class LocalCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public var size: Int { group.size }
    public let group: LocalGroup
    /// Collectives this rank has entered.
    private var sequence = 0

    init(group: LocalGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    private func collective(_ kind: String, _ contribution: Any?) throws -> [Any?] {
        defer { sequence += 1 }
        return try group.exchange(rank: rank, sequence: sequence, kind: kind, contribution: contribution)
    }

    private func checkRoot(_ root: Int) throws {
        guard (0..<size).contains(root) else { throw CommunicatorError("root \(root) is not a rank of a group of \(size)") }
    }

    // MARK: Collectives

    /// Element-wise left fold of the ranks' arrays in rank order (every rank computes the same bits).
    public func allreduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws {
        let all = try collective("allreduce(\(T.self), count: \(count), op: \(op))", Array(UnsafeBufferPointer(start: buffer, count: count)))
        let arrays = all.map { $0 as! [T] }
        for i in 0..<count {
            var acc = arrays[0][i]
            for r in 1..<size { acc = T.combine(acc, arrays[r][i], op) }
            buffer[i] = acc
        }
    }

    public func allreduce<T: MPIScalar>(_ array: inout [T], op: ReduceOp) throws {
        let n = array.count
        try array.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else {
                _ = try collective("allreduce(\(T.self), count: 0, op: \(op))", [T]())
                return
            }
            try allreduce(base, count: n, op: op)
        }
    }

    public func allreduce<T: MPIScalar>(_ value: T, op: ReduceOp) throws -> T {
        var a = [value]
        try allreduce(&a, op: op)
        return a[0]
    }

    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, root: Int) throws {
        try checkRoot(root)
        let all = try collective("broadcast(\(T.self), count: \(count), root: \(root))",
                                 rank == root ? Array(UnsafeBufferPointer(start: buffer, count: count)) : nil)
        if rank != root {
            let data = all[root] as! [T]
            for i in 0..<count { buffer[i] = data[i] }
        }
    }

    /// Root's array onto every rank; as under MPI, every rank must pass an array of root's length.
    public func broadcast<T: MPIScalar>(_ array: inout [T], root: Int) throws {
        let n = array.count
        if n == 0 { return }  // as MPICommunicator: no collective for an empty array
        try array.withUnsafeMutableBufferPointer { try broadcast($0.baseAddress!, count: n, root: root) }
    }

    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] {
        try checkRoot(root)
        let all = try collective("broadcast(bytes, root: \(root))", rank == root ? bytes : nil)
        return all[root] as! [UInt8]
    }

    public func gather<T: MPIScalar>(_ local: [T], root: Int) throws -> [T] {
        try gatherv(local, root: root).flatMap { $0 }
    }

    public func gatherv<T: MPIScalar>(_ local: [T], root: Int) throws -> [[T]] {
        try checkRoot(root)
        let all = try collective("gatherv(\(T.self), root: \(root))", local)
        return rank == root ? all.map { $0 as! [T] } : []
    }

    public func gather(string: String, root: Int) throws -> [String] {
        try gatherv(Array(string.utf8), root: root).map { String(decoding: $0, as: UTF8.self) }
    }

    public func barrier() throws {
        _ = try collective("barrier", nil)
    }

    // MARK: Point to point

    public func send(bytes: [UInt8], to dest: Int, tag: Int) throws {
        guard (0..<size).contains(dest) else { throw CommunicatorError("send to rank \(dest) in a group of \(size)") }
        guard tag >= 0 else { throw CommunicatorError("send with negative tag \(tag)") }
        try group.post(from: rank, to: dest, tag: tag, bytes: bytes)
    }

    public func receive(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int, bytes: [UInt8]) {
        try group.take(rank: rank, source: source, tag: tag, block: true, remove: true)!
    }

    public func poll(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int)? {
        try group.take(rank: rank, source: source, tag: tag, block: false, remove: false).map { ($0.source, $0.tag) }
    }

    // MARK: Ending the job

    /// Marks the group aborted with `message` (every other rank's pending or next call throws
    /// `LocalGroupError.aborted`) and parks this thread for the rest of the process; does not exit.
    public func abort(_ message: String, code: Int32) -> Never {
        group.abort(rank: rank, message: message, code: code)
    }

    /// Nothing to release.
    public func finalize() {}
}
