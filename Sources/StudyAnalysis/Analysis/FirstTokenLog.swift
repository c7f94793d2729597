import Foundation
import Support
import StudyData

/// First-token attribute accuracy per evaluation of one training stage, read from the stage's
/// `metrics.jsonl` (docs/analyze.md, finding 1).
///
/// An evaluation line is a JSON object with an integer `step` and at least one key
/// `eval_first_token_accuracy_<type>` (pooled over attributes) or
/// `eval_first_token_accuracy_<type>_<attribute>`; training lines (without such keys) are skipped.
/// A type or attribute an evaluation lacks (no marked position) is NaN there. The curves are kept
/// by optimizer step, as the stage logged them; they are not spread over the checkpoint axis.
public struct FirstTokenLog: Equatable, Sendable {
    /// The stage's name (its folder under `train/`, e.g. "continual").
    public let stage: String
    /// The file read.
    public let path: String
    /// Optimizer step of each evaluation, in file order.  (n_eval)
    public var steps: [Int64] = []
    /// Entity types seen (`new`, `revised`, in first-seen order) and attributes seen (in
    /// `BiographyAttribute` order, then others in first-seen order).
    public var types: [String] = []
    public var attributes: [String] = []
    /// Pooled accuracy: `overall[type][i]` at evaluation i (NaN when the line lacks it).
    public var overall: [String: [Double]] = [:]
    /// `byAttribute[type][attribute][i]`.
    public var byAttribute: [String: [String: [Double]]] = [:]
    /// The line's `eval_loss` at evaluation i (NaN when the line lacks it).
    public var evalLoss: [Double] = []

    public init(stage: String, path: String) { self.stage = stage; self.path = path }

    static let prefix = "eval_first_token_accuracy_"

    /// Reads one stage's metrics.jsonl. A line that is not a JSON object, an evaluation line
    /// without an integer `step`, or an accuracy outside [0, 1] is a named error.
    public static func read(path: String, stage: String) throws -> FirstTokenLog {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw AnalysisError.layout(file: path, object: "file", problem: "cannot be read as UTF-8 text (\(error))")
        }
        var log = FirstTokenLog(stage: stage, path: path)
        // Per evaluation: type → accuracy, and (type, attribute) → accuracy.
        var rows: [(step: Int64, pooled: [String: Double], split: [String: [String: Double]], loss: Double)] = []
        let known = BiographyAttribute.allCases.map(\.rawValue)
        var extraAttributes: [String] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let value: JSONValue
            do { value = try JSONValue(parsing: trimmed) } catch {
                throw AnalysisError.layout(file: path, object: "line \(number + 1)", problem: "not JSON (\(error))")
            }
            guard case .object(let pairs) = value else {
                throw AnalysisError.layout(file: path, object: "line \(number + 1)", problem: "not a JSON object")
            }
            var pooled: [String: Double] = [:], split: [String: [String: Double]] = [:]
            for (key, v) in pairs where key.hasPrefix(prefix) {
                guard let x = v.doubleValue, x.isNaN || (0...1).contains(x) else {
                    throw AnalysisError.layout(file: path, object: "line \(number + 1), key '\(key)'",
                                               problem: "an accuracy must be a number in [0, 1]")
                }
                let rest = String(key.dropFirst(prefix.count))
                let parts = rest.split(separator: "_", maxSplits: 1).map(String.init)
                guard let type = parts.first, !type.isEmpty else { continue }
                if !log.types.contains(type) { log.types.append(type) }
                if parts.count == 1 {
                    pooled[type] = x
                } else {
                    let attribute = parts[1]
                    if !known.contains(attribute) && !extraAttributes.contains(attribute) { extraAttributes.append(attribute) }
                    split[type, default: [:]][attribute] = x
                }
            }
            guard !pooled.isEmpty || !split.isEmpty else { continue }
            guard let step = pairs.first(where: { $0.0 == "step" })?.1.intValue, step >= 0 else {
                throw AnalysisError.layout(file: path, object: "line \(number + 1)",
                                           problem: "an evaluation line needs a non-negative integer 'step'")
            }
            let loss = pairs.first(where: { $0.0 == "eval_loss" })?.1.doubleValue ?? .nan
            rows.append((Int64(step), pooled, split, loss))
        }
        let seen = Set(rows.flatMap { $0.split.values.flatMap(\.keys) })
        log.attributes = known.filter { seen.contains($0) } + extraAttributes
        log.steps = rows.map(\.step)
        log.evalLoss = rows.map(\.loss)
        for type in log.types {
            log.overall[type] = rows.map { $0.pooled[type] ?? .nan }
            var per: [String: [Double]] = [:]
            for a in log.attributes { per[a] = rows.map { $0.split[type]?[a] ?? .nan } }
            log.byAttribute[type] = per
        }
        return log
    }

    /// The stages' metrics files of a run: `<run>/train/<stage>/metrics.jsonl` for every stage
    /// folder that has one, `base` first, then the others by name.
    public static func stageFiles(run: String) -> [(stage: String, path: String)] {
        let train = URL(fileURLWithPath: run).appendingPathComponent("train")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: train.path) else { return [] }
        let ordered = names.sorted { a, b in a == "base" ? b != "base" : b == "base" ? false : a < b }
        return ordered.compactMap { name in
            let path = train.appendingPathComponent(name).appendingPathComponent("metrics.jsonl").path
            return FileManager.default.fileExists(atPath: path) ? (name, path) : nil
        }
    }
}
