import CNetCDF
import Foundation

/// An attribute value. `text` is the classic NC_CHAR string (what `ncdump` shows as `"..."` and
/// what CF conventions use for `units`, `long_name`, `title`, ...); `strings` is NC_STRING.
/// Numeric attributes are arrays; a scalar is an array of one.
public enum NetCDFAttribute: Equatable {
    case text(String)
    case strings([String])
    case float([Float])
    case double([Double])
    case int32([Int32])
    case int64([Int64])
    case int8([Int8])
}

/// Attributes of variables and of the file itself. `variable: nil` means a global attribute
/// (`NC_GLOBAL`). Setting an attribute that exists replaces it (its type may change).
extension NetCDFFile {
    /// The varid for `variable`, or NC_GLOBAL; and the phrase naming the attribute in errors.
    private func owner(_ name: String, _ variable: String?) throws -> (varid: Int32, object: String) {
        guard let variable else { return (NC_GLOBAL, "global attribute '\(name)'") }
        return (try varid(variable), "attribute '\(name)' of variable '\(variable)'")
    }

    // MARK: - Writing

    /// Sets an attribute of any supported kind.
    public func setAttribute(_ name: String, _ value: NetCDFAttribute, on variable: String? = nil) throws {
        switch value {
        case .text(let text): try setAttribute(name, text, on: variable)
        case .strings(let strings): try setStringsAttribute(name, strings, on: variable)
        case .float(let values): try setAttribute(name, values, on: variable)
        case .double(let values): try setAttribute(name, values, on: variable)
        case .int32(let values): try setAttribute(name, values, on: variable)
        case .int64(let values): try setAttribute(name, values, on: variable)
        case .int8(let values): try setAttribute(name, values, on: variable)
        }
    }

    /// Sets a text (NC_CHAR) attribute.
    public func setAttribute(_ name: String, _ text: String, on variable: String? = nil) throws {
        try NetCDF.withLock {
            let id = try defineMode()
            let (v, object) = try owner(name, variable)
            let bytes = Array(text.utf8)
            try bytes.withUnsafeBufferPointer { buffer in
                try buffer.withMemoryRebound(to: CChar.self) {
                    try check(nc_put_att_text(id, v, name, $0.count, $0.baseAddress), "nc_put_att_text", object)
                }
            }
        }
    }

    /// Sets a numeric scalar attribute (stored with the type of `T`).
    public func setAttribute<T: NetCDFNumeric>(_ name: String, _ value: T, on variable: String? = nil) throws {
        try setAttribute(name, [value], on: variable)
    }

    /// Sets a numeric array attribute (stored with the type of `T`; at least one value).
    public func setAttribute<T: NetCDFNumeric>(_ name: String, _ values: [T], on variable: String? = nil) throws {
        try NetCDF.withLock {
            let id = try defineMode()
            let (v, object) = try owner(name, variable)
            guard !values.isEmpty else { throw failure("nc_put_att", object, "a numeric attribute needs at least one value") }
            try values.withUnsafeBufferPointer {
                try check(T._putAtt(id, v, name, $0.count, $0.baseAddress!), "nc_put_att (\(T.netCDFType))", object)
            }
        }
    }

    /// Sets an NC_STRING array attribute.
    public func setStringsAttribute(_ name: String, _ strings: [String], on variable: String? = nil) throws {
        try NetCDF.withLock {
            let id = try defineMode()
            let (v, object) = try owner(name, variable)
            var pointers: [UnsafePointer<CChar>?] = strings.map { UnsafePointer(strdup($0)) }
            defer { for p in pointers { free(UnsafeMutablePointer(mutating: p)) } }
            try check(nc_put_att_string(id, v, name, pointers.count, &pointers), "nc_put_att_string", object)
        }
    }

    // MARK: - Reading

    /// Names of the attributes of `variable` (nil: global attributes), in definition order.
    public func attributeNames(of variable: String? = nil) throws -> [String] {
        try NetCDF.withLock {
            let id = try handle()
            let v = variable == nil ? NC_GLOBAL : try varid(variable!)
            var n: Int32 = 0
            try check(nc_inq_varnatts(id, v, &n), "nc_inq_varnatts", variable.map { "variable '\($0)'" })
            return try (0..<n).map { i in
                var buffer = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
                try check(nc_inq_attname(id, v, i, &buffer), "nc_inq_attname", variable.map { "variable '\($0)'" })
                return String(cString: buffer)
            }
        }
    }

    /// Whether the attribute exists.
    public func hasAttribute(_ name: String, of variable: String? = nil) -> Bool {
        NetCDF.withLock {
            guard let id = try? handle() else { return false }
            var v = NC_GLOBAL
            if let variable, nc_inq_varid(id, variable, &v) != NC_NOERR { return false }
            var length = 0
            return nc_inq_attlen(id, v, name, &length) == NC_NOERR
        }
    }

    /// Reads an attribute with its stored type. Integer types this wrapper does not write are
    /// widened (short, ubyte, ushort → int32; uint, uint64 → int64).
    public func attribute(_ name: String, of variable: String? = nil) throws -> NetCDFAttribute {
        try NetCDF.withLock {
            let id = try handle()
            let (v, object) = try owner(name, variable)
            var xtype: nc_type = 0
            var length = 0
            try check(nc_inq_att(id, v, name, &xtype, &length), "nc_inq_att", object)
            switch xtype {
            case NC_CHAR:
                var bytes = [CChar](repeating: 0, count: length + 1)
                try check(nc_get_att_text(id, v, name, &bytes), "nc_get_att_text", object)
                return .text(String(decoding: bytes.prefix(length).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                                    as: UTF8.self))
            case NC_STRING:
                var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: length)
                try check(nc_get_att_string(id, v, name, &pointers), "nc_get_att_string", object)
                defer { _ = nc_free_string(length, &pointers) }
                return .strings(pointers.map { $0.map { String(cString: $0) } ?? "" })
            case NC_FLOAT: return .float(try numbers(id, v, name, length, object))
            case NC_DOUBLE: return .double(try numbers(id, v, name, length, object))
            case NC_BYTE: return .int8(try numbers(id, v, name, length, object))
            case NC_INT, NC_SHORT, NC_UBYTE, NC_USHORT: return .int32(try numbers(id, v, name, length, object))
            case NC_INT64, NC_UINT, NC_UINT64: return .int64(try numbers(id, v, name, length, object))
            default:
                throw failure("nc_inq_att", object, "attribute type \(NetCDFType(ncType: xtype)) is not supported")
            }
        }
    }

    /// Reads a text attribute: NC_CHAR, or an NC_STRING attribute holding one string.
    public func textAttribute(_ name: String, of variable: String? = nil) throws -> String {
        switch try attribute(name, of: variable) {
        case .text(let text): return text
        case .strings(let strings) where strings.count == 1: return strings[0]
        default:
            throw NetCDF.withLock { failure("textAttribute", try? owner(name, variable).object, "the attribute is not text") }
        }
    }

    /// Reads a numeric attribute converted by the library to `T` (NC_ERANGE if a value does not fit).
    public func numericAttribute<T: NetCDFNumeric>(_ name: String, of variable: String? = nil,
                                                   as type: T.Type = T.self) throws -> [T] {
        try NetCDF.withLock {
            let id = try handle()
            let (v, object) = try owner(name, variable)
            var length = 0
            try check(nc_inq_attlen(id, v, name, &length), "nc_inq_attlen", object)
            return try numbers(id, v, name, length, object)
        }
    }

    private func numbers<T: NetCDFNumeric>(_ id: Int32, _ v: Int32, _ name: String, _ length: Int,
                                           _ object: String) throws -> [T] {
        try [T](unsafeUninitializedCapacity: length) { buffer, initialized in
            initialized = 0
            guard length > 0 else { return }
            try check(T._getAtt(id, v, name, buffer.baseAddress!), "nc_get_att (\(T.netCDFType))", object)
            initialized = length
        }
    }
}
