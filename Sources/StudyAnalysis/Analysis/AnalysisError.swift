import Foundation
import Support

/// What went wrong in `dkc analyze`: which input file, variable or option, and how to fix it.
public enum AnalysisError: UserFacingError {
    /// No input file exists (none given, or none of `<run>/circuits/*.nc` found).
    case noInputs(String)
    /// A file given on the command line does not exist.
    case missingFile(option: String, path: String)
    /// A file lacks something docs/outputs.md promises, or has it in another shape.
    case layout(file: String, object: String, problem: String)
    /// Two files disagree about something they must share (node names, graph size).
    case mismatch(files: [String], problem: String)
    /// An option value that cannot be used with these files.
    case option(name: String, problem: String)
    /// Writing the outputs failed.
    case output(path: String, problem: String)

    public var description: String {
        switch self {
        case .noInputs(let detail):
            return "dkc analyze: no input files: \(detail). Give --run DIR (reading DIR/circuits/scores.nc, circuits.nc, " +
                "acquisition.nc) or at least one of --scores, --circuits, --acquisition"
        case .missingFile(let option, let path):
            let what = option == "--metrics" ? "a training stage's metrics.jsonl (RUN/train/<stage>/metrics.jsonl)"
                : "the NetCDF file `dkc sweep` wrote"
            return "dkc analyze: \(option) \(path): no such file. Give the path of \(what)"
        case .layout(let file, let object, let problem):
            return "dkc analyze: \(file): \(object): \(problem). The file does not follow the layout in " +
                "docs/outputs.md; re-create it with `dkc sweep` (or the command that writes it)"
        case .mismatch(let files, let problem):
            return "dkc analyze: \(files.joined(separator: " and ")) disagree: \(problem). Analyse files from the same run"
        case .option(let name, let problem):
            return "dkc analyze: \(name): \(problem)"
        case .output(let path, let problem):
            return "dkc analyze: cannot write \(path): \(problem). Check that the folder is writable"
        }
    }

    /// 64 for an unusable option, 1 for an output failure, 65 for bad input files.
    public var exitCode: Int32 {
        switch self {
        case .option: return 64
        case .output: return 1
        default: return 65
        }
    }
}
