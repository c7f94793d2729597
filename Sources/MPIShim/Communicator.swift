import CMPIShim
import Foundation

/// A failed MPI call: the call's name, its return code and the library's own text for it.
public struct MPIError: Error, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public let text: String
    public var description: String { "\(call) failed (code \(code)): \(text)" }
}

/// Launcher mismatch, misuse of the communicator, or a malformed message.
public struct CommunicatorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Element types that travel through reductions and broadcasts.
public protocol MPIScalar: Sendable {
    static var mpiDatatype: MPI_Datatype { get }
    /// `a op b` as MPI defines the op for this type (integer sums wrap): what `LocalCommunicator` folds with.
    static func combine(_ a: Self, _ b: Self, _ op: ReduceOp) -> Self
}
extension MPIScalar where Self: BinaryFloatingPoint {
    public static func combine(_ a: Self, _ b: Self, _ op: ReduceOp) -> Self { op.floating(a, b) }
}
extension MPIScalar where Self: FixedWidthInteger {
    public static func combine(_ a: Self, _ b: Self, _ op: ReduceOp) -> Self { op.integer(a, b) }
}
extension Float: MPIScalar { public static var mpiDatatype: MPI_Datatype { dkc_mpi_float()! } }
extension Double: MPIScalar { public static var mpiDatatype: MPI_Datatype { dkc_mpi_double()! } }
extension Int32: MPIScalar { public static var mpiDatatype: MPI_Datatype { dkc_mpi_int32()! } }
extension Int64: MPIScalar { public static var mpiDatatype: MPI_Datatype { dkc_mpi_int64()! } }
extension UInt8: MPIScalar { public static var mpiDatatype: MPI_Datatype { dkc_mpi_byte()! } }

public enum ReduceOp: String, CaseIterable, Sendable {
    case sum, max, min
    var handle: MPI_Op {
        switch self {
        case .sum: return dkc_mpi_op_sum()!
        case .max: return dkc_mpi_op_max()!
        case .min: return dkc_mpi_op_min()!
        }
    }

    /// The op on floating-point values. max/min follow Swift's `max`/`min` (a NaN operand may be dropped,
    /// as in common MPI builds; no caller relies on NaN propagating through max/min).
    func floating<T: BinaryFloatingPoint>(_ a: T, _ b: T) -> T {
        switch self {
        case .sum: return a + b
        case .max: return Swift.max(a, b)
        case .min: return Swift.min(a, b)
        }
    }

    /// The op on integers; sums wrap.
    func integer<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
        switch self {
        case .sum: return a &+ b
        case .max: return Swift.max(a, b)
        case .min: return Swift.min(a, b)
        }
    }
}

/// Splits `count` elements into consecutive pieces no longer than `limit` (MPI counts are Int32).
/// Every element is covered exactly once, in order.
public func mpiChunks(count: Int, limit: Int = Int(Int32.max)) -> [Range<Int>] {
    precondition(limit > 0, "chunk limit must be positive")
    var out: [Range<Int>] = []
    var start = 0
    while start < count {
        let end = Swift.min(count, start + limit)
        out.append(start..<end)
        start = end
    }
    return out
}

/// The operations the distributed code (DistTrain, DistCircuits, the CLI) uses, so that it can run over
/// MPI (`MPICommunicator`) or on threads of one process (`LocalCommunicator`, for tests). Every collective
/// must be called by all ranks in the same order; `abort` ends the whole job. See docs/architecture.md.
public protocol Communicator: AnyObject, Sendable {
    /// This rank, 0..<size.
    var rank: Int { get }
    /// Number of ranks in the job.
    var size: Int { get }
    /// Reduces `count` elements in place across ranks.
    func allreduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws
    /// Reduces an array in place across ranks (same count on every rank).
    func allreduce<T: MPIScalar>(_ array: inout [T], op: ReduceOp) throws
    /// Reduces one value across ranks and returns the result on every rank.
    func allreduce<T: MPIScalar>(_ value: T, op: ReduceOp) throws -> T
    /// Copies `count` elements from `root` to every rank.
    func broadcast<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, root: Int) throws
    /// Copies root's array to every rank; every rank passes an array of root's length (an empty array: no-op).
    func broadcast<T: MPIScalar>(_ array: inout [T], root: Int) throws
    /// Returns root's bytes on every rank.
    func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8]
    /// Concatenation of equal-length arrays in rank order on `root`; empty elsewhere.
    func gather<T: MPIScalar>(_ local: [T], root: Int) throws -> [T]
    /// Each rank's array (lengths may differ) in rank order on `root`; empty elsewhere.
    func gatherv<T: MPIScalar>(_ local: [T], root: Int) throws -> [[T]]
    /// Each rank's string in rank order on `root`; empty elsewhere.
    func gather(string: String, root: Int) throws -> [String]
    /// Returns when every rank has entered it.
    func barrier() throws
    /// Sends bytes to `dest` with `tag`.
    func send(bytes: [UInt8], to dest: Int, tag: Int) throws
    /// Blocks for a message matching source and tag (nil matches any).
    func receive(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int, bytes: [UInt8])
    /// Source and tag of a pending matching message, or nil; does not block.
    func poll(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int)?
    /// Ends every rank of the job with `message` and `code` (in process, `LocalCommunicator`: every other
    /// rank's pending or next call throws, and the calling thread parks; the process goes on).
    func abort(_ message: String, code: Int32) -> Never
    /// Releases the implementation's resources at the end of the process.
    func finalize()
}

extension Communicator {
    /// True on rank 0, which prints and writes shared files.
    public var isRoot: Bool { rank == 0 }
    public func allreduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int) throws { try allreduce(buffer, count: count, op: .sum) }
    public func allreduce<T: MPIScalar>(_ array: inout [T]) throws { try allreduce(&array, op: .sum) }
    public func allreduce<T: MPIScalar>(_ value: T) throws -> T { try allreduce(value, op: .sum) }
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int) throws { try broadcast(buffer, count: count, root: 0) }
    public func broadcast<T: MPIScalar>(_ array: inout [T]) throws { try broadcast(&array, root: 0) }
    public func broadcast(bytes: [UInt8]) throws -> [UInt8] { try broadcast(bytes: bytes, root: 0) }
    public func gather<T: MPIScalar>(_ local: [T]) throws -> [T] { try gather(local, root: 0) }
    public func gatherv<T: MPIScalar>(_ local: [T]) throws -> [[T]] { try gatherv(local, root: 0) }
    public func gather(string: String) throws -> [String] { try gather(string: string, root: 0) }
    public func receive() throws -> (source: Int, tag: Int, bytes: [UInt8]) { try receive(from: nil, tag: nil) }
    public func receive(from source: Int) throws -> (source: Int, tag: Int, bytes: [UInt8]) { try receive(from: source, tag: nil) }
    public func receive(tag: Int) throws -> (source: Int, tag: Int, bytes: [UInt8]) { try receive(from: nil, tag: tag) }
    public func poll() throws -> (source: Int, tag: Int)? { try poll(from: nil, tag: nil) }
    public func poll(from source: Int) throws -> (source: Int, tag: Int)? { try poll(from: source, tag: nil) }
    public func poll(tag: Int) throws -> (source: Int, tag: Int)? { try poll(from: nil, tag: tag) }
    public func abort(_ message: String) -> Never { abort(message, code: 1) }
}

/// The MPI world communicator. `MPI_Init` happens once, on first use of `MPICommunicator.world()`; a
/// process started without `mpirun` becomes a one-rank job through the same code path (singleton init).
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Largest count passed to one MPI call; lowered in tests to exercise splitting.
    public var chunkLimit: Int = Int(Int32.max)
    /// Largest piece of one `MPI_Allreduce` per rank, in bytes (8 MiB): a piece is at most `size` × this. OpenMPI's
    /// allreduce works in temporary buffers taken from `malloc`, about a rank's share of the message (ring) or twice
    /// that (two ranks). Above glibc's mmap threshold (at most 32 MiB) such a buffer is a fresh mapping on every
    /// call, whose pages the kernel faults in and zeroes one by one: GPT-2 small's 498 MB gradient spent about
    /// 0.4 s of each 2-rank data-parallel step there on the 2-core machines (docs/performance.md). Pieces of 8 MiB
    /// per rank keep the temporaries in the heap, where they are reused, and many ranks still make few calls (each
    /// call pays the collective's latency once).
    public static let allreduceBytes = 8 << 20
    private let comm: MPI_Comm

    private static let lock = NSLock()
    private static var shared: MPICommunicator?

    /// Initialises MPI (once) and returns the world communicator.
    /// Throws when a launcher started N copies that each believe they are rank 0 of 1.
    public static func world() throws -> MPICommunicator {
        lock.lock(); defer { lock.unlock() }
        if let c = shared { return c }
        var initialized: Int32 = 0
        try check(MPI_Initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            var provided: Int32 = 0
            try check(MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided), "MPI_Init_thread")
        }
        try check(dkc_mpi_errors_return(), "MPI_Comm_set_errhandler")
        guard let comm = dkc_mpi_comm_world() else { throw CommunicatorError("MPI_COMM_WORLD is null") }
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        let c = MPICommunicator(comm: comm, rank: Int(r), size: Int(s))
        try c.checkLauncher(environment: ProcessInfo.processInfo.environment)
        shared = c
        return c
    }

    private init(comm: MPI_Comm, rank: Int, size: Int) {
        self.comm = comm
        self.rank = rank
        self.size = size
    }


    /// Compares the MPI world size with what the launcher announced in the environment.
    /// A mismatch means `srun`/`mpirun` started independent copies without wiring MPI.
    public func checkLauncher(environment env: [String: String]) throws {
        if let message = MPICommunicator.launcherMismatch(worldSize: size, environment: env) {
            throw CommunicatorError(message)
        }
    }

    /// The explanation of a launcher mismatch, or nil when the world size agrees with the environment.
    public static func launcherMismatch(worldSize: Int, environment env: [String: String]) -> String? {
        // OpenMPI's own variable is authoritative when present; Slurm's only when OpenMPI did not launch us.
        let keys = env["OMPI_COMM_WORLD_SIZE"] != nil ? ["OMPI_COMM_WORLD_SIZE"] : ["PMI_SIZE", "SLURM_NTASKS"]
        for key in keys {
            guard let raw = env[key], let announced = Int(raw) else { continue }
            if announced != worldSize {
                return """
                the launcher announced \(announced) tasks (\(key)=\(raw)) but MPI sees a world of \(worldSize): \
                the copies were started without MPI wiring, so each would run alone. \
                Under Slurm use `srun --mpi=pmix` (or `mpirun` inside the allocation); \
                to run one rank on purpose, unset \(key).
                """
            }
        }
        return nil
    }

    // MARK: Collectives

    /// In-place allreduce of `count` elements starting at `buffer`, split into pieces of at most `chunkLimit`.
    public func allreduce<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, op: ReduceOp) throws {
        let (pieceBytes, overflow) = Self.allreduceBytes.multipliedReportingOverflow(by: size)
        let limit = Swift.min(chunkLimit, overflow ? chunkLimit : Swift.max(1, pieceBytes / MemoryLayout<T>.stride))
        for piece in mpiChunks(count: count, limit: limit) {
            try MPICommunicator.check(MPI_Allreduce(dkc_mpi_in_place(), buffer + piece.lowerBound, Int32(piece.count),
                                                 T.mpiDatatype, op.handle, comm), "MPI_Allreduce")
        }
    }

    public func allreduce<T: MPIScalar>(_ array: inout [T], op: ReduceOp) throws {
        let n = array.count
        try array.withUnsafeMutableBufferPointer { try allreduce($0.baseAddress!, count: n, op: op) }
    }

    /// Allreduce of one value.
    public func allreduce<T: MPIScalar>(_ value: T, op: ReduceOp) throws -> T {
        var a = [value]
        try allreduce(&a, op: op)
        return a[0]
    }

    /// Broadcast of `count` elements from `root`, in pieces of at most `chunkLimit`.
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutablePointer<T>, count: Int, root: Int) throws {
        for piece in mpiChunks(count: count, limit: chunkLimit) {
            try MPICommunicator.check(MPI_Bcast(buffer + piece.lowerBound, Int32(piece.count), T.mpiDatatype,
                                             Int32(root), comm), "MPI_Bcast")
        }
    }

    public func broadcast<T: MPIScalar>(_ array: inout [T], root: Int) throws {
        let n = array.count
        if n == 0 { return }
        try array.withUnsafeMutableBufferPointer { try broadcast($0.baseAddress!, count: n, root: root) }
    }

    /// Broadcast of a byte string whose length only `root` knows.
    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] {
        var length: [Int64] = [Int64(bytes.count)]
        try broadcast(&length, root: root)
        var data = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        try broadcast(&data, root: root)
        return data
    }

    /// Gathers one fixed-size block per rank to `root` (rank order). Other ranks receive [].
    public func gather<T: MPIScalar>(_ local: [T], root: Int) throws -> [T] {
        try gatherv(local, root: root).flatMap { $0 }
    }

    /// Gathers a variable-length array per rank to `root`; returns one array per rank there, [] elsewhere.
    /// Totals within `chunkLimit` go through one MPI_Gatherv; larger ones travel rank by rank in
    /// pieces of at most `chunkLimit` elements.
    public func gatherv<T: MPIScalar>(_ local: [T], root: Int) throws -> [[T]] {
        var myCount: [Int64] = [Int64(local.count)]
        var counts64 = [Int64](repeating: 0, count: size)
        try MPICommunicator.check(MPI_Gather(&myCount, 1, Int64.mpiDatatype, &counts64, 1, Int64.mpiDatatype,
                                          Int32(root), comm), "MPI_Gather")
        // Every rank must take the same branch: the root tells the others which one.
        var total: [Int64] = [counts64.reduce(0, +)]
        try broadcast(&total, root: root)
        if total[0] <= Int64(chunkLimit) {
            var counts = counts64.map { Int32($0) }
            var displs = [Int32](repeating: 0, count: size)
            for i in 1..<Swift.max(size, 1) where i < size { displs[i] = displs[i - 1] + counts[i - 1] }
            let n = Int(total[0])
            var recv = [T](unsafeUninitializedCapacity: Swift.max(n, 1)) { _, c in c = Swift.max(n, 1) }
            var send = local
            try send.withUnsafeMutableBufferPointer { sp in
                try recv.withUnsafeMutableBufferPointer { rp in
                    try MPICommunicator.check(MPI_Gatherv(sp.baseAddress, Int32(local.count), T.mpiDatatype,
                                                       rp.baseAddress, &counts, &displs, T.mpiDatatype,
                                                       Int32(root), comm), "MPI_Gatherv")
                }
            }
            guard rank == root else { return [] }
            return (0..<size).map { i in Array(recv[Int(displs[i])..<Int(displs[i]) + Int(counts[i])]) }
        }
        let tag: Int32 = 0x6761  // reserved for this exchange
        if rank != root {
            var send = local
            for piece in mpiChunks(count: send.count, limit: chunkLimit) {
                try send.withUnsafeMutableBufferPointer { p in
                    try MPICommunicator.check(MPI_Send(p.baseAddress! + piece.lowerBound, Int32(piece.count), T.mpiDatatype,
                                                    Int32(root), tag, comm), "MPI_Send")
                }
            }
            return []
        }
        var out: [[T]] = []
        for src in 0..<size {
            if src == root { out.append(local); continue }
            let n = Int(counts64[src])
            var buf = [T](unsafeUninitializedCapacity: n) { _, c in c = n }
            for piece in mpiChunks(count: n, limit: chunkLimit) {
                var st = MPI_Status()
                try buf.withUnsafeMutableBufferPointer { p in
                    try MPICommunicator.check(MPI_Recv(p.baseAddress! + piece.lowerBound, Int32(piece.count), T.mpiDatatype,
                                                    Int32(src), tag, comm, &st), "MPI_Recv")
                }
            }
            out.append(buf)
        }
        return out
    }

    /// Gathers one string per rank to `root`, in rank order.
    public func gather(string: String, root: Int) throws -> [String] {
        try gatherv(Array(string.utf8), root: root).map { String(decoding: $0, as: UTF8.self) }
    }

    public func barrier() throws {
        try MPICommunicator.check(MPI_Barrier(comm), "MPI_Barrier")
    }

    // MARK: Point to point (work distribution)

    /// Sends a byte message; the length travels first so the receiver can size its buffer.
    public func send(bytes: [UInt8], to dest: Int, tag: Int) throws {
        var length: [Int64] = [Int64(bytes.count)]
        try MPICommunicator.check(MPI_Send(&length, 1, Int64.mpiDatatype, Int32(dest), Int32(tag), comm), "MPI_Send")
        var data = bytes
        for piece in mpiChunks(count: data.count, limit: chunkLimit) {
            try data.withUnsafeMutableBufferPointer { p in
                try MPICommunicator.check(MPI_Send(p.baseAddress! + piece.lowerBound, Int32(piece.count),
                                                UInt8.mpiDatatype, Int32(dest), Int32(tag), comm), "MPI_Send")
            }
        }
    }

    /// Receives a byte message sent with `send(bytes:to:tag:)`; `from: nil` accepts any rank.
    /// Returns the sender, the tag and the bytes.
    public func receive(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int, bytes: [UInt8]) {
        var status = MPI_Status()
        var length: [Int64] = [0]
        try MPICommunicator.check(MPI_Recv(&length, 1, Int64.mpiDatatype, Int32(source ?? Int(dkc_mpi_any_source())),
                                        Int32(tag ?? Int(dkc_mpi_any_tag())), comm, &status), "MPI_Recv")
        let src = Int(dkc_mpi_status_source(&status))
        let tg = Int(dkc_mpi_status_tag(&status))
        var data = [UInt8](repeating: 0, count: Int(length[0]))
        for piece in mpiChunks(count: data.count, limit: chunkLimit) {
            var st = MPI_Status()
            try data.withUnsafeMutableBufferPointer { p in
                try MPICommunicator.check(MPI_Recv(p.baseAddress! + piece.lowerBound, Int32(piece.count), UInt8.mpiDatatype,
                                                Int32(src), Int32(tg), comm, &st), "MPI_Recv")
            }
        }
        return (src, tg, data)
    }

    /// Whether a message sent with `send(bytes:to:tag:)` is waiting (`from: nil` any rank, `tag: nil` any tag),
    /// without receiving it: its sender and tag, or nil. Lets one thread serve requests while it does other work.
    public func poll(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int)? {
        var status = MPI_Status()
        var flag: Int32 = 0
        try MPICommunicator.check(MPI_Iprobe(Int32(source ?? Int(dkc_mpi_any_source())), Int32(tag ?? Int(dkc_mpi_any_tag())),
                                          comm, &flag, &status), "MPI_Iprobe")
        guard flag != 0 else { return nil }
        return (Int(dkc_mpi_status_source(&status)), Int(dkc_mpi_status_tag(&status)))
    }

    // MARK: Ending the job

    /// Prints `message` to stderr with this rank's number and ends every rank of the job with `code`.
    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("dkc: rank \(rank) of \(size): \(message)\n".utf8))
        MPI_Abort(comm, code)
        exit(code)  // MPI_Abort does not return; this satisfies the type checker.
    }

    /// Finalises MPI; call once, on every rank, before a normal exit.
    public func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    // MARK: Library facts

    public static func libraryVersion() -> String {
        var buf = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING))
        var len: Int32 = 0
        MPI_Get_library_version(&buf, &len)
        let s = String(cString: buf)
        return s.split(separator: ",").first.map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? s
    }

    public static func processorName() -> String {
        var buf = [CChar](repeating: 0, count: Int(dkc_mpi_max_processor_name()) + 1)
        var len: Int32 = 0
        MPI_Get_processor_name(&buf, &len)
        return String(cString: buf)
    }

    static func check(_ code: Int32, _ call: String) throws {
        guard code != dkc_mpi_success() else { return }
        var buf = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING))
        var len: Int32 = 0
        MPI_Error_string(code, &buf, &len)
        throw MPIError(call: call, code: code, text: String(cString: buf))
    }
}
