import Foundation
import Core

/// The inputs of circuit discovery and evaluation as the study's files hold them: the prompt template of
/// each task, circuit records (`circuit_<n>/<model>/<task>.jsonl`), test entities (`test.jsonl`), the
/// frequency buckets of the data set (`manifest.json`), and the cell filter (type × bucket).

extension CircuitTask {
    /// The task named `name`, or an error naming `option` and the valid names.
    public static func named(_ name: String, option: String) throws -> CircuitTask {
        guard let task = CircuitTask(rawValue: name) else {
            throw CircuitsError(item: option, problem: "unknown task '\(name)'",
                                fix: "use one of \(CircuitTask.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return task
    }
}

/// Test entities (`test.jsonl`, one entity a line in the study's fields), with their line numbers.
public enum TestEntities {
    public static func read(_ url: URL) throws -> [Entity] {
        try JSONLines.objects(url, what: "test file", fix: "give the test.jsonl written by dkc data generate").map { line, o in
            guard let e = Entity(jsonObject: o) else {
                let required = ["full_name", "birth_date", "birth_month", "birth_year", "city", "major", "university", "company", "frequency", "type"]
                let missing = required.filter { o[$0] == nil }
                let problem = missing.isEmpty ? "a field has the wrong type (strings everywhere; frequency a string or integer; type new or revised)"
                    : "lacks the field\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", "))"
                throw CircuitsError(item: "\(url.path) line \(line)", problem: problem, fix: "every line must be an entity as dkc data generate writes it")
            }
            return e
        }
    }
}

/// The frequency buckets of a data set: read from the `manifest.json` of `dkc data generate` that sits
/// beside or above a data file, else the study's default (low [1, 1], medium [2, 5], high [6, ∞)).
/// Buckets are kept in the manifest's order (descending lower bound: high, medium, low).
public struct FrequencyBuckets: Sendable, Equatable {
    public let buckets: [FrequencyBucket]
    /// Where they came from: the manifest's path, or nil for the default.
    public let manifest: URL?

    public static let defaultBuckets = [FrequencyBucket(name: "high", min: 6, max: Int.max),
                                        FrequencyBucket(name: "medium", min: 2, max: 5),
                                        FrequencyBucket(name: "low", min: 1, max: 1)]

    public init(buckets: [FrequencyBucket], manifest: URL?) {
        self.buckets = buckets
        self.manifest = manifest
    }

    /// The buckets of the data set `file` belongs to: the first `manifest.json` in its folder or any folder
    /// above it that has `frequency_buckets`; the default buckets when there is none.
    public static func forData(at file: URL) throws -> FrequencyBuckets {
        for candidate in DataManifest.candidates(above: file) {
            if let found = try read(manifest: candidate) { return found }
        }
        return FrequencyBuckets(buckets: defaultBuckets, manifest: nil)
    }

    /// The buckets of a data manifest; nil when it has no `frequency_buckets` (not a dkc data manifest).
    public static func read(manifest url: URL) throws -> FrequencyBuckets? {
        guard let object = JSONValue(contentsOf: url), let list = object["frequency_buckets"] else { return nil }
        guard let items = list.arrayValue, !items.isEmpty else {
            throw CircuitsError(item: "\(url.path): frequency_buckets", problem: "is not a non-empty list of {name, min, max}",
                                fix: "regenerate the data with dkc data generate")
        }
        var buckets: [FrequencyBucket] = []
        for item in items {
            guard let name = item["name"]?.stringValue, let lo = item["min"]?.intValue, let hi = item["max"]?.intValue, lo <= hi else {
                throw CircuitsError(item: "\(url.path): frequency_buckets", problem: "holds an entry that is not {name, min ≤ max}: \(item.compactText)",
                                    fix: "regenerate the data with dkc data generate")
            }
            buckets.append(FrequencyBucket(name: name, min: lo, max: hi))
        }
        return FrequencyBuckets(buckets: buckets, manifest: url)
    }

    public var names: [String] { buckets.map(\.name) }

    /// Where the buckets came from, for messages.
    public var source: String { manifest.map { "the buckets of \($0.path)" } ?? "the default buckets (low [1, 1], medium [2, 5], high [6, ∞))" }

    /// The bucket called `name`; `option` names the option or key for the error.
    public func bucket(named name: String, option: String) throws -> FrequencyBucket {
        guard let b = buckets.first(where: { $0.name == name }) else {
            throw CircuitsError(item: option, problem: "unknown frequency bucket '\(name)'",
                                fix: "use \(OutputLabels.all) or one of \(names.joined(separator: ", ")) (\(source))")
        }
        return b
    }

    /// The name of the bucket holding frequency `f`, nil when none does.
    public func name(of f: Int) -> String? { buckets.first { $0.contains(f) }?.name }
}

/// The `manifest.json` of `dkc data generate` that a data file belongs to.
public enum DataManifest {
    /// Every existing `manifest.json` in the folder of `file` and the folders above it, nearest first.
    static func candidates(above file: URL) -> [URL] {
        var out: [URL] = []
        var dir = file.standardizedFileURL.deletingLastPathComponent()
        while true {
            let candidate = dir.appendingPathComponent("manifest.json")
            if FileManager.default.fileExists(atPath: candidate.path) { out.append(candidate) }
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path || dir.path == "/" { break }
            dir = parent
        }
        return out
    }

    /// Which people the data set's `test.jsonl` holds (docs/pipeline.md §2, docs/test-set.md): the manifest's
    /// `test_set`, "circuit" (each cell's circuit sample, the study's set-up) or "independent"; a data
    /// manifest written before the key existed held an independent sample. Nil when `file` belongs to
    /// no dkc data set (no manifest with `frequency_buckets` beside or above it).
    public static func testSet(forData file: URL) -> String? {
        for candidate in candidates(above: file) {
            guard let object = JSONValue(contentsOf: candidate), object["frequency_buckets"] != nil else { continue }
            return testSet(of: object)
        }
        return nil
    }

    /// The `test_set` of a parsed data manifest ("independent" when absent: older manifests).
    public static func testSet(of manifest: JSONValue) -> String {
        manifest["test_set"]?.stringValue ?? TestSetChoice.independent.rawValue
    }
}

/// The records or entities of one grid cell: an entity type ("new", "revised", or "all") and a frequency
/// bucket (or "all"). `all` keeps everything on that axis.
public struct CellFilter: Sendable, Hashable, CustomStringConvertible {
    public let type: String
    public let bucket: FrequencyBucket?

    /// Checks `type` ("new", "revised", "all") and resolves `frequency` among `buckets`.
    public init(type: String, frequency: String, buckets: FrequencyBuckets, typeOption: String = "--type",
                frequencyOption: String = "--frequency") throws {
        guard type == OutputLabels.all || EntityType(rawValue: type) != nil else {
            throw CircuitsError(item: typeOption, problem: "unknown entity type '\(type)'", fix: "use new, revised or all")
        }
        self.type = type
        bucket = frequency == OutputLabels.all ? nil : try buckets.bucket(named: frequency, option: frequencyOption)
    }

    public init(type: String, bucket: FrequencyBucket?) {
        self.type = type
        self.bucket = bucket
    }

    /// The frequency label of the cell (bucket name or "all").
    public var frequency: String { bucket?.name ?? OutputLabels.all }

    public func accepts(type t: String, frequency f: Int) -> Bool {
        (type == OutputLabels.all || type == t) && (bucket?.contains(f) ?? true)
    }

    public var description: String { "type \(type), frequency \(frequency)" }
}

extension CircuitSample {
    /// The samples of `filter` as attribution prompt pairs (`task`'s template, tokenised by `encoder`, labels
    /// as the file gives them). `source` names the file; throws when no sample is left or a corrupted prompt
    /// has another token count than its clean prompt (naming the record, 1-based, in file order).
    public static func pairs(_ samples: [CircuitSample], filter: CellFilter, task: CircuitTask, encoder: TextEncoder,
                             source: String) throws -> [PromptPair] {
        let kept = samples.enumerated().filter { filter.accepts(type: $0.element.type, frequency: $0.element.frequency) }
        guard !kept.isEmpty else {
            throw CircuitsError(item: source, problem: "no record has \(filter) (the file holds \(samples.count) records)",
                                fix: "choose another --type / --frequency, or check that the file belongs to this data set")
        }
        return try kept.map { i, r in
            let pair = r.promptPair(task: task, encoder: encoder)
            guard pair.clean.count == pair.corrupted.count else {
                throw CircuitsError(item: "\(source) record \(i + 1)",
                                    problem: "'\(r.corruptedSubject)' gives \(pair.corrupted.count) prompt tokens, '\(r.cleanSubject)' \(pair.clean.count)",
                                    fix: "corrupted subjects must have as many tokens as the clean subject; regenerate the circuit data with this tokenizer")
            }
            return pair
        }
    }

    /// The records of a circuit data file; a missing file is an error naming it.
    public static func read(_ url: URL) throws -> [CircuitSample] {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CircuitsError.missing(url.path, what: "circuit data file", fix: "give a circuit_<n>/<model>/<task>.jsonl written by dkc data generate")
        }
        return try readJSONL(url)
    }
}

/// JSON Lines reading with messages that name the file and line.
enum JSONLines {
    /// Every non-empty line of `url` as a JSON object, with its 1-based line number.
    static func objects(_ url: URL, what: String, fix: String) throws -> [(Int, JSONValue)] {
        guard FileManager.default.fileExists(atPath: url.path) else { throw CircuitsError.missing(url.path, what: what, fix: fix) }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CircuitsError(item: url.path, problem: "cannot be read: \(error.localizedDescription)", exitCode: 1)
        }
        var out: [(Int, JSONValue)] = []
        var line = 0
        var start = data.startIndex
        while start < data.endIndex {
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            line += 1
            var slice = data[start..<end]
            if slice.last == 0x0D { slice = slice.dropLast() }
            start = end < data.endIndex ? end + 1 : end
            if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            guard let object = try? JSONValue(parsing: Data(slice)), object.isObject else {
                throw CircuitsError(item: "\(url.path) line \(line)", problem: "is not a JSON object", fix: fix)
            }
            out.append((line, object))
        }
        guard !out.isEmpty else { throw CircuitsError(item: url.path, problem: "holds no records", fix: fix) }
        return out
    }
}
