import Foundation

/// A minimal SVG writer: dkc draws its own figures, with no plotting dependency.
///
/// Elements are appended in drawing order and rendered as one standalone SVG 1.1 document
/// (UTF-8, `xmlns` set, a white background so the figure reads on dark pages too). Text is
/// XML-escaped; coordinates are written with at most two decimals.
public struct SVGDocument {
    public let width: Double
    public let height: Double
    private var body: [String] = []
    private var definitions: [String] = []

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// The finished document.
    public func render() -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(SVG.n(width))\" height=\"\(SVG.n(height))\" "
        out += "viewBox=\"0 0 \(SVG.n(width)) \(SVG.n(height))\" font-family=\"Helvetica, Arial, sans-serif\">\n"
        if !definitions.isEmpty { out += "<defs>\n" + definitions.joined(separator: "\n") + "\n</defs>\n" }
        out += "<rect x=\"0\" y=\"0\" width=\"\(SVG.n(width))\" height=\"\(SVG.n(height))\" fill=\"#ffffff\"/>\n"
        out += body.joined(separator: "\n")
        out += "\n</svg>\n"
        return out
    }

    /// Appends raw markup (already escaped).
    public mutating func raw(_ markup: String) { body.append(markup) }

    /// Adds a `<defs>` entry (clip paths, gradients).
    public mutating func define(_ markup: String) { definitions.append(markup) }

    public mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String,
                              stroke: String? = nil, extra: String = "") {
        var s = "<rect x=\"\(SVG.n(x))\" y=\"\(SVG.n(y))\" width=\"\(SVG.n(width))\" height=\"\(SVG.n(height))\" fill=\"\(fill)\""
        if let stroke { s += " stroke=\"\(stroke)\"" }
        body.append(s + (extra.isEmpty ? "" : " " + extra) + "/>")
    }

    public mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String,
                              width: Double = 1, dash: String? = nil) {
        var s = "<line x1=\"\(SVG.n(x1))\" y1=\"\(SVG.n(y1))\" x2=\"\(SVG.n(x2))\" y2=\"\(SVG.n(y2))\" " +
            "stroke=\"\(stroke)\" stroke-width=\"\(SVG.n(width))\""
        if let dash { s += " stroke-dasharray=\"\(dash)\"" }
        body.append(s + "/>")
    }

    /// A text label. `anchor`: start, middle or end; `rotate`: degrees about (x, y).
    public mutating func text(_ text: String, x: Double, y: Double, size: Double = 12, anchor: String = "start",
                              weight: String? = nil, fill: String = "#222222", rotate: Double? = nil) {
        var s = "<text x=\"\(SVG.n(x))\" y=\"\(SVG.n(y))\" font-size=\"\(SVG.n(size))\" text-anchor=\"\(anchor)\" fill=\"\(fill)\""
        if let weight { s += " font-weight=\"\(weight)\"" }
        if let rotate { s += " transform=\"rotate(\(SVG.n(rotate)) \(SVG.n(x)) \(SVG.n(y)))\"" }
        body.append(s + ">\(SVG.escape(text))</text>")
    }
}

/// Helpers shared by the charts.
public enum SVG {
    /// XML-escapes text and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for ch in text {
            if let entity = entities[ch] { out += entity } else { out.append(ch) }
        }
        return out
    }

    private static let entities: [Character: String] = ["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&apos;"]

    /// A coordinate with at most two decimals and no trailing zeros ("12", "3.5", "-0.25").
    public static func n(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        if rounded == rounded.rounded() && abs(rounded) < 1e15 { return String(Int(rounded)) }
        var s = String(format: "%.2f", rounded)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }

    /// Categorical colours, distinguishable and readable on white (one per frequency bucket).
    public static let palette = ["#1f6fb4", "#e07b10", "#2a9d3c", "#c8312f", "#8a5ab8",
                                 "#8c5a4a", "#d35fa9", "#6f6f6f", "#a9a820", "#19a7b8"]

    /// Dash patterns for a second and third grouping (types): solid, dashed, dotted, dash-dot.
    public static let dashes: [String?] = [nil, "7 4", "2 3", "8 3 2 3"]

    /// The i-th palette colour (cycling).
    public static func color(_ i: Int) -> String { palette[i % palette.count] }

    /// The i-th dash pattern (cycling).
    public static func dash(_ i: Int) -> String? { dashes[i % dashes.count] }

    /// Approximate width of a label in the charts' sans-serif font (for layout only).
    public static func textWidth(_ text: String, size: Double) -> Double { Double(text.count) * size * 0.56 }
}

/// How a heat map turns values into colours.
public enum ColorScale: Equatable {
    /// Light to dark blue over [lower, upper].
    case sequential(lower: Double, upper: Double)
    /// Blue (−limit) through near-white (0) to red (+limit): signed quantities.
    case diverging(limit: Double)

    /// The domain the colour bar shows.
    public var domain: (lower: Double, upper: Double) {
        switch self {
        case .sequential(let lo, let hi): return (lo, hi)
        case .diverging(let limit): return (-limit, limit)
        }
    }

    private static let sequentialStops: [(Double, Double, Double)] = [
        (247, 251, 255), (200, 221, 240), (125, 176, 216), (55, 125, 186), (14, 58, 120)]
    private static let divergingStops: [(Double, Double, Double)] = [
        (32, 84, 158), (120, 165, 210), (246, 246, 246), (226, 132, 108), (166, 28, 34)]

    /// "#rrggbb" for a value (clamped to the domain); nil for NaN.
    public func color(_ value: Double) -> String? {
        guard !value.isNaN else { return nil }
        let (lo, hi) = domain
        let t = hi > lo ? min(1, max(0, (value - lo) / (hi - lo))) : 0.5
        let stops: [(Double, Double, Double)]
        switch self {
        case .sequential: stops = ColorScale.sequentialStops
        case .diverging: stops = ColorScale.divergingStops
        }
        let position = t * Double(stops.count - 1)
        let i = min(stops.count - 2, Int(position))
        let f = position - Double(i)
        let a = stops[i], b = stops[i + 1]
        func mix(_ x: Double, _ y: Double) -> Int { Int((x + (y - x) * f).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }
}
