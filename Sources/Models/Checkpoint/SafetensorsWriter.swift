import Foundation
import Support
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `write(2)`, named so the static `write` below does not shadow it.
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}

/// Writes safetensors files the way the reference writer lays them out: tensors sorted by dtype (widest
/// first, in the format's dtype order) then by name, data offsets contiguous from 0, a compact JSON header
/// with `__metadata__` first, padded with spaces to a multiple of 8 bytes.
public enum SafetensorsWriter {
    /// One tensor to write. The bytes must stay valid until `write` returns.
    public struct Entry {
        public let name: String
        public let dtype: SafetensorsDType
        public let shape: [Int]
        let storage: Storage

        enum Storage {
            case pointer(UnsafeRawPointer)
            case data(Data)
        }

        var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }

        /// Float32 tensor read from `pointer` (product(shape) elements, not copied).
        public static func float32(_ name: String, shape: [Int], pointer: UnsafePointer<Float>) -> Entry {
            Entry(name: name, dtype: .F32, shape: shape, storage: .pointer(UnsafeRawPointer(pointer)))
        }

        /// Float32 tensor from an array (copied).
        public static func float32(_ name: String, shape: [Int], values: [Float]) -> Entry {
            precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
            let d = values.withUnsafeBytes { Data($0) }
            return Entry(name: name, dtype: .F32, shape: shape, storage: .data(d))
        }

        /// Int64 tensor from an array (copied), e.g. an optimizer step counter or token ids.
        public static func int64(_ name: String, shape: [Int], values: [Int64]) -> Entry {
            precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
            let d = values.withUnsafeBytes { Data($0) }
            return Entry(name: name, dtype: .I64, shape: shape, storage: .data(d))
        }

        /// Any dtype from its little-endian bytes (copied); `bytes.count` must equal product(shape) × dtype size.
        public static func raw(_ name: String, dtype: SafetensorsDType, shape: [Int], bytes: Data) -> Entry {
            precondition(bytes.count == shape.reduce(1, *) * dtype.byteSize, "\(name): \(bytes.count) bytes for \(dtype.rawValue) \(shape)")
            return Entry(name: name, dtype: dtype, shape: shape, storage: .data(bytes))
        }

        /// Float64 tensor from an array (copied).
        public static func float64(_ name: String, shape: [Int], values: [Double]) -> Entry {
            precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
            let d = values.withUnsafeBytes { Data($0) }
            return Entry(name: name, dtype: .F64, shape: shape, storage: .data(d))
        }
    }

    /// The `__metadata__` PyTorch's writer stores and `transformers` expects.
    public static let ptMetadata = ["format": "pt"]

    /// The header bytes (length prefix excluded, padding included) and the entries in file order.
    static func header(_ entries: [Entry], metadata: [String: String]?) -> (Data, [Entry]) {
        let ordered = entries.sorted { (a: Entry, b: Entry) -> Bool in
            let oa = a.dtype.order, ob = b.dtype.order
            if oa != ob { return oa > ob }
            return a.name < b.name
        }
        var json = "{"
        var first = true
        if let metadata, !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(JSONText.quoted($0)):\(JSONText.quoted(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for e in ordered {
            if !first { json += "," }
            first = false
            let end = offset + e.byteCount
            let shape: String = e.shape.map { String($0) }.joined(separator: ",")
            let dtype: String = e.dtype.rawValue
            json += JSONText.quoted(e.name)
            json += ":{\"dtype\":\"" + dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":["
            json += String(offset) + "," + String(end) + "]}"
            offset = end
        }
        json += "}"
        var bytes = Data(json.utf8)
        let pad = (8 - bytes.count % 8) % 8
        bytes.append(contentsOf: [UInt8](repeating: UInt8(ascii: " "), count: pad))
        return (bytes, ordered)
    }

    /// Writes `entries` to `url` (through a temporary file beside it, renamed into place when complete).
    /// Duplicate names are a programmer error.
    public static func write(_ entries: [Entry], metadata: [String: String]? = ptMetadata, to url: URL) throws {
        precondition(Set(entries.map(\.name)).count == entries.count, "duplicate tensor names")
        let (header, ordered) = header(entries, metadata: metadata)
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError(file: tmp, problem: "cannot create: \(String(cString: strerror(errno)))",
                                  fix: "check that the folder exists and is writable")
        }
        var ok = false
        defer {
            if !ok { close(fd); unlink(tmp.path) }
        }
        func put(_ p: UnsafeRawPointer, _ n: Int) throws {
            var done = 0
            while done < n {
                let w = posixWrite(fd, p + done, min(n - done, 1 << 30))
                if w < 0 {
                    if errno == EINTR { continue }
                    throw CheckpointError(file: tmp, problem: "write failed: \(String(cString: strerror(errno)))",
                                          fix: "check free disk space")
                }
                done += w
            }
        }
        var len = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &len) { try put($0.baseAddress!, 8) }
        try header.withUnsafeBytes { try put($0.baseAddress!, $0.count) }
        for e in ordered where e.byteCount > 0 {
            switch e.storage {
            case .pointer(let p): try put(p, e.byteCount)
            case .data(let d): try d.withUnsafeBytes { try put($0.baseAddress!, e.byteCount) }
            }
        }
        guard fsync(fd) == 0 || errno == EINVAL else {
            throw CheckpointError(file: tmp, problem: "fsync failed: \(String(cString: strerror(errno)))")
        }
        close(fd)
        ok = true
        guard rename(tmp.path, url.path) == 0 else {
            let msg = String(cString: strerror(errno))
            unlink(tmp.path)
            throw CheckpointError(file: url, problem: "cannot rename the finished file into place: \(msg)")
        }
    }

}
