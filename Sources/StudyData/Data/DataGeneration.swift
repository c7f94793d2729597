import Foundation
import Support
import Numerics
import Models

/// `dkc data generate`: the whole synthetic world, its corpora and evaluation sets, written as
/// one folder that appears only when complete.
///
/// Files (paths relative to the output folder):
/// - `new.jsonl`, `revised.jsonl`: one entity a line (the study's fields, frequency a string);
/// - `train.jsonl`: every biography, `{"text": …, <entity fields>}`, new entities then revised;
/// - `validation.jsonl`: `validation_size` lines sampled from `train.jsonl` (min(size, count));
/// - `base.jsonl`: biographies of the revised people with their original attributes, same form;
/// - `test.jsonl`: `test_per_cell` entities per type × bucket: the circuit sample of each cell
///   (`test_set = "circuit"`, the study's set-up) or an independent sample (`"independent"`);
/// - `circuit_<n>/<model_name>/<task>.jsonl`: circuit records per task;
/// - `forget/…`: the forgetting sets when `[forget] n_new` > 0 (see `ForgetData`);
/// - `manifest.json`: resolved config, counts, dkc version and commit, SHA-256 of every other file.
///
/// Same configuration (hence seed) → byte-identical files on every machine.
public enum DataGeneration {
    /// One output file: path relative to the output folder, and contents.
    public struct OutputFile {
        public let path: String
        public let bytes: [UInt8]
    }

    /// Everything generated, in memory, before it is written.
    public struct Result {
        public let world: EntityWorld
        public let files: [OutputFile]
        public let manifest: JSONValue
        /// Texts in train.jsonl, validation.jsonl, base.jsonl.
        public let trainCount: Int
        public let validationCount: Int
        public let baseCount: Int
    }

    /// Reads the pools, templates and revised names the configuration points at.
    public static func inputs(for config: DataConfig) throws -> (DataPools, BiographyTemplates, (file: String, names: [String])?) {
        let pools = try DataPools.load(from: config.pools)
        let templates = try BiographyTemplates.load(from: config.templates)
        let revised = try config.revisedNames.map { url in
            (file: url.path, names: try WordListFile.read(url, what: "revised_names file").map(\.entry))
        }
        return (pools, templates, revised)
    }

    /// Generates every file in memory. `commandLine` (if given) is recorded in the manifest.
    public static func build(config: DataConfig, pools: DataPools, templates: BiographyTemplates,
                             revisedNames: (file: String, names: [String])?, encoder: TextEncoder,
                             commandLine: String? = nil) throws -> Result {
        let world = try EntityGenerator.generate(config: config, pools: pools, revisedNames: revisedNames)

        // Check every sample fits before writing gigabytes of text.
        let cells = EvaluationSets.cells(of: world, buckets: config.frequencyBuckets)
        for c in cells {
            for (key, n) in [("test_per_cell", config.testPerCell), ("circuit_n", config.circuitN)] where c.entities.count < n {
                throw DataError.cellTooSmall(type: c.type.rawValue, bucket: c.bucket.name, entities: c.entities.count, key: key, requested: n)
            }
        }

        var files = [entityFile("new.jsonl", world.new), entityFile("revised.jsonl", world.revised)]
        let corpora = corpora(config: config, world: world, templates: templates)
        files += corpora.files
        let evaluation = try evaluationSets(config: config, cells: cells, encoder: encoder)
        files += evaluation.files
        let forget = try ForgetData.build(config: config, world: world, pools: pools, templates: templates)
        files += forget?.files ?? []

        var manifest = manifestHead(commandLine: commandLine)
        manifest += manifestCounts(config: config, world: world, cells: cells, corpora: corpora, evaluation: evaluation)
        if let forget { manifest.append(("forget", forget.manifest)) }
        return Result(world: world, files: files, manifest: .object(manifest), trainCount: corpora.train,
                      validationCount: corpora.validation, baseCount: corpora.base)
    }

    /// The training texts' files and line counts.
    private struct Corpora {
        let files: [OutputFile]
        let train: Int, validation: Int, base: Int
    }

    /// The test and circuit files, the circuit sample they come from, and the circuit folder.
    private struct Evaluation {
        let files: [OutputFile]
        let circuits: EvaluationSets.CircuitSet
        let circuitDir: String
    }

    /// One entity a line, in the study's fields.
    private static func entityFile(_ name: String, _ entities: [Entity]) -> OutputFile {
        var out: [UInt8] = []
        out.reserveCapacity(entities.count * 300)
        for e in entities { e.appendJSONLine(to: &out) }
        return OutputFile(path: name, bytes: out)
    }

    /// train.jsonl (new then revised people), validation.jsonl (a sample of its lines), base.jsonl (the
    /// revised people's original attributes), and their line counts.
    private static func corpora(config: DataConfig, world: EntityWorld, templates: BiographyTemplates) -> Corpora {
        let totalTexts = (world.new + world.revised).reduce(0) { $0 + $1.frequency }
        var train: [UInt8] = []
        train.reserveCapacity(totalTexts * 800)
        var lineStarts: [Int] = []
        lineStarts.reserveCapacity(totalTexts)
        var texts = DeterministicRandom(seed: config.seed, stream: "texts")
        BiographyCorpus.appendRecords(for: world.new, templates: templates, rng: &texts, to: &train, lineStarts: &lineStarts)
        BiographyCorpus.appendRecords(for: world.revised, templates: templates, rng: &texts, to: &train, lineStarts: &lineStarts)

        var validationRNG = DeterministicRandom(seed: config.seed, stream: "validation")
        let nValidation = min(config.validationSize, lineStarts.count)
        let validation = BiographyCorpus.sampleLines(of: train, lineStarts: lineStarts, count: nValidation, rng: &validationRNG)

        var base: [UInt8] = []
        var baseStarts: [Int] = []
        var baseRNG = DeterministicRandom(seed: config.seed, stream: "base_texts")
        BiographyCorpus.appendRecords(for: world.original, templates: templates, rng: &baseRNG, to: &base, lineStarts: &baseStarts)
        let files = [OutputFile(path: "train.jsonl", bytes: train), OutputFile(path: "validation.jsonl", bytes: validation),
                     OutputFile(path: "base.jsonl", bytes: base)]
        return Corpora(files: files, train: lineStarts.count, validation: nValidation, base: baseStarts.count)
    }

    /// test.jsonl and the circuit records of every task (`circuit_<n>/<model_name>/<task>.jsonl`).
    private static func evaluationSets(config: DataConfig, cells: [EvaluationSets.Cell], encoder: TextEncoder) throws -> Evaluation {
        var circuitRNG = DeterministicRandom(seed: config.circuitSeed, stream: "circuits")
        let circuits = try EvaluationSets.circuitSet(cells: cells, n: config.circuitN, encoder: encoder, rng: &circuitRNG)

        let test: [Entity]
        switch config.testSet {
        case .circuit:
            // The study's test and circuit scripts draw the same sample (same seed, lists and order).
            test = circuits.sample
        case .independent:
            var testRNG = DeterministicRandom(seed: config.seed, stream: "test")
            test = try EvaluationSets.testEntities(cells: cells, perCell: config.testPerCell, rng: &testRNG)
        }
        var files = [entityFile("test.jsonl", test)]
        let circuitDir = "circuit_\(config.circuitN)/\(config.modelName)"
        for task in config.tasks {
            files.append(OutputFile(path: "\(circuitDir)/\(task.rawValue).jsonl", bytes: try circuits.jsonl(task: task, encoder: encoder,
                                                                                                        leadingSpace: config.modelType.circuitLabelHasLeadingSpace)))
        }
        return Evaluation(files: files, circuits: circuits, circuitDir: circuitDir)
    }

    /// The manifest's format and dkc version (and the command line, when given).
    private static func manifestHead(commandLine: String?) -> [(String, JSONValue)] {
        var head: [(String, JSONValue)] = [
            ("format", .string("dkc-data 1")),
            ("dkc", .object([("version", .string(DKCVersion.version)), ("commit", .string(DKCVersion.gitCommit)),
                             ("source", .string(DKCVersion.source))])),
        ]
        if let commandLine { head.append(("command", .string(commandLine))) }
        return head
    }

    /// The manifest's configuration and counts (the file digests are added when written).
    private static func manifestCounts(config: DataConfig, world: EntityWorld, cells: [EvaluationSets.Cell],
                                       corpora: Corpora, evaluation: Evaluation) -> [(String, JSONValue)] {
        func perCell(_ counts: [(String, Int)]) -> JSONValue {
            .object(EntityType.allCases.map { t in
                (t.rawValue, .object(counts.filter { $0.0.hasPrefix(t.rawValue + "/") }.map { (String($0.0.dropFirst(t.rawValue.count + 1)), .int($0.1)) }))
            })
        }
        let circuits = evaluation.circuits
        let entityCounts = cells.map { ("\($0.type.rawValue)/\($0.bucket.name)", $0.entities.count) }
        let unbucketed = EntityType.allCases.map { t in
            (t.rawValue, JSONValue.int(world.entities(of: t).filter { e in !config.frequencyBuckets.contains { $0.contains(e.frequency) } }.count))
        }
        return [
            ("config", config.resolved.json),
            ("seed", .int(Int(config.seed))),
            ("circuit_seed", .int(Int(config.circuitSeed))),
            ("types", .array(EntityType.allCases.map { .string($0.rawValue) })),
            ("frequency_buckets", .array(config.frequencyBuckets.map {
                .object([("name", .string($0.name)), ("min", .int($0.min)), ("max", .int($0.max))])
            })),
            ("tasks", .array(config.tasks.map { .string($0.rawValue) })),
            ("model_name", .string(config.modelName)),
            ("model_type", .string(config.modelType.rawValue)),
            ("entities", .object([("new", .int(world.new.count)), ("revised", .int(world.revised.count))])),
            ("entities_per_cell", perCell(entityCounts)),
            ("entities_outside_buckets", .object(unbucketed)),
            ("texts", .object([("train", .int(corpora.train)), ("validation", .int(corpora.validation)), ("base", .int(corpora.base))])),
            ("test_set", .string(config.testSet.rawValue)),
            ("test_per_cell", perCell(cells.map { ("\($0.type.rawValue)/\($0.bucket.name)", config.testPerCell) })),
            ("circuit", .object([
                ("folder", .string(evaluation.circuitDir)),
                ("sampled_per_cell", perCell(circuits.sampled)),
                ("kept_per_cell", perCell(circuits.kept)),
                ("dropped_token_lengths", .object(circuits.droppedLengths.map { (String($0.length), .int($0.names)) })),
                ("records_per_task", .int(circuits.pairs.count)),
            ])),
        ]
    }

    /// Refuses an output folder that holds a complete data set (unless `force`) or anything else
    /// non-empty (unless `force`).
    public static func checkOutput(_ out: URL, force: Bool) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: out.path, isDirectory: &isDir), !force else { return }
        if isDir.boolValue {
            if fm.fileExists(atPath: out.appendingPathComponent("manifest.json").path) { throw DataError.outputExists(path: out.path) }
            let contents = (try? fm.contentsOfDirectory(atPath: out.path)) ?? []
            if !contents.isEmpty { throw DataError.outputNotEmpty(path: out.path) }
        } else {
            throw DataError.outputNotEmpty(path: out.path)
        }
    }

    /// Writes `result` into `<out>.tmp-<pid>`, then `manifest.json` (with the SHA-256 of every
    /// file), then renames the folder to `out` (replacing an existing one only when `force`).
    /// On failure the temporary folder is removed and nothing appears at `out`.
    public static func write(_ result: Result, to out: URL, force: Bool) throws {
        let fm = FileManager.default
        try checkOutput(out, force: force)
        let tmp = URL(fileURLWithPath: out.path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)")
        func io(_ path: URL, _ body: () throws -> Void) throws {
            do { try body() } catch let e as DataError { throw e } catch {
                throw DataError.io(path: path.path, reason: error.localizedDescription)
            }
        }
        try? fm.removeItem(at: tmp)
        do {
            try io(tmp) { try fm.createDirectory(at: tmp, withIntermediateDirectories: true) }
            var digests: [(String, JSONValue)] = []
            for f in result.files.sorted(by: { $0.path < $1.path }) {
                let url = tmp.appendingPathComponent(f.path)
                try io(url) {
                    try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Data(f.bytes).write(to: url)
                }
                digests.append((f.path, .object([("bytes", .int(f.bytes.count)), ("sha256", .string(SHA256.hex(f.bytes)))])))
            }
            guard case .object(var manifest) = result.manifest else { preconditionFailure("manifest must be an object") }
            manifest.append(("files", .object(digests)))
            let manifestURL = tmp.appendingPathComponent("manifest.json")
            try io(manifestURL) { try Data(JSONValue.object(manifest).prettyText().utf8).write(to: manifestURL) }

            var isDir: ObjCBool = false
            if fm.fileExists(atPath: out.path, isDirectory: &isDir) {
                // Only reached with force, or when `out` is an empty folder.
                let old = URL(fileURLWithPath: out.path + ".old-\(ProcessInfo.processInfo.processIdentifier)")
                try? fm.removeItem(at: old)
                try io(out) { try fm.moveItem(at: out, to: old) }
                try io(out) { try fm.moveItem(at: tmp, to: out) }
                try? fm.removeItem(at: old)
            } else {
                try io(out) { try fm.moveItem(at: tmp, to: out) }
            }
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    /// Loads inputs, builds, writes: the body of `dkc data generate`. `makeEncoder` is called once,
    /// after the pools and templates have been checked.
    @discardableResult
    public static func run(config: DataConfig, out: URL, force: Bool, commandLine: String? = nil,
                           makeEncoder: (URL) throws -> TextEncoder) throws -> Result {
        try checkOutput(out, force: force)
        let (pools, templates, revised) = try inputs(for: config)
        let encoder = try makeEncoder(config.tokenizer)
        let result = try build(config: config, pools: pools, templates: templates, revisedNames: revised,
                               encoder: encoder, commandLine: commandLine)
        try write(result, to: out, force: force)
        return result
    }
}
