#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An owned, 64-byte aligned, zero-initialised buffer of Floats that never moves: the storage of parameter,
/// gradient, moment and activation arenas. Freed when the last reference goes.
///
/// Buffers of `mappedBytes` or more are anonymous memory mappings: the kernel hands out zeroed pages on first
/// touch, so the buffer is not filled twice (once by the kernel, once by `memset`), and the part of a buffer sized
/// for the largest batch that a smaller batch never touches takes no memory.
public final class FloatBuffer: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int
    /// Bytes mapped (0: allocated on the heap).
    private let mapped: Int

    /// Buffers at least this large are mapped (1 MiB).
    public static let mappedBytes = 1 << 20

    public init(count: Int) {
        precondition(count >= 0)
        self.count = count
        let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        precondition(!overflow, "a buffer of \(count) floats does not fit in memory")
        let raw: UnsafeMutableRawPointer
        if bytes >= Self.mappedBytes {
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else {
                fatalError("out of memory: cannot map \(bytes) bytes (\(String(cString: strerror(errno))))")
            }
            raw = p
            mapped = bytes
        } else {
            raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            memset(raw, 0, bytes)
            mapped = 0
        }
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit {
        if mapped > 0 { munmap(UnsafeMutableRawPointer(base), mapped) } else { UnsafeMutableRawPointer(base).deallocate() }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    /// Sets every element to 0.
    public func zero() { memset(base, 0, count * MemoryLayout<Float>.stride) }
}
