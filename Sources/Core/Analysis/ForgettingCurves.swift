import Foundation

/// The learning curves of the forgetting experiment (docs/forgetting.md): per replay sub-run
/// `train/forget/replay_<r>/`, the first-token accuracy of each entity type on the continual
/// validation set at every evaluation, read from the sub-run's metrics.jsonl (step 0 is the
/// continual model before any forgetting step), with a summary of how fast each type is lost
/// and how much each replay ratio keeps. `dkc analyze` writes them as `analysis/forgetting.nc`,
/// figures `analysis/forget_first_token_<type>.svg` and `analysis/forgetting.md`.
public struct ForgettingCurves: Equatable, Sendable {
    public struct Run: Equatable, Sendable {
        /// The replay ratio and its folder label (`replay_<label>`).
        public let ratio: Double
        public let label: String
        public let log: FirstTokenLog
    }

    /// How one type fares in one run; accuracies in [0, 1], steps are optimizer steps.
    public struct Summary: Equatable, Sendable {
        /// At the first evaluation (step 0 in a run that evaluates before training).
        public let initial: Double
        public let initialStep: Int64
        /// The lowest accuracy and the first step it was reached.
        public let lowest: Double
        public let lowestStep: Int64
        /// At the last evaluation.
        public let final: Double
        public let finalStep: Int64
        /// The first step at which the accuracy is below half its initial value; nil: never.
        public let halfStep: Int64?
    }

    /// Sub-runs by ascending ratio.
    public let runs: [Run]
    /// Entity types in first-seen order over the runs.
    public let types: [String]
    /// Every evaluation step of any run, ascending.
    public let steps: [Int64]

    public init(runs: [Run]) {
        self.runs = runs.sorted { $0.ratio < $1.ratio }
        var types: [String] = []
        for run in self.runs { for t in run.log.types where !types.contains(t) { types.append(t) } }
        self.types = types
        steps = Array(Set(runs.flatMap(\.log.steps))).sorted()
    }

    /// The sub-runs under `trainFolder/forget/` (folders `replay_<r>` with a metrics.jsonl); nil when
    /// there are none.
    public static func read(trainFolder: URL) throws -> ForgettingCurves? {
        let root = trainFolder.appendingPathComponent("forget")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter { $0.hasPrefix("replay_") }
        var runs: [Run] = []
        for name in names {
            let label = String(name.dropFirst("replay_".count))
            let metrics = root.appendingPathComponent(name).appendingPathComponent("metrics.jsonl")
            guard let ratio = Double(label), FileManager.default.fileExists(atPath: metrics.path) else { continue }
            runs.append(Run(ratio: ratio, label: label, log: try FirstTokenLog.read(path: metrics.path, stage: "forget/" + name)))
        }
        return runs.isEmpty ? nil : ForgettingCurves(runs: runs)
    }

    /// The accuracy of `type` in `run` at every step of `steps` (NaN where the run has no evaluation).
    public func curve(_ run: Run, type: String) -> [Double] {
        let values = run.log.overall[type] ?? []
        var at: [Int64: Double] = [:]
        for (i, step) in run.log.steps.enumerated() where i < values.count { at[step] = values[i] }
        return steps.map { at[$0] ?? .nan }
    }

    /// The summary of `type` in `run`; nil when the run never evaluated it.
    public func summary(_ run: Run, type: String) -> Summary? {
        let points = zip(run.log.steps, run.log.overall[type] ?? []).filter { !$0.1.isNaN }
        guard let first = points.first, let last = points.last else { return nil }
        var lowest = first
        for p in points where p.1 < lowest.1 { lowest = p }
        let half = points.first { $0.1 < first.1 / 2 }?.0
        return Summary(initial: first.1, initialStep: first.0, lowest: lowest.1, lowestStep: lowest.0,
                       final: last.1, finalStep: last.0, halfStep: half)
    }

    /// forgetting.nc: `first_token_accuracy(replay_ratio, step, type)` and the summaries
    /// (replay_ratio, type), written atomically.
    public func write(to url: URL, commandLine: String) throws {
        let nR = runs.count, nS = steps.count, nT = types.count
        var accuracy: [Double] = []
        accuracy.reserveCapacity(nR * nS * nT)
        for run in runs {
            let curves = types.map { curve(run, type: $0) }
            for s in 0..<nS { for t in 0..<nT { accuracy.append(curves[t][s]) } }
        }
        let summaries = runs.flatMap { run in types.map { summary(run, type: $0) } }
        func column(_ value: (Summary) -> Double) -> [Double] { summaries.map { $0.map(value) ?? .nan } }
        let perRun: [(String, String, [Double])] = [
            ("first_token_accuracy_initial", "first-token accuracy at the run's first evaluation (step 0: the continual model)", column(\.initial)),
            ("first_token_accuracy_lowest", "lowest first-token accuracy over the run", column(\.lowest)),
            ("first_token_accuracy_lowest_step", "first optimizer step at the lowest accuracy", column { Double($0.lowestStep) }),
            ("first_token_accuracy_final", "first-token accuracy at the run's last evaluation", column(\.final)),
            ("first_token_accuracy_final_step", "optimizer step of the last evaluation", column { Double($0.finalStep) }),
            ("half_step", "first optimizer step with accuracy below half the initial (NaN: never)", column { $0.halfStep.map(Double.init) ?? .nan }),
        ]
        do {
            try NetCDFFile.writeAtomically(to: url) { file in
                for (name, length) in [("replay_ratio", nR), ("step", nS), ("type", nT)] { try file.addDimension(name, length: length) }
                try file.addVariable("replay_ratio", type: .double, dimensions: ["replay_ratio"])
                try file.setAttribute("long_name", "share of the forgetting texts replaced by (or added as) replayed continual texts", on: "replay_ratio")
                try file.addVariable("step", type: .int64, dimensions: ["step"])
                try file.setAttribute("long_name", "optimizer step of the forget stage (0: before the first step)", on: "step")
                try file.addVariable("type", type: .string, dimensions: ["type"])
                try file.addVariable("first_token_accuracy", type: .double, dimensions: ["replay_ratio", "step", "type"], fill: .nan)
                try file.setAttribute("long_name", "first-token attribute accuracy on the continual validation set, pooled over attributes", on: "first_token_accuracy")
                try file.setAttribute("comment", "from train/forget/replay_<r>/metrics.jsonl; NaN where the run has no evaluation", on: "first_token_accuracy")
                for (name, longName, _) in perRun {
                    try file.addVariable(name, type: .double, dimensions: ["replay_ratio", "type"], fill: .nan)
                    try file.setAttribute("long_name", longName, on: name)
                }
                try file.setAttribute("title", "dkc analysis: forgetting and replay")
                try file.setAttribute("source", DKCVersion.source)
                try file.setAttribute("history", "\(ISO8601DateFormatter().string(from: Date())) \(commandLine)")
                try file.setAttribute("inputs", runs.map(\.log.path).joined(separator: "; "))
                try file.write(runs.map(\.ratio), to: "replay_ratio")
                try file.write(steps, to: "step")
                try file.write(types, to: "type")
                if !accuracy.isEmpty { try file.write(accuracy, to: "first_token_accuracy") }
                if !summaries.isEmpty { for (name, _, values) in perRun { try file.write(values, to: name) } }
            }
        } catch let error as AnalysisError {
            throw error
        } catch {
            throw AnalysisError.output(path: url.path, problem: "\(error)")
        }
    }

    /// One chart per type: a line per replay ratio over the forget stage's steps.
    public func figures() -> [AnalysisFigure] {
        types.map { type in
            let series = runs.enumerated().map { i, run in
                LineSeries(name: "replay \(run.label)", x: steps.map(Double.init), y: curve(run, type: type), color: SVG.color(i))
            }.filter(\.hasPoints)
            var chart = LineChart(title: "First-token accuracy while forgetting, \(type) knowledge", xLabel: "forget stage (optimizer step)",
                                  yLabel: "first-token accuracy", series: series)
            chart.yDomain = 0...1
            chart.yPercent = true
            return AnalysisFigure(file: "forget_first_token_\(type).svg",
                                  caption: "First-token accuracy of \(type) knowledge on the continual validation set during the forget stage, one line per replay ratio.",
                                  svg: chart.render())
        }
    }

    /// forgetting.md: a table per type and ratio and one sentence per type on forgetting and replay.
    public func markdown() -> String {
        func pct(_ x: Double) -> String { String(format: "%.1f %%", 100 * x) }
        var out = ["# Forgetting and replay", "",
                   "First-token accuracy on the continual validation set during the forget stage (docs/forgetting.md), from "
                   + "`train/forget/replay_<r>/metrics.jsonl`. Step 0 is the continual model; \"half\" is the first step below half of it.", "",
                   "| type | replay | step 0 | lowest (step) | end (step) | half |", "| --- | --- | --- | --- | --- | --- |"]
        for type in types {
            for run in runs {
                guard let s = summary(run, type: type) else { continue }
                out.append("| \(type) | \(run.label) | \(pct(s.initial)) | \(pct(s.lowest)) (\(s.lowestStep)) | \(pct(s.final)) (\(s.finalStep)) | \(s.halfStep.map(String.init) ?? "never") |")
            }
        }
        out.append("")
        for type in types {
            let rows = runs.compactMap { run in summary(run, type: type).map { (run, $0) } }
            guard let none = rows.first, let most = rows.last, rows.count >= 1 else { continue }
            var sentence = "**\(type)**: without replay (ratio \(none.0.label)) the accuracy goes from \(pct(none.1.initial)) to "
                + "\(pct(none.1.final)) at step \(none.1.finalStep)"
            sentence += none.1.halfStep.map { ", below half of its start from step \($0)" } ?? ", never below half of its start"
            if rows.count > 1 {
                sentence += "; with replay \(most.0.label) it ends at \(pct(most.1.final)) (lowest \(pct(most.1.lowest)) at step \(most.1.lowestStep))"
                let kept = most.1.initial > 0 ? most.1.final / most.1.initial : .nan
                let keptNone = none.1.initial > 0 ? none.1.final / none.1.initial : .nan
                sentence += String(format: ": it keeps %.0f %% of the starting accuracy against %.0f %% without replay.", 100 * kept, 100 * keptNone)
            } else {
                sentence += "."
            }
            out.append(sentence)
            out.append("")
        }
        return out.joined(separator: "\n")
    }
}
