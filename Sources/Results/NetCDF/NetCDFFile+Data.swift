import CNetCDF
import Foundation

/// Reading and writing variable values: whole variables or hyperslabs (`start`, `count`, C order,
/// the last index varying fastest, exactly as `nc_put_vara_*` / `nc_get_vara_*`).
///
/// Extent rules, shared by every method here:
/// - `start` nil means all zeros; otherwise one index per dimension.
/// - `count` nil means "to the end" along every dimension (current length − start). When writing,
///   an unlimited dimension instead takes whatever length the values need: values.count divided
///   by the product of the other counts, which must divide it exactly.
/// - A write must supply exactly product(count) values.
/// - The library converts between numeric types (e.g. `[Double]` into a float variable);
///   a value that does not fit the variable's type fails with NC_ERANGE.
extension NetCDFFile {
    /// Resolves `start` and `count` for variable `v` (lock held). `valueCount` is nil for reads.
    func extent(_ id: Int32, _ v: Int32, _ name: String, start: [Int]?, count: [Int]?,
                valueCount: Int?, call: String) throws -> (start: [Int], count: [Int]) {
        let object = "variable '\(name)'"
        let dimIDs = try dimensionIDs(id, v, name)
        let rank = dimIDs.count
        let start = start ?? [Int](repeating: 0, count: rank)
        guard start.count == rank else {
            throw failure(call, object, "start has \(start.count) indices; the variable has \(rank) dimensions")
        }
        if let count {
            guard count.count == rank else {
                throw failure(call, object, "count has \(count.count) entries; the variable has \(rank) dimensions")
            }
            if let valueCount, count.reduce(1, *) != valueCount {
                throw failure(call, object, "\(valueCount) values given for count \(count) (\(count.reduce(1, *)) entries)")
            }
            return (start, count)
        }
        let unlimited = try unlimitedIDs(id)
        var resolved = [Int](repeating: 0, count: rank)
        var growing: [Int] = []
        for axis in 0..<rank {
            if valueCount != nil && unlimited.contains(dimIDs[axis]) {
                growing.append(axis)
            } else {
                resolved[axis] = max(0, try dimensionLength(id, dimIDs[axis], name) - start[axis])
            }
        }
        if let valueCount {
            if growing.count > 1 {
                throw failure(call, object, "the variable has \(growing.count) unlimited dimensions: give count explicitly")
            }
            if let axis = growing.first {
                let others = resolved.enumerated().filter { $0.offset != axis }.map(\.element).reduce(1, *)
                guard others > 0, valueCount % others == 0 else {
                    throw failure(call, object, "\(valueCount) values do not fill whole records of \(others) entries")
                }
                resolved[axis] = valueCount / others
            }
            guard resolved.reduce(1, *) == valueCount else {
                throw failure(call, object, "\(valueCount) values given for count \(resolved) (\(resolved.reduce(1, *)) entries)")
            }
        }
        if valueCount == nil {
            // A read allocates product(count) values: the lengths come from the file, so the product is
            // computed with overflow checks and capped before anything is allocated.
            var n = 1
            for c in resolved {
                let (p, o) = n.multipliedReportingOverflow(by: c)
                guard !o, p <= Self.maxReadValues else {
                    throw failure(call, object, "dimensions \(resolved) hold more than \(Self.maxReadValues) values; the file is corrupt or not one dkc wrote")
                }
                n = p
            }
        }
        return (start, resolved)
    }

    /// The most values one read may return (2^32): far above any file dkc writes, far below memory exhaustion
    /// by a crafted dimension length.
    public static let maxReadValues = 1 << 32

    // MARK: - Numbers

    /// Writes `values` (C order) into `variable` at `start`/`count` (see the extent rules above).
    public func write<T: NetCDFNumeric>(_ values: [T], to variable: String,
                                        start: [Int]? = nil, count: [Int]? = nil) throws {
        try values.withUnsafeBufferPointer { try write($0, to: variable, start: start, count: count) }
    }

    /// Writes from a buffer without copying it (e.g. a view into a larger arena).
    public func write<T: NetCDFNumeric>(_ values: UnsafeBufferPointer<T>, to variable: String,
                                        start: [Int]? = nil, count: [Int]? = nil) throws {
        try NetCDF.withLock {
            let id = try dataMode()
            let v = try varid(variable)
            let (s, c) = try extent(id, v, variable, start: start, count: count,
                                    valueCount: values.count, call: "nc_put_vara")
            guard let base = values.baseAddress, values.count > 0 else { return }
            try check(T._putVara(id, v, s, c, base), "nc_put_vara (\(T.netCDFType))", "variable '\(variable)'")
        }
    }

    /// Reads `variable` (whole, or the hyperslab `start`/`count`) in C order.
    public func read<T: NetCDFNumeric>(_ variable: String, as type: T.Type = T.self,
                                       start: [Int]? = nil, count: [Int]? = nil) throws -> [T] {
        try NetCDF.withLock {
            let id = try dataMode()
            let v = try varid(variable)
            let (s, c) = try extent(id, v, variable, start: start, count: count, valueCount: nil, call: "nc_get_vara")
            let n = c.reduce(1, *)
            return try [T](unsafeUninitializedCapacity: n) { buffer, initialized in
                initialized = 0
                guard n > 0, let base = buffer.baseAddress else { return }
                try check(T._getVara(id, v, s, c, base), "nc_get_vara (\(T.netCDFType))", "variable '\(variable)'")
                initialized = n
            }
        }
    }

    /// Reads into a caller-owned buffer, whose size must equal product(count).
    public func read<T: NetCDFNumeric>(_ variable: String, into buffer: UnsafeMutableBufferPointer<T>,
                                       start: [Int]? = nil, count: [Int]? = nil) throws {
        try NetCDF.withLock {
            let id = try dataMode()
            let v = try varid(variable)
            let (s, c) = try extent(id, v, variable, start: start, count: count, valueCount: nil, call: "nc_get_vara")
            let n = c.reduce(1, *)
            guard buffer.count == n else {
                throw failure("nc_get_vara", "variable '\(variable)'", "buffer holds \(buffer.count) values; count \(c) needs \(n)")
            }
            guard n > 0, let base = buffer.baseAddress else { return }
            try check(T._getVara(id, v, s, c, base), "nc_get_vara (\(T.netCDFType))", "variable '\(variable)'")
        }
    }

    // MARK: - Strings

    /// Writes strings into an NC_STRING variable (`nc_put_vara_string`).
    public func write(_ strings: [String], to variable: String, start: [Int]? = nil, count: [Int]? = nil) throws {
        try NetCDF.withLock {
            let id = try dataMode()
            let v = try varid(variable)
            let (s, c) = try extent(id, v, variable, start: start, count: count,
                                    valueCount: strings.count, call: "nc_put_vara_string")
            guard !strings.isEmpty else { return }
            var pointers: [UnsafePointer<CChar>?] = strings.map { UnsafePointer(strdup($0)) }
            defer { for p in pointers { free(UnsafeMutablePointer(mutating: p)) } }
            try check(nc_put_vara_string(id, v, s, c, &pointers), "nc_put_vara_string", "variable '\(variable)'")
        }
    }

    /// Reads an NC_STRING variable (`nc_get_vara_string`, then `nc_free_string`). Unwritten
    /// entries read as "".
    public func readStrings(_ variable: String, start: [Int]? = nil, count: [Int]? = nil) throws -> [String] {
        try NetCDF.withLock {
            let id = try dataMode()
            let v = try varid(variable)
            let (s, c) = try extent(id, v, variable, start: start, count: count, valueCount: nil, call: "nc_get_vara_string")
            let n = c.reduce(1, *)
            guard n > 0 else { return [] }
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
            try check(nc_get_vara_string(id, v, s, c, &pointers), "nc_get_vara_string", "variable '\(variable)'")
            defer { _ = nc_free_string(n, &pointers) }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
    }
}
