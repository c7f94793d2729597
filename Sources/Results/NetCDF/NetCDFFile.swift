import CNetCDF
import Foundation

/// A dimension as the file currently has it. `length` of an unlimited dimension is its current
/// length (the number of records written so far).
public struct NetCDFDimension: Equatable {
    public let name: String
    public let length: Int
    public let isUnlimited: Bool
}

/// Deflate compression of a variable (`nc_def_var_deflate`): zlib `level` 1–9, with or without
/// the byte shuffle filter (which usually helps floats a lot).
public struct NetCDFCompression: Equatable {
    public var level: Int
    public var shuffle: Bool
    public init(level: Int = 1, shuffle: Bool = true) { self.level = level; self.shuffle = shuffle }
}

/// The fill value of a variable (`nc_def_var_fill`), what a reader sees where nothing was written.
public enum NetCDFFill: Equatable {
    /// NaN; only for float and double variables (a cell not computed yet reads as NaN, never 0).
    case nan
    /// This number, converted exactly to the variable's type (an error if it does not fit).
    case value(Double)
    /// No filling: unwritten entries are undefined (faster when everything gets written).
    case none
}

/// What `nc_inq_var*` reports about a variable.
public struct NetCDFVariableInfo: Equatable {
    public let name: String
    public let type: NetCDFType
    /// Dimension names, slowest-varying first (C order).
    public let dimensions: [String]
    /// Current dimension lengths, same order.
    public let shape: [Int]
    /// nil when the variable is not deflated.
    public let compression: NetCDFCompression?
    /// nil when the variable is stored contiguously (or compactly) rather than chunked.
    public let chunkSizes: [Int]?
}

/// One open NetCDF file (root group only).
///
/// Contracts:
/// - `create` makes a NetCDF-4 (HDF5) file, replacing any file at the path; `open` opens an
///   existing file of any format, read-only unless `writable`.
/// - Define and data mode are switched automatically: defining dimensions, variables and
///   attributes calls `nc_redef` when needed, reading and writing data calls `nc_enddef`.
/// - Every `nc_*` return code is checked; failures throw `NetCDFError` naming the call, this
///   file's path and the variable / dimension / attribute concerned.
/// - Every `nc_*` call runs under `NetCDF.withLock` (NetCDF-C is not thread-safe), so instances
///   may be used from several threads; calls are serialised process-wide.
/// - `close()` is idempotent; `deinit` closes a file left open (ignoring errors: call
///   `close()` to see them). Any other call on a closed file throws.
public final class NetCDFFile: @unchecked Sendable {
    /// The path given to `create` / `open`.
    public let path: String
    private var ncid: Int32          // -1 once closed; guarded by the NetCDF lock
    private var inDefineMode: Bool   // guarded by the NetCDF lock

    private init(path: String, ncid: Int32, inDefineMode: Bool) {
        self.path = path; self.ncid = ncid; self.inDefineMode = inDefineMode
    }

    /// Creates a NetCDF-4 file at `path` (`NC_NETCDF4 | NC_CLOBBER`), in define mode.
    public static func create(path: String) throws -> NetCDFFile {
        try NetCDF.withLock {
            var id: Int32 = -1
            let code = nc_create(path, NC_NETCDF4 | NC_CLOBBER, &id)
            guard code == NC_NOERR else {
                throw NetCDFError(call: "nc_create", path: path, code: code, reason: NetCDF.message(for: code),
                                  hint: "check that the folder exists and is writable")
            }
            return NetCDFFile(path: path, ncid: id, inDefineMode: true)
        }
    }

    /// Opens an existing file, read-only unless `writable`.
    public static func open(path: String, writable: Bool = false) throws -> NetCDFFile {
        try NetCDF.withLock {
            var id: Int32 = -1
            let code = nc_open(path, writable ? NC_WRITE : NC_NOWRITE, &id)
            guard code == NC_NOERR else {
                throw NetCDFError(call: "nc_open", path: path, code: code, reason: NetCDF.message(for: code),
                                  hint: "give the path of an existing NetCDF file")
            }
            return NetCDFFile(path: path, ncid: id, inDefineMode: false)
        }
    }

    /// Whether `close()` has not been called yet.
    public var isOpen: Bool { NetCDF.withLock { ncid >= 0 } }

    /// Flushes and closes the file (`nc_close`). Calling it again does nothing.
    public func close() throws {
        try NetCDF.withLock {
            guard ncid >= 0 else { return }
            let id = ncid
            ncid = -1
            try check(nc_close(id), "nc_close")
        }
    }

    deinit {
        NetCDF.withLock {
            if ncid >= 0 { _ = nc_close(ncid) }
        }
    }

    // MARK: - Internals (call with the lock held)

    /// Throws `NetCDFError` for a non-zero return code.
    func check(_ code: Int32, _ call: String, _ object: String? = nil, hint: String? = nil) throws {
        guard code != NC_NOERR else { return }
        throw NetCDFError(call: call, path: path, object: object, code: code,
                          reason: String(cString: nc_strerror(code)), hint: hint)
    }

    /// A wrapper-level failure (no library code).
    func failure(_ call: String, _ object: String?, _ reason: String) -> NetCDFError {
        NetCDFError(call: call, path: path, object: object, reason: reason)
    }

    /// The library id of the open file.
    func handle() throws -> Int32 {
        guard ncid >= 0 else { throw failure("NetCDFFile", nil, "the file is already closed") }
        return ncid
    }

    /// Switches to define mode if needed (before defining dimensions, variables, attributes).
    func defineMode() throws -> Int32 {
        let id = try handle()
        if !inDefineMode {
            try check(nc_redef(id), "nc_redef")
            inDefineMode = true
        }
        return id
    }

    /// Switches to data mode if needed (before reading or writing values).
    func dataMode() throws -> Int32 {
        let id = try handle()
        if inDefineMode {
            try check(nc_enddef(id), "nc_enddef")
            inDefineMode = false
        }
        return id
    }

    /// `nc_inq_varid`; the error lists the variables the file has.
    func varid(_ name: String) throws -> Int32 {
        var v: Int32 = -1
        let code = nc_inq_varid(try handle(), name, &v)
        if code != NC_NOERR {
            let known = (try? variableNames())?.joined(separator: ", ") ?? ""
            try check(code, "nc_inq_varid", "variable '\(name)'", hint: "the file has variables: [\(known)]")
        }
        return v
    }

    /// `nc_inq_dimid`; the error lists the dimensions the file has.
    func dimid(_ name: String) throws -> Int32 {
        var d: Int32 = -1
        let code = nc_inq_dimid(try handle(), name, &d)
        if code != NC_NOERR {
            let known = (try? dimensions())?.map(\.name).joined(separator: ", ") ?? ""
            try check(code, "nc_inq_dimid", "dimension '\(name)'", hint: "the file has dimensions: [\(known)]")
        }
        return d
    }

    func dimensionName(_ id: Int32, _ d: Int32) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
        try check(nc_inq_dimname(id, d, &buffer), "nc_inq_dimname")
        return String(cString: buffer)
    }

    func dimensionLength(_ id: Int32, _ d: Int32, _ name: String) throws -> Int {
        var length = 0
        try check(nc_inq_dimlen(id, d, &length), "nc_inq_dimlen", "dimension '\(name)'")
        return length
    }

    func unlimitedIDs(_ id: Int32) throws -> Set<Int32> {
        var n: Int32 = 0
        try check(nc_inq_unlimdims(id, &n, nil), "nc_inq_unlimdims")
        var ids = [Int32](repeating: 0, count: Int(n))
        try check(nc_inq_unlimdims(id, &n, &ids), "nc_inq_unlimdims")
        return Set(ids)
    }

    /// Dimension ids of a variable, C order.
    func dimensionIDs(_ id: Int32, _ v: Int32, _ name: String) throws -> [Int32] {
        var n: Int32 = 0
        try check(nc_inq_varndims(id, v, &n), "nc_inq_varndims", "variable '\(name)'")
        var ids = [Int32](repeating: 0, count: Int(n))
        try check(nc_inq_vardimid(id, v, &ids), "nc_inq_vardimid", "variable '\(name)'")
        return ids
    }

    // MARK: - Dimensions

    /// Defines a dimension; `length: nil` makes it unlimited (it grows as records are written).
    @discardableResult
    public func addDimension(_ name: String, length: Int?) throws -> NetCDFDimension {
        try NetCDF.withLock {
            let id = try defineMode()
            if let length, length < 0 {
                throw failure("nc_def_dim", "dimension '\(name)'", "length \(length) is negative")
            }
            var d: Int32 = -1
            try check(nc_def_dim(id, name, length ?? NC_UNLIMITED, &d), "nc_def_dim", "dimension '\(name)'")
            return NetCDFDimension(name: name, length: length ?? 0, isUnlimited: length == nil)
        }
    }

    /// The named dimension with its current length.
    public func dimension(_ name: String) throws -> NetCDFDimension {
        try NetCDF.withLock {
            let id = try handle()
            let d = try dimid(name)
            return NetCDFDimension(name: name, length: try dimensionLength(id, d, name),
                                   isUnlimited: try unlimitedIDs(id).contains(d))
        }
    }

    /// All dimensions of the root group, in definition order.
    public func dimensions() throws -> [NetCDFDimension] {
        try NetCDF.withLock {
            let id = try handle()
            var n: Int32 = 0
            try check(nc_inq_dimids(id, &n, nil, 0), "nc_inq_dimids")
            var ids = [Int32](repeating: 0, count: Int(n))
            try check(nc_inq_dimids(id, &n, &ids, 0), "nc_inq_dimids")
            let unlimited = try unlimitedIDs(id)
            return try ids.map { d in
                let name = try dimensionName(id, d)
                return NetCDFDimension(name: name, length: try dimensionLength(id, d, name),
                                       isUnlimited: unlimited.contains(d))
            }
        }
    }

    /// Whether the file has a dimension of this name.
    public func hasDimension(_ name: String) -> Bool {
        NetCDF.withLock {
            var d: Int32 = -1
            return ncid >= 0 && nc_inq_dimid(ncid, name, &d) == NC_NOERR
        }
    }

    // MARK: - Variables

    /// Defines a variable over existing dimensions (C order, slowest first; `[]` for a scalar).
    ///
    /// - `compression`: deflate + shuffle (`nc_def_var_deflate`); numeric types only.
    /// - `chunkSizes`: one size per dimension (`nc_def_var_chunking`, `NC_CHUNKED`); nil leaves
    ///   the library's choice (which chunks compressed or unlimited variables itself).
    /// - `fill`: `nc_def_var_fill`; nil keeps the library default fill value.
    public func addVariable(_ name: String, type: NetCDFType, dimensions: [String],
                            compression: NetCDFCompression? = nil, chunkSizes: [Int]? = nil,
                            fill: NetCDFFill? = nil) throws {
        try NetCDF.withLock {
            let id = try defineMode()
            let object = "variable '\(name)'"
            let dimIDs = try dimensions.map { try dimid($0) }
            var v: Int32 = -1
            try check(nc_def_var(id, name, type.ncType, Int32(dimIDs.count), dimIDs, &v), "nc_def_var", object)
            if let chunkSizes {
                guard chunkSizes.count == dimensions.count else {
                    throw failure("nc_def_var_chunking", object,
                                  "\(chunkSizes.count) chunk sizes given for \(dimensions.count) dimensions")
                }
                try check(nc_def_var_chunking(id, v, NC_CHUNKED, chunkSizes), "nc_def_var_chunking", object)
            }
            if let compression {
                guard (1...9).contains(compression.level) else {
                    throw failure("nc_def_var_deflate", object, "deflate level \(compression.level) is not in 1...9")
                }
                try check(nc_def_var_deflate(id, v, compression.shuffle ? 1 : 0, 1, Int32(compression.level)),
                          "nc_def_var_deflate", object)
            }
            if let fill { try defineFill(fill, id, v, type, object) }
        }
    }

    private func defineFill(_ fill: NetCDFFill, _ id: Int32, _ v: Int32, _ type: NetCDFType, _ object: String) throws {
        func put<T: BitwiseCopyable>(_ value: T) throws {
            var value = value
            try check(nc_def_var_fill(id, v, 0, &value), "nc_def_var_fill", object)
        }
        func exact<T>(_ converted: T?, _ value: Double) throws -> T {
            guard let converted else {
                throw failure("nc_def_var_fill", object, "fill value \(value) does not fit a \(type) variable")
            }
            return converted
        }
        switch (fill, type) {
        case (.none, _):
            try check(nc_def_var_fill(id, v, 1, nil), "nc_def_var_fill", object)
        case (.nan, .float): try put(Float.nan)
        case (.nan, .double): try put(Double.nan)
        case (.value(let x), .float): try put(Float(x))
        case (.value(let x), .double): try put(x)
        case (.value(let x), .int32): try put(try exact(Int32(exactly: x), x))
        case (.value(let x), .int64): try put(try exact(Int64(exactly: x), x))
        case (.value(let x), .int8): try put(try exact(Int8(exactly: x), x))
        default:
            throw failure("nc_def_var_fill", object, "fill \(fill) is not supported for a \(type) variable")
        }
    }

    /// Names of all variables of the root group, in definition order.
    public func variableNames() throws -> [String] {
        try NetCDF.withLock {
            let id = try handle()
            var n: Int32 = 0
            try check(nc_inq_varids(id, &n, nil), "nc_inq_varids")
            var ids = [Int32](repeating: 0, count: Int(n))
            try check(nc_inq_varids(id, &n, &ids), "nc_inq_varids")
            return try ids.map { v in
                var buffer = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
                try check(nc_inq_varname(id, v, &buffer), "nc_inq_varname")
                return String(cString: buffer)
            }
        }
    }

    /// Whether the file has a variable of this name.
    public func hasVariable(_ name: String) -> Bool {
        NetCDF.withLock {
            var v: Int32 = -1
            return ncid >= 0 && nc_inq_varid(ncid, name, &v) == NC_NOERR
        }
    }

    /// Type, dimensions, current shape, compression and chunking of a variable.
    public func variable(_ name: String) throws -> NetCDFVariableInfo {
        try NetCDF.withLock {
            let id = try handle()
            let object = "variable '\(name)'"
            let v = try varid(name)
            var xtype: nc_type = 0
            try check(nc_inq_vartype(id, v, &xtype), "nc_inq_vartype", object)
            let dimIDs = try dimensionIDs(id, v, name)
            let dimNames = try dimIDs.map { try dimensionName(id, $0) }
            let shape = try zip(dimIDs, dimNames).map { try dimensionLength(id, $0, $1) }

            var shuffle: Int32 = 0, deflate: Int32 = 0, level: Int32 = 0
            var code = nc_inq_var_deflate(id, v, &shuffle, &deflate, &level)
            if code == NC_ENOTNC4 { deflate = 0; code = NC_NOERR }   // classic files: never deflated
            try check(code, "nc_inq_var_deflate", object)

            var storage: Int32 = NC_CONTIGUOUS
            var sizes = [Int](repeating: 0, count: max(dimIDs.count, 1))
            code = nc_inq_var_chunking(id, v, &storage, &sizes)
            if code == NC_ENOTNC4 { storage = NC_CONTIGUOUS; code = NC_NOERR }
            try check(code, "nc_inq_var_chunking", object)

            return NetCDFVariableInfo(
                name: name, type: NetCDFType(ncType: xtype), dimensions: dimNames, shape: shape,
                compression: deflate != 0 ? NetCDFCompression(level: Int(level), shuffle: shuffle != 0) : nil,
                chunkSizes: storage == NC_CHUNKED ? Array(sizes.prefix(dimIDs.count)) : nil)
        }
    }
}
