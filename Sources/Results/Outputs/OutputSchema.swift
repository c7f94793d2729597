import Foundation

/// Fill values of the result files: what a reader sees for a cell that was not computed (yet).
/// Float and double variables use NaN; integer variables use these.
public enum OutputFill {
    /// Counts (`n_samples`, `n_edges`, `n_nodes`, `n_test`, `n_entities`), int64.
    public static let count: Int = -1
    /// Masks (`in_circuit`), int8: -1 for a circuit not evaluated, else 0 or 1.
    public static let flag: Int8 = -1
}

/// The TransformerLens hooks the graph's nodes stand for, as the `hook_names` attribute states them.
enum HookNames {
    static let upstream = "input: hook_embed (token embedding only; the positional embedding belongs to no node); "
        + "a{l}.h{h}: blocks.{l}.attn.hook_result[:, :, h] (head h's output, no bias); "
        + "m{l}: blocks.{l}.hook_mlp_out"
    static let downstream = "a{l}.h{h}<q>, <k>, <v>: blocks.{l}.hook_q_input, hook_k_input, hook_v_input[:, :, h] "
        + "(head h's own query, key and value input, before ln1); m{l}: blocks.{l}.hook_mlp_in (before ln2); "
        + "logits: blocks.{L-1}.hook_resid_post (the final residual stream, before ln_final)"
    static let edges = "rows (upstream): " + upstream + ". Columns (downstream): " + downstream
}

/// Attribute lists, in the order they are written.
typealias AttributeList = [(String, NetCDFAttribute)]

func describe(_ longName: String, units: String? = nil, _ extra: AttributeList = []) -> AttributeList {
    var list: AttributeList = [("long_name", .text(longName))]
    if let units { list.append(("units", .text(units))) }
    return list + extra
}

/// Defines the dimensions and variables of a result file, then writes their data.
///
/// All definitions come first (the file stays in define mode), data writes queued with `later`
/// run in `finish()`, in the order they were queued, so the same table always produces the same
/// sequence of library calls.
final class OutputFileWriter {
    let file: NetCDFFile
    let compression: NetCDFCompression
    private var lengths: [String: Int] = [:]
    private var pending: [() throws -> Void] = []

    init(_ file: NetCDFFile, compression: NetCDFCompression) {
        self.file = file; self.compression = compression
    }

    /// A fixed dimension; an empty axis becomes an unlimited dimension of length 0 (NetCDF has
    /// no fixed dimension of length 0).
    func dimension(_ name: String, length: Int) throws {
        try file.addDimension(name, length: length > 0 ? length : nil)
        lengths[name] = length
    }

    /// Dimension `name` and the string coordinate variable `name(name)` holding `labels`.
    func stringCoordinate(_ name: String, _ labels: [String], _ attributes: AttributeList) throws {
        try dimension(name, length: labels.count)
        try stringVariable(name, dimensions: [name], labels, attributes)
    }

    /// A string variable over existing dimensions (strings are not compressed: NetCDF-4 cannot).
    func stringVariable(_ name: String, dimensions: [String], _ values: [String], _ attributes: AttributeList) throws {
        try file.addVariable(name, type: .string, dimensions: dimensions)
        try setAttributes(attributes, on: name)
        if !values.isEmpty { later { try self.file.write(values, to: name) } }
    }

    /// Dimension `name` and the numeric coordinate variable `name(name)` holding `values`.
    func numericCoordinate<T: NetCDFNumeric>(_ name: String, _ values: [T], _ attributes: AttributeList) throws {
        try dimension(name, length: values.count)
        try variable(name, type: T.netCDFType, dimensions: [name], gridRank: 0, fill: nil, attributes)
        if !values.isEmpty { later { try self.file.write(values, to: name) } }
    }

    /// A compressed numeric variable. Its chunks are 1 along the first `gridRank` dimensions (the
    /// grid: one cell per chunk) and whole along the others (the cell's own dimensions). A
    /// variable over the checkpoints (other than the coordinate itself) names `checkpoint_path`
    /// in its `coordinates` attribute, so xarray carries the folder along with the step.
    func variable(_ name: String, type: NetCDFType, dimensions: [String], gridRank: Int,
                  fill: NetCDFFill?, _ attributes: AttributeList) throws {
        let chunks = dimensions.enumerated().map { axis, dim in axis < gridRank ? 1 : max(1, lengths[dim] ?? 1) }
        try file.addVariable(name, type: type, dimensions: dimensions, compression: compression,
                             chunkSizes: chunks, fill: fill)
        try setAttributes(attributes, on: name)
        if name != ResultName.checkpoint && dimensions.first == ResultName.checkpoint {
            try file.setAttribute("coordinates", ResultName.checkpointPath, on: name)
        }
    }

    func setAttributes(_ attributes: AttributeList, on variable: String) throws {
        for (key, value) in attributes { try file.setAttribute(key, value, on: variable) }
    }

    /// Writes a result file of `kind` to `url` atomically (temporary file, then rename): the
    /// global attributes (the history of the file already there kept when `options` say so),
    /// then what `body` defines and queues with `later`, then the queued data.
    static func write(_ kind: OutputFileKind, to url: URL, provenance: Provenance, options: OutputWriteOptions,
                      _ body: (OutputFileWriter, NetCDFFile) throws -> Void) throws {
        let compression = try options.compression()
        let previous = options.keepHistory ? OutputFileHeader.existing(at: url, kind: kind) : nil
        let header = OutputFileHeader.make(kind: kind, provenance: provenance, previous: previous)
        try NetCDFFile.writeAtomically(to: url) { file in
            let w = OutputFileWriter(file, compression: compression)
            try header.write(to: file)
            try body(w, file)
            try w.finish()
        }
    }

    /// Queues a data write for `finish()`.
    func later(_ body: @escaping () throws -> Void) { pending.append(body) }

    /// Queues writing `values` to the whole of variable `name`.
    func queue<T: NetCDFNumeric>(_ values: [T], to name: String) { later { try self.file.write(values, to: name) } }

    func finish() throws {
        for write in pending { try write() }
        pending.removeAll()
    }
}

/// Reads a result file, checking that it is the dkc file of the expected kind; every error names
/// the file and the missing or malformed dimension or variable.
struct OutputFileReader {
    let file: NetCDFFile
    let kind: OutputFileKind

    init(url: URL, kind: OutputFileKind) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw OutputFileError(.invalidArgument, path: url.path, reason: "no such file",
                                  hint: "give the path of a \(kind.fileName) written by dkc")
        }
        file = try NetCDFFile.open(path: url.path)
        self.kind = kind
        if file.hasAttribute("dkc_file"), let found = try? file.textAttribute("dkc_file"), found != kind.rawValue {
            try? file.close()
            throw OutputFileError(.wrongLayout(variable: "dkc_file"), path: url.path,
                                  reason: "this is a dkc \(found) file, not a \(kind.rawValue) file",
                                  hint: "give the \(kind.fileName) of the run")
        }
    }

    func close() { try? file.close() }

    private func notOurs(_ kindOfError: OutputFileError.Kind, _ reason: String) -> OutputFileError {
        OutputFileError(kindOfError, path: file.path, reason: reason,
                        hint: "this is not a dkc \(kind.fileName), or it was written by an incompatible version; give the \(kind.fileName) written by dkc")
    }

    /// The length of a dimension the file must have.
    func length(_ name: String) throws -> Int {
        guard file.hasDimension(name) else {
            throw notOurs(.missingDimension(name), "dimension '\(name)' is missing")
        }
        return try file.dimension(name).length
    }

    /// Checks that `name` exists with exactly these dimensions and one of these types.
    @discardableResult
    func require(_ name: String, dimensions: [String], types: [NetCDFType]) throws -> NetCDFVariableInfo {
        guard file.hasVariable(name) else {
            throw notOurs(.missingVariable(name), "variable '\(name)' is missing (expected \(name)(\(dimensions.joined(separator: ", "))))")
        }
        let info = try file.variable(name)
        guard info.dimensions == dimensions else {
            throw notOurs(.wrongLayout(variable: name),
                          "variable '\(name)' has dimensions (\(info.dimensions.joined(separator: ", "))), expected (\(dimensions.joined(separator: ", ")))")
        }
        guard types.contains(info.type) else {
            throw notOurs(.wrongLayout(variable: name), "variable '\(name)' is \(info.type), expected \(types.map(\.description).joined(separator: " or "))")
        }
        return info
    }

    /// A string coordinate variable `name(name)`; its labels must be unique.
    func labels(_ name: String) throws -> [String] {
        _ = try length(name)
        try require(name, dimensions: [name], types: [.string])
        let labels = try file.readStrings(name)
        if let twice = EdgeLayout.firstDuplicate(labels) {
            throw notOurs(.duplicateCoordinate(dimension: name), "coordinate '\(name)' lists '\(twice)' twice")
        }
        return labels
    }

    /// An int64 coordinate variable `name(name)`; its values must be unique.
    func integers(_ name: String) throws -> [Int64] {
        _ = try length(name)
        try require(name, dimensions: [name], types: [.int64, .int32])
        let values = try file.read(name, as: Int64.self)
        if Set(values).count != values.count {
            throw notOurs(.duplicateCoordinate(dimension: name), "coordinate '\(name)' repeats a value")
        }
        return values
    }

    /// The checkpoint axis: `checkpoint(checkpoint)` steps and `checkpoint_path(checkpoint)`.
    func checkpoints() throws -> (steps: [Int64], axis: CheckpointAxis) {
        let steps = try integers(ResultName.checkpoint)
        try require(ResultName.checkpointPath, dimensions: [ResultName.checkpoint], types: [.string])
        let paths = steps.isEmpty ? [] : try file.readStrings(ResultName.checkpointPath)
        var axis = CheckpointAxis()
        for (step, path) in zip(steps, paths) { try axis.insert(step: step, path: path) }
        return (steps, axis)
    }

    /// `upstream`, `downstream` and `is_edge`.
    func edges() throws -> EdgeLayout {
        let upstream = try labels(ResultName.upstream)
        let downstream = try labels(ResultName.downstream)
        try require(ResultName.isEdge, dimensions: [ResultName.upstream, ResultName.downstream], types: [.int8])
        do {
            return try EdgeLayout(upstream: upstream, downstream: downstream, isEdge: try file.read(ResultName.isEdge, as: Int8.self))
        } catch let error as OutputFileError {
            throw notOurs(error.kind, "the edge layout is not valid: \(error.reason)")
        }
    }

    /// A whole numeric variable, checked against its expected dimensions.
    func values<T: NetCDFNumeric>(_ name: String, dimensions: [String], types: [NetCDFType], as: T.Type = T.self) throws -> [T] {
        let info = try require(name, dimensions: dimensions, types: types)
        return info.shape.contains(0) ? [] : try file.read(name, as: T.self)
    }

    /// A numeric attribute of a variable (first value), or a missing-attribute error.
    func numericAttribute<T: NetCDFNumeric>(_ name: String, of variable: String, as: T.Type = T.self) throws -> T {
        guard file.hasAttribute(name, of: variable), let value = try file.numericAttribute(name, of: variable, as: T.self).first else {
            throw notOurs(.missingVariable("\(variable):\(name)"), "variable '\(variable)' has no attribute '\(name)'")
        }
        return value
    }

    /// A text attribute of a variable, or a missing-attribute error.
    func textAttribute(_ name: String, of variable: String) throws -> String {
        guard file.hasAttribute(name, of: variable) else {
            throw notOurs(.missingVariable("\(variable):\(name)"), "variable '\(variable)' has no attribute '\(name)'")
        }
        return try file.textAttribute(name, of: variable)
    }
}

/// Row-major offsets of a grid: index of (i0, i1, ...) in a dense array of `shape`.
struct GridIndex {
    let shape: [Int]
    var count: Int { shape.reduce(1, *) }

    func offset(_ index: [Int]) -> Int {
        var offset = 0
        for (i, n) in zip(index, shape) { offset = offset * n + i }
        return offset
    }
}

/// Position of each label in a sorted coordinate.
func positions<T: Hashable>(_ values: [T]) -> [T: Int] {
    Dictionary(uniqueKeysWithValues: values.enumerated().map { ($1, $0) })
}

/// Coordinates shared by several files.
extension OutputFileWriter {
    /// `checkpoint(checkpoint)` (int64 steps, ascending) and `checkpoint_path(checkpoint)`.
    func checkpointCoordinates(_ axis: CheckpointAxis) throws {
        let steps = axis.steps
        try numericCoordinate(ResultName.checkpoint, steps, describe("training step of the checkpoint", units: "1"))
        try stringVariable(ResultName.checkpointPath, dimensions: [ResultName.checkpoint], steps.map { axis.path(of: $0)! },
                           describe("checkpoint folder, as given"))
    }

    /// `upstream(upstream)`, `downstream(downstream)` and `is_edge(upstream, downstream)`.
    func edgeCoordinates(_ edges: EdgeLayout) throws {
        try stringCoordinate(ResultName.upstream, edges.upstream,
                             describe("upstream node (EAP-IG name), forward-index order",
                                      [("hook_names", .text(HookNames.upstream))]))
        try stringCoordinate(ResultName.downstream, edges.downstream,
                             describe("downstream node input (EAP-IG name), backward-index order",
                                      [("hook_names", .text(HookNames.downstream))]))
        try variable(ResultName.isEdge, type: .int8, dimensions: [ResultName.upstream, ResultName.downstream], gridRank: 0, fill: nil,
                     describe("1 where (upstream, downstream) is an edge of the graph, else 0", units: "1"))
        later { try self.file.write(edges.isEdge, to: ResultName.isEdge) }
    }
}

/// `long_name` of the label coordinates.
enum AxisNames {
    static let task = "circuit task: the attribute the prompts ask for"
    static let type = "entity type ('all' when not filtered)"
    static let frequency = "frequency bucket of the entities ('all' when not filtered)"
    static let attribute = "attribute the prompts ask for"
    static let topn = "number of top-|score| edges kept before pruning"
    static let targetType = "entity type of the test entities the circuit is tested on"
    static let targetFrequency = "frequency bucket of the test entities the circuit is tested on"
}
