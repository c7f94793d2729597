import Foundation

/// A heat map of a rows × columns matrix with labelled ticks, optional separators, a shaded
/// background region and a colour bar.
///
/// NaN cells are not drawn: they show the background (light grey where `background` is true,
/// e.g. valid edges outside the circuit; white elsewhere). Cells are `<rect>`s inside a
/// `<g class="cells">`; the colour bar is a `<g class="colorbar">`.
public struct HeatMap {
    public var title: String
    public var rows: Int
    public var columns: Int
    /// Row-major values (rows × columns), NaN = no value.
    public var values: [Double]
    /// Where the matrix is defined (drawn light grey under missing values); nil: nowhere.
    public var background: [Bool]?
    public var rowTicks: [(index: Int, label: String)]
    public var columnTicks: [(index: Int, label: String)]
    /// Thin lines drawn before these row / column indices (group boundaries such as layers).
    public var rowSeparators: [Int] = []
    public var columnSeparators: [Int] = []
    public var xLabel: String
    public var yLabel: String
    public var colorLabel: String
    public var scale: ColorScale
    /// Tick labels of the colour bar as percentages.
    public var colorPercent = false

    public init(title: String, rows: Int, columns: Int, values: [Double], rowTicks: [(index: Int, label: String)],
                columnTicks: [(index: Int, label: String)], xLabel: String, yLabel: String, colorLabel: String,
                scale: ColorScale) {
        precondition(values.count == rows * columns, "HeatMap: \(values.count) values for \(rows) × \(columns)")
        self.title = title; self.rows = rows; self.columns = columns; self.values = values
        self.rowTicks = rowTicks; self.columnTicks = columnTicks
        self.xLabel = xLabel; self.yLabel = yLabel; self.colorLabel = colorLabel; self.scale = scale
    }

    /// Every index labelled when there are at most `limit` of them, else every k-th.
    public static func ticks(_ labels: [String], limit: Int = 40) -> [(index: Int, label: String)] {
        let stride = max(1, Int((Double(labels.count) / Double(limit)).rounded(.up)))
        return labels.indices.filter { $0 % stride == 0 }.map { ($0, labels[$0]) }
    }

    public func render() -> String {
        // About 1100 × 560 pixels for large matrices; small ones get big cells (at most 80 × 40).
        let cellW = min(80, max(2.5, 1100 / Double(max(columns, 1))))
        let cellH = min(40, max(3, 560 / Double(max(rows, 1))))
        let rowLabelW = (rowTicks.map { SVG.textWidth($0.label, size: 11) }.max() ?? 0) + 14
        let columnLabelH = (columnTicks.map { SVG.textWidth($0.label, size: 11) }.max() ?? 0) * 0.75 + 16
        let left = 36 + rowLabelW, top = 52.0
        let plotW = cellW * Double(columns), plotH = cellH * Double(rows)
        let width = max(left + plotW + 24 + 14 + max(64, SVG.textWidth(colorLabel, size: 11)) + 12, 420)
        let height = top + plotH + columnLabelH + 40
        var svg = SVGDocument(width: width, height: height)
        svg.text(title, x: 16, y: 28, size: 16, weight: "bold")

        // Background region, one rect per vertical run of defined cells.
        if let background {
            var rects = "<g class=\"background\" shape-rendering=\"crispEdges\">"
            for c in 0..<columns {
                var r = 0
                while r < rows {
                    guard background[r * columns + c] else { r += 1; continue }
                    let start = r
                    while r < rows && background[r * columns + c] { r += 1 }
                    rects += "\n<rect x=\"\(SVG.n(left + Double(c) * cellW))\" y=\"\(SVG.n(top + Double(start) * cellH))\" " +
                        "width=\"\(SVG.n(cellW))\" height=\"\(SVG.n(Double(r - start) * cellH))\" fill=\"#ececec\"/>"
                }
            }
            svg.raw(rects + "\n</g>")
        }
        var cells = "<g class=\"cells\" shape-rendering=\"crispEdges\">"
        for r in 0..<rows {
            for c in 0..<columns {
                guard let color = scale.color(values[r * columns + c]) else { continue }
                cells += "\n<rect x=\"\(SVG.n(left + Double(c) * cellW))\" y=\"\(SVG.n(top + Double(r) * cellH))\" " +
                    "width=\"\(SVG.n(cellW))\" height=\"\(SVG.n(cellH))\" fill=\"\(color)\"/>"
            }
        }
        svg.raw(cells + "\n</g>")
        for r in rowSeparators {
            svg.line(x1: left, y1: top + Double(r) * cellH, x2: left + plotW, y2: top + Double(r) * cellH, stroke: "#9a9a9a", width: 0.6)
        }
        for c in columnSeparators {
            svg.line(x1: left + Double(c) * cellW, y1: top, x2: left + Double(c) * cellW, y2: top + plotH, stroke: "#9a9a9a", width: 0.6)
        }
        svg.rect(x: left, y: top, width: plotW, height: plotH, fill: "none", stroke: "#333333")

        for (r, label) in rowTicks {
            let y = top + (Double(r) + 0.5) * cellH
            svg.line(x1: left - 4, y1: y, x2: left, y2: y, stroke: "#333333")
            svg.text(label, x: left - 7, y: y + 4, size: 11, anchor: "end", fill: "#333333")
        }
        for (c, label) in columnTicks {
            let x = left + (Double(c) + 0.5) * cellW
            svg.line(x1: x, y1: top + plotH, x2: x, y2: top + plotH + 4, stroke: "#333333")
            svg.text(label, x: x + 3, y: top + plotH + 12, size: 11, anchor: "end", fill: "#333333", rotate: -45)
        }
        svg.text(xLabel, x: left + plotW / 2, y: height - 10, size: 12, anchor: "middle")
        svg.text(yLabel, x: 16, y: top + plotH / 2, size: 12, anchor: "middle", rotate: -90)

        // Colour bar.
        colorBar(into: &svg, x: left + plotW + 24, top: top, height: min(plotH, 260))
        return svg.render()
    }

    /// The colour scale as a vertical bar with ticks and the colour label, its top left corner at (`barX`, `barTop`).
    private func colorBar(into svg: inout SVGDocument, x barX: Double, top barTop: Double, height barH: Double) {
        let barW = 14.0
        var stops = ""
        for k in 0...10 {
            let (lo, hi) = scale.domain
            let v = hi - (hi - lo) * Double(k) / 10
            stops += "<stop offset=\"\(k * 10)%\" stop-color=\"\(scale.color(v)!)\"/>"
        }
        svg.define("<linearGradient id=\"colorbar\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">\(stops)</linearGradient>")
        var bar = "<g class=\"colorbar\">\n<rect x=\"\(SVG.n(barX))\" y=\"\(SVG.n(barTop))\" width=\"\(SVG.n(barW))\" " +
            "height=\"\(SVG.n(barH))\" fill=\"url(#colorbar)\" stroke=\"#333333\" stroke-width=\"0.6\"/>"
        let (lo, hi) = scale.domain
        let ticks = NiceScale(min: lo, max: hi, maxTicks: 5, expand: false)
        for t in ticks.ticks {
            let y = barTop + (hi - t) / max(hi - lo, 1e-300) * barH
            bar += "\n<line x1=\"\(SVG.n(barX + barW))\" y1=\"\(SVG.n(y))\" x2=\"\(SVG.n(barX + barW + 4))\" y2=\"\(SVG.n(y))\" stroke=\"#333333\"/>"
            bar += "\n<text x=\"\(SVG.n(barX + barW + 7))\" y=\"\(SVG.n(y + 4))\" font-size=\"10\" fill=\"#333333\">" +
                "\(SVG.escape(ticks.label(t, percent: colorPercent)))</text>"
        }
        bar += "\n<text x=\"\(SVG.n(barX))\" y=\"\(SVG.n(barTop + barH + 18))\" font-size=\"11\" fill=\"#222222\">" +
            "\(SVG.escape(colorLabel))</text>\n</g>"
        svg.raw(bar)
    }
}
