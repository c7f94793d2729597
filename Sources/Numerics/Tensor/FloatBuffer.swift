#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An owned, 64-byte aligned, zero-initialised buffer of Floats that never moves: the storage of parameter,
/// gradient, moment and activation arenas. Freed when the last reference goes.
public final class FloatBuffer: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int) {
        precondition(count >= 0)
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        memset(raw, 0, max(count, 1) * MemoryLayout<Float>.stride)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    /// Sets every element to 0.
    public func zero() { memset(base, 0, count * MemoryLayout<Float>.stride) }
}
