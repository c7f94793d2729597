import Foundation
import Core

/// Where training stands, as `trainer_state.json` in every checkpoint holds it: the Hugging Face
/// Trainer's keys (`global_step`, `epoch`, `log_history`, `max_steps`, …, sorted as HF writes them) and
/// a `dkc` table with what resuming needs (data order, the unfinished logging window, the training
/// data's fingerprint) and the provenance (version, resolved config, ranks, threads).
public struct TrainerState: Equatable {
    /// Sums of the logging window in progress, so a resumed run logs the same lines.
    public struct LoggingWindow: Equatable {
        public var steps = 0
        public var lossSum = 0.0
        public init(steps: Int = 0, lossSum: Double = 0) { self.steps = steps; self.lossSum = lossSum }
    }

    public var stage: String
    /// Optimizer steps taken.
    public var globalStep = 0
    /// The stage's total optimizer steps.
    public var maxSteps = 0
    public var numTrainEpochs = 0
    public var stepsPerEpoch = 0
    public var globalBatchSize = 0
    public var perDeviceTrainBatchSize = 0
    public var loggingSteps = 0
    public var saveSteps = 0
    public var evalSteps = 0
    /// Every metrics line so far (what `metrics.jsonl` holds up to `globalStep`).
    public var logHistory: [JSONValue]
    public var window: LoggingWindow
    public var seed: UInt64
    /// JSONL the blocks came from, their number and `PackedBlocks.fingerprint`.
    public var trainFile: String
    public var trainBlocks: Int
    public var trainFingerprint: UInt64
    public var worldSize = 0
    public var blasThreads = 0
    public var deterministic: Bool
    /// Whether the stage ran to its last step.
    public var finished: Bool
    /// The resolved configuration (JSON).
    public var config: JSONValue
    /// "dkc <version> (<commit>)" of the writer.
    public var source: String
    /// Optimizer steps skipped so far because the loss or gradient was not finite (`skip_nonfinite_steps`).
    public var nonfiniteSkipped = 0

    public init(stage: String, globalStep: Int, maxSteps: Int, numTrainEpochs: Int, stepsPerEpoch: Int, globalBatchSize: Int,
                perDeviceTrainBatchSize: Int, loggingSteps: Int, saveSteps: Int, evalSteps: Int, logHistory: [JSONValue],
                window: LoggingWindow, seed: UInt64, trainFile: String, trainBlocks: Int, trainFingerprint: UInt64,
                worldSize: Int, blasThreads: Int, deterministic: Bool, finished: Bool, config: JSONValue, source: String = DKCVersion.source) {
        self.stage = stage; self.globalStep = globalStep; self.maxSteps = maxSteps; self.numTrainEpochs = numTrainEpochs
        self.stepsPerEpoch = stepsPerEpoch; self.globalBatchSize = globalBatchSize; self.perDeviceTrainBatchSize = perDeviceTrainBatchSize
        self.loggingSteps = loggingSteps; self.saveSteps = saveSteps; self.evalSteps = evalSteps; self.logHistory = logHistory
        self.window = window; self.seed = seed; self.trainFile = trainFile; self.trainBlocks = trainBlocks
        self.trainFingerprint = trainFingerprint; self.worldSize = worldSize; self.blasThreads = blasThreads
        self.deterministic = deterministic; self.finished = finished; self.config = config; self.source = source
    }

    /// Epochs completed, fractional: global_step / steps per epoch (HF's `epoch`).
    public var epoch: Double { stepsPerEpoch > 0 ? Double(globalStep) / Double(stepsPerEpoch) : 0 }
    /// 0-based epoch the next step belongs to, and the step's index inside it.
    public var position: (epoch: Int, step: Int) { (globalStep / max(1, stepsPerEpoch), globalStep % max(1, stepsPerEpoch)) }

    /// The integer keys of the file and the properties behind them, for the writer and the reader alike: the
    /// Trainer's own (top level, required) and the `dkc` table's (`fallback`: the value when an older file lacks it).
    private static let trainerIntegers: [(key: String, path: WritableKeyPath<TrainerState, Int>)] = [
        ("eval_steps", \.evalSteps), ("global_step", \.globalStep), ("logging_steps", \.loggingSteps), ("max_steps", \.maxSteps),
        ("num_train_epochs", \.numTrainEpochs), ("save_steps", \.saveSteps), ("train_batch_size", \.perDeviceTrainBatchSize),
    ]
    private static let dkcIntegers: [(key: String, path: WritableKeyPath<TrainerState, Int>, fallback: Int?)] = [
        ("blas_threads", \.blasThreads, 1), ("global_batch_size", \.globalBatchSize, nil), ("nonfinite_steps_skipped", \.nonfiniteSkipped, 0),
        ("steps_per_epoch", \.stepsPerEpoch, nil), ("world_size", \.worldSize, nil),
    ]

    /// The file's JSON (keys sorted like HF's `json.dumps(sort_keys=True)`; the `dkc` table likewise).
    public var json: JSONValue {
        let dkc: [(String, JSONValue)] = [
            ("config", config),
            ("data_order", .object([
                ("epoch", .int(position.epoch)),
                ("generator", .string("SplitMix64 streams of seed (texts, blocks, epoch e); Fisher-Yates with Lemire bounded draws")),
                ("seed", .string(String(seed))),
                ("step_in_epoch", .int(position.step)),
            ])),
            ("deterministic", .bool(deterministic)),
            ("finished", .bool(finished)),
            ("logging_window", .object([("loss_sum", .double(window.lossSum)), ("steps", .int(window.steps))])),
            ("source", .string(source)),
            ("stage", .string(stage)),
            ("train_data", .object([
                ("blocks", .int(trainBlocks)),
                ("file", .string(trainFile)),
                ("fingerprint", .string(String(trainFingerprint, radix: 16))),
            ])),
        ] + Self.dkcIntegers.map { ($0.key, .int(self[keyPath: $0.path])) }
        let top: [(String, JSONValue)] = [
            ("best_global_step", .null),
            ("best_metric", .null),
            ("best_model_checkpoint", .null),
            ("dkc", .object(dkc.sorted { $0.0 < $1.0 })),
            ("epoch", .double(epoch)),
            ("is_hyper_param_search", .bool(false)),
            ("is_local_process_zero", .bool(true)),
            ("is_world_process_zero", .bool(true)),
            ("log_history", .array(logHistory)),
        ] + Self.trainerIntegers.map { ($0.key, .int(self[keyPath: $0.path])) }
        return .object(top.sorted { $0.0 < $1.0 })
    }

    /// Reads a `trainer_state.json` this project wrote.
    /// - Throws: `TrainError` naming the file and the missing or malformed key.
    public init(file: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw TrainError.file(file, "cannot be read (\(error.localizedDescription))")
        }
        let j: JSONValue
        do { j = try JSONValue(parsing: data) } catch {
            throw TrainError.file(file, "is not valid JSON (\(error))", fix: "remove this checkpoint folder; training resumes from the one before")
        }
        try self.init(json: j, file: file)
    }

    /// The state in a parsed `trainer_state.json` (`file` names it in errors).
    public init(json j: JSONValue, file: URL) throws {
        func missing(_ key: String) -> TrainError {
            TrainError.file(file, "lacks \(key)", fix: "this checkpoint was not written by dkc train; remove it or start a new output_dir")
        }
        guard let d = j["dkc"] else { throw missing("the dkc table") }
        func int(_ v: JSONValue?, _ key: String) throws -> Int { guard let i = v?.intValue else { throw missing(key) }; return i }
        stage = d["stage"]?.stringValue ?? ""
        guard let history = j["log_history"]?.arrayValue else { throw missing("log_history") }
        logHistory = history
        let w = d["logging_window"]
        window = LoggingWindow(steps: try int(w?["steps"], "dkc.logging_window.steps"),
                               lossSum: w?["loss_sum"]?.doubleValue ?? 0)
        guard let seedText = d["data_order"]?["seed"]?.stringValue, let s = UInt64(seedText) else { throw missing("dkc.data_order.seed") }
        seed = s
        let td = d["train_data"]
        trainFile = td?["file"]?.stringValue ?? ""
        trainBlocks = try int(td?["blocks"], "dkc.train_data.blocks")
        guard let fp = td?["fingerprint"]?.stringValue, let f = UInt64(fp, radix: 16) else { throw missing("dkc.train_data.fingerprint") }
        trainFingerprint = f
        if case .bool(let b)? = d["deterministic"] { deterministic = b } else { deterministic = false }
        if case .bool(let b)? = d["finished"] { finished = b } else { finished = false }
        config = d["config"] ?? .null
        source = d["source"]?.stringValue ?? "unknown"
        for (key, path) in Self.trainerIntegers { self[keyPath: path] = try int(j[key], key) }
        for (key, path, fallback) in Self.dkcIntegers {
            if let fallback, d[key] == nil { self[keyPath: path] = fallback } else { self[keyPath: path] = try int(d[key], "dkc." + key) }
        }
        if let order = d["data_order"], let e = order["epoch"]?.intValue, let k = order["step_in_epoch"]?.intValue,
           stepsPerEpoch > 0, (e, k) != position {
            throw TrainError.file(file, "dkc.data_order (epoch \(e), step_in_epoch \(k)) does not match global_step \(globalStep) at \(stepsPerEpoch) steps per epoch",
                                  fix: "the file was edited or damaged; remove this checkpoint folder, training resumes from the one before")
        }
    }

    /// What makes this state impossible for a checkpoint of `folderStep` (nil when it is consistent):
    /// global_step must equal the folder's step and lie in 0 ... max_steps, steps per epoch must be
    /// train blocks / global batch (the last partial batch dropped) and at least 1, the logging window
    /// at most global_step steps with a finite loss sum, `finished` exactly when global_step = max_steps. A resume then
    /// re-derives the data order from global_step and steps per epoch alone.
    public func inconsistency(folderStep: Int) -> String? {
        if globalStep != folderStep { return "global_step is \(globalStep), but the folder is the checkpoint of step \(folderStep)" }
        if maxSteps < 1 || globalStep < 0 || globalStep > maxSteps {
            return "global_step \(globalStep) is outside 0 ... max_steps \(maxSteps)"
        }
        if globalBatchSize < 1 || trainBlocks < globalBatchSize || stepsPerEpoch != trainBlocks / globalBatchSize {
            return "dkc.steps_per_epoch \(stepsPerEpoch) is not dkc.train_data.blocks \(trainBlocks) / dkc.global_batch_size \(globalBatchSize)"
        }
        if numTrainEpochs < 1 || loggingSteps < 1 || perDeviceTrainBatchSize < 1 || worldSize < 1 {
            return "num_train_epochs, logging_steps, train_batch_size and dkc.world_size must be ≥ 1"
        }
        if window.steps < 0 || window.steps > globalStep || !window.lossSum.isFinite {
            return "dkc.logging_window (\(window.steps) steps, loss sum \(window.lossSum)) does not fit global_step \(globalStep)"
        }
        if finished != (globalStep == maxSteps) { return "finished is \(finished) at global_step \(globalStep) of max_steps \(maxSteps)" }
        if nonfiniteSkipped < 0 || nonfiniteSkipped > globalStep { return "dkc.nonfinite_steps_skipped \(nonfiniteSkipped) is outside 0 ... global_step" }
        return nil
    }
}
