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
    /// Writes the table to `url` atomically (temporary file, then rename). Missing cells are
    /// left unwritten (NaN / -1 through the fill values). The same table and provenance always
    /// give the same file.
    public func write(to url: URL, provenance: Provenance, options: OutputWriteOptions = OutputWriteOptions()) throws {
        let layout = grid.layout
        let (nF, nB) = (edges.nForward, edges.nBackward)
        let gridDims = ResultGrid.dimensions

        try OutputFileWriter.write(.scores, to: url, provenance: provenance, options: options) { w, file in
            try layout.writeCoordinates(w, checkpoints: checkpoints)
            try w.edgeCoordinates(edges)

            try w.variable(ResultName.score, type: .float, dimensions: gridDims + [ResultName.upstream, ResultName.downstream], gridRank: 4, fill: .nan,
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
            try w.variable(ResultName.nSamples, type: .int64, dimensions: gridDims, gridRank: 4, fill: .value(Double(OutputFill.count)),
                           describe("samples attributed in the cell", units: "1",
                                    [("comment", .text("-1 where the cell was not computed"))]))
            try w.variable(ResultName.seconds, type: .double, dimensions: gridDims, gridRank: 4, fill: .nan,
                           describe("wall time of the cell", units: "s"))

            // Cells in file order; scores one chunk (one cell) per write, unwritten cells take no space.
            var nSamples = [Int](repeating: OutputFill.count, count: layout.count)
            var seconds = [Double](repeating: .nan, count: layout.count)
            for (position, _, value) in layout.inFileOrder(cells) {
                let o = layout.index.offset(position)
                nSamples[o] = value.nSamples
                seconds[o] = value.seconds
                w.later { try file.write(value.scores, to: ResultName.score, start: position + [0, 0], count: [1, 1, 1, 1, nF, nB]) }
            }
            if layout.count > 0 {
                w.queue(nSamples, to: ResultName.nSamples); w.queue(seconds, to: ResultName.seconds)
            }
        }
    }

    /// Reads a scores.nc back into a table; the file's label order becomes the table's
    /// canonical order. A cell is present where `n_samples` is not -1.
    public static func read(from url: URL) throws -> ScoresTable {
        let reader = try OutputFileReader(url: url, kind: .scores)
        defer { reader.close() }
        let (layout, checkpoints) = try ResultGridLayout.read(reader)
        let edges = try reader.edges()
        let gridDims = ResultGrid.dimensions
        try reader.require(ResultName.score, dimensions: gridDims + [ResultName.upstream, ResultName.downstream], types: [.float])
        let attributes = ScoreAttributes(
            method: try reader.textAttribute("method", of: ResultName.score),
            igSteps: try reader.numericAttribute("ig_steps", of: ResultName.score, as: Int.self),
            metric: try reader.textAttribute("metric", of: ResultName.score),
            aggregation: try reader.textAttribute("aggregation", of: ResultName.score),
            batchSize: try reader.numericAttribute("batch_size", of: ResultName.score, as: Int.self),
            normalisation: try reader.textAttribute("normalisation", of: ResultName.score),
            signConvention: try reader.textAttribute("sign_convention", of: ResultName.score))
        let nSamples = try reader.values(ResultName.nSamples, dimensions: gridDims, types: [.int64, .int32], as: Int.self)
        let seconds = try reader.values(ResultName.seconds, dimensions: gridDims, types: [.double, .float], as: Double.self)

        let (nF, nB) = (edges.nForward, edges.nBackward)
        var cells: [ResultCell: Cell] = [:]
        for position in layout.allPositions {
            let offset = layout.index.offset(position)
            guard nSamples[offset] != OutputFill.count else { continue }
            let scores = try reader.file.read(ResultName.score, as: Float.self, start: position + [0, 0], count: [1, 1, 1, 1, nF, nB])
            cells[layout.cell(at: position)] = Cell(scores: scores, nSamples: nSamples[offset], seconds: seconds[offset])
        }
        return ScoresTable(edges: edges, attributes: attributes, grid: ResultGrid(layout, checkpoints: checkpoints), cells: cells)
    }
}
