import Foundation

/// A results table (scores, circuits, acquisition) whose parts, computed by parts of one sweep, can be
/// joined into the table one job over the whole grid would have produced.
public protocol MergeableTable {
    /// Adds `other`'s checkpoints, axis labels and cells; a cell present in both must hold the same
    /// values. Throws without changing `self` when the tables cannot be joined.
    mutating func merge(_ other: Self) throws
    /// How messages name the table: "score", "circuit", "acquisition".
    static var tableName: String { get }
}

extension MergeableTable {
    /// The union of `parts` (at least one), as `merge` defines it.
    public static func merged(_ parts: [Self]) throws -> Self {
        guard var result = parts.first else {
            throw OutputFileError(.invalidArgument, reason: "there are no \(tableName) tables to merge")
        }
        for part in parts.dropFirst() { try result.merge(part) }
        return result
    }
}

/// Adds `other` to `cells`; a cell in both must hold equal values (the tables' `==` is NaN-aware).
func mergeCells<Key: Hashable & CustomStringConvertible, Value: Equatable>(_ cells: inout [Key: Value], _ other: [Key: Value],
                                                                             table: String, hint: String) throws {
    for (cell, value) in other {
        if let mine = cells[cell], mine != value {
            throw OutputFileError(.conflictingCell(cell.description), reason: "both \(table) tables hold cell \(cell) with different values", hint: hint)
        }
        cells[cell] = value
    }
}
