import Foundation

extension AnalysisResult {
    /// A plain-text table of the run at its first and last checkpoint, one row per type × bucket:
    /// the full model's first-token accuracy (hits@1 of the attribute's first token) and hits@10, and
    /// the circuits' faithfulness and hits@10 (mean over tasks). What `dkc analyze` prints at its end.
    public func summaryTable() -> String {
        guard let first = steps.first, let last = steps.last else { return "no checkpoints in the inputs\n" }
        let (c0, c1) = (0, steps.count - 1)
        func pair(_ a: Double, _ b: Double) -> String {
            func f(_ x: Double) -> String { x.isFinite ? String(format: "%.2f", x) : "–" }
            return "\(f(a)) → \(f(b))"
        }
        func full(_ array: LabeledArray?, _ y: Int, _ f: Int) -> String {
            guard let array else { return pair(.nan, .nan) }
            return pair(array[c0, y, f], array[c1, y, f])
        }
        func circuit(_ array: LabeledArray?, _ y: Int, _ f: Int) -> String {
            guard let array else { return pair(.nan, .nan) }
            let at = { (c: Int) in CircuitMetrics.finiteMean(self.tasks.indices.map { array[c, $0, y, f] }) }
            return pair(at(c0), at(c1))
        }
        let header = ["type", "bucket", "first-token acc.", "model hits@10", "faithfulness", "circuit hits@10"]
        var rows: [[String]] = []
        for y in types.indices {
            for f in frequencies.indices {
                rows.append([types[y], frequencies[f], full(fullHitsAt1, y, f), full(fullHitsAt10, y, f),
                             circuit(faithfulness, y, f), circuit(circuitHitsAt10, y, f)])
            }
        }
        let widths = header.indices.map { i in max(header[i].count, rows.map { $0[i].count }.max() ?? 0) }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        var text = "checkpoint \(first) → \(last)" + (topn.map { "; circuits of the top \($0) edges, mean over tasks" } ?? "") + "\n"
        text += line(header) + "\n" + line(widths.map { String(repeating: "-", count: $0) }) + "\n"
        for r in rows { text += line(r) + "\n" }
        return text
    }
}
