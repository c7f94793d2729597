import Foundation
import Results

/// One input NetCDF file read by variable and dimension *name* (docs/outputs.md is the contract; the
/// order of a variable's dimensions in the file does not matter).
///
/// Missing values: NaN, the variable's `_FillValue` / `missing_value` attribute, or, without
/// those attributes, the library's default fill for the type (what an unwritten entry holds)
/// all read as NaN. Every failure is an `AnalysisError` naming this file.
public final class AnalysisInputFile {
    /// The path, as printed in errors and in the report.
    public let path: String
    let file: NetCDFFile

    public init(path: String) throws {
        self.path = path
        do { file = try NetCDFFile.open(path: path) } catch {
            throw AnalysisError.layout(file: path, object: "file", problem: "cannot be opened (\(error))")
        }
    }

    /// Whether the file has this variable.
    public func has(_ variable: String) -> Bool { file.hasVariable(variable) }

    /// Type, dimensions and shape of a variable.
    public func info(_ variable: String) throws -> NetCDFVariableInfo {
        guard file.hasVariable(variable) else {
            let known = (try? file.variableNames())?.joined(separator: ", ") ?? ""
            throw AnalysisError.layout(file: path, object: "variable '\(variable)'",
                                       problem: "missing (the file has: \(known))")
        }
        return try wrap(variable) { try file.variable(variable) }
    }

    /// Length of a dimension, nil when the file lacks it.
    public func dimensionLength(_ name: String) -> Int? {
        guard file.hasDimension(name) else { return nil }
        return try? file.dimension(name).length
    }

    /// A string coordinate variable `name(name)`.
    public func labels(_ name: String) throws -> [String] {
        let v = try info(name)
        guard v.dimensions == [name] else {
            throw AnalysisError.layout(file: path, object: "variable '\(name)'",
                                       problem: "has dimensions \(v.dimensions); expected (\(name))")
        }
        guard v.type == .string else {
            throw AnalysisError.layout(file: path, object: "variable '\(name)'", problem: "is \(v.type); expected string")
        }
        return try wrap(name) { try file.readStrings(name) }
    }

    /// A string variable over one dimension, e.g. `test_entity_type(test_entity)`.
    public func strings(_ name: String, over dimension: String) throws -> [String] {
        let v = try info(name)
        guard v.dimensions == [dimension], v.type == .string else {
            throw AnalysisError.layout(file: path, object: "variable '\(name)'",
                                       problem: "is \(v.type) over \(v.dimensions); expected string over (\(dimension))")
        }
        return try wrap(name) { try file.readStrings(name) }
    }

    /// An integer coordinate variable `name(name)` (e.g. `checkpoint`, `topn`).
    public func integers(_ name: String) throws -> [Int64] {
        let v = try info(name)
        guard v.dimensions == [name] else {
            throw AnalysisError.layout(file: path, object: "variable '\(name)'",
                                       problem: "has dimensions \(v.dimensions); expected (\(name))")
        }
        return try wrap(name) { try file.read(name, as: Int64.self) }
    }

    /// A text attribute of the file, nil when absent.
    public func globalText(_ name: String) -> String? { try? file.textAttribute(name) }

    /// The values that mark a missing entry of `variable` (besides NaN).
    func fillValues(_ variable: String, _ type: NetCDFType) -> [Double] {
        var fills: [Double] = []
        for attribute in ["_FillValue", "missing_value"] where file.hasAttribute(attribute, of: variable) {
            if let values = try? file.numericAttribute(attribute, of: variable, as: Double.self) { fills += values }
        }
        if fills.isEmpty {
            switch type {
            case .float, .double: fills = [9.9692099683868690e+36]
            case .int8: fills = [-127]
            case .int32: fills = [-2147483647]
            case .int64: fills = [Double(Int64(-9223372036854775806))]
            default: break
            }
        }
        return fills
    }

    /// Reads `variable` with the dimensions in `fixed` held at one index each, and returns the
    /// remaining values in C order over `trailing` (which must name every other dimension),
    /// missing entries as NaN.  (product of trailing lengths)
    public func slice(_ variable: String, fixed: [String: Int], trailing: [String]) throws -> [Double] {
        let raw: [Double] = try rawSlice(variable, fixed: fixed, trailing: trailing)
        let fills = fillValues(variable, try info(variable).type)
        guard !fills.isEmpty else { return raw }
        return raw.map { fills.contains($0) ? .nan : $0 }
    }

    /// As `slice`, with the values converted to `T` and no masking (the caller checks fills,
    /// e.g. `in_circuit` entries outside 0/1).
    public func rawSlice<T: NetCDFNumeric>(_ variable: String, fixed: [String: Int], trailing: [String],
                                          as type: T.Type = T.self) throws -> [T] {
        let v = try info(variable)
        let expected = Set(fixed.keys).union(trailing)
        guard Set(v.dimensions) == expected, expected.count == fixed.count + trailing.count else {
            throw AnalysisError.layout(file: path, object: "variable '\(variable)'",
                                       problem: "has dimensions (\(v.dimensions.joined(separator: ", "))); expected " +
                                           "(\((Array(fixed.keys).sorted() + trailing).joined(separator: ", ")))")
        }
        var start: [Int] = [], count: [Int] = [], kept: [String] = [], keptShape: [Int] = []
        for (d, length) in zip(v.dimensions, v.shape) {
            if let i = fixed[d] {
                guard i >= 0 && i < length else {
                    throw AnalysisError.layout(file: path, object: "variable '\(variable)'",
                                               problem: "index \(i) of dimension '\(d)' is outside its length \(length)")
                }
                start.append(i); count.append(1)
            } else {
                start.append(0); count.append(length); kept.append(d); keptShape.append(length)
            }
        }
        let values = try wrap(variable) { try file.read(variable, as: T.self, start: start, count: count) }
        return kept == trailing ? values : permute(values, from: kept, shape: keptShape, to: trailing)
    }

    /// The whole variable, missing entries as NaN, with its dimensions in `order`.
    public func array(_ variable: String, order: [String]) throws -> LabeledArray {
        let values = try slice(variable, fixed: [:], trailing: order)
        let v = try info(variable)
        let shape = order.map { d in v.shape[v.dimensions.firstIndex(of: d)!] }
        return LabeledArray(dimensions: order, shape: shape, values: values)
    }

    /// Reorders C-order `values` over dimensions `from` into C order over `to` (a permutation of `from`).
    private func permute<T>(_ values: [T], from: [String], shape: [Int], to: [String]) -> [T] {
        let rank = from.count
        var stridesFrom = [Int](repeating: 1, count: rank)
        for a in stride(from: rank - 2, through: 0, by: -1) { stridesFrom[a] = stridesFrom[a + 1] * shape[a + 1] }
        let axes = to.map { from.firstIndex(of: $0)! }
        let newShape = axes.map { shape[$0] }
        var out: [T] = []
        out.reserveCapacity(values.count)
        var index = [Int](repeating: 0, count: rank)
        for _ in 0..<values.count {
            var offset = 0
            for a in 0..<rank { offset += index[a] * stridesFrom[axes[a]] }
            out.append(values[offset])
            var a = rank - 1
            while a >= 0 {
                index[a] += 1
                if index[a] < newShape[a] { break }
                index[a] = 0
                a -= 1
            }
        }
        return out
    }

    private func wrap<T>(_ variable: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as AnalysisError { throw error } catch {
            throw AnalysisError.layout(file: path, object: "variable '\(variable)'", problem: "\(error)")
        }
    }
}
