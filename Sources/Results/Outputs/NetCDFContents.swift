import Foundation

/// Everything `ncdump -s` would show of a file, read through `NetCDFFile`: dimensions, global
/// attributes, and every variable with its type, dimensions, chunking, compression, attributes
/// and values. Two files with equal contents are the same dataset for every reader.
///
/// Values compare bit for bit, so NaN equals NaN (the fill) and 0 differs from -0; that is the
/// comparison the tests use to prove that merged parts write the file the whole table writes.
public struct NetCDFContents: Equatable {
    /// A variable's values in C order, with the type they are stored as.
    public enum Values: Equatable {
        case float([UInt32]), double([UInt64]), int32([Int32]), int64([Int64]), int8([Int8]), strings([String])
        /// A type this comparison does not read; compared by type only.
        case unread(NetCDFType)
    }

    public struct Variable: Equatable {
        public var info: NetCDFVariableInfo
        /// Attributes in definition order.
        public var attributes: [Attribute]
        public var values: Values
    }

    public struct Attribute: Equatable {
        public var name: String
        public var value: NetCDFAttribute

        public static func == (a: Attribute, b: Attribute) -> Bool {
            guard a.name == b.name else { return false }
            // NaN-valued numeric attributes compare by bits, not by ==.
            switch (a.value, b.value) {
            case let (.float(x), .float(y)): return x.map(\.bitPattern) == y.map(\.bitPattern)
            case let (.double(x), .double(y)): return x.map(\.bitPattern) == y.map(\.bitPattern)
            default: return a.value == b.value
            }
        }
    }

    public var dimensions: [NetCDFDimension]
    public var globalAttributes: [Attribute]
    public var variables: [Variable]

    /// Reads the whole file (intended for result files and tests, not for huge files).
    public init(path: String) throws {
        let file = try NetCDFFile.open(path: path)
        defer { try? file.close() }
        dimensions = try file.dimensions()
        globalAttributes = try file.attributeNames().map { Attribute(name: $0, value: try file.attribute($0)) }
        variables = try file.variableNames().map { name in
            let info = try file.variable(name)
            let attributes = try file.attributeNames(of: name).map { Attribute(name: $0, value: try file.attribute($0, of: name)) }
            let empty = info.shape.contains(0)
            let values: Values
            switch info.type {
            case .float: values = .float(empty ? [] : try file.read(name, as: Float.self).map(\.bitPattern))
            case .double: values = .double(empty ? [] : try file.read(name, as: Double.self).map(\.bitPattern))
            case .int32: values = .int32(empty ? [] : try file.read(name, as: Int32.self))
            case .int64: values = .int64(empty ? [] : try file.read(name, as: Int64.self))
            case .int8: values = .int8(empty ? [] : try file.read(name, as: Int8.self))
            case .string: values = .strings(empty ? [] : try file.readStrings(name))
            default: values = .unread(info.type)
            }
            return Variable(info: info, attributes: attributes, values: values)
        }
    }

    /// The differences from `other`, one sentence each, naming the dimension, variable or
    /// attribute (at most `limit`); empty when the contents are equal. Global attributes named in
    /// `ignoringGlobalAttributes` are left out of the comparison.
    public func differences(from other: NetCDFContents, ignoringGlobalAttributes ignored: Set<String> = [],
                            limit: Int = 20) -> [String] {
        var found: [String] = []
        func note(_ text: String) { if found.count < limit { found.append(text) } }

        if dimensions != other.dimensions {
            note("dimensions differ: \(dimensions.map { "\($0.name)=\($0.length)" }) vs \(other.dimensions.map { "\($0.name)=\($0.length)" })")
        }
        let mine = globalAttributes.filter { !ignored.contains($0.name) }
        let theirs = other.globalAttributes.filter { !ignored.contains($0.name) }
        if mine.map(\.name) != theirs.map(\.name) {
            note("global attribute names differ: \(mine.map(\.name)) vs \(theirs.map(\.name))")
        }
        for a in mine {
            if let b = theirs.first(where: { $0.name == a.name }), a != b {
                note("global attribute '\(a.name)' differs: \(a.value) vs \(b.value)")
            }
        }
        if variables.map(\.info.name) != other.variables.map(\.info.name) {
            note("variables differ: \(variables.map(\.info.name)) vs \(other.variables.map(\.info.name))")
        }
        for v in variables {
            guard let w = other.variables.first(where: { $0.info.name == v.info.name }) else { continue }
            let name = v.info.name
            if v.info != w.info { note("variable '\(name)' is defined differently: \(v.info) vs \(w.info)") }
            if v.attributes.map(\.name) != w.attributes.map(\.name) {
                note("attributes of '\(name)' differ: \(v.attributes.map(\.name)) vs \(w.attributes.map(\.name))")
            }
            for a in v.attributes {
                if let b = w.attributes.first(where: { $0.name == a.name }), a != b {
                    note("attribute '\(a.name)' of '\(name)' differs: \(a.value) vs \(b.value)")
                }
            }
            if v.values != w.values { note("values of '\(name)' differ\(Self.firstMismatch(v.values, w.values))") }
        }
        return found
    }

    /// " at flat index i: a vs b" for the first differing value of two value arrays of one type.
    private static func firstMismatch(_ a: Values, _ b: Values) -> String {
        func at<T: Equatable>(_ x: [T], _ y: [T], _ show: (T) -> String) -> String {
            guard x.count == y.count else { return ": \(x.count) vs \(y.count) values" }
            guard let i = x.indices.first(where: { x[$0] != y[$0] }) else { return "" }
            return " at flat index \(i): \(show(x[i])) vs \(show(y[i]))"
        }
        switch (a, b) {
        case let (.float(x), .float(y)): return at(x, y) { "\(Float(bitPattern: $0))" }
        case let (.double(x), .double(y)): return at(x, y) { "\(Double(bitPattern: $0))" }
        case let (.int32(x), .int32(y)): return at(x, y) { "\($0)" }
        case let (.int64(x), .int64(y)): return at(x, y) { "\($0)" }
        case let (.int8(x), .int8(y)): return at(x, y) { "\($0)" }
        case let (.strings(x), .strings(y)): return at(x, y) { "'\($0)'" }
        default: return ": stored types differ"
        }
    }
}
