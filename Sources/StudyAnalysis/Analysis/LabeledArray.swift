import Foundation

/// Values in C order over named dimensions (the last varies fastest); NaN marks a missing value.
public struct LabeledArray: Equatable, Sendable {
    public let dimensions: [String]
    public let shape: [Int]
    public var values: [Double]

    public init(dimensions: [String], shape: [Int], values: [Double]) {
        precondition(dimensions.count == shape.count && shape.reduce(1, *) == values.count,
                     "LabeledArray: \(values.count) values for shape \(shape) over \(dimensions)")
        self.dimensions = dimensions
        self.shape = shape
        self.values = values
    }

    /// An array of NaN.
    public init(dimensions: [String], shape: [Int]) {
        self.init(dimensions: dimensions, shape: shape, values: [Double](repeating: .nan, count: shape.reduce(1, *)))
    }

    /// Flat offset of one index per dimension, in `dimensions` order.
    public func offset(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "LabeledArray: \(index.count) indices for \(shape.count) dimensions")
        var offset = 0
        for (i, n) in zip(index, shape) {
            precondition(i >= 0 && i < n, "LabeledArray: index \(i) outside 0..<\(n)")
            offset = offset * n + i
        }
        return offset
    }

    /// The value at one index per dimension, in `dimensions` order.
    public subscript(_ index: Int...) -> Double {
        get { values[offset(index)] }
        set { values[offset(index)] = newValue }
    }

    /// The values along the first dimension with every other index fixed (e.g. a series over
    /// checkpoints), `rest` in the order of the remaining dimensions.
    public func series(_ rest: Int...) -> [Double] {
        (0..<shape[0]).map { values[offset([$0] + rest)] }
    }

    /// Whether any value is not NaN.
    public var hasValues: Bool { values.contains { !$0.isNaN } }
}
