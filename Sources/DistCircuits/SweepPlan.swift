import Core
import Foundation

/// One unit of sweep work: a grid cell (discovery + evaluation + tests) or the full-model acquisition of
/// a checkpoint. A rank computes it whole, so its numbers do not depend on how many ranks there are.
public enum SweepItem: Hashable, Sendable, CustomStringConvertible {
    case cell(ResultCell)
    case acquisition(checkpoint: Int64)
    /// The circuits of every cell of checkpoint `source` evaluated with the model of `checkpoint`
    /// (needs the source checkpoint's cells done).
    case transplant(source: Int64, checkpoint: Int64)

    public var checkpoint: Int64 {
        switch self {
        case .cell(let c): return c.checkpoint
        case .acquisition(let s): return s
        case .transplant(_, let s): return s
        }
    }

    public var description: String {
        switch self {
        case .cell(let c): return "cell \(c)"
        case .acquisition(let s): return "acquisition checkpoint=\(s)"
        case let .transplant(source, s): return "transplant source_checkpoint=\(source) checkpoint=\(s)"
        }
    }
}

/// One of `count` parts of a sweep's work items, for queues that favour small jobs (a Slurm job array):
/// part `index` (0-based) takes the `index`-th of `count` contiguous, near-equal ranges of the items in
/// plan order (checkpoint by checkpoint), so with as many parts as checkpoints each part is one
/// checkpoint. A part writes its own files under `<run_dir>/circuits/parts/part-<index>-of-<count>/`;
/// `dkc sweep --merge` joins them.
public struct SweepPart: Equatable, Sendable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, (0..<count).contains(index) else {
            throw CircuitsError(item: "--part", problem: "\(index)/\(count) is not a part: it needs 0 ≤ index < count",
                                fix: "pass --part I/N with I in 0…N−1 (a Slurm array task: --part $SLURM_ARRAY_TASK_ID/N with --array=0-(N−1))", exitCode: 64)
        }
        self.index = index
        self.count = count
    }

    /// Parses "I/N".
    public init(parsing text: String) throws {
        let fields = text.split(separator: "/", omittingEmptySubsequences: false)
        guard fields.count == 2, let i = Int(fields[0]), let n = Int(fields[1]) else {
            throw CircuitsError(item: "--part", problem: "'\(text)' is not of the form I/N", fix: "pass e.g. --part 0/4 for the first of four parts", exitCode: 64)
        }
        try self.init(index: i, count: n)
    }

    public var description: String { "\(index)/\(count)" }
    /// The part's folder name under `circuits/parts/`.
    public var folderName: String { "part-\(index)-of-\(count)" }

    /// The part's slice of `total` items.
    public func range(of total: Int) -> Range<Int> { (index * total / count)..<((index + 1) * total / count) }

    /// The part a folder name like `part-2-of-5` stands for, nil for any other name.
    public static func fromFolderName(_ name: String) -> SweepPart? {
        let f = name.split(separator: "-")
        guard f.count == 4, f[0] == "part", f[2] == "of", let i = Int(f[1]), let n = Int(f[3]) else { return nil }
        return try? SweepPart(index: i, count: n)
    }
}

/// The grid of a sweep: checkpoints (sorted by step) × tasks × types × frequency buckets, plus one
/// acquisition per checkpoint, with everything each item needs to be computed by any rank.
public struct SweepPlan {
    public struct Checkpoint: Sendable, Equatable {
        public let step: Int64
        public let folder: URL
    }

    public let config: SweepConfig
    public let data: CircuitDataSet
    public let checkpoints: [Checkpoint]
    public let tasks: [String]
    public let types: [String]
    public let frequencies: [String]
    /// The model, read from the first checkpoint's config.json (every checkpoint must share its shape): any
    /// family (GPT-2, Llama, Phi; docs/model-families.md).
    public let modelConfig: ModelConfig
    /// Circuit samples of each (task, type, frequency), for progress and cost estimates.
    public let samples: [String: Int]
    /// Steps of the checkpoints whose circuits are transplanted (`transplant_sources`), ascending.
    public let transplantSources: [Int64]
    /// The part of the items this run computes; nil for the whole grid.
    public private(set) var part: SweepPart?

    /// Where this run's files go: `<run_dir>/circuits`, or the part's folder under `circuits/parts/`.
    public var outputDir: URL {
        guard let part else { return config.outputDir }
        return Self.partsDir(config).appendingPathComponent(part.folderName)
    }

    /// The folder holding the parts of a sweep split with `--part`.
    public static func partsDir(_ config: SweepConfig) -> URL { config.outputDir.appendingPathComponent("parts") }

    /// The same plan restricted to `part` of its items.
    public func restricted(to part: SweepPart) throws -> SweepPlan {
        let total = gridItems.count
        guard part.count <= total else {
            throw CircuitsError(item: "--part", problem: "\(part.count) parts for \(total) work items would leave parts empty",
                                fix: "use at most \(total) parts (one per checkpoint is \(checkpoints.count))", exitCode: 64)
        }
        var p = self
        p.part = part
        return p
    }

    /// Resolves the grid: checkpoint folders, the data set's manifest and files, every filter. Errors name
    /// the config key and the fix.
    public init(config: SweepConfig) throws {
        self.config = config
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: config.runDir.path, isDirectory: &isDir), isDir.boolValue else {
            throw CircuitsError(item: "run_dir", problem: "\(config.runDir.path) is not a folder", fix: "point run_dir at the run folder")
        }
        checkpoints = try Self.findCheckpoints(config)
        data = try CircuitDataSet(directory: config.dataDir)

        tasks = config.tasks ?? data.tasks
        for t in tasks {
            _ = try CircuitTask.named(t, option: "tasks")
            guard fm.fileExists(atPath: data.circuitFile(t).path) else {
                throw CircuitsError(item: "tasks", problem: "the data set has no circuit records for '\(t)' (\(data.circuitFile(t).path) is missing)",
                                    fix: "drop it from tasks or regenerate the data with it in its tasks")
            }
        }
        types = config.types ?? EntityType.allCases.map(\.rawValue)
        frequencies = config.frequencies ?? data.buckets.names
        for f in frequencies where f != OutputLabels.all {
            _ = try data.buckets.bucket(named: f, option: "frequencies")
        }
        guard fm.fileExists(atPath: data.testFile.path) else {
            throw CircuitsError(item: "data_dir", problem: "\(data.testFile.path) is missing", fix: "point data_dir at the output folder of dkc data generate")
        }
        let found = checkpoints, n = found.count
        var sourceIndices: [Int] = []
        for i in config.transplantSources ?? [0, (n - 1) / 2, n - 1] {
            guard (-n..<n).contains(i) else {
                throw CircuitsError(item: "transplant_sources", problem: "index \(i) is outside the \(n) checkpoints",
                                    fix: "give 0-based indices in step order (0 … \(n - 1), or -1 for the final one)")
            }
            sourceIndices.append(i < 0 ? n + i : i)
        }
        transplantSources = Set(sourceIndices).sorted().map { found[$0].step }
        modelConfig = try ModelConfig.load(from: checkpoints[0].folder.appendingPathComponent(HFCheckpoint.configFileName))
        var samples: [String: Int] = [:]
        for t in tasks {
            let records = try CircuitSample.read(data.circuitFile(t))
            for y in types {
                for f in frequencies {
                    let filter = try CellFilter(type: y, frequency: f, buckets: data.buckets, typeOption: "types", frequencyOption: "frequencies")
                    let n = records.filter { filter.accepts(type: $0.type, frequency: $0.frequency) }.count
                    guard n > 0 else {
                        throw CircuitsError(item: data.circuitFile(t).path, problem: "has no record of type \(y), frequency \(f)",
                                            fix: "leave that type or bucket out of the grid (types / frequencies)")
                    }
                    samples[Self.key(t, y, f)] = n
                }
            }
        }
        self.samples = samples
    }

    static func key(_ task: String, _ type: String, _ frequency: String) -> String { "\(task)/\(type)/\(frequency)" }

    /// Planned samples of `cell`.
    public func samples(of cell: ResultCell) -> Int { samples[Self.key(cell.task, cell.type, cell.frequency)] ?? 0 }

    /// The checkpoint folders: `checkpoints` when given, else every `checkpoint-<step>` of the stage; sorted
    /// by step, steps unique.
    static func findCheckpoints(_ config: SweepConfig) throws -> [Checkpoint] {
        let fm = FileManager.default
        var found: [Checkpoint] = []
        if let list = config.checkpoints {
            for folder in list {
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
                    throw CircuitsError(item: "checkpoints", problem: "\(folder.path) is not a folder", fix: "list existing checkpoint folders")
                }
                guard let step = checkpointStep(of: folder) else {
                    throw CircuitsError(item: "checkpoints", problem: "\(folder.path) is not named checkpoint-<step>",
                                        fix: "the sweep's checkpoint axis is the training step, read from the folder name")
                }
                found.append(Checkpoint(step: step, folder: folder.standardizedFileURL))
            }
        } else {
            let root = config.runDir.appendingPathComponent("train").appendingPathComponent(config.stage).appendingPathComponent("checkpoints")
            let names = (try? fm.contentsOfDirectory(atPath: root.path)) ?? []
            for name in names {
                let folder = root.appendingPathComponent(name)
                guard let step = checkpointStep(of: folder),
                      fm.fileExists(atPath: folder.appendingPathComponent(HFCheckpoint.weightsFileName).path) else { continue }
                found.append(Checkpoint(step: step, folder: folder))
            }
            guard !found.isEmpty else {
                throw CircuitsError(item: "run_dir", problem: "no checkpoint-<step> folder with \(HFCheckpoint.weightsFileName) under \(root.path)",
                                    fix: "train first, set stage to the stage that has checkpoints, or list them in checkpoints")
            }
        }
        found.sort { $0.step < $1.step }
        for (a, b) in zip(found, found.dropFirst()) where a.step == b.step {
            throw CircuitsError(item: "checkpoints", problem: "step \(a.step) is given twice (\(a.folder.path) and \(b.folder.path))",
                                fix: "sweep one training stage at a time")
        }
        return found
    }

    /// Every grid cell, in checkpoint, task, type, frequency order.
    public var cells: [ResultCell] {
        checkpoints.flatMap { c in
            tasks.flatMap { t in types.flatMap { y in frequencies.map { f in ResultCell(checkpoint: c.step, task: t, type: y, frequency: f) } } }
        }
    }

    /// Work items of one checkpoint: its acquisition first (the longest item, so others can share the
    /// checkpoint's cells meanwhile), then its cells.
    public func items(of step: Int64) -> [SweepItem] {
        (config.acquisition ? [.acquisition(checkpoint: step)] : [])
            + tasks.flatMap { t in types.flatMap { y in frequencies.map { f in SweepItem.cell(ResultCell(checkpoint: step, task: t, type: y, frequency: f)) } } }
    }

    /// Every item of the grid, whatever the part (transplants aside).
    public var gridItems: [SweepItem] { checkpoints.flatMap { items(of: $0.step) } }

    /// The transplant items: every source × every checkpoint, grouped by the checkpoint evaluated.
    public var transplantItems: [SweepItem] {
        checkpoints.flatMap { c in transplantSources.map { SweepItem.transplant(source: $0, checkpoint: c.step) } }
    }

    /// The items this run computes: the whole grid then the transplants, or the part's range of the grid
    /// (a part has no transplants: they need other parts' cells; a plain sweep after `--merge` computes them).
    public var allItems: [SweepItem] {
        let all = gridItems
        guard let part else { return all + transplantItems }
        return Array(all[part.range(of: all.count)])
    }

    public func folder(of step: Int64) -> URL { checkpoints.first { $0.step == step }!.folder }
}
