/// GPT-2's reversible byte ↔ character table.
///
/// Byte-level BPE works on bytes, but its vocabulary and merges files store tokens as text. GPT-2
/// therefore gives each of the 256 byte values one printable Unicode scalar: the bytes that are
/// already visible, non-space characters (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand for themselves, and the
/// other 68 (controls, space, DEL, NBSP, soft hyphen, …) take U+0100, U+0101, … in byte order.
/// So the space byte 0x20 is written `Ġ` (U+0120) and the newline 0x0A is `Ċ` (U+010A).
enum ByteLevel {
    /// `scalarOfByte[b]` is the scalar that stands for byte `b` in vocab and merges files. // (256)
    static let scalarOfByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if standsForItself(UInt8(b)) {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The inverse table: `byteOfScalar[s]` for scalar values below `byteOfScalar.count`, −1 where the
    /// scalar stands for no byte. The highest scalar used is U+0143.
    static let byteOfScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in scalarOfByte.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    /// Bytes GPT-2 writes as themselves: the printable, non-space Latin-1 characters.
    private static func standsForItself(_ b: UInt8) -> Bool {
        (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
    }

    /// The raw bytes a vocabulary token stands for, or nil if it holds a scalar outside the table
    /// (then it is not a byte-level token).
    static func bytes<S: Sequence>(ofToken scalars: S) -> [UInt8]? where S.Element == Unicode.Scalar {
        var out: [UInt8] = []
        for s in scalars {
            let v = Int(s.value)
            guard v < byteOfScalar.count, byteOfScalar[v] >= 0 else { return nil }
            out.append(UInt8(byteOfScalar[v]))
        }
        return out
    }

    /// The vocabulary spelling of raw bytes (the inverse of `bytes(ofToken:)`).
    static func token(ofBytes bytes: [UInt8]) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(scalarOfByte[Int(b)]) }
        return String(s)
    }
}
