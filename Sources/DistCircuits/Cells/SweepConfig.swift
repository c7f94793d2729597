import Foundation
import Core

extension ConfigSchema {
    /// Keys of `dkc sweep` (docs/configs.md, "Sweep").
    public static let sweep = ConfigSchema(kind: "sweep", command: "dkc sweep", keys: [
        ConfigKey("run_dir", .path, default: nil,
                  help: "the run folder (required): checkpoints under train/<stage>/checkpoints/, results written to circuits/"),
        ConfigKey("stage", .string, default: .string("continual"),
                  help: "training stage whose checkpoints are swept (base and continual steps both count from 0, so one stage per sweep); \"forget\": every replay sub-run of the forget stage, each into circuits/forget/replay_<r>/"),
        ConfigKey("checkpoints", .array(.path), default: nil,
                  help: "checkpoint folders (checkpoint-<step>) to sweep instead of every one of the stage"),
        ConfigKey("data_dir", .path, default: nil, help: "the data set (dkc data generate output); unset: <run_dir>/data"),
        ConfigKey("tasks", .array(.choice(CircuitTask.allCases.map(\.rawValue))), default: nil,
                  help: "circuit tasks; unset: every task the data set has"),
        ConfigKey("types", .array(.choice(EntityType.allCases.map(\.rawValue) + [OutputLabels.all])), default: nil,
                  help: "entity types (new, revised, all); unset: new and revised"),
        ConfigKey("frequencies", .array(.string), default: nil,
                  help: "frequency buckets (names from the data's manifest, or all); unset: every bucket the data defines"),
        ConfigKey("method", .choice(AttributionMethod.allCases.map(\.rawValue)), default: .string("EAP-IG"), help: "attribution method"),
        ConfigKey("ig_steps", .int, default: .int(5), help: "integration steps of the IG methods"),
        ConfigKey("batch_size", .int, default: .int(64),
                  help: "samples per batch for attribution, evaluation and acquisition (scores scale with 1 / batch size)"),
        ConfigKey("topn", .array(.int), default: .array([.int(8000)]), help: "circuit sizes evaluated (top-n edges by |score|)"),
        ConfigKey("acquisition", .bool, default: .bool(true), help: "full-model acquisition (greedy decoding) once per checkpoint"),
        ConfigKey("components", .bool, default: .bool(true),
                  help: "component analysis of every cell (logit lens, DLA head classes, heads of its circuits) into components.nc"),
        ConfigKey("transplant_sources", .array(.int), default: nil,
                  help: "checkpoints (0-based indices in step order, negative from the end) whose circuits are evaluated on every checkpoint's model; unset: first, middle and final; [] for none"),
        ConfigKey("max_new_tokens", .int, default: .int(15), help: "tokens generated at most per acquisition prompt"),
        ConfigKey("faithfulness_min_denominator", .double, default: .double(1e-6),
                  help: "faithfulness is NaN when |clean − corrupted baseline| is below this"),
        ConfigKey("write_interval_s", .double, default: .double(60), help: "how often rank 0 rewrites the NetCDF files, seconds (0: after every cell)"),
        ConfigKey("blas_threads", .int, default: .int(1),
                  help: "OpenBLAS threads per rank, fixed for every cell (0: keep OPENBLAS_NUM_THREADS or OpenBLAS's default)"),
        ConfigKey("tokenizer", .path, default: nil,
                  help: "tokenizer folder (tokenizer.json, or vocab.json + merges.txt); unset: the first checkpoint's own files, else GPT-2's"),
        ConfigKey("lock", .bool, default: .bool(true),
                  help: "hold a lock on <run_dir>/circuits while sweeping, so a second sweep on the folder is refused; false only on file systems without locks (or use --no-lock)"),
    ])
}

/// The checked settings of `dkc sweep`.
public struct SweepConfig {
    public let resolved: ResolvedConfig
    public var runDir: URL
    public var stage: String
    public var checkpoints: [URL]?
    public var dataDir: URL
    public var tasks: [String]?
    public var types: [String]?
    public var frequencies: [String]?
    public var cell: CellOptions
    public var acquisition: Bool
    public var components: Bool
    /// Indices of the transplant source checkpoints (nil: first, middle, final).
    public var transplantSources: [Int]?
    public var maxNewTokens: Int
    public var faithfulnessMinDenominator: Double
    public var writeInterval: Double
    public var blasThreads: Int
    public var tokenizer: URL?
    /// Hold `<run_dir>/circuits/.sweep.lock` while sweeping (key `lock`).
    public var lock: Bool

    /// Where results go: `<run_dir>/circuits`, for a forget sub-run `<run_dir>/circuits/forget/replay_<r>`.
    public var outputDir: URL {
        let circuits = runDir.appendingPathComponent("circuits")
        return stage.hasPrefix(Self.forgetStage + "/") ? circuits.appendingPathComponent(stage) : circuits
    }

    /// The stage that stands for every replay sub-run of the forgetting experiment (docs/forgetting.md).
    public static let forgetStage = "forget"

    /// A folder under train/, or one forget sub-run `forget/replay_<r>`.
    static func isStage(_ stage: String) -> Bool {
        let parts = stage.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { return false }
        return parts.count == 1 || (parts.count == 2 && parts[0] == forgetStage && parts[1].hasPrefix("replay_"))
    }

    /// The sweeps this configuration stands for: itself, or for stage = "forget" one per replay sub-run
    /// found under `<run_dir>/train/forget/` (`replay_<r>` folders, by ratio), with stage `forget/replay_<r>`.
    public func subRuns() throws -> [SweepConfig] {
        guard stage == Self.forgetStage else { return [self] }
        let root = runDir.appendingPathComponent("train").appendingPathComponent(Self.forgetStage)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter { $0.hasPrefix("replay_") }
        let ratios = names.compactMap { name in Double(name.dropFirst("replay_".count)).map { (name, $0) } }.sorted { $0.1 < $1.1 }
        guard !ratios.isEmpty else {
            throw CircuitsError(item: "stage", problem: "is \"forget\", but \(root.path) holds no replay_<r> sub-run",
                                fix: "train the forget stage first (dkc train --set 'stages=[\"forget\"]')")
        }
        return ratios.map { name, _ in
            var sub = self
            sub.stage = Self.forgetStage + "/" + name
            return sub
        }
    }

    /// Loads and checks a sweep configuration.
    public static func load(file: URL?, overrides: [String] = [], workingDirectory: URL = ConfigLoader.cwd) throws -> SweepConfig {
        try SweepConfig(ConfigLoader.load(schema: .sweep, file: file, overrides: overrides, workingDirectory: workingDirectory))
    }

    public init(_ c: ResolvedConfig) throws {
        precondition(c.schema.kind == "sweep", "SweepConfig needs a sweep configuration")
        resolved = c
        guard let run = c.optionalURL("run_dir") else {
            throw ConfigError.missingRequired(key: "run_dir", help: "the run folder whose checkpoints are swept")
        }
        runDir = run
        stage = c.string("stage")
        guard Self.isStage(stage) else {
            throw c.invalid("stage", "must be a folder name under train/ (e.g. continual), forget, or forget/replay_<r>, got \"\(stage)\"")
        }
        if c.value("checkpoints") != nil {
            guard stage != Self.forgetStage else {
                throw c.invalid("checkpoints", "cannot be listed for stage = \"forget\", which sweeps several sub-runs: set stage = \"forget/replay_<r>\" for one")
            }
            let list = c.strings("checkpoints").map { URL(fileURLWithPath: $0) }
            guard !list.isEmpty else { throw c.invalid("checkpoints", "is empty; remove the key to sweep every checkpoint of the stage") }
            checkpoints = list
        }
        dataDir = c.optionalURL("data_dir") ?? runDir.appendingPathComponent("data")
        func list(_ key: String) throws -> [String]? {
            guard c.value(key) != nil else { return nil }
            let l = c.strings(key)
            guard !l.isEmpty else { throw c.invalid(key, "is empty; remove the key to use every value the data defines") }
            guard Set(l).count == l.count else { throw c.invalid(key, "lists a value twice: \(l)") }
            return l
        }
        tasks = try list("tasks")
        types = try list("types")
        frequencies = try list("frequencies")

        let method = AttributionMethod(rawValue: c.string("method"))!
        let steps = c.int("ig_steps")
        guard steps >= 1 else { throw c.invalid("ig_steps", "must be ≥ 1, got \(steps)") }
        let batch = c.int("batch_size")
        guard batch >= 1 else { throw c.invalid("batch_size", "must be ≥ 1, got \(batch)") }
        let topn = c.ints("topn")
        guard !topn.isEmpty, topn.allSatisfy({ $0 >= 1 }) else { throw c.invalid("topn", "must list circuit sizes ≥ 1, got \(topn)") }
        guard Set(topn).count == topn.count else { throw c.invalid("topn", "lists a size twice: \(topn)") }
        cell = CellOptions(attribution: AttributionOptions(method: method, igSteps: steps), batchSize: batch, topn: topn)
        acquisition = c.bool("acquisition")
        components = c.bool("components")
        if c.value("transplant_sources") != nil { transplantSources = c.ints("transplant_sources") }
        maxNewTokens = c.int("max_new_tokens")
        guard maxNewTokens >= 1 else { throw c.invalid("max_new_tokens", "must be ≥ 1, got \(maxNewTokens)") }
        faithfulnessMinDenominator = c.double("faithfulness_min_denominator")
        guard faithfulnessMinDenominator >= 0 else { throw c.invalid("faithfulness_min_denominator", "must be ≥ 0") }
        writeInterval = c.double("write_interval_s")
        guard writeInterval >= 0, writeInterval.isFinite else { throw c.invalid("write_interval_s", "must be ≥ 0 seconds") }
        blasThreads = c.int("blas_threads")
        guard blasThreads >= 0 else { throw c.invalid("blas_threads", "must be ≥ 0 (0: as the environment sets)") }
        tokenizer = c.optionalURL("tokenizer")
        lock = c.bool("lock")
    }

    /// Keys whose values change results: a sweep resumed into existing files must agree on them.
    public static let resultKeys = ["stage", "data_dir", "method", "ig_steps", "batch_size", "topn", "max_new_tokens",
                                    "faithfulness_min_denominator"]
}

/// A data set of `dkc data generate` as the sweep uses it: its manifest (frequency buckets, tasks, the
/// circuit folder), the circuit records of each task and the test entities.
public struct CircuitDataSet: Sendable {
    public let directory: URL
    public let buckets: FrequencyBuckets
    /// Tasks the data set has circuit records for.
    public let tasks: [String]
    /// `circuit_<n>/<model>`, holding `<task>.jsonl`.
    public let circuitFolder: URL
    public var testFile: URL { directory.appendingPathComponent("test.jsonl") }
    /// Which people `test.jsonl` holds: "circuit" or "independent" (the manifest's `test_set`).
    public let testSet: String

    /// Reads `<directory>/manifest.json`; `key` names the config key for messages.
    public init(directory: URL, key: String = "data_dir") throws {
        self.directory = directory
        let manifest = directory.appendingPathComponent("manifest.json")
        guard FileManager.default.fileExists(atPath: manifest.path),
              let object = JSONValue(contentsOf: manifest), object.isObject else {
            throw CircuitsError(item: key, problem: "\(manifest.path) is missing or not JSON",
                                fix: "point \(key) at the output folder of dkc data generate")
        }
        guard let buckets = try FrequencyBuckets.read(manifest: manifest) else {
            throw CircuitsError(item: manifest.path, problem: "has no frequency_buckets", fix: "regenerate the data with dkc data generate")
        }
        self.buckets = buckets
        guard let tasks = object["tasks"]?.arrayValue?.compactMap(\.stringValue), !tasks.isEmpty,
              tasks.count == object["tasks"]?.arrayValue?.count, let folder = object["circuit"]?["folder"]?.stringValue else {
            throw CircuitsError(item: manifest.path, problem: "lacks tasks or circuit.folder", fix: "regenerate the data with dkc data generate")
        }
        self.tasks = tasks
        testSet = DataManifest.testSet(of: object)
        circuitFolder = directory.appendingPathComponent(folder)
    }

    /// The circuit records file of `task`.
    public func circuitFile(_ task: String) -> URL { circuitFolder.appendingPathComponent("\(task).jsonl") }
}
