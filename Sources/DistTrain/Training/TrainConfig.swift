import Foundation
import Core

/// The training stages of a run (docs/pipeline.md §1 and §4): `base` teaches the revised people their
/// original attributes (the project's stand-in for pretrained knowledge), `continual` is the study's
/// continual pre-training on the new corpus, `forget` trains the continual model on other people,
/// one sub-run per replay ratio (docs/forgetting.md).
public enum TrainStage: String, CaseIterable, Sendable {
    case base, continual, forget

    /// JSONL file of `dkc data generate` the stage trains on by default.
    public var defaultTrainFile: String {
        switch self {
        case .base: return "base.jsonl"
        case .continual: return "train.jsonl"
        case .forget: return "forget/train.jsonl"
        }
    }
    /// JSONL file the stage is evaluated on by default ("" = no evaluation): the continual one for forget.
    public var defaultValidationFile: String { self == .base ? "" : "validation.jsonl" }
    /// Where the stage's weights come from by default.
    public var defaultInit: String {
        switch self {
        case .base: return "scratch"
        case .continual: return "base"
        case .forget: return "continual"
        }
    }
}

/// A forget sub-run's replay settings (`[forget]` table, docs/forgetting.md).
public struct ForgetReplay: Equatable, Sendable {
    public let ratio: Double
    /// JSONL file of replay texts (`forget/replay.jsonl`).
    public let file: URL
    public let mode: ReplayMode
    public let draw: ReplayDraw

    /// The ratio as the sub-run's folder writes it: 0, 0.1, 1 (`replay_<r>`).
    public static func label(_ ratio: Double) -> String {
        ratio == ratio.rounded() && abs(ratio) < 1e15 ? String(Int(ratio)) : "\(ratio)"
    }
}

/// When something happens during training (Hugging Face `IntervalStrategy`).
public enum IntervalStrategy: String, CaseIterable, Sendable {
    case no, steps, epoch
}

/// Where a stage's initial weights come from.
public enum InitSource: Equatable, Sendable {
    /// A freshly initialised GPT-2 of the configured shape (seeded).
    case scratch
    /// The last checkpoint of the `base` stage of the same run.
    case base
    /// The last checkpoint of the `continual` stage of the same run (weights only).
    case continual
    /// A Hugging Face model folder (config.json + model.safetensors): GPT-2, Llama or Phi.
    case folder(URL)

    public var description: String {
        switch self {
        case .scratch: return "scratch"
        case .base: return "base"
        case .continual: return "continual"
        case .folder(let u): return u.path
        }
    }
}

extension ConfigSchema {
    /// Keys every stage may override in a `[base]` or `[continual]` table.
    static let trainStageKeys = [
        "data_dir", "train_file", "validation_file", "tokenizer", "init",
        "n_layer", "n_head", "n_embd", "n_positions", "resid_pdrop", "embd_pdrop", "attn_pdrop", "block_size", "group_size",
        "num_train_epochs", "max_steps", "per_device_train_batch_size", "per_device_eval_batch_size",
        "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_steps",
        "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
        "save_strategy", "save_steps", "save_optimizer", "logging_steps", "eval_strategy", "eval_steps", "deterministic", "seed",
        "skip_nonfinite_steps",
    ]

    /// Keys of `dkc train` (docs/configs.md, "Training"). Names follow Hugging Face `TrainingArguments`.
    public static let train = ConfigSchema(kind: "train", command: "dkc train", keys: [
        ConfigKey("stages", .array(.choice(TrainStage.allCases.map(\.rawValue))),
                  default: .array([.string("base"), .string("continual")]), help: "stages to run, in order"),
        ConfigKey("data_dir", .path, default: nil, required: true, help: "output folder of dkc data generate"),
        ConfigKey("output_dir", .path, default: nil, required: true,
                  help: "the run's train/ folder; each stage writes <output_dir>/<stage>/"),
        ConfigKey("train_file", .string, default: nil,
                  help: "JSONL training texts, inside data_dir unless absolute (default: base.jsonl for base, train.jsonl for continual)"),
        ConfigKey("validation_file", .string, default: nil,
                  help: "JSONL evaluation texts, inside data_dir unless absolute; \"\" for none (default: none for base, validation.jsonl for continual)"),
        ConfigKey("tokenizer", .path, default: .string(Paths.gpt2Tokenizer.path),
                  help: "tokenizer folder: tokenizer.json, or vocab.json + merges.txt (copied into every checkpoint)"),
        ConfigKey("init", .pathOr(["scratch", "base", "continual"]), default: nil,
                  help: "\"scratch\" (a new GPT-2), \"base\" / \"continual\" (that stage's last checkpoint) or a Hugging Face GPT-2, Llama or Phi folder (default: scratch for base, base for continual, continual for forget)"),
        ConfigKey("n_layer", .int, default: .int(12), help: "transformer blocks (init = \"scratch\")"),
        ConfigKey("n_head", .int, default: .int(12), help: "attention heads per block (init = \"scratch\")"),
        ConfigKey("n_embd", .int, default: .int(768), help: "residual width (init = \"scratch\")"),
        ConfigKey("n_positions", .int, default: .int(1024), help: "longest sequence the model takes (init = \"scratch\")"),
        ConfigKey("resid_pdrop", .double, default: nil,
                  help: "training dropout on every block's attention and MLP outputs (GPT-2, Phi; unset: the model's config.json value; 0.1 for init = \"scratch\", as transformers)"),
        ConfigKey("embd_pdrop", .double, default: nil, help: "training dropout on the embeddings (GPT-2, Phi; unset: the model's config.json value; 0.1 for init = \"scratch\")"),
        ConfigKey("attn_pdrop", .double, default: nil, help: "training dropout on the attention probabilities (Llama and Phi: attention_dropout; unset: the model's config.json value; 0.1 for init = \"scratch\")"),
        ConfigKey("block_size", .int, default: .int(1024), help: "tokens per packed training block"),
        ConfigKey("group_size", .int, default: .int(1000), help: "texts per packing group"),
        ConfigKey("num_train_epochs", .int, default: .int(25), help: "passes over the training blocks"),
        ConfigKey("max_steps", .int, default: .int(-1), help: "stop after this many optimizer steps (-1: num_train_epochs decides)"),
        ConfigKey("per_device_train_batch_size", .int, default: .int(16), help: "blocks per rank per micro-step"),
        ConfigKey("per_device_eval_batch_size", .int, default: .int(8), help: "blocks per rank per evaluation forward pass"),
        ConfigKey("gradient_accumulation_steps", .int, default: .int(4),
                  help: "micro-steps per optimizer step; global batch = ranks × per_device_train_batch_size × this"),
        ConfigKey("learning_rate", .double, default: .double(1e-3), help: "peak AdamW learning rate"),
        ConfigKey("lr_scheduler_type", .choice(LRSchedule.allCases.map(\.rawValue)), default: .string("constant"),
                  help: "learning-rate schedule after warm-up"),
        ConfigKey("warmup_steps", .int, default: .int(0), help: "optimizer steps of linear warm-up from 0"),
        ConfigKey("weight_decay", .double, default: .double(0.1), help: "AdamW weight decay (not on biases and LayerNorm weights)"),
        ConfigKey("adam_beta1", .double, default: .double(0.9), help: "AdamW β1"),
        ConfigKey("adam_beta2", .double, default: .double(0.95), help: "AdamW β2"),
        ConfigKey("adam_epsilon", .double, default: .double(1e-6), help: "AdamW ε"),
        ConfigKey("max_grad_norm", .double, default: .double(1.0), help: "clip the global gradient norm to this (0: no clipping)"),
        ConfigKey("save_strategy", .choice(IntervalStrategy.allCases.map(\.rawValue) + [exponentialSaveStrategy]), default: .string("epoch"),
                  help: "when to write a checkpoint: every epoch, every save_steps steps, only at the end (no), or at intervals 1, 2, 2, 4, 4, … capped at save_steps (exponential, the forgetting runs)"),
        ConfigKey("save_steps", .int, default: .int(0),
                  help: "optimizer steps between checkpoints (save_strategy = \"steps\"); the largest interval (\"exponential\")"),
        ConfigKey("save_optimizer", .choice(["all", "last"]), default: .string("all"),
                  help: "which checkpoints keep optimizer.safetensors: all (each can be resumed from) or the newest only (the others stay model folders, a third of the disk)"),
        ConfigKey("logging_steps", .int, default: .int(10), help: "optimizer steps per metrics.jsonl training line"),
        ConfigKey("eval_strategy", .choice(IntervalStrategy.allCases.map(\.rawValue)), default: .string("epoch"),
                  help: "when to evaluate on validation_file: every epoch, every eval_steps steps, or never (no)"),
        ConfigKey("eval_steps", .int, default: .int(0), help: "optimizer steps between evaluations (eval_strategy = \"steps\")"),
        ConfigKey("deterministic", .bool, default: .bool(false),
                  help: "exact (fixed-point) gradient reduction: bit-identical repeats, and across rank counts with the same per-rank batch"),
        ConfigKey("seed", .int, default: .int(42), help: "seed of the initialisation and of the data order"),
        ConfigKey("skip_nonfinite_steps", .int, default: .int(0),
                  help: "optimizer steps whose loss or gradient is inf/NaN to skip (batch dropped, no update, logged in metrics.jsonl) before training stops; 0: stop at the first, leaving the last checkpoint untouched"),
        ConfigKey("lock", .bool, default: .bool(true),
                  help: "hold a lock on output_dir while training, so a second job on the same folder is refused; false only on file systems without locks (or use --no-lock)"),
    ], sections: [
        ConfigSection("base", help: "overrides for the base stage", keys: trainStageKeys),
        ConfigSection("continual", help: "overrides for the continual stage", keys: trainStageKeys),
        ConfigSection("forget", help: "the forget stage (docs/forgetting.md): overrides, and its replay settings", keys: trainStageKeys, ownKeys: [
            ConfigKey("replay_file", .string, default: .string("forget/replay.jsonl"),
                      help: "JSONL replay texts (continual people), inside data_dir unless absolute"),
            ConfigKey("replay_ratios", .array(.double), default: .array([0, 0.1, 0.2, 0.4, 0.6, 1.0].map { ConfigValue.double($0) }),
                      help: "one sub-run per ratio r in [0, 1], in <output_dir>/forget/replay_<r>/"),
            ConfigKey("replay_mode", .choice(ReplayMode.allCases.map(\.rawValue)), default: .string(ReplayMode.replace.rawValue),
                      help: "replace: floor(r·N) of the N forgetting texts become replay texts (the study); add: floor(r·N) replay texts are appended"),
            ConfigKey("replay_draw", .choice(ReplayDraw.allCases.map(\.rawValue)), default: .string(ReplayDraw.withReplacement.rawValue),
                      help: "replay texts drawn with replacement (the study) or without"),
            ConfigKey("extra_validation_files", .map(.string), default: .table(ConfigTable()),
                      help: "name → JSONL file (inside data_dir unless absolute) evaluated with validation_file; metrics eval_<name>_… (e.g. { forget = \"forget/validation.jsonl\" })"),
        ]),
    ])

    /// The `save_strategy` value of the doubling schedule (`ExponentialSaveSchedule`).
    public static let exponentialSaveStrategy = "exponential"
}

/// The checked settings of one stage: top-level keys with the stage's table applied, stage defaults
/// filled in, paths absolute.
public struct StageConfig: Sendable {
    public let stage: TrainStage
    /// `<output_dir>/<stage>`.
    public let folder: URL
    public let dataDir: URL
    public let trainFile: URL
    public let validationFile: URL?
    public let tokenizer: URL
    public let initSource: InitSource
    /// Shape of a scratch model (vocabulary from the tokenizer).
    public let nLayer: Int, nHead: Int, nEmbd: Int, nPositions: Int
    /// Dropout probabilities to train with; nil: the model config's.
    public let residPdrop: Double?, embdPdrop: Double?, attnPdrop: Double?
    public let blockSize: Int
    public let groupSize: Int
    public let numTrainEpochs: Int
    public let maxSteps: Int
    public let perDeviceTrainBatchSize: Int
    public let perDeviceEvalBatchSize: Int
    public let gradientAccumulationSteps: Int
    public let learningRate: Double
    public let lrSchedulerType: LRSchedule
    public let warmupSteps: Int
    public let weightDecay: Double
    public let adamBeta1: Double, adamBeta2: Double, adamEpsilon: Double
    /// nil: no clipping.
    public let maxGradNorm: Double?
    /// `.steps` also when `save_strategy = "exponential"`; then `saveSchedule` decides (`saveDue`).
    public let saveStrategy: IntervalStrategy
    public let saveSteps: Int
    /// The doubling schedule capped at `save_steps` (`save_strategy = "exponential"`), else nil.
    public let saveSchedule: ExponentialSaveSchedule?
    /// A forget sub-run's replay settings; nil for the other stages.
    public let replay: ForgetReplay?
    /// Further evaluation sets of a forget sub-run (`extra_validation_files`), by name, in the table's order.
    public let extraValidationFiles: [(name: String, file: URL)]
    /// Whether the stage evaluates its initial weights before the first step (the forget stage).
    public var evaluatesAtStart: Bool { stage == .forget }
    /// Whether every checkpoint keeps its optimizer state (else only the newest).
    public let keepAllOptimizerStates: Bool
    public let loggingSteps: Int
    public let evalStrategy: IntervalStrategy
    public let evalSteps: Int
    public let deterministic: Bool
    public let seed: UInt64
    /// Non-finite steps to skip before stopping (0: stop at the first).
    public let skipNonfiniteSteps: Int

    /// The folder checkpoints go to: `<stage folder>/checkpoints`.
    public var checkpointsFolder: URL { folder.appendingPathComponent("checkpoints") }
    /// `<stage folder>/metrics.jsonl`.
    public var metricsFile: URL { folder.appendingPathComponent("metrics.jsonl") }

    /// Whether a checkpoint is due after optimizer step `step` of `total` (`epochEnd`: the step ends an epoch).
    /// The last step is always saved.
    public func saveDue(step: Int, total: Int, epochEnd: Bool) -> Bool {
        if step == total { return true }
        if let saveSchedule { return saveSchedule.isSaveStep(step, total: total) }
        switch saveStrategy {
        case .no: return false
        case .epoch: return epochEnd
        case .steps: return step % saveSteps == 0
        }
    }

    /// Blocks per optimizer step across `ranks` ranks.
    public func globalBatch(ranks: Int) -> Int { ranks * perDeviceTrainBatchSize * gradientAccumulationSteps }

    /// The AdamW settings for a stage of `totalSteps` optimizer steps.
    public func optimizer(totalSteps: Int) -> AdamWConfig {
        AdamWConfig(lr: learningRate, beta1: adamBeta1, beta2: adamBeta2, eps: adamEpsilon, weightDecay: weightDecay,
                    maxGradNorm: maxGradNorm, schedule: lrSchedulerType, warmupSteps: warmupSteps, totalSteps: totalSteps)
    }

    /// Reads and checks the stage's settings from a resolved `train` configuration.
    init(_ c: ResolvedConfig, stage: TrainStage, outputDir: URL, replayRatio: Double? = nil) throws {
        precondition((stage == .forget) == (replayRatio != nil), "a forget sub-run needs its replay ratio, other stages none")
        let k = StageKeys(config: c, stage: stage)
        self.stage = stage
        if let replayRatio {
            folder = outputDir.appendingPathComponent(k.s).appendingPathComponent("replay_\(ForgetReplay.label(replayRatio))")
        } else {
            folder = outputDir.appendingPathComponent(k.s)
        }
        dataDir = k.dataDir
        guard let train = k.dataFile("train_file", default: stage.defaultTrainFile) else {
            throw k.bad("train_file", "is empty: name the JSONL file of training texts (e.g. \"\(stage.defaultTrainFile)\")")
        }
        trainFile = train
        validationFile = k.dataFile("validation_file", default: stage.defaultValidationFile)
        tokenizer = c.url("tokenizer", section: k.s)
        initSource = try k.initSource()

        nLayer = try k.positive("n_layer")
        nHead = try k.positive("n_head")
        nEmbd = try k.positive("n_embd")
        guard nEmbd % nHead == 0 else { throw k.bad("n_embd", "\(nEmbd) is not a multiple of n_head = \(nHead)") }
        nPositions = try k.positive("n_positions")
        residPdrop = try k.probability("resid_pdrop")
        embdPdrop = try k.probability("embd_pdrop")
        attnPdrop = try k.probability("attn_pdrop")
        blockSize = try k.positive("block_size")
        if initSource == .scratch, blockSize > nPositions {
            throw k.bad("block_size", "\(blockSize) exceeds n_positions = \(nPositions): the model cannot read blocks that long; lower block_size or raise n_positions")
        }
        groupSize = try k.positive("group_size")

        numTrainEpochs = try k.positive("num_train_epochs")
        maxSteps = c.int("max_steps", section: k.s)
        guard maxSteps == -1 || maxSteps >= 1 else { throw k.bad("max_steps", "must be -1 (epochs decide) or ≥ 1, got \(maxSteps)") }
        perDeviceTrainBatchSize = try k.positive("per_device_train_batch_size")
        perDeviceEvalBatchSize = try k.positive("per_device_eval_batch_size")
        gradientAccumulationSteps = try k.positive("gradient_accumulation_steps")
        (learningRate, lrSchedulerType, warmupSteps, weightDecay) = try k.schedule()
        (adamBeta1, adamBeta2, adamEpsilon, maxGradNorm) = try k.adam()

        (saveStrategy, saveSteps, saveSchedule) = try k.saving()
        keepAllOptimizerStates = c.string("save_optimizer", section: k.s) == "all"
        loggingSteps = try k.positive("logging_steps")
        evalStrategy = IntervalStrategy(rawValue: c.string("eval_strategy", section: k.s)) ?? .epoch
        evalSteps = try k.nonNegative("eval_steps")
        if evalStrategy == .steps, evalSteps < 1 { throw k.bad("eval_steps", "must be ≥ 1 when eval_strategy = \"steps\"") }
        deterministic = c.bool("deterministic", section: k.s)
        let seedValue = c.int("seed", section: k.s)
        guard seedValue >= 0 else { throw k.bad("seed", "must be ≥ 0, got \(seedValue)") }
        seed = UInt64(seedValue)
        skipNonfiniteSteps = try k.nonNegative("skip_nonfinite_steps")

        if let replayRatio {
            (replay, extraValidationFiles) = try k.forgetReplay(ratio: replayRatio)
        } else {
            replay = nil
            extraValidationFiles = []
        }
    }
}

/// The keys of one stage of a resolved `train` configuration (the stage's table over the top level), read
/// with the checks `StageConfig` gives them; an error names the key as written and where it was set.
private struct StageKeys {
    let c: ResolvedConfig
    let stage: TrainStage
    /// The stage's table name.
    let s: String
    let dataDir: URL

    init(config: ResolvedConfig, stage: TrainStage) {
        c = config
        self.stage = stage
        s = stage.rawValue
        dataDir = config.url("data_dir", section: stage.rawValue)
    }

    func bad(_ key: String, _ reason: String) -> ConfigError { c.invalid(key, section: s, reason) }

    func positive(_ key: String) throws -> Int {
        let v = c.int(key, section: s)
        guard v >= 1 else { throw bad(key, "must be ≥ 1, got \(v)") }
        return v
    }

    func nonNegative(_ key: String) throws -> Int {
        let v = c.int(key, section: s)
        guard v >= 0 else { throw bad(key, "must be ≥ 0, got \(v)") }
        return v
    }

    func unitInterval(_ key: String) throws -> Double {
        let v = c.double(key, section: s)
        guard v >= 0, v < 1 else { throw bad(key, "must lie in [0, 1), got \(v)") }
        return v
    }

    /// A dropout probability in [0, 1), nil when the key is not set.
    func probability(_ key: String) throws -> Double? { c.value(key, section: s) == nil ? nil : try unitInterval(key) }

    /// A file inside data_dir unless absolute; nil when set to "".
    func dataFile(_ key: String, default name: String) -> URL? {
        let raw: String
        if case .string(let v)? = c.value(key, section: s) { raw = v } else { raw = name }
        guard !raw.isEmpty else { return nil }
        return raw.hasPrefix("/") ? URL(fileURLWithPath: raw) : dataDir.appendingPathComponent(raw)
    }

    /// `init`: scratch, the base or continual stage's last checkpoint (where the stage allows it), or a folder.
    func initSource() throws -> InitSource {
        let raw: String
        if case .string(let v)? = c.value("init", section: s) { raw = v } else { raw = stage.defaultInit }
        switch raw {
        case "scratch": return .scratch
        case "base":
            guard stage != .base else { throw bad("init", "is \"base\" for the base stage itself: use \"scratch\" or a model folder") }
            return .base
        case "continual":
            guard stage == .forget else {
                throw bad("init", "is \"continual\" for the \(s) stage: only the forget stage starts from the continual stage; use \"scratch\", \"base\" or a model folder")
            }
            return .continual
        default: return .folder(URL(fileURLWithPath: raw))
        }
    }

    /// learning_rate, lr_scheduler_type, warmup_steps, weight_decay.
    func schedule() throws -> (Double, LRSchedule, Int, Double) {
        let learningRate = c.double("learning_rate", section: s)
        guard learningRate >= 0, learningRate.isFinite else { throw bad("learning_rate", "must be ≥ 0, got \(learningRate)") }
        let lrSchedulerType = LRSchedule(rawValue: c.string("lr_scheduler_type", section: s)) ?? .constant
        let warmupSteps = try nonNegative("warmup_steps")
        let weightDecay = c.double("weight_decay", section: s)
        guard weightDecay >= 0, weightDecay.isFinite else { throw bad("weight_decay", "must be ≥ 0, got \(weightDecay)") }
        return (learningRate, lrSchedulerType, warmupSteps, weightDecay)
    }

    /// adam_beta1, adam_beta2, adam_epsilon, and max_grad_norm (nil: no clipping).
    func adam() throws -> (Double, Double, Double, Double?) {
        let beta1 = try unitInterval("adam_beta1")
        let beta2 = try unitInterval("adam_beta2")
        let epsilon = c.double("adam_epsilon", section: s)
        guard epsilon > 0 else { throw bad("adam_epsilon", "must be > 0, got \(epsilon)") }
        let clip = c.double("max_grad_norm", section: s)
        guard clip >= 0 else { throw bad("max_grad_norm", "must be ≥ 0 (0: no clipping), got \(clip)") }
        return (beta1, beta2, epsilon, clip > 0 ? clip : nil)
    }

    /// save_strategy and save_steps: the strategy (`.steps` for the exponential schedule), the interval, the schedule.
    func saving() throws -> (IntervalStrategy, Int, ExponentialSaveSchedule?) {
        let raw = c.string("save_strategy", section: s)
        let steps = try nonNegative("save_steps")
        if raw == ConfigSchema.exponentialSaveStrategy {
            guard steps >= 1 else { throw bad("save_steps", "must be ≥ 1 when save_strategy = \"exponential\" (the largest interval; the study's forgetting runs: 16, dkc: 32)") }
            return (.steps, steps, ExponentialSaveSchedule(cap: steps))
        }
        let strategy = IntervalStrategy(rawValue: raw) ?? .epoch
        if strategy == .steps, steps < 1 { throw bad("save_steps", "must be ≥ 1 when save_strategy = \"steps\"") }
        return (strategy, steps, nil)
    }

    /// A forget sub-run's replay settings and its further evaluation sets.
    func forgetReplay(ratio: Double) throws -> (ForgetReplay, [(name: String, file: URL)]) {
        guard let replayPath = dataFile("replay_file", default: "forget/replay.jsonl") else {
            throw bad("replay_file", "is empty: name the JSONL file of replay texts (e.g. \"forget/replay.jsonl\")")
        }
        let replay = ForgetReplay(ratio: ratio, file: replayPath,
                                  mode: ReplayMode(rawValue: c.string("replay_mode", section: s)) ?? .replace,
                                  draw: ReplayDraw(rawValue: c.string("replay_draw", section: s)) ?? .withReplacement)
        var extra: [(name: String, file: URL)] = []
        for (name, value) in c.table("extra_validation_files", section: s).entries {
            guard case .string(let raw) = value, !raw.isEmpty else {
                throw bad("extra_validation_files", "entry '\(name)' must name a JSONL file, got \(value.tomlText)")
            }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw bad("extra_validation_files", "name '\(name)' becomes part of metric names (eval_<name>_loss): use letters, digits and _")
            }
            extra.append((name, raw.hasPrefix("/") ? URL(fileURLWithPath: raw) : dataDir.appendingPathComponent(raw)))
        }
        return (replay, extra)
    }
}

/// The checked settings of `dkc train`: the stages to run, in order.
public struct TrainConfig {
    public let stages: [StageConfig]
    public let outputDir: URL
    /// Whether `dkc train` locks output_dir (`lock`).
    public let lock: Bool
    /// The configuration these settings came from (recorded in every checkpoint).
    public let resolved: ResolvedConfig

    /// Loads and checks a training configuration.
    public static func load(file: URL?, overrides: [String] = [], workingDirectory: URL = ConfigLoader.cwd) throws -> TrainConfig {
        try TrainConfig(ConfigLoader.load(schema: .train, file: file, overrides: overrides, workingDirectory: workingDirectory))
    }

    public init(_ c: ResolvedConfig) throws {
        precondition(c.schema.kind == "train", "TrainConfig needs a train configuration")
        resolved = c
        outputDir = c.url("output_dir")
        lock = c.bool("lock")
        let names = c.strings("stages")
        guard !names.isEmpty else {
            throw ConfigError.invalidValue(key: "stages", location: c.origin(of: "stages"), reason: "lists no stage: give [\"base\", \"continual\"] or one of them")
        }
        guard Set(names).count == names.count else {
            throw ConfigError.invalidValue(key: "stages", location: c.origin(of: "stages"), reason: "lists a stage twice")
        }
        let out = outputDir
        var stages: [StageConfig] = []
        for stage in names.compactMap(TrainStage.init(rawValue:)) {
            guard stage == .forget else {
                stages.append(try StageConfig(c, stage: stage, outputDir: out))
                continue
            }
            // One sub-run per replay ratio, in <output_dir>/forget/replay_<r>/.
            let ratios: [Double] = c.value("replay_ratios", section: "forget").flatMap { v -> [Double]? in
                guard case .array(let items) = v else { return nil }
                return items.compactMap { if case .double(let d) = $0 { return d } else { return nil } }
            } ?? []
            func bad(_ reason: String) -> ConfigError {
                ConfigError.invalidValue(key: "forget.replay_ratios", location: c.origin(of: "replay_ratios", section: "forget"), reason: reason)
            }
            guard !ratios.isEmpty else { throw bad("lists no ratio: give e.g. [0, 0.1, 1]") }
            for r in ratios where !(r >= 0 && r <= 1) { throw bad("holds \(r), outside [0, 1]") }
            guard Set(ratios.map(ForgetReplay.label)).count == ratios.count else { throw bad("lists a ratio twice") }
            for r in ratios { stages.append(try StageConfig(c, stage: .forget, outputDir: out, replayRatio: r)) }
        }
        func position(_ stage: TrainStage) -> Int? { stages.firstIndex { $0.stage == stage } }
        if let i = position(.base), let j = position(.continual), j < i {
            throw ConfigError.invalidValue(key: "stages", location: c.origin(of: "stages"),
                                           reason: "runs continual before base, but continual starts from the base stage: list [\"base\", \"continual\"]")
        }
        if let i = position(.continual), let j = position(.forget), j < i {
            throw ConfigError.invalidValue(key: "stages", location: c.origin(of: "stages"),
                                           reason: "runs forget before continual, but forget starts from the continual stage: list [\"base\", \"continual\", \"forget\"]")
        }
        self.stages = stages
    }
}
