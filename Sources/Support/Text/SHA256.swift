import Foundation

/// SHA-256 (FIPS 180-4), for the file digests of manifests. Streams: `update` any number of
/// times, then `finalize` once.
public struct SHA256 {
    private var h: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19)
    private var buffer = [UInt8](repeating: 0, count: 64)
    private var buffered = 0
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428A_2F98, 0x7137_4491, 0xB5C0_FBCF, 0xE9B5_DBA5, 0x3956_C25B, 0x59F1_11F1, 0x923F_82A4, 0xAB1C_5ED5,
        0xD807_AA98, 0x1283_5B01, 0x2431_85BE, 0x550C_7DC3, 0x72BE_5D74, 0x80DE_B1FE, 0x9BDC_06A7, 0xC19B_F174,
        0xE49B_69C1, 0xEFBE_4786, 0x0FC1_9DC6, 0x240C_A1CC, 0x2DE9_2C6F, 0x4A74_84AA, 0x5CB0_A9DC, 0x76F9_88DA,
        0x983E_5152, 0xA831_C66D, 0xB003_27C8, 0xBF59_7FC7, 0xC6E0_0BF3, 0xD5A7_9147, 0x06CA_6351, 0x1429_2967,
        0x27B7_0A85, 0x2E1B_2138, 0x4D2C_6DFC, 0x5338_0D13, 0x650A_7354, 0x766A_0ABB, 0x81C2_C92E, 0x9272_2C85,
        0xA2BF_E8A1, 0xA81A_664B, 0xC24B_8B70, 0xC76C_51A3, 0xD192_E819, 0xD699_0624, 0xF40E_3585, 0x106A_A070,
        0x19A4_C116, 0x1E37_6C08, 0x2748_774C, 0x34B0_BCB5, 0x391C_0CB3, 0x4ED8_AA4A, 0x5B9C_CA4F, 0x682E_6FF3,
        0x748F_82EE, 0x78A5_636F, 0x84C8_7814, 0x8CC7_0208, 0x90BE_FFFA, 0xA450_6CEB, 0xBEF9_A3F7, 0xC671_78F2,
    ]

    public init() {}

    /// The hex digest of `bytes`.
    public static func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var s = SHA256()
        s.update(bytes)
        return s.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The hex digest of a file's contents, read in 4 MiB pieces.
    public static func hex(fileAt url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var s = SHA256()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { s.update(chunk) }
        return s.finalize().map { String(format: "%02x", $0) }.joined()
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        length &+= UInt64(bytes.count)
        var i = bytes.startIndex
        // Fill a partial block first.
        while buffered > 0 && i != bytes.endIndex {
            buffer[buffered] = bytes[i]; buffered += 1; i = bytes.index(after: i)
            if buffered == 64 { compressBuffer(); buffered = 0 }
        }
        // Whole blocks straight from contiguous storage when there is some.
        let handled: Int? = bytes[i...].withContiguousStorageIfAvailable { p -> Int in
            var off = 0
            while p.count - off >= 64 {
                compress(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(p)[off..<(off + 64)]))
                off += 64
            }
            for b in p[off...] { buffer[buffered] = b; buffered += 1 }
            return p.count
        }
        if handled == nil {
            while i != bytes.endIndex {
                buffer[buffered] = bytes[i]; buffered += 1; i = bytes.index(after: i)
                if buffered == 64 { compressBuffer(); buffered = 0 }
            }
        }
    }

    public mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        var pad: [UInt8] = [0x80]
        let padZeros = (buffered < 56 ? 56 - buffered : 120 - buffered) - 1
        pad += [UInt8](repeating: 0, count: padZeros)
        for s in stride(from: 56, through: 0, by: -8) { pad.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(s))) }
        let savedLength = length
        update(pad)
        length = savedLength
        precondition(buffered == 0)
        var out: [UInt8] = []
        for v in [h.0, h.1, h.2, h.3, h.4, h.5, h.6, h.7] {
            out += [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
        }
        return out
    }

    private mutating func compressBuffer() {
        let copy = buffer
        copy.withUnsafeBytes { compress($0) }
    }

    @inline(__always)
    private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    /// One 64-byte block. The message schedule lives in a stack buffer and the round constants are read
    /// through a pointer, so the loop runs without bounds or uniqueness checks (checkpoint markers hash
    /// gigabytes).
    private mutating func compress(_ block: UnsafeRawBufferPointer) {
        precondition(block.count >= 64)
        var (a, b, c, d, e, f, g, hh) = h
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            SHA256.k.withUnsafeBufferPointer { k in
                let bytes = block.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for t in 0..<16 {
                    w[t] = UInt32(bytes[4 * t]) << 24 | UInt32(bytes[4 * t + 1]) << 16 | UInt32(bytes[4 * t + 2]) << 8 | UInt32(bytes[4 * t + 3])
                }
                for t in 16..<64 {
                    let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
                    let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
                    w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
                }
                for t in 0..<64 {
                    let S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                    let ch = (e & f) ^ (~e & g)
                    let t1 = hh &+ S1 &+ ch &+ k[t] &+ w[t]
                    let S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                    let maj = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = S0 &+ maj
                    hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                }
            }
        }
        h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e, h.5 &+ f, h.6 &+ g, h.7 &+ hh)
    }
}
