import Foundation
import Support
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The safetensors format, byte by byte:
//   [0, 8)            N, the header length, unsigned 64-bit little-endian
//   [8, 8 + N)        a UTF-8 JSON object: for every tensor name {"dtype", "shape", "data_offsets": [begin, end]},
//                     plus an optional "__metadata__" object of string → string
//   [8 + N, EOF)      the data section; a tensor's bytes are data[begin ..< end], little-endian, row-major
// A valid file has offsets that tile the data section exactly (sorted by begin they are contiguous, start at 0
// and end at the file's end), and every tensor's byte size equals product(shape) × the dtype's size.

/// Element types of the safetensors format, in the format's own order (used to sort tensors when writing).
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3: return 1
        case .I16, .U16, .F16, .BF16: return 2
        case .I32, .U32, .F32: return 4
        case .F64, .I64, .U64: return 8
        }
    }

    /// Whether `SafetensorsFile.readFloats` can convert this type to `Float`.
    public var isFloatingPoint: Bool { self == .F32 || self == .F16 || self == .BF16 || self == .F64 }

    /// Position in the format's dtype order (the reference writer sorts tensors by it, descending).
    var order: Int { SafetensorsDType.allCases.firstIndex(of: self)! }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range inside the data section (not the file).
    public let byteRange: Range<Int>
    /// Number of elements: the product of `shape` (1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
}

/// A read-only memory mapping of a whole file; unmapped when released.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer?
    let size: Int

    init(url: URL) throws {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else {
            throw CheckpointError(file: url, problem: "cannot open: \(String(cString: strerror(errno)))",
                                  fix: "check that the file exists and is readable")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw CheckpointError(file: url, problem: "cannot stat: \(String(cString: strerror(errno)))")
        }
        size = Int(st.st_size)
        if size == 0 { base = nil; return }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw CheckpointError(file: url, problem: "cannot map into memory: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }
}

/// A safetensors file opened for reading. The file is memory-mapped; tensors are copied (and converted)
/// only when asked for. Opening validates the whole header, so every later read is within bounds.
public final class SafetensorsFile: @unchecked Sendable {
    public let url: URL
    /// The `__metadata__` object, or empty when the file has none.
    public let metadata: [String: String]
    /// All tensors, in data-offset order.
    public let tensors: [SafetensorsTensorInfo]
    private let index: [String: Int]
    private let mapping: MappedFile
    private let dataStart: Int

    /// The header may not be larger than this (the reference reader's limit).
    public static let maxHeaderBytes = 100_000_000

    public init(url: URL) throws {
        self.url = url
        mapping = try MappedFile(url: url)
        let size = mapping.size
        guard size >= 8, let base = mapping.base else {
            throw CheckpointError(file: url, problem: "truncated: \(size) bytes, too short for the 8-byte header length",
                                  fix: "the file is incomplete; copy or write it again")
        }
        let n = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(Self.maxHeaderBytes) else {
            throw CheckpointError(file: url, problem: "corrupt header: declared header length \(n) exceeds the limit \(Self.maxHeaderBytes)",
                                  fix: "this is not a safetensors file, or its first 8 bytes are damaged")
        }
        guard Int(n) <= size - 8 else {
            throw CheckpointError(file: url, problem: "truncated: header length \(n) runs past the end of the \(size)-byte file",
                                  fix: "the file is incomplete; copy or write it again")
        }
        dataStart = 8 + Int(n)
        let headerBytes = Data(bytes: base + 8, count: Int(n))
        let (meta, infos) = try Self.parseHeader(headerBytes, url: url)
        metadata = meta
        // Offsets must tile the data section exactly.
        let sorted = infos.sorted { ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound) }
        let dataSize = size - dataStart
        var cursor = 0
        for t in sorted {
            if t.byteRange.lowerBound != cursor {
                let what = t.byteRange.lowerBound < cursor ? "overlaps the previous tensor" : "leaves a gap after the previous tensor"
                throw CheckpointError(file: url, item: t.name,
                                      problem: "bad data_offsets [\(t.byteRange.lowerBound), \(t.byteRange.upperBound)]: \(what) (expected begin \(cursor))",
                                      fix: "the header is corrupt; write the file again")
            }
            cursor = t.byteRange.upperBound
        }
        if cursor > dataSize {
            let last = sorted.last!
            throw CheckpointError(file: url, item: last.name,
                                  problem: "truncated: data_offsets end at \(cursor) but the data section has only \(dataSize) bytes",
                                  fix: "the file is incomplete; copy or write it again")
        }
        if cursor < dataSize {
            throw CheckpointError(file: url, problem: "corrupt: \(dataSize - cursor) bytes after the last tensor are not described by the header",
                                  fix: "the header is corrupt or the file was appended to; write it again")
        }
        tensors = sorted
        var idx: [String: Int] = [:]
        for (i, t) in sorted.enumerated() { idx[t.name] = i }
        index = idx
    }

    private static func parseHeader(_ bytes: Data, url: URL) throws -> ([String: String], [SafetensorsTensorInfo]) {
        func corrupt(_ what: String, _ item: String? = nil) -> CheckpointError {
            CheckpointError(file: url, item: item, problem: "corrupt header: \(what)",
                            fix: "this is not a valid safetensors file; write it again")
        }
        guard bytes.first == UInt8(ascii: "{") else { throw corrupt("the JSON header does not start with '{'") }
        guard String(data: bytes, encoding: .utf8) != nil else { throw corrupt("the header is not UTF-8") }
        let object: JSONValue
        do { object = try JSONValue(parsing: bytes) } catch {
            throw corrupt("the header is not valid JSON (\(error))")
        }
        guard let pairs = object.objectValue else { throw corrupt("the header is not a JSON object") }
        var meta: [String: String] = [:]
        var infos: [SafetensorsTensorInfo] = []
        var seen = Set<String>()
        for (name, entry) in pairs {
            guard seen.insert(name).inserted else { throw corrupt("the name appears twice", name) }
            if name == "__metadata__" {
                guard let m = entry.objectValue else { throw corrupt("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v.stringValue else { throw corrupt("__metadata__ value of \"\(k)\" is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard entry.isObject else { throw corrupt("entry is not an object", name) }
            guard let dt = entry["dtype"]?.stringValue else { throw corrupt("missing \"dtype\"", name) }
            guard let dtype = SafetensorsDType(rawValue: dt) else {
                throw CheckpointError(file: url, item: name, problem: "unknown dtype \"\(dt)\"",
                                      fix: "supported: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let shapeAny = entry["shape"]?.arrayValue else { throw corrupt("missing or non-list \"shape\"", name) }
            var shape: [Int] = []
            for s in shapeAny {
                guard let v = Self.nonNegativeInt(s) else { throw corrupt("shape entry \(s.compactText) is not a non-negative integer", name) }
                shape.append(v)
            }
            guard let offAny = entry["data_offsets"]?.arrayValue, offAny.count == 2,
                  let begin = Self.nonNegativeInt(offAny[0]), let end = Self.nonNegativeInt(offAny[1]) else {
                throw corrupt("\"data_offsets\" is not a pair of non-negative integers", name)
            }
            guard begin <= end else {
                throw CheckpointError(file: url, item: name, problem: "bad data_offsets [\(begin), \(end)]: begin after end",
                                      fix: "the header is corrupt; write the file again")
            }
            var count = 1
            for s in shape {
                let (p, o) = count.multipliedReportingOverflow(by: s)
                guard !o else { throw corrupt("shape \(shape) overflows", name) }
                count = p
            }
            let (bytesNeeded, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !o, bytesNeeded == end - begin else {
                throw CheckpointError(file: url, item: name,
                                      problem: "bad data_offsets [\(begin), \(end)]: \(end - begin) bytes, but shape \(shape) of \(dtype.rawValue) needs \(bytesNeeded)",
                                      fix: "the header is corrupt; write the file again")
            }
            infos.append(SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end))
        }
        return (meta, infos)
    }

    /// An integral number in [0, 2^53) (`intValue` rejects booleans, fractions and inexact magnitudes).
    private static func nonNegativeInt(_ v: JSONValue) -> Int? {
        guard let n = v.intValue, n >= 0 else { return nil }
        return n
    }

    /// Names of all tensors, in data-offset order.
    public var names: [String] { tensors.map(\.name) }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// The header entry of `name`; throws naming the file when it is missing.
    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let i = index[name] else {
            throw CheckpointError(file: url, item: name, problem: "no such tensor",
                                  fix: "the file has \(tensors.count) tensors, e.g. \(tensors.prefix(3).map(\.name).joined(separator: ", "))")
        }
        return tensors[i]
    }

    /// The raw little-endian bytes of a tensor, valid during `body`.
    public func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try info(name)
        let p = mapping.base! + dataStart + t.byteRange.lowerBound
        return try body(UnsafeRawBufferPointer(start: p, count: t.byteRange.count))
    }

    /// Copies tensor `name` into `dst` (which must hold exactly its element count), converting F16, BF16 and F64
    /// to Float. Throws for integer tensors and for a size mismatch.
    public func readFloats(_ name: String, into dst: UnsafeMutableBufferPointer<Float>) throws {
        let t = try info(name)
        guard t.dtype.isFloatingPoint else {
            throw CheckpointError(file: url, item: name, problem: "dtype \(t.dtype.rawValue) is not a floating-point type",
                                  fix: "expected F32, F16, BF16 or F64")
        }
        guard dst.count == t.count else {
            throw CheckpointError(file: url, item: name, problem: "has \(t.count) elements (shape \(t.shape)), expected \(dst.count)")
        }
        guard let out = dst.baseAddress, t.count > 0 else { return }
        try withBytes(name) { raw in
            let src = raw.baseAddress!
            switch t.dtype {
            case .F32:
                memcpy(out, src, t.count * 4)   // little-endian host
            case .F64:
                for i in 0..<t.count { out[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            case .F16:
                for i in 0..<t.count { out[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .BF16:
                for i in 0..<t.count {
                    out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                }
            default:
                preconditionFailure("unreachable: checked isFloatingPoint")
            }
        }
    }

    /// Tensor `name` as Floats (converted from F16, BF16 or F64).
    public func floats(_ name: String) throws -> [Float] {
        let n = try info(name).count
        var out = [Float](repeating: 0, count: n)
        try out.withUnsafeMutableBufferPointer { try readFloats(name, into: $0) }
        return out
    }

    /// Tensor `name` as Doubles (F64 exactly; F32, F16, BF16 widened).
    public func doubles(_ name: String) throws -> [Double] {
        let t = try info(name)
        if t.dtype == .F64 {
            return try withBytes(name) { raw in (0..<t.count).map { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) } }
        }
        return try floats(name).map(Double.init)
    }

    /// Integer tensor `name` (I64, I32, I16, I8, U8, U16, U32, BOOL) as Int64; U64 values above Int64.max throw.
    public func int64s(_ name: String) throws -> [Int64] {
        let t = try info(name)
        return try withBytes(name) { raw -> [Int64] in
            switch t.dtype {
            case .I64: return (0..<t.count).map { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) }
            case .I32: return (0..<t.count).map { Int64(raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
            case .I16: return (0..<t.count).map { Int64(raw.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
            case .I8: return (0..<t.count).map { Int64(raw.load(fromByteOffset: $0, as: Int8.self)) }
            case .U8, .BOOL: return (0..<t.count).map { Int64(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            case .U16: return (0..<t.count).map { Int64(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
            case .U32: return (0..<t.count).map { Int64(raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
            case .U64:
                return try (0..<t.count).map {
                    let v = raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)
                    guard v <= UInt64(Int64.max) else {
                        throw CheckpointError(file: url, item: name, problem: "U64 value \(v) does not fit in Int64")
                    }
                    return Int64(v)
                }
            default:
                throw CheckpointError(file: url, item: name, problem: "dtype \(t.dtype.rawValue) is not an integer type",
                                      fix: "expected I64 or another integer type")
            }
        }
    }

    /// Integer tensor `name` as Int.
    public func ints(_ name: String) throws -> [Int] { try int64s(name).map { Int($0) } }
}
