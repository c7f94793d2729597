import Foundation

/// The forgetting experiment as `dkc analyze` reads it (docs/forgetting.md). Per replay sub-run
/// `replay_<r>`:
/// - the learning curves: first-token accuracy of each entity type and the evaluation loss on the
///   continual validation set at every evaluation, from `train/forget/replay_<r>/metrics.jsonl`
///   (step 0 is the continual model before any forgetting step);
/// - the circuits: the sub-run's sweep files `circuits/forget/replay_<r>/{circuits,scores,
///   acquisition,components}.nc`, analysed as `dkc analyze` analyses a main sweep (`Analysis.run`),
///   once per top-n of its circuits.nc, so that every statistic exists at every circuit size.
///
/// `dkc analyze` writes `analysis/forgetting.nc`, `analysis/forgetting.md`, the cross-ratio figures
/// in `analysis/forget/` and each sub-run's full analysis in `analysis/forget/replay_<r>/`
/// (`AnalysisOutput.write`).
public struct ForgettingCurves: Sendable {
    public struct Run: Sendable {
        /// The replay ratio and its folder label (`replay_<label>`).
        public let ratio: Double
        public let label: String
        /// The sub-run's training log; nil when it has none (circuits only).
        public let log: FirstTokenLog?
        /// The analysis of the sub-run's sweep files at each top-n of its circuits.nc, ascending top-n
        /// (one entry without top-n when the sweep wrote no circuits.nc); empty when it was not swept.
        public let circuits: [AnalysisResult]

        public init(ratio: Double, label: String, log: FirstTokenLog?, circuits: [AnalysisResult] = []) {
            self.ratio = ratio; self.label = label; self.log = log; self.circuits = circuits
        }

        /// The analysis at circuit size `topn` (the only one when the sweep has no top-n axis).
        public func circuits(topn: Int64?) -> AnalysisResult? {
            circuits.first { $0.topn == topn } ?? (circuits.count == 1 && circuits[0].topn == nil ? circuits[0] : nil)
        }
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
    /// Entity types in first-seen order over the logs, then the circuits.
    public let types: [String]
    /// Every evaluation step of any log, ascending.
    public let steps: [Int64]
    /// Every checkpoint step of any sub-run's sweep, ascending; the circuit axes in first-seen order.
    public let checkpoints: [Int64]
    public let tasks: [String]
    public let frequencies: [String]
    /// Every circuit size of any sub-run's circuits.nc, ascending.
    public let topn: [Int64]
    /// The circuit size of the figures and the report: the one asked for, else the smallest swept
    /// (the study plots top-5,000 of its sweep over 5,000 and 8,000).
    public let plotTopn: Int64?
    /// Parent layers of the edge activation ratio and logit-lens points (from the first sub-run that has them).
    public let parentLayers: Int
    public let lens: [String]

    public init(runs: [Run], topn requested: Int? = nil) {
        self.runs = runs.sorted { $0.ratio < $1.ratio }
        func union(_ lists: [[String]]) -> [String] {
            var out: [String] = []
            for list in lists { for x in list where !out.contains(x) { out.append(x) } }
            return out
        }
        let results = self.runs.flatMap(\.circuits)
        types = union(self.runs.compactMap { $0.log?.types } + results.map(\.types))
        tasks = union(results.map(\.tasks))
        frequencies = union(results.map(\.frequencies))
        steps = Array(Set(self.runs.flatMap { $0.log?.steps ?? [] })).sorted()
        checkpoints = Array(Set(results.flatMap(\.steps))).sorted()
        let sizes = Array(Set(results.compactMap(\.topn))).sorted()
        topn = sizes
        plotTopn = requested.map(Int64.init).flatMap { sizes.contains($0) ? $0 : nil } ?? sizes.first
        parentLayers = results.compactMap { $0.edgeActivationRatio?.shape.last }.first ?? 0
        lens = results.compactMap { $0.components?.lens }.first { !$0.isEmpty } ?? []
    }

    /// The sub-runs of `runFolder`: folders `replay_<r>` under `train/forget/` (with a metrics.jsonl)
    /// and under `circuits/forget/` (with any of the sweep's files); nil when there are none.
    /// `options` are those of the main analysis; each sub-run is analysed at every top-n.
    public static func read(runFolder: URL, options: AnalysisOptions = AnalysisOptions()) throws -> ForgettingCurves? {
        let fm = FileManager.default
        let trainRoot = runFolder.appendingPathComponent("train/forget")
        let circuitsRoot = runFolder.appendingPathComponent("circuits/forget")
        var labels: [String] = []
        for root in [trainRoot, circuitsRoot] {
            for name in ((try? fm.contentsOfDirectory(atPath: root.path)) ?? []).sorted() where name.hasPrefix("replay_") {
                let label = String(name.dropFirst("replay_".count))
                if Double(label) != nil && !labels.contains(label) { labels.append(label) }
            }
        }
        var runs: [Run] = []
        for label in labels {
            let name = "replay_" + label
            let metrics = trainRoot.appendingPathComponent(name).appendingPathComponent("metrics.jsonl")
            let log = fm.fileExists(atPath: metrics.path) ? try FirstTokenLog.read(path: metrics.path, stage: "forget/" + name) : nil
            let circuits = try analyseSweep(circuitsRoot.appendingPathComponent(name), options: options)
            if log == nil && circuits.isEmpty { continue }
            runs.append(Run(ratio: Double(label)!, label: label, log: log, circuits: circuits))
        }
        return runs.isEmpty ? nil : ForgettingCurves(runs: runs, topn: options.topn)
    }

    /// `Analysis.run` on one sub-run's sweep folder, once per top-n of its circuits.nc (ascending);
    /// empty when the folder holds none of the sweep's files.
    static func analyseSweep(_ folder: URL, options: AnalysisOptions) throws -> [AnalysisResult] {
        func file(_ name: String) -> String? {
            let path = folder.appendingPathComponent(name).path
            return FileManager.default.fileExists(atPath: path) ? path : nil
        }
        var inputs = AnalysisInputPaths(scores: file("scores.nc"), circuits: file("circuits.nc"), acquisition: file("acquisition.nc"))
        inputs.components = file("components.nc")
        guard inputs.circuits != nil || inputs.acquisition != nil || inputs.scores != nil else { return [] }
        var asked = options
        asked.topn = nil
        let largest = try Analysis.run(inputs: inputs, options: asked)
        var results = [largest]
        for k in largest.topnAxis where k != largest.topn {
            asked.topn = Int(k)
            results.append(try Analysis.run(inputs: inputs, options: asked))
        }
        return results.sorted { ($0.topn ?? 0) < ($1.topn ?? 0) }
    }

    /// The accuracy of `type` in `run` at every step of `steps` (NaN where the run has no evaluation).
    public func curve(_ run: Run, type: String) -> [Double] {
        guard let log = run.log else { return steps.map { _ in .nan } }
        return along(log, log.overall[type] ?? [])
    }

    /// A per-evaluation series of `log` spread over `steps`.
    func along(_ log: FirstTokenLog, _ values: [Double]) -> [Double] {
        var at: [Int64: Double] = [:]
        for (i, step) in log.steps.enumerated() where i < values.count { at[step] = values[i] }
        return steps.map { at[$0] ?? .nan }
    }

    /// The summary of `type` in `run`; nil when the run never evaluated it.
    public func summary(_ run: Run, type: String) -> Summary? {
        guard let log = run.log else { return nil }
        let points = zip(log.steps, log.overall[type] ?? []).filter { !$0.1.isNaN }
        guard let first = points.first, let last = points.last else { return nil }
        var lowest = first
        for p in points where p.1 < lowest.1 { lowest = p }
        let half = points.first { $0.1 < first.1 / 2 }?.0
        return Summary(initial: first.1, initialStep: first.0, lowest: lowest.1, lowestStep: lowest.0,
                       final: last.1, finalStep: last.0, halfStep: half)
    }
}
