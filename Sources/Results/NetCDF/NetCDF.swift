import CNetCDF
import Foundation
import Support

/// Namespace for the NetCDF-C library as a whole: its version and the process-wide lock.
///
/// NetCDF-C 4.9 (and the HDF5 library beneath it) keeps global state and is not thread-safe,
/// even for calls on different files. Every `nc_*` call made by this module therefore runs
/// inside `NetCDF.withLock`, one process-wide recursive lock. Code outside this folder must not
/// call `nc_*` functions directly; if it has to, it must take the same lock.
public enum NetCDF {
    /// `nc_inq_libvers()`, e.g. "4.9.0 of Feb  8 2023 ...".
    public static var libraryVersion: String { withLock { String(cString: nc_inq_libvers()) } }

    /// The one lock serialising every NetCDF-C call in the process. Recursive, so a wrapper
    /// method may call another wrapper method while holding it.
    private static let lock = NSRecursiveLock()

    /// Runs `body` holding the process-wide NetCDF lock.
    public static func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        silenceHDF5OnThisThread()
        return try body()
    }

    /// Turns off HDF5's automatic error printing on the calling thread.
    ///
    /// Debian's HDF5 is built thread-safe, which makes its error-printing setting per thread;
    /// NetCDF-C switches printing off only on the thread that first initialises it. On any other
    /// thread, expected failures inside NetCDF-C (4.9.0 probes for optional `_Quantize*`
    /// attributes when it opens a variable) print "HDF5-DIAG" blocks to stderr. The library
    /// still reports real errors through return codes, so printing is switched off per thread
    /// with `H5Eset_auto2(H5E_DEFAULT, NULL, NULL)`, looked up at run time because the HDF5
    /// headers are not part of this package. Called with the lock held.
    private static func silenceHDF5OnThisThread() {
        let key = "dkc.netcdf.hdf5-silenced"
        let thread = Thread.current.threadDictionary
        guard thread[key] == nil else { return }
        thread[key] = true
        if let setAuto = hdf5SetAuto { _ = setAuto(0, nil, nil) }
    }

    /// `herr_t H5Eset_auto2(hid_t estack_id, H5E_auto2_t func, void *client_data)` (HDF5 ≥ 1.10:
    /// hid_t is int64_t, H5E_DEFAULT is 0); nil if HDF5 is not loaded under that name.
    private typealias H5EsetAuto2 = @convention(c) (Int64, OpaquePointer?, UnsafeMutableRawPointer?) -> Int32
    private static let hdf5SetAuto: H5EsetAuto2? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "H5Eset_auto2") else { return nil }
        return unsafeBitCast(symbol, to: H5EsetAuto2.self)
    }()

    /// `nc_strerror(code)`: the library's sentence for a return code.
    public static func message(for code: Int32) -> String {
        withLock { String(cString: nc_strerror(code)) }
    }
}

/// A failed NetCDF operation: which call, on which file, on which variable / dimension /
/// attribute, and why (`nc_strerror` for library failures, a sentence for misuse caught here).
public struct NetCDFError: UserFacingError {
    /// The `nc_*` function (or wrapper operation) that failed.
    public let call: String
    /// The file the call was made on.
    public let path: String
    /// What the call was about, e.g. "variable 'score'" or "attribute 'units' of variable 'score'".
    public let object: String?
    /// The NetCDF-C return code; nil when the wrapper rejected the request itself.
    public let code: Int32?
    /// `nc_strerror(code)` or the wrapper's own explanation.
    public let reason: String
    /// What to do about it, when there is something useful to say.
    public let hint: String?

    public init(call: String, path: String, object: String? = nil, code: Int32? = nil,
                reason: String, hint: String? = nil) {
        self.call = call; self.path = path; self.object = object
        self.code = code; self.reason = reason; self.hint = hint
    }

    public var description: String {
        var text = "NetCDF error in \(call)"
        if let object { text += " (\(object))" }
        text += " on \(path): \(reason)"
        if let code { text += " [code \(code)]" }
        if let hint { text += ". \(hint)" }
        return text
    }

    /// 65 when the file or a name in it is not what was expected (wrong input); 1 otherwise.
    public var exitCode: Int32 {
        if call == "nc_open" { return 65 }
        if let code, [NC_ENOTVAR, NC_EBADDIM, NC_ENOTATT, NC_ENOTNC].contains(code) { return 65 }
        return 1
    }
}

/// The external types this wrapper reads and writes. `other` carries any further `nc_type`
/// found in a file written elsewhere (short, unsigned, compound, ...).
public enum NetCDFType: Equatable, CustomStringConvertible {
    case float, double, int32, int64, int8, string, char
    case other(Int32)

    init(ncType: nc_type) {
        switch ncType {
        case NC_FLOAT: self = .float
        case NC_DOUBLE: self = .double
        case NC_INT: self = .int32
        case NC_INT64: self = .int64
        case NC_BYTE: self = .int8
        case NC_STRING: self = .string
        case NC_CHAR: self = .char
        default: self = .other(ncType)
        }
    }

    /// The library's `nc_type` code.
    public var ncType: Int32 {
        switch self {
        case .float: return NC_FLOAT
        case .double: return NC_DOUBLE
        case .int32: return NC_INT
        case .int64: return NC_INT64
        case .int8: return NC_BYTE
        case .string: return NC_STRING
        case .char: return NC_CHAR
        case .other(let code): return code
        }
    }

    /// The CDL name `ncdump` prints.
    public var description: String {
        switch self {
        case .float: return "float"
        case .double: return "double"
        case .int32: return "int"
        case .int64: return "int64"
        case .int8: return "byte"
        case .string: return "string"
        case .char: return "char"
        case .other(let code): return "nc_type(\(code))"
        }
    }
}

/// A Swift number type with a NetCDF counterpart: Float ↔ float, Double ↔ double,
/// Int32 ↔ int, Int64 and Int ↔ int64, Int8 ↔ byte.
///
/// The underscored requirements are the typed `nc_*` entry points; they are called with the
/// NetCDF lock held. Only the conformances in this file are supported.
public protocol NetCDFNumeric: BitwiseCopyable {
    /// The NetCDF type a variable or attribute of this Swift type is created with.
    static var netCDFType: NetCDFType { get }
    static func _putVara(_ ncid: Int32, _ varid: Int32, _ start: UnsafePointer<Int>,
                         _ count: UnsafePointer<Int>, _ values: UnsafePointer<Self>) -> Int32
    static func _getVara(_ ncid: Int32, _ varid: Int32, _ start: UnsafePointer<Int>,
                         _ count: UnsafePointer<Int>, _ values: UnsafeMutablePointer<Self>) -> Int32
    static func _putAtt(_ ncid: Int32, _ varid: Int32, _ name: String, _ length: Int,
                        _ values: UnsafePointer<Self>) -> Int32
    static func _getAtt(_ ncid: Int32, _ varid: Int32, _ name: String,
                        _ values: UnsafeMutablePointer<Self>) -> Int32
}

extension Float: NetCDFNumeric {
    public static var netCDFType: NetCDFType { .float }
    public static func _putVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafePointer<Float>) -> Int32 { nc_put_vara_float(n, v, s, c, p) }
    public static func _getVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafeMutablePointer<Float>) -> Int32 { nc_get_vara_float(n, v, s, c, p) }
    public static func _putAtt(_ n: Int32, _ v: Int32, _ a: String, _ l: Int, _ p: UnsafePointer<Float>) -> Int32 { nc_put_att_float(n, v, a, NC_FLOAT, l, p) }
    public static func _getAtt(_ n: Int32, _ v: Int32, _ a: String, _ p: UnsafeMutablePointer<Float>) -> Int32 { nc_get_att_float(n, v, a, p) }
}

extension Double: NetCDFNumeric {
    public static var netCDFType: NetCDFType { .double }
    public static func _putVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafePointer<Double>) -> Int32 { nc_put_vara_double(n, v, s, c, p) }
    public static func _getVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafeMutablePointer<Double>) -> Int32 { nc_get_vara_double(n, v, s, c, p) }
    public static func _putAtt(_ n: Int32, _ v: Int32, _ a: String, _ l: Int, _ p: UnsafePointer<Double>) -> Int32 { nc_put_att_double(n, v, a, NC_DOUBLE, l, p) }
    public static func _getAtt(_ n: Int32, _ v: Int32, _ a: String, _ p: UnsafeMutablePointer<Double>) -> Int32 { nc_get_att_double(n, v, a, p) }
}

extension Int32: NetCDFNumeric {
    public static var netCDFType: NetCDFType { .int32 }
    public static func _putVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafePointer<Int32>) -> Int32 { nc_put_vara_int(n, v, s, c, p) }
    public static func _getVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafeMutablePointer<Int32>) -> Int32 { nc_get_vara_int(n, v, s, c, p) }
    public static func _putAtt(_ n: Int32, _ v: Int32, _ a: String, _ l: Int, _ p: UnsafePointer<Int32>) -> Int32 { nc_put_att_int(n, v, a, NC_INT, l, p) }
    public static func _getAtt(_ n: Int32, _ v: Int32, _ a: String, _ p: UnsafeMutablePointer<Int32>) -> Int32 { nc_get_att_int(n, v, a, p) }
}

extension Int64: NetCDFNumeric {
    public static var netCDFType: NetCDFType { .int64 }
    public static func _putVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafePointer<Int64>) -> Int32 { nc_put_vara_longlong(n, v, s, c, p) }
    public static func _getVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafeMutablePointer<Int64>) -> Int32 { nc_get_vara_longlong(n, v, s, c, p) }
    public static func _putAtt(_ n: Int32, _ v: Int32, _ a: String, _ l: Int, _ p: UnsafePointer<Int64>) -> Int32 { nc_put_att_longlong(n, v, a, NC_INT64, l, p) }
    public static func _getAtt(_ n: Int32, _ v: Int32, _ a: String, _ p: UnsafeMutablePointer<Int64>) -> Int32 { nc_get_att_longlong(n, v, a, p) }
}

/// `Int` is stored as int64 (through the C `long` entry points, 64-bit on the supported platforms).
extension Int: NetCDFNumeric {
    public static var netCDFType: NetCDFType { .int64 }
    public static func _putVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafePointer<Int>) -> Int32 { nc_put_vara_long(n, v, s, c, p) }
    public static func _getVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafeMutablePointer<Int>) -> Int32 { nc_get_vara_long(n, v, s, c, p) }
    public static func _putAtt(_ n: Int32, _ v: Int32, _ a: String, _ l: Int, _ p: UnsafePointer<Int>) -> Int32 { nc_put_att_long(n, v, a, NC_INT64, l, p) }
    public static func _getAtt(_ n: Int32, _ v: Int32, _ a: String, _ p: UnsafeMutablePointer<Int>) -> Int32 { nc_get_att_long(n, v, a, p) }
}

extension Int8: NetCDFNumeric {
    public static var netCDFType: NetCDFType { .int8 }
    public static func _putVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafePointer<Int8>) -> Int32 { nc_put_vara_schar(n, v, s, c, p) }
    public static func _getVara(_ n: Int32, _ v: Int32, _ s: UnsafePointer<Int>, _ c: UnsafePointer<Int>, _ p: UnsafeMutablePointer<Int8>) -> Int32 { nc_get_vara_schar(n, v, s, c, p) }
    public static func _putAtt(_ n: Int32, _ v: Int32, _ a: String, _ l: Int, _ p: UnsafePointer<Int8>) -> Int32 { nc_put_att_schar(n, v, a, NC_BYTE, l, p) }
    public static func _getAtt(_ n: Int32, _ v: Int32, _ a: String, _ p: UnsafeMutablePointer<Int8>) -> Int32 { nc_get_att_schar(n, v, a, p) }
}
