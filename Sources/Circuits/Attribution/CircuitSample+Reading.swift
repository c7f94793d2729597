import Foundation
import Support
import Models
import StudyData

// Reading the circuit-data lines (their errors name the file and line) and turning one into a prompt pair.
extension CircuitSample {
    /// Reads one JSON object; `source` and `line` name the place in error messages.
    public init(jsonObject o: JSONValue, source: String, line: Int) throws {
        func field<T>(_ name: String, _ convert: (JSONValue) -> T?) throws -> T {
            guard let v = o[name], let t = convert(v) else {
                throw AttributionError(item: "\(source):\(line)", problem: "field \"\(name)\" is missing or has the wrong type",
                                       fix: "give the study's circuit format (clean_subject, clean_label_idx, corrupted_subject, …)")
            }
            return t
        }
        // A number (integral, within ±2^53: `intValue`) or a string of digits; never a boolean.
        let int: (JSONValue) -> Int? = { v in v.intValue ?? v.stringValue.flatMap { Int($0) } }
        self.init(cleanSubject: try field("clean_subject", \.stringValue),
                  cleanLabel: o["clean_label"]?.stringValue ?? "",
                  cleanLabelIndex: try field("clean_label_idx", int),
                  corruptedSubject: try field("corrupted_subject", \.stringValue),
                  corruptedLabel: o["corrupted_label"]?.stringValue ?? "",
                  corruptedLabelIndex: try field("corrupted_label_idx", int),
                  frequency: try field("frequency", int),
                  type: try field("type", \.stringValue))
    }

    /// Every line of a circuit JSONL file (blank lines skipped).
    public static func readJSONL(_ url: URL) throws -> [CircuitSample] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw AttributionError(item: url.path, problem: "cannot be read (\(error.localizedDescription))", fix: "check the path")
        }
        var out: [CircuitSample] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            guard let o = try? JSONValue(parsing: trimmed), o.isObject else {
                throw AttributionError(item: "\(url.path):\(i + 1)", problem: "is not a JSON object", fix: "one JSON object per line")
            }
            out.append(try CircuitSample(jsonObject: o, source: url.path, line: i + 1))
        }
        return out
    }

    /// The prompt pair for `task`, tokenised by `encoder` (BOS is added by `PromptBatch`).
    public func promptPair(task: CircuitTask, encoder: TextEncoder) -> PromptPair {
        PromptPair(template: task.promptTemplate, cleanSubject: cleanSubject, corruptedSubject: corruptedSubject,
                   cleanLabel: cleanLabelIndex, corruptedLabel: corruptedLabelIndex, encoder: encoder)
    }
}
