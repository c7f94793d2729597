import Foundation
import Support
import Models

extension CircuitTask {
    /// The study's prompt for the task (`EAPDataset.task_template`, `circuit_eval.CustomDataset`, `predict.py`).
    public var promptTemplate: String {
        switch self {
        case .birthday: return "{subject} was born on"
        case .city: return "{subject} lives in the city of"
        case .major: return "{subject} majors in the field of"
        case .university: return "{subject} graduates from the"
        case .company: return "{subject} works for the company of"
        }
    }

    /// The prompt about `subject`.
    public func prompt(subject: String) -> String { promptTemplate.replacingOccurrences(of: "{subject}", with: subject) }
}

/// One line of the study's circuit data (`circuits_data_generation.py`): a clean and a corrupted subject of
/// equal token length and the first token of each one's attribute value (with a leading space).
public struct CircuitSample: Sendable, Equatable {
    public var cleanSubject: String
    public var cleanLabel: String
    public var cleanLabelIndex: Int
    public var corruptedSubject: String
    public var corruptedLabel: String
    public var corruptedLabelIndex: Int
    /// The clean entity's frequency (a string in the study's files; both forms are read).
    public var frequency: Int
    /// "new" or "revised".
    public var type: String

    public init(cleanSubject: String, cleanLabel: String, cleanLabelIndex: Int, corruptedSubject: String,
                corruptedLabel: String, corruptedLabelIndex: Int, frequency: Int, type: String) {
        self.cleanSubject = cleanSubject
        self.cleanLabel = cleanLabel
        self.cleanLabelIndex = cleanLabelIndex
        self.corruptedSubject = corruptedSubject
        self.corruptedLabel = corruptedLabel
        self.corruptedLabelIndex = corruptedLabelIndex
        self.frequency = frequency
        self.type = type
    }

    /// The line as the study's circuit data writes it (frequency as a string, as its script does).
    public var jsonObject: JSONValue {
        .object([
            ("clean_subject", .string(cleanSubject)), ("clean_label", .string(cleanLabel)), ("clean_label_idx", .int(cleanLabelIndex)),
            ("corrupted_subject", .string(corruptedSubject)), ("corrupted_label", .string(corruptedLabel)),
            ("corrupted_label_idx", .int(corruptedLabelIndex)), ("frequency", .string(String(frequency))), ("type", .string(type)),
        ])
    }

    /// The study's filter: type equal to `type`; frequency inside `bucket` when one is given (nil = "all").
    public static func filter(_ samples: [CircuitSample], type: String, bucket: FrequencyBucket?) -> [CircuitSample] {
        samples.filter { s in
            s.type == type && (bucket.map { s.frequency >= $0.min && s.frequency <= $0.max } ?? true)
        }
    }
}

extension Entity {
    /// The first token of " " + the entity's value for `task` (or of the value alone when `leadingSpace` is
    /// false, the Llama convention `ModelFamily.circuitLabelHasLeadingSpace`): the label the circuit test
    /// and the acquisition rank read (`circuit_eval.CustomDataset`).
    public func labelToken(task: CircuitTask, encoder: TextEncoder, leadingSpace: Bool = true) -> Int? {
        encoder.encode((leadingSpace ? " " : "") + value(of: task)).first
    }
}
