import ArgumentParser
import Core
import Foundation

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyse how knowledge circuits evolve across checkpoints: numbers (analysis.nc), SVG figures, report.md.",
        discussion: """
        Reads the sweep's scores.nc, circuits.nc, acquisition.nc and components.nc (from RUN/circuits/, or given one by one) and \
        computes the study's three findings: acquisition curves of the full model and of the circuits, cross-frequency \
        circuit tests, and first-token accuracy per evaluation from RUN/train/<stage>/metrics.jsonl (performance), \
        Jaccard similarity of each checkpoint's circuit (edge and node sets) with the final and the previous one, \
        edge entropy, faithfulness and the phase shift from formation to optimisation (topology), and the edge \
        activation ratio per layer, the distribution of circuit edges and |score| over layers and the heads the \
        circuits keep, plus from components.nc the logit-lens curves and head-class proportions, and the transplant \
        curves of circuits.nc when the sweep made them (components). docs/analyze.md defines every number. Cells missing from a partial sweep are \
        skipped and listed in the report. With --run, a run that has forget sub-runs (RUN/train/forget/replay_<r>/, \
        RUN/circuits/forget/replay_<r>/) also gets the forgetting experiment: forgetting.nc (learning curves, query \
        accuracy, faithfulness, edge entropy, Jaccard with the initial circuit, edge activation ratio and logit lens per \
        replay ratio), forgetting.md, figures in analysis/forget/ and each sub-run's full analysis in \
        analysis/forget/replay_<r>/ (docs/forgetting.md). Runs as one process; no mpirun needed.
        """
    )

    @Option(name: .customLong("run"), help: ArgumentHelp(
        "Run folder: reads RUN/circuits/{scores,circuits,acquisition}.nc, writes RUN/analysis/ by default.", valueName: "run"))
    var runFolder: String?

    @Option(name: .long, help: "scores.nc to read (overrides RUN/circuits/scores.nc).")
    var scores: String?

    @Option(name: .long, help: "circuits.nc to read (overrides RUN/circuits/circuits.nc).")
    var circuits: String?

    @Option(name: .long, help: "acquisition.nc to read (overrides RUN/circuits/acquisition.nc).")
    var acquisition: String?

    @Option(name: .long, help: "components.nc to read (overrides RUN/circuits/components.nc): logit lens and head classes.")
    var components: String?

    @Option(name: .long, parsing: .upToNextOption,
            help: "Training stages' metrics.jsonl for first-token accuracy (default: every RUN/train/<stage>/metrics.jsonl).")
    var metrics: [String] = []

    @Option(name: .long, help: "Output folder (default: RUN/analysis).")
    var out: String?

    @Option(name: .long, help: "Circuit size to analyse, one of circuits.nc's topn values (default: the largest).")
    var topn: Int?

    @Option(name: .long, help: "Level an acquisition curve must reach to count as acquired.")
    var threshold: Double = 0.5

    @Option(name: .long, parsing: .upToNextOption,
            help: "Attributes of acquisition.nc averaged into the full-model curves (default: all).")
    var attributes: [String] = []

    @Option(name: .long, help: "Phase shift: smallest relative SSE improvement of two segments over one.")
    var phaseMinImprovement: Double = 0.10

    @Option(name: .long, help: "Phase shift: the improvement must also beat this quantile of straight-line-plus-noise curves.")
    var phaseConfidence: Double = 0.95

    @Option(name: .long, help: "Phase-shift estimate: bootstrap resamples over cells (seeded).")
    var phaseResamples: Int = 200

    @Option(name: .long, help: "Phase-shift estimate: share of resamples that must find a break for it to count as supported.")
    var phaseMinSupport: Double = 0.8

    @Option(name: .long, help: "Task of the final-circuit heat maps (default: the first task).")
    var heatmapTask: String?

    @Option(name: .long, help: "Frequency bucket of the final-circuit heat maps (default: high, else the first).")
    var heatmapFrequency: String?

    func validate() throws {
        guard runFolder != nil || scores != nil || circuits != nil || acquisition != nil || !metrics.isEmpty else {
            throw ValidationError("give --run DIR, or at least one of --scores, --circuits, --acquisition, --metrics")
        }
        guard runFolder != nil || out != nil else {
            throw ValidationError("--out DIR is required without --run")
        }
        guard threshold > 0 && threshold <= 1 else { throw ValidationError("--threshold must be in (0, 1], got \(threshold)") }
        guard phaseMinImprovement >= 0 && phaseMinImprovement < 1 else {
            throw ValidationError("--phase-min-improvement must be in [0, 1), got \(phaseMinImprovement)")
        }
        guard phaseConfidence > 0 && phaseConfidence < 1 else {
            throw ValidationError("--phase-confidence must be in (0, 1), got \(phaseConfidence)")
        }
        guard phaseResamples >= 0 else { throw ValidationError("--phase-resamples must be ≥ 0, got \(phaseResamples)") }
        guard phaseMinSupport >= 0 && phaseMinSupport <= 1 else {
            throw ValidationError("--phase-min-support must be in [0, 1], got \(phaseMinSupport)")
        }
        if let topn, topn <= 0 { throw ValidationError("--topn must be positive, got \(topn)") }
    }

    func run() throws {
        try runReporting("analyze") {
            let inputs = try AnalysisInputPaths.resolve(run: runFolder, scores: scores, circuits: circuits, acquisition: acquisition,
                                                      metrics: metrics, components: components)
            var options = AnalysisOptions(topn: topn, threshold: threshold, attributes: attributes.isEmpty ? nil : attributes,
                                          phaseMinImprovement: phaseMinImprovement, phaseConfidence: phaseConfidence,
                                          heatmapTask: heatmapTask, heatmapFrequency: heatmapFrequency)
            options.phaseResamples = phaseResamples
            options.phaseMinSupport = phaseMinSupport
            let result = try Analysis.run(inputs: inputs, options: options)
            let folder = URL(fileURLWithPath: out ?? URL(fileURLWithPath: runFolder!).appendingPathComponent("analysis").path)
            let commandLine = Provenance.quote(CommandLine.arguments)
            let written = try AnalysisOutput.write(result, to: folder, commandLine: commandLine)
            print("dkc analyze: \(result.steps.count) checkpoint(s), \(result.missing.count) missing cell(s); wrote \(written.count) files to \(folder.path):")
            for name in written { print("  \(name)") }
            print("")
            print(result.summaryTable(), terminator: "")
            print("report: \(folder.appendingPathComponent("report.md").path)")
            // The forgetting experiment's curves when the run has forget sub-runs (docs/forgetting.md).
            if let runFolder, let curves = try ForgettingCurves.read(runFolder: URL(fileURLWithPath: runFolder), options: options) {
                let files = try AnalysisOutput.write(curves, to: folder, commandLine: commandLine)
                let swept = curves.runs.filter { !$0.circuits.isEmpty }.count
                print("")
                print("forgetting: \(curves.runs.count) replay sub-run(s), \(swept) swept; wrote forgetting.nc, forgetting.md and "
                      + "\(files.count - 2) files under forget/")
                print(curves.markdown().split(separator: "\n", omittingEmptySubsequences: false).dropFirst(4).joined(separator: "\n"))
            }
        }
    }
}
