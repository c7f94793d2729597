import Foundation

/// One line of a chart. A NaN y leaves a gap; every finite point gets a marker (so a lone
/// point between gaps, or a single checkpoint, still shows).
public struct LineSeries {
    public var name: String
    public var x: [Double]
    public var y: [Double]
    public var color: String
    /// `stroke-dasharray`, nil for solid.
    public var dash: String?
    public var width: Double
    public var markers: Bool
    public var inLegend: Bool

    public init(name: String, x: [Double], y: [Double], color: String, dash: String? = nil,
                width: Double = 2, markers: Bool = true, inLegend: Bool = true) {
        precondition(x.count == y.count, "LineSeries '\(name)': x and y differ in length")
        self.name = name; self.x = x; self.y = y; self.color = color; self.dash = dash
        self.width = width; self.markers = markers; self.inLegend = inLegend
    }

    /// Whether any point can be drawn.
    public var hasPoints: Bool { zip(x, y).contains { $0.0.isFinite && $0.1.isFinite } }
}

/// A vertical (x) or horizontal (y) reference line with a label.
public struct ChartMarker {
    public var value: Double
    public var label: String
    public var color: String
    public init(value: Double, label: String, color: String = "#555555") {
        self.value = value; self.label = label; self.color = color
    }
}

/// A line chart with axes, nice ticks, grid, axis labels, a title and a legend on the right.
///
/// Structure of the output (tests rely on it): each series is a `<g class="series">` holding
/// one `<path>` (all its segments) and its markers; the legend is a `<g class="legend">` with
/// one `<text>` per series in the legend.
public struct LineChart {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [LineSeries]
    /// Fixed y range (e.g. 0…1 for shares); nil: from the data, expanded to nice ticks.
    public var yDomain: ClosedRange<Double>?
    /// y tick labels as percentages (for values in 0…1).
    public var yPercent = false
    /// x values are integers (checkpoint steps): the tick step is at least 1.
    public var xInteger = true
    public var verticalMarkers: [ChartMarker] = []
    public var horizontalMarkers: [ChartMarker] = []
    public var width = 780.0
    public var height = 440.0

    public init(title: String, xLabel: String, yLabel: String, series: [LineSeries]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series
    }

    public func render() -> String {
        let legendItems = series.filter(\.inLegend)
        let legendWidth = max(130, (legendItems.map { SVG.textWidth($0.name, size: 12) }.max() ?? 0) + 58)
        let left = 78.0, top = 50.0, bottom = 58.0, right = legendWidth + 16
        let legendHeight = Double(legendItems.count) * 20 + 10
        let height = max(self.height, top + legendHeight + bottom)
        let plotW = width - left - right, plotH = height - top - bottom
        let (x0, x1, y0, y1) = (left, left + plotW, top + plotH, top)   // pixel corners; y grows down

        let points = series.flatMap { s in zip(s.x, s.y).filter { $0.0.isFinite && $0.1.isFinite } }
        let xs = points.map(\.0) + verticalMarkers.map(\.value)
        let xScale = NiceScale(min: xs.min() ?? 0, max: xs.max() ?? 1, maxTicks: 7, integer: xInteger)
        let yScale: NiceScale
        if let d = yDomain {
            yScale = NiceScale(min: d.lowerBound, max: d.upperBound, maxTicks: 6)
        } else {
            let ys = points.map(\.1) + horizontalMarkers.map(\.value)
            yScale = NiceScale(min: ys.min() ?? 0, max: ys.max() ?? 1, maxTicks: 6)
        }
        func px(_ x: Double) -> Double { xScale.map(x, from: x0, to: x1) }
        func py(_ y: Double) -> Double { yScale.map(y, from: y0, to: y1) }

        var svg = SVGDocument(width: width, height: height)
        let clip = "plot-area"
        svg.define("<clipPath id=\"\(clip)\"><rect x=\"\(SVG.n(x0 - 4))\" y=\"\(SVG.n(y1 - 4))\" " +
                   "width=\"\(SVG.n(plotW + 8))\" height=\"\(SVG.n(plotH + 8))\"/></clipPath>")
        svg.text(title, x: left, y: 28, size: 16, weight: "bold")

        // Grid and ticks.
        for t in yScale.ticks {
            svg.line(x1: x0, y1: py(t), x2: x1, y2: py(t), stroke: "#e3e3e3")
            svg.line(x1: x0 - 5, y1: py(t), x2: x0, y2: py(t), stroke: "#333333")
            svg.text(yScale.label(t, percent: yPercent), x: x0 - 8, y: py(t) + 4, size: 11, anchor: "end", fill: "#333333")
        }
        for t in xScale.ticks {
            svg.line(x1: px(t), y1: y1, x2: px(t), y2: y0, stroke: "#f0f0f0")
            svg.line(x1: px(t), y1: y0, x2: px(t), y2: y0 + 5, stroke: "#333333")
            svg.text(xScale.label(t), x: px(t), y: y0 + 19, size: 11, anchor: "middle", fill: "#333333")
        }
        svg.line(x1: x0, y1: y0, x2: x1, y2: y0, stroke: "#333333")
        svg.line(x1: x0, y1: y0, x2: x0, y2: y1, stroke: "#333333")
        svg.text(xLabel, x: (x0 + x1) / 2, y: height - 14, size: 12, anchor: "middle")
        svg.text(yLabel, x: 20, y: (y0 + y1) / 2, size: 12, anchor: "middle", rotate: -90)

        // Reference lines.
        for m in horizontalMarkers where m.value >= yScale.lower && m.value <= yScale.upper {
            svg.line(x1: x0, y1: py(m.value), x2: x1, y2: py(m.value), stroke: m.color, width: 1, dash: "4 4")
            svg.text(m.label, x: x1 - 4, y: py(m.value) - 5, size: 10, anchor: "end", fill: m.color)
        }
        for (i, m) in verticalMarkers.enumerated() {
            svg.line(x1: px(m.value), y1: y0, x2: px(m.value), y2: y1, stroke: m.color, width: 1.2, dash: "5 4")
            svg.text(m.label, x: px(m.value) + 4, y: y1 + 12 + Double(i % 4) * 13, size: 10, fill: m.color)
        }

        // Series, then the legend.
        for s in series { svg.raw(Self.seriesGroup(s, clip: clip, px: px, py: py)) }
        svg.raw(Self.legend(legendItems, x: x1 + 18, top: top))
        return svg.render()
    }

    /// One series as a path (broken where a value is not finite) with its markers, clipped to the plot area.
    private static func seriesGroup(_ s: LineSeries, clip: String, px: (Double) -> Double, py: (Double) -> Double) -> String {
        var d = "", pen = false
        var circles: [String] = []
        for (x, y) in zip(s.x, s.y) {
            guard x.isFinite && y.isFinite else { pen = false; continue }
            d += (pen ? " L" : (d.isEmpty ? "M" : " M")) + "\(SVG.n(px(x))) \(SVG.n(py(y)))"
            pen = true
            if s.markers {
                circles.append("<circle cx=\"\(SVG.n(px(x)))\" cy=\"\(SVG.n(py(y)))\" r=\"2.8\" fill=\"\(s.color)\"/>")
            }
        }
        var path = "<path d=\"\(d)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"\(SVG.n(s.width))\" " +
            "stroke-linejoin=\"round\" stroke-linecap=\"round\""
        if let dash = s.dash { path += " stroke-dasharray=\"\(dash)\"" }
        path += "><title>\(SVG.escape(s.name))</title></path>"
        return "<g class=\"series\" clip-path=\"url(#\(clip))\">\n\(path)\n" + circles.joined(separator: "\n") + "\n</g>"
    }

    /// The legend: a line (and marker) and the name of each item, from (`lx`, `top`) down.
    private static func legend(_ items: [LineSeries], x lx: Double, top: Double) -> String {
        var legend = "<g class=\"legend\">"
        for (i, s) in items.enumerated() {
            let ly = top + 8 + Double(i) * 20
            legend += "\n<line x1=\"\(SVG.n(lx))\" y1=\"\(SVG.n(ly))\" x2=\"\(SVG.n(lx + 30))\" y2=\"\(SVG.n(ly))\" " +
                "stroke=\"\(s.color)\" stroke-width=\"\(SVG.n(s.width))\"" + (s.dash.map { " stroke-dasharray=\"\($0)\"" } ?? "") + "/>"
            if s.markers {
                legend += "\n<circle cx=\"\(SVG.n(lx + 15))\" cy=\"\(SVG.n(ly))\" r=\"2.8\" fill=\"\(s.color)\"/>"
            }
            legend += "\n<text x=\"\(SVG.n(lx + 38))\" y=\"\(SVG.n(ly + 4))\" font-size=\"12\" fill=\"#222222\">\(SVG.escape(s.name))</text>"
        }
        return legend + "\n</g>"
    }
}
