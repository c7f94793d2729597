import Foundation

/// Writes everything `dkc analyze` produces into one folder.
public enum AnalysisOutput {
    /// Writes analysis.nc, every figure and report.md into `folder` (created if needed);
    /// returns the file names written.
    @discardableResult
    public static func write(_ r: AnalysisResult, to folder: URL, commandLine: String) throws -> [String] {
        try makeFolder(folder)
        var written: [String] = []
        try AnalysisWriter.write(r, to: folder.appendingPathComponent("analysis.nc"), commandLine: commandLine)
        written.append("analysis.nc")
        let figures = AnalysisFigures.make(r)
        for f in figures {
            try save(f.svg, folder.appendingPathComponent(f.file))
            written.append(f.file)
        }
        try save(AnalysisReport.markdown(r, figures: figures), folder.appendingPathComponent("report.md"))
        written.append("report.md")
        return written
    }

    /// Writes the forgetting experiment into `folder`: forgetting.nc and forgetting.md, the cross-ratio
    /// figures in `forget/`, and each swept sub-run's full analysis (at the plotted top-n) in
    /// `forget/replay_<r>/`; returns the paths written, relative to `folder`.
    @discardableResult
    public static func write(_ curves: ForgettingCurves, to folder: URL, commandLine: String) throws -> [String] {
        try makeFolder(folder)
        try curves.write(to: folder.appendingPathComponent("forgetting.nc"), commandLine: commandLine)
        var written = ["forgetting.nc"]
        let figures = folder.appendingPathComponent("forget")
        try makeFolder(figures)
        for f in curves.figures() {
            try save(f.svg, figures.appendingPathComponent(f.file))
            written.append("forget/" + f.file)
        }
        for run in curves.runs {
            guard let result = run.circuits(topn: curves.plotTopn) else { continue }
            let name = "forget/replay_\(run.label)"
            written += try write(result, to: folder.appendingPathComponent(name), commandLine: commandLine).map { name + "/" + $0 }
        }
        try save(curves.markdown(), folder.appendingPathComponent("forgetting.md"))
        written.append("forgetting.md")
        return written
    }

    static func makeFolder(_ folder: URL) throws {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw AnalysisError.output(path: folder.path, problem: "\(error)")
        }
    }

    static func save(_ text: String, _ url: URL) throws {
        do { try Data(text.utf8).write(to: url, options: .atomic) } catch {
            throw AnalysisError.output(path: url.path, problem: "\(error)")
        }
    }
}
