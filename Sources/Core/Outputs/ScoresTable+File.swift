import Foundation

/// scores.nc: writing a `ScoresTable` and reading it back (docs/outputs.md).
///
/// Layout (C order, chunks one grid cell each):
///
///     checkpoint(checkpoint) int64, checkpoint_path(checkpoint) string
///     task(task), type(type), frequency(frequency), upstream(upstream), downstream(downstream) string
///     is_edge(upstream, downstream) byte
///     score(checkpoint, task, type, frequency, upstream, downstream) float   chunk (1, 1, 1, 1, n_forward, n_backward)
///     n_samples(checkpoint, task, type, frequency) int64, fill -1
///     seconds(checkpoint, task, type, frequency) double, fill NaN
extension ScoresTable {
    static let gridDimensions = ["checkpoint", "task", "type", "frequency"]

    /// Writes the table to `url` atomically (temporary file, then rename). Missing cells are
    /// left unwritten (NaN / -1 through the fill values). The same table and provenance always
    /// give the same file.
    public func write(to url: URL, provenance: Provenance, options: OutputWriteOptions = OutputWriteOptions()) throws {
        let compression = try options.compression()
        let previous = options.keepHistory ? OutputFileHeader.existing(at: url, kind: .scores) : nil
        let header = OutputFileHeader.make(kind: .scores, provenance: provenance, previous: previous)
        let steps = checkpoints.steps
        let axes = [tasks.sorted, types.sorted, frequencies.sorted]
        let grid = GridIndex(shape: [steps.count] + axes.map(\.count))
        let (nF, nB) = (edges.nForward, edges.nBackward)
        let gridDims = Self.gridDimensions

        try NetCDFFile.writeAtomically(to: url) { file in
            let w = OutputFileWriter(file, compression: compression)
            try header.write(to: file)
            try w.checkpointCoordinates(checkpoints)
            try w.stringCoordinate("task", axes[0], describe(AxisNames.task))
            try w.stringCoordinate("type", axes[1], describe(AxisNames.type))
            try w.stringCoordinate("frequency", axes[2], describe(AxisNames.frequency))
            try w.edgeCoordinates(edges)

            try w.variable("score", type: .float, dimensions: gridDims + ["upstream", "downstream"], gridRank: 4, fill: .nan,
                           describe("edge attribution score", units: "1", [
                               ("method", .text(attributes.method)),
                               ("ig_steps", .int32([Int32(clamping: attributes.igSteps)])),
                               ("metric", .text(attributes.metric)),
                               ("aggregation", .text(attributes.aggregation)),
                               ("batch_size", .int32([Int32(clamping: attributes.batchSize)])),
                               ("normalisation", .text(attributes.normalisation)),
                               ("sign_convention", .text(attributes.signConvention)),
                               ("hook_names", .text(HookNames.edges)),
                               ("comment", .text("NaN where (upstream, downstream) is not an edge or the cell was not computed")),
                           ]))
            try w.variable("n_samples", type: .int64, dimensions: gridDims, gridRank: 4, fill: .value(Double(OutputFill.count)),
                           describe("samples attributed in the cell", units: "1",
                                    [("comment", .text("-1 where the cell was not computed"))]))
            try w.variable("seconds", type: .double, dimensions: gridDims, gridRank: 4, fill: .nan,
                           describe("wall time of the cell", units: "s"))

            // Cells in file order; scores one chunk (one cell) per write, unwritten cells take no space.
            var nSamples = [Int](repeating: OutputFill.count, count: grid.count)
            var seconds = [Double](repeating: .nan, count: grid.count)
            let at = (positions(steps), positions(axes[0]), positions(axes[1]), positions(axes[2]))
            let present = cells.map { cell, value -> (index: [Int], value: Cell) in
                ([at.0[cell.checkpoint]!, at.1[cell.task]!, at.2[cell.type]!, at.3[cell.frequency]!], value)
            }.sorted { grid.offset($0.index) < grid.offset($1.index) }
            for (index, value) in present {
                nSamples[grid.offset(index)] = value.nSamples
                seconds[grid.offset(index)] = value.seconds
                w.later { try file.write(value.scores, to: "score", start: index + [0, 0], count: [1, 1, 1, 1, nF, nB]) }
            }
            if grid.count > 0 {
                w.later { try file.write(nSamples, to: "n_samples") }
                w.later { try file.write(seconds, to: "seconds") }
            }
            try w.finish()
        }
    }

    /// Reads a scores.nc back into a table; the file's label order becomes the table's
    /// canonical order. A cell is present where `n_samples` is not -1.
    public static func read(from url: URL) throws -> ScoresTable {
        let reader = try OutputFileReader(url: url, kind: .scores)
        defer { reader.close() }
        let (steps, checkpoints) = try reader.checkpoints()
        let labels = [try reader.labels("task"), try reader.labels("type"), try reader.labels("frequency")]
        let edges = try reader.edges()
        let gridDims = gridDimensions
        try reader.require("score", dimensions: gridDims + ["upstream", "downstream"], types: [.float])
        let attributes = ScoreAttributes(
            method: try reader.textAttribute("method", of: "score"),
            igSteps: try reader.numericAttribute("ig_steps", of: "score", as: Int.self),
            metric: try reader.textAttribute("metric", of: "score"),
            aggregation: try reader.textAttribute("aggregation", of: "score"),
            batchSize: try reader.numericAttribute("batch_size", of: "score", as: Int.self),
            normalisation: try reader.textAttribute("normalisation", of: "score"),
            signConvention: try reader.textAttribute("sign_convention", of: "score"))
        let nSamples = try reader.values("n_samples", dimensions: gridDims, types: [.int64, .int32], as: Int.self)
        let seconds = try reader.values("seconds", dimensions: gridDims, types: [.double, .float], as: Double.self)

        let grid = GridIndex(shape: [steps.count] + labels.map(\.count))
        let (nF, nB) = (edges.nForward, edges.nBackward)
        var cells: [ResultCell: Cell] = [:]
        for c in steps.indices {
            for t in labels[0].indices {
                for y in labels[1].indices {
                    for f in labels[2].indices {
                        let offset = grid.offset([c, t, y, f])
                        guard nSamples[offset] != OutputFill.count else { continue }
                        let scores = try reader.file.read("score", as: Float.self, start: [c, t, y, f, 0, 0], count: [1, 1, 1, 1, nF, nB])
                        cells[ResultCell(checkpoint: steps[c], task: labels[0][t], type: labels[1][y], frequency: labels[2][f])] =
                            Cell(scores: scores, nSamples: nSamples[offset], seconds: seconds[offset])
                    }
                }
            }
        }
        return ScoresTable(edges: edges, attributes: attributes, checkpoints: checkpoints,
                           tasks: LabelAxis(labels[0], canonicalOrder: labels[0]),
                           types: LabelAxis(labels[1], canonicalOrder: labels[1]),
                           frequencies: LabelAxis(labels[2], canonicalOrder: labels[2]), cells: cells)
    }
}
