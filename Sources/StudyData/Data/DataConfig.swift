import Foundation
import Support
import Models

/// The attributes a circuit task asks for; the order is the one records and files use.
public enum CircuitTask: String, CaseIterable, Sendable {
    case birthday, city, company, major, university
}

/// A named, inclusive frequency range ("high" = 6 … 1,000,000). Test and circuit entities are
/// sampled per entity type × bucket.
public struct FrequencyBucket: Hashable, Sendable {
    public let name: String
    public let min: Int
    public let max: Int

    public init(name: String, min: Int, max: Int) {
        self.name = name
        self.min = min
        self.max = max
    }

    public func contains(_ f: Int) -> Bool { f >= min && f <= max }
}

extension ConfigSchema {
    /// Keys of `dkc data generate` (docs/configs.md, "Data").
    public static let data = ConfigSchema(kind: "data", command: "dkc data generate", keys: [
        ConfigKey("seed", .int, default: .int(42), help: "one RNG seed for every random choice"),
        ConfigKey("n_entities", .int, default: .int(50_000), help: "number of entities, new + revised"),
        ConfigKey("new_fraction", .double, default: .double(0.8), help: "share of new entities (the rest are revised)"),
        ConfigKey("frequency_rate", .double, default: .double(0.4),
                  help: "rate λ of the exponential frequency draw (scale 1/λ)"),
        ConfigKey("validation_size", .int, default: .int(5000), help: "texts sampled from the training texts for validation"),
        ConfigKey("test_per_cell", .int, default: .int(300), help: "test entities per type × frequency bucket"),
        ConfigKey("circuit_n", .int, default: .int(300), help: "circuit entities per type × frequency bucket"),
        ConfigKey("circuit_seed", .int, default: .int(42), help: "seed of the circuit-entity sampling"),
        ConfigKey("test_set", .choice(TestSetChoice.allCases.map(\.rawValue)), default: .string(TestSetChoice.circuit.rawValue),
                  help: "test people: \"circuit\" = each cell's circuit sample, as the study (test_per_cell must equal circuit_n); "
                      + "\"independent\" = a separate sample of test_per_cell per cell"),
        ConfigKey("frequency_buckets", .map(.array(.int)), default: DataConfig.defaultBuckets,
                  help: "bucket name → inclusive frequency range [min, max]"),
        ConfigKey("tasks", .array(.choice(CircuitTask.allCases.map(\.rawValue))),
                  default: .array(["city", "company", "major"].map { .string($0) }),
                  help: "circuit tasks written (birthday, city, company, major, university)"),
        ConfigKey("model_name", .string, default: .string("gpt2"), help: "the <model> folder under circuit_<n>/"),
        ConfigKey("model_type", .choice(ModelFamily.allCases.map(\.rawValue)), default: .string("gpt2"),
                  help: "the model family the circuit data is for: its circuit labels are the first token of \" \" + attribute (gpt2, phi) or of the attribute itself (llama, the study's TinyLlama rule)"),
        ConfigKey("tokenizer", .path, default: .string(Paths.gpt2Tokenizer.path),
                  help: "the tokenizer folder (tokenizer.json, or vocab.json + merges.txt) or a tokenizer.json file"),
        ConfigKey("pools", .path, default: .string(Paths.sourceRoot.appendingPathComponent("data/pools").path),
                  help: "folder of selection pools (first_names.txt, cities.txt, …)"),
        ConfigKey("templates", .path, default: .string(Paths.sourceRoot.appendingPathComponent("data/templates").path),
                  help: "folder of biography sentence templates (birthday.txt, city.txt, …)"),
        ConfigKey("revised_names", .path, default: nil,
                  help: "a file of real names (one a line) for the revised type; unset: names drawn from the pools"),
    ], sections: [
        ConfigSection("forget", help: "the forgetting experiment's data sets in forget/ (docs/forgetting.md); n_new = 0: none", keys: [], ownKeys: [
            ConfigKey("n_new", .int, default: .int(0), help: "people of the forgetting corpus, one biography each (0: no forget/ folder)"),
            ConfigKey("seed", .int, default: .int(20), help: "one seed for the forgetting sets (a stream per set)"),
            ConfigKey("include_cpt_new", .bool, default: .bool(true),
                      help: "true: the forgetting people include the continual corpus's new people with redrawn attributes, as the study; false: no continual name"),
            ConfigKey("conflict", .bool, default: .bool(false), help: "also write conflict.jsonl: every continual person with all attributes redrawn"),
            ConfigKey("validation_size", .int, default: .int(0), help: "forgetting texts sampled into forget/validation.jsonl (0: none)"),
        ]),
    ])
}

/// The forgetting experiment's data settings (`[forget]`, docs/forgetting.md).
public struct ForgetDataConfig: Sendable {
    /// People of the forgetting corpus (0: nothing is written).
    public var nNew: Int
    public var seed: UInt64
    /// Whether the continual corpus's new people are among them (the study's set-up).
    public var includeCPTNew: Bool
    public var conflict: Bool
    public var validationSize: Int
}

/// Where `test.jsonl`'s people come from (docs/pipeline.md §2, docs/test-set.md).
public enum TestSetChoice: String, CaseIterable, Sendable {
    /// The study's set-up: each type × bucket cell's test people are the people sampled for its circuit
    /// set (before the token-length filter), so circuit hits@10 is measured on the circuit's own people.
    case circuit
    /// A second, independent sample of `test_per_cell` people per cell (stream "test" of `seed`).
    case independent
}

/// The checked settings of `dkc data generate`.
public struct DataConfig {
    public var seed: UInt64
    public var nEntities: Int
    public var newFraction: Double
    public var frequencyRate: Double
    public var validationSize: Int
    public var testPerCell: Int
    public var circuitN: Int
    public var circuitSeed: UInt64
    public var testSet: TestSetChoice
    /// Ordered by descending lower bound (high, medium, low), the order of the study's cells.
    public var frequencyBuckets: [FrequencyBucket]
    public var tasks: [CircuitTask]
    public var modelName: String
    /// The model family the circuit labels are made for (`ModelFamily.circuitLabelHasLeadingSpace`).
    public var modelType: ModelFamily
    public var tokenizer: URL
    public var pools: URL
    public var templates: URL
    public var revisedNames: URL?
    /// The forgetting sets (`[forget]`).
    public var forget: ForgetDataConfig

    /// The resolved configuration these settings came from (serialised into the manifest).
    public let resolved: ResolvedConfig

    static let defaultBuckets: ConfigValue = {
        var t = ConfigTable()
        t["low"] = .array([.int(1), .int(1)])
        t["medium"] = .array([.int(2), .int(5)])
        t["high"] = .array([.int(6), .int(1_000_000)])
        return .table(t)
    }()

    /// Number of new entities: ⌊N · new_fraction⌋, as the study's `int(N * 0.8)`.
    public var nNew: Int { Int((Double(nEntities) * newFraction).rounded(.down)) }
    public var nRevised: Int { nEntities - nNew }

    /// Loads and checks a data configuration (`file` nil: defaults only).
    public static func load(file: URL?, overrides: [String] = [], workingDirectory: URL = ConfigLoader.cwd) throws -> DataConfig {
        try DataConfig(ConfigLoader.load(schema: .data, file: file, overrides: overrides, workingDirectory: workingDirectory))
    }

    /// Checks ranges and cross-key rules; errors name the key and where its value came from.
    public init(_ c: ResolvedConfig) throws {
        precondition(c.schema.kind == "data", "DataConfig needs a data configuration")
        resolved = c
        let s = c.int("seed")
        guard s >= 0 else { throw c.invalid("seed", "must be ≥ 0, got \(s)") }
        seed = UInt64(s)
        let cs = c.int("circuit_seed")
        guard cs >= 0 else { throw c.invalid("circuit_seed", "must be ≥ 0, got \(cs)") }
        circuitSeed = UInt64(cs)

        nEntities = c.int("n_entities")
        guard nEntities >= 2 else { throw c.invalid("n_entities", "must be ≥ 2 (at least one new and one revised entity), got \(nEntities)") }
        newFraction = c.double("new_fraction")
        guard newFraction > 0, newFraction < 1 else { throw c.invalid("new_fraction", "must lie strictly between 0 and 1, got \(newFraction)") }
        frequencyRate = c.double("frequency_rate")
        guard frequencyRate > 0, frequencyRate.isFinite else { throw c.invalid("frequency_rate", "must be a positive rate λ, got \(frequencyRate)") }
        validationSize = c.int("validation_size")
        guard validationSize >= 0 else { throw c.invalid("validation_size", "must be ≥ 0, got \(validationSize)") }
        testPerCell = c.int("test_per_cell")
        guard testPerCell >= 0 else { throw c.invalid("test_per_cell", "must be ≥ 0, got \(testPerCell)") }
        circuitN = c.int("circuit_n")
        guard circuitN >= 1 else { throw c.invalid("circuit_n", "must be ≥ 1, got \(circuitN)") }
        testSet = TestSetChoice(rawValue: c.string("test_set")) ?? .circuit
        if testSet == .circuit, testPerCell != circuitN {
            throw c.invalid("test_per_cell", "is \(testPerCell) but circuit_n is \(circuitN); with test_set = \"circuit\" the test people are "
                      + "the circuit sample, so set test_per_cell = circuit_n, or test_set = \"independent\" for a separate sample")
        }

        var buckets: [FrequencyBucket] = []
        for (name, value) in c.table("frequency_buckets").entries {
            guard case .array(let items) = value, items.count == 2, case .int(let lo) = items[0], case .int(let hi) = items[1] else {
                throw c.invalid("frequency_buckets", "entry '\(name)' must be [min, max], got \(value.tomlText)")
            }
            guard lo >= 1, lo <= hi else { throw c.invalid("frequency_buckets", "entry '\(name)' = [\(lo), \(hi)] needs 1 ≤ min ≤ max") }
            guard !name.contains("/"), !name.isEmpty else { throw c.invalid("frequency_buckets", "bucket name '\(name)' must be non-empty without '/'") }
            buckets.append(FrequencyBucket(name: name, min: lo, max: hi))
        }
        guard !buckets.isEmpty else { throw c.invalid("frequency_buckets", "must define at least one bucket") }
        buckets.sort { $0.min > $1.min }
        for (a, b) in zip(buckets.dropFirst(), buckets) where a.max >= b.min {
            throw c.invalid("frequency_buckets", "buckets '\(a.name)' [\(a.min), \(a.max)] and '\(b.name)' [\(b.min), \(b.max)] overlap")
        }
        frequencyBuckets = buckets

        tasks = c.strings("tasks").compactMap(CircuitTask.init(rawValue:))
        guard !tasks.isEmpty else { throw c.invalid("tasks", "must name at least one task") }
        guard Set(tasks).count == tasks.count else { throw c.invalid("tasks", "lists a task twice") }

        modelName = c.string("model_name")
        guard !modelName.isEmpty, !modelName.contains("/"), modelName != ".", modelName != ".." else {
            throw c.invalid("model_name", "must be a folder name (non-empty, no '/'), got \"\(modelName)\"")
        }
        modelType = ModelFamily(rawValue: c.string("model_type"))!
        tokenizer = c.url("tokenizer")
        pools = c.url("pools")
        templates = c.url("templates")
        revisedNames = c.optionalURL("revised_names")

        func badForget(_ key: String, _ reason: String) -> ConfigError {
            ConfigError.invalidValue(key: "forget.\(key)", location: c.origin(of: key, section: "forget"), reason: reason)
        }
        let fn = c.int("n_new", section: "forget")
        guard fn >= 0 else { throw badForget("n_new", "must be ≥ 0 (0: no forgetting sets), got \(fn)") }
        let fs = c.int("seed", section: "forget")
        guard fs >= 0 else { throw badForget("seed", "must be ≥ 0, got \(fs)") }
        let fv = c.int("validation_size", section: "forget")
        guard fv >= 0 else { throw badForget("validation_size", "must be ≥ 0, got \(fv)") }
        forget = ForgetDataConfig(nNew: fn, seed: UInt64(fs), includeCPTNew: c.bool("include_cpt_new", section: "forget"),
                                  conflict: c.bool("conflict", section: "forget"), validationSize: fv)

        guard nNew >= 1, nRevised >= 1 else {
            throw c.invalid("new_fraction", "with n_entities = \(nEntities) gives \(nNew) new and \(nRevised) revised entities; both must be ≥ 1")
        }
    }
}
