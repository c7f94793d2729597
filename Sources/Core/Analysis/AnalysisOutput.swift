import Foundation

/// Writes everything `dkc analyze` produces into one folder.
public enum AnalysisOutput {
    /// Writes analysis.nc, every figure and report.md into `folder` (created if needed);
    /// returns the file names written.
    @discardableResult
    public static func write(_ r: AnalysisResult, to folder: URL, commandLine: String) throws -> [String] {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw AnalysisError.output(path: folder.path, problem: "\(error)")
        }
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

    static func save(_ text: String, _ url: URL) throws {
        do { try Data(text.utf8).write(to: url, options: .atomic) } catch {
            throw AnalysisError.output(path: url.path, problem: "\(error)")
        }
    }
}
