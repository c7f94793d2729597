import ArgumentParser
import Core
import Foundation

extension AttributionMethod: ExpressibleByArgument {}
extension CircuitTask: ExpressibleByArgument {}

/// An existing file or folder named by `option`, as an absolute URL; an error naming the option otherwise.
func existingPath(_ path: String, option: String, folder: Bool = false) throws -> URL {
    let url = ConfigLoader.absolute(path, relativeTo: ConfigLoader.cwd)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
        throw CircuitsError(item: option, problem: "\(url.path) does not exist", fix: "check the path")
    }
    guard isDir.boolValue == folder else {
        throw CircuitsError(item: option, problem: "\(url.path) is \(folder ? "a file, not a folder" : "a folder, not a file")",
                            fix: folder ? "give the model's folder (config.json + model.safetensors)" : "give the file itself")
    }
    return url
}

/// The model folder of `--model`: it must hold config.json and model.safetensors.
func modelFolder(_ path: String) throws -> URL {
    let url = try existingPath(path, option: "--model", folder: true)
    for name in [HFCheckpoint.configFileName, HFCheckpoint.weightsFileName]
    where !FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path) {
        throw CircuitsError(item: "--model", problem: "\(url.path) has no \(name)",
                            fix: "give a Hugging Face model folder (config.json + model.safetensors), e.g. a checkpoint-<step> folder")
    }
    return url
}

/// The output path of `option`, absolute; its folder must exist.
func outputPath(_ path: String, option: String) throws -> URL {
    let url = ConfigLoader.absolute(path, relativeTo: ConfigLoader.cwd)
    var isDir: ObjCBool = false
    let folder = url.deletingLastPathComponent()
    guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
        throw CircuitsError(item: option, problem: "the folder \(folder.path) does not exist", fix: "create it first")
    }
    return url
}

/// The tokenizer of a model: `--tokenizer` when given, else the model folder's own vocab.json + merges.txt
/// (Trainer checkpoints carry them), else the default GPT-2 tokenizer.
func loadTokenizer(option: String?, model: URL) throws -> GPT2Tokenizer {
    try TokenizerLoader.resolveGPT2(explicit: try option.map { try existingPath($0, option: "--tokenizer", folder: true) }, model: model)
}

/// The tokenizer of a circuit command on any family, by the one resolution rule (`TokenizerLoader.resolve`:
/// `--tokenizer`, else the model folder's tokenizer.json or vocab.json + merges.txt, else GPT-2's).
func loadCircuitTokenizer(option: String?, model: URL) throws -> any Tokenizer {
    try TokenizerLoader.resolve(explicit: try option.map { try existingPath($0, option: "--tokenizer", folder: true) }, model: model)
}

/// Circuit sizes as `--topn` takes them: positive integers, comma-separated, none twice (`10,50,200`).
/// The options parse into it (`@Option(transform: CircuitSizes.init(parsing:))`), so a bad list is a usage
/// error naming the option before the command runs.
struct CircuitSizes: Equatable {
    let values: [Int]

    init(_ values: [Int]) { self.values = values }

    init(parsing text: String) throws {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let sizes = parts.compactMap { Int($0) }
        guard !parts.isEmpty, sizes.count == parts.count, sizes.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("'\(text)' is not a list of positive integers (write e.g. 10,50,200)")
        }
        guard Set(sizes).count == sizes.count else { throw ValidationError("'\(text)' lists a size twice") }
        values = sizes
    }
}

/// The provenance of a single-process command: its command line and its settings as JSON.
func commandProvenance(_ settings: [(String, JSONValue)]) throws -> Provenance {
    try Provenance(arguments: CommandLine.arguments, config: JSONValue.object(settings).compactText, mpiRanks: 1, blasThreads: BLAS.threads)
}

/// A live progress line on standard error when it is a terminal ("discover: 120/240 samples, 35.2
/// samples/s, ETA 0:03"); silent otherwise, so logs stay clean. Redraws at most ten times a second.
final class ProgressLine {
    let enabled: Bool
    private var label = ""
    private var phaseStart = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(enabled: Bool = liveProgress(2)) { self.enabled = enabled }

    func update(_ label: String, done: Int, total: Int, unit: String = "samples") {
        guard enabled else { return }
        let now = Date()
        if label != self.label { self.label = label; phaseStart = now }
        guard done >= total || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(phaseStart)
        var text = "\(label): \(done)/\(total) \(unit)"
        if elapsed > 0, done > 0 {
            let rate = Double(done) / elapsed
            text += String(format: ", %.1f %@/s", rate, unit)
            if done < total { text += ", ETA " + Self.clock(Double(total - done) / rate) }
        }
        draw(text)
    }

    /// Redraws the line with `text` (a caller that composes its own status: the sweep's items and samples).
    func show(_ text: String) {
        guard enabled else { return }
        draw(text)
    }

    private func draw(_ text: String) {
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        drawn = true
    }

    /// Clears the line (call before printing anything else).
    func finish() {
        guard enabled, drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        drawn = false
    }

    /// "1:02:03" or "2:03".
    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// The model at `folder` ready for circuit work, and its checkpoint step (`checkpoint-<step>`, else 0).
func loadCircuitModel(_ folder: URL) throws -> CircuitModel {
    try CircuitModel.load(folder: folder)
}

/// Checks, before anything else is read, that `folder` holds a GPT-2 for a command that runs on GPT-2 only
/// (components, predict, trace): another family is an error naming the command.
func requireGPT2(_ folder: URL, command: String) throws {
    let config = try ModelConfig.load(from: folder.appendingPathComponent(HFCheckpoint.configFileName))
    guard config.family == .gpt2 else {
        throw CircuitsError(item: "--model", problem: "\(folder.path) is a \(config.family.rawValue) model; dkc \(command) runs on GPT-2 only",
                            fix: "see docs/model-families.md for what runs on the families")
    }
}


/// The one cell of scores `table` that `--task`, `--type`, `--frequency` and `--checkpoint` select; the model's
/// own checkpoint wins when several checkpoints remain. Returns the cell and its scores as stored.
func pickScoresCell(_ table: ScoresTable, task: String, type: String?, frequency: String?, checkpoint: Int64?,
                    modelStep: Int64, source: String) throws -> (ResultCell, [Float]) {
    var candidates = table.cells.keys.filter { $0.task == task }
    if let type { candidates = candidates.filter { $0.type == type } }
    if let frequency { candidates = candidates.filter { $0.frequency == frequency } }
    if let checkpoint { candidates = candidates.filter { $0.checkpoint == checkpoint } }
    if checkpoint == nil, Set(candidates.map(\.checkpoint)).count > 1, candidates.contains(where: { $0.checkpoint == modelStep }) {
        candidates = candidates.filter { $0.checkpoint == modelStep }
    }
    guard candidates.count == 1, let cell = candidates.first else {
        let all = table.cells.keys.map(\.description).sorted()
        let problem = candidates.isEmpty ? "holds no cell for task \(task)\(type.map { ", type \($0)" } ?? "")\(frequency.map { ", frequency \($0)" } ?? "")\(checkpoint.map { ", checkpoint \($0)" } ?? "")"
            : "holds \(candidates.count) matching cells"
        throw CircuitsError(item: "--scores", problem: "\(source) \(problem); it has: \(all.joined(separator: "; "))",
                            fix: "choose one with --type, --frequency and --checkpoint")
    }
    return (cell, table.cells[cell]!.scores)
}
