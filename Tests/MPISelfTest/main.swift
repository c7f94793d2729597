// A small MPI program the distributed tests launch under `mpirun -np N`.
// Each scenario checks the Communicator against values every rank can compute by itself and exits
// non-zero (with a message naming what broke) on the first mismatch.
import Foundation
import MPIShim

func fail(_ comm: Communicator, _ what: String) -> Never {
    comm.abort("self-test failed: \(what)", code: 3)
}

func expect<T: Equatable>(_ comm: Communicator, _ got: T, _ want: T, _ what: String) {
    if got != want { fail(comm, "\(what): got \(got), want \(want)") }
}

func collectives(_ comm: MPICommunicator, chunkLimit: Int) throws {
    comm.chunkLimit = chunkLimit
    let r = comm.rank, n = comm.size
    let len = min(3 * chunkLimit + 2, 1000)  // several MPI calls per collective when the limit is small

    var f = (0..<len).map { Float($0 % 11) * Float(r + 1) }
    try comm.allreduce(&f, op: .sum)
    let tri = Float(n * (n + 1) / 2)
    expect(comm, f, (0..<len).map { Float($0 % 11) * tri }, "allreduce sum Float")

    // Longer than a piece (`allreduceBytes` per rank): reduced in several pieces whatever the chunk limit, the
    // last one partial.
    let long = 5 * n * MPICommunicator.allreduceBytes / 2 / MemoryLayout<Float>.stride + 3
    var big = (0..<long).map { Float($0 % 13) * Float(r + 1) }
    try comm.allreduce(&big, op: .sum)
    if let k = (0..<long).first(where: { big[$0] != Float($0 % 13) * tri }) {
        fail(comm, "allreduce sum of \(long) Floats: entry \(k) is \(big[k]), want \(Float(k % 13) * tri)")
    }

    var d = (0..<len).map { Double($0) + Double(r) * 0.5 }
    try comm.allreduce(&d, op: .max)
    expect(comm, d, (0..<len).map { Double($0) + Double(n - 1) * 0.5 }, "allreduce max Double")

    var i32 = (0..<len).map { Int32($0) - Int32(r) }
    try comm.allreduce(&i32, op: .min)
    expect(comm, i32, (0..<len).map { Int32($0) - Int32(n - 1) }, "allreduce min Int32")

    var i64 = (0..<len).map { Int64($0) << 33 | Int64(r) }
    try comm.allreduce(&i64, op: .sum)
    expect(comm, i64, (0..<len).map { (Int64($0) << 33) * Int64(n) + Int64(n * (n - 1) / 2) }, "allreduce sum Int64")

    var b: [Double] = r == 0 ? (0..<len).map { Double($0) * 1.25 } : [Double](repeating: -1, count: len)
    try comm.broadcast(&b, root: 0)
    expect(comm, b, (0..<len).map { Double($0) * 1.25 }, "broadcast Double")

    let last = n - 1
    let bytes = try comm.broadcast(bytes: r == last ? Array("from the last rank".utf8) : [], root: last)
    expect(comm, String(decoding: bytes, as: UTF8.self), "from the last rank", "broadcast bytes")

    // Variable lengths: rank r contributes r + 1 values r*10 + k.
    let parts = try comm.gatherv((0...r).map { Int64(r * 10 + $0) }, root: 0)
    if r == 0 {
        expect(comm, parts, (0..<n).map { q in (0...q).map { Int64(q * 10 + $0) } }, "gatherv Int64")
    } else {
        expect(comm, parts, [], "gatherv on a non-root rank")
    }
    let names = try comm.gather(string: "rank-\(r)")
    if r == 0 { expect(comm, names, (0..<n).map { "rank-\($0)" }, "gather strings") }

    // Point to point: a ring, each rank sends a message longer than the chunk limit to the next.
    if n > 1 {
        let payload = Array("message from \(r) ".utf8) + [UInt8](repeating: UInt8(r), count: len)
        let next = (r + 1) % n, prev = (r + n - 1) % n
        if r % 2 == 0 {
            try comm.send(bytes: payload, to: next, tag: 7)
            let m = try comm.receive(from: nil, tag: 7)
            expect(comm, m.source, prev, "receive source")
            expect(comm, m.bytes, Array("message from \(prev) ".utf8) + [UInt8](repeating: UInt8(prev), count: len), "receive bytes")
        } else {
            let m = try comm.receive(from: prev, tag: nil)
            expect(comm, m.tag, 7, "receive tag")
            expect(comm, m.bytes, Array("message from \(prev) ".utf8) + [UInt8](repeating: UInt8(prev), count: len), "receive bytes")
            try comm.send(bytes: payload, to: next, tag: 7)
        }
    }
    try comm.barrier()
    print("PASS rank \(r) of \(n) (chunk limit \(chunkLimit))")
}

let args = CommandLine.arguments.dropFirst()
let comm: MPICommunicator
do { comm = try MPICommunicator.world() } catch {
    FileHandle.standardError.write(Data("mpi-selftest: \(error)\n".utf8)); exit(2)
}
do {
    switch args.first ?? "" {
    case "collectives":
        try collectives(comm, chunkLimit: 5)
        try collectives(comm, chunkLimit: Int(Int32.max))
    case "abort":
        // The last rank fails; the others wait in a barrier that would hang without abort.
        if comm.rank == comm.size - 1 { comm.abort("deliberate failure on the last rank", code: 7) }
        try comm.barrier()
        print("unreachable: barrier returned on rank \(comm.rank)")
    default:
        FileHandle.standardError.write(Data("usage: MPISelfTest collectives|abort\n".utf8))
        comm.finalize(); exit(2)
    }
} catch {
    comm.abort("\(error)", code: 4)
}
comm.finalize()
