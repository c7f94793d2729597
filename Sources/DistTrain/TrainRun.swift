import Core
import Foundation
import MPIShim

/// `dkc train`: the stages of a run (docs/pipeline.md §4), data-parallel over the world communicator.
///
/// Before any step every rank checks everything it can (data files, tokenizer, the model a stage starts
/// from, block size against n_positions, enough blocks for one global batch, checkpoints that belong to
/// this run), and the ranks agree: a problem anywhere ends the job on every rank with one message and
/// exit code 65, before anything is trained.
///
/// A stage resumes by itself from the newest complete checkpoint in `<output_dir>/<stage>/checkpoints/`
/// (with `requireResume`, finding none is an error); a stage whose newest checkpoint is marked finished
/// is skipped. Rank 0 reads and writes every file of the run folder and broadcasts what it read.
public final class TrainRun {
    public enum Outcome: Equatable { case finished, stopped }

    public let config: TrainConfig
    let comm: Communicator
    let threads: Int
    let requireResume: Bool
    let observer: (TrainEvent) -> Void
    /// Tokenised corpora by file, block size and tokenizer: the forget sub-runs share their files.
    var tokenizedCache: [String: [TokenizedText]] = [:]

    /// What the checks found for one stage.
    struct Setup {
        let stage: StageConfig
        /// The model: GPT-2 (dropout as the stage sets it) or a Llama / Phi folder's (docs/model-families.md).
        let model: ModelConfig
        let tokenizer: any Tokenizer
        let tokenizerFiles: [URL]
        /// Newest checkpoint of the stage and its state (from rank 0).
        let resume: (url: URL, state: TrainerState)?

        /// The token the tokenizer puts before a text (Llama's `<s>`; none for GPT-2 and Phi), as the study's
        /// train.py `tokenize` gets it.
        var bos: Int? { tokenizer.encode("", addSpecialTokens: true).first }
        /// Whether attribute values are found by the tokens of " " + value (GPT-2, Phi) or of the value (Llama).
        var markLeadingSpace: Bool { model.family.circuitLabelHasLeadingSpace }

        /// A model of this stage's shape with zero parameters.
        func makeModel(threads: Int) -> any TrainableModel {
            if let g = model.gpt2 { return GPT2(params: ParameterArena(config: g), threads: threads) }
            return FamilyModel(params: FamilyArena(layout: FamilyLayout(config: model)), threads: threads)
        }
    }

    /// - Parameters:
    ///   - threads: workers of the model's kernels and AdamW on each rank (OpenBLAS is set by the caller).
    ///   - requireResume: fail when no stage has a checkpoint to continue from (`--resume`).
    ///   - observer: receives every event, on every rank.
    public init(config: TrainConfig, comm: Communicator, threads: Int, requireResume: Bool,
                observer: @escaping (TrainEvent) -> Void) {
        self.config = config
        self.comm = comm
        self.threads = max(1, threads)
        self.requireResume = requireResume
        self.observer = observer
    }

    /// The final weights and checkpoint of a stage already trained in this run (weights nil when it
    /// was found complete on disk and not loaded).
    typealias Trained = (stage: TrainStage, params: (any TrainableModel)?, checkpoint: URL)

    public func run() throws -> Outcome {
        let lock = try lockOutputFolder()
        defer { withExtendedLifetime(lock) {} }
        let setups = try prepareSetups()
        var data: [StageData] = []
        for s in setups { data.append(try loadData(s)) }
        try comm.agree(exitCode: CorpusLoader.exitCode) { try checkCompatibility(setups, data) }

        var previous: Trained?
        // The continual stage's final weights, for every forget sub-run.
        var continualFinal: (params: (any TrainableModel)?, checkpoint: URL)?
        for (setup, stageData) in zip(setups, data) {
            defer { if let p = previous, p.stage == .continual { continualFinal = (p.params, p.checkpoint) } }
            let s = setup.stage
            let G = s.globalBatch(ranks: comm.size)
            let stepsPerEpoch = stageData.train.count / G
            let total = s.maxSteps > 0 ? s.maxSteps : s.numTrainEpochs * stepsPerEpoch
            // Complete when the newest checkpoint reached this configuration's last step (a raised
            // num_train_epochs or max_steps continues a finished stage, as HF's resume does).
            if let r = setup.resume, r.state.finished, r.state.globalStep >= total {
                observer(.stageAlreadyComplete(stage: s.stage, step: r.state.globalStep, checkpoint: r.url))
                previous = (s.stage, nil, r.url)
                continue
            }

            let model = setup.makeModel(threads: threads)
            let optimizer = model.makeOptimizer(s.optimizer(totalSteps: total), threads: threads)
            var state: TrainerState
            let initDescription: String
            if let r = setup.resume {
                try rootLoad("checkpoint \(r.url.path)") {
                    try model.load(folder: r.url)
                    try TrainCheckpoint.readOptimizer(from: r.url.appendingPathComponent(TrainCheckpoint.optimizerFileName),
                                                      into: optimizer, tensors: model.parameterTensors)
                }
                try ReplicaSync.broadcast(optimizer, comm: comm)
                state = r.state
                initDescription = "resumed from \(r.url.path)"
            } else {
                initDescription = try initializeWeights(model, stage: s, previous: previous, continualFinal: continualFinal)
                state = TrainerState(stage: s.stage.rawValue, globalStep: 0, maxSteps: total, numTrainEpochs: s.numTrainEpochs,
                                     stepsPerEpoch: stepsPerEpoch, globalBatchSize: G, perDeviceTrainBatchSize: s.perDeviceTrainBatchSize,
                                     loggingSteps: s.loggingSteps, saveSteps: s.saveSteps, evalSteps: s.evalSteps, logHistory: [],
                                     window: .init(), seed: s.seed, trainFile: s.trainFile.path, trainBlocks: stageData.train.count,
                                     trainFingerprint: stageData.train.fingerprint, worldSize: comm.size, blasThreads: threads,
                                     deterministic: s.deterministic, finished: false, config: config.resolved.json)
            }
            try ReplicaSync.broadcast(model, comm: comm)
            applyCurrentSettings(to: &state, stage: s, totalSteps: total)

            let stepper = DataParallelStep(comm: comm, model: model, optimizer: optimizer, perRankBatch: s.perDeviceTrainBatchSize,
                                           accumulation: s.gradientAccumulationSteps, blockSize: s.blockSize, deterministic: s.deterministic,
                                           dropoutSeed: s.seed)
            let plan = StagePlan(stage: s.stage, ranks: comm.size, threads: threads, trainBlocks: stageData.train.count,
                                 evalBlocks: stageData.eval?.count ?? 0, blockSize: s.blockSize, globalBatch: G,
                                 stepsPerEpoch: stepsPerEpoch, totalSteps: total,
                                 epochs: (total + stepsPerEpoch - 1) / stepsPerEpoch, startStep: state.globalStep,
                                 resumedFrom: setup.resume?.url, initDescription: initDescription, parameters: model.parameterCount,
                                 deterministic: s.deterministic)
            if let mix = stageData.replayMix {
                try writeForgetRecords(stage: s, mix: mix, initCheckpoint: try initCheckpoint(s, continual: continualFinal?.checkpoint))
            }
            let trainer = StageTrainer(comm: comm, config: s, data: stageData, stepper: stepper, state: state,
                                       tokenizerFiles: setup.tokenizerFiles, threads: threads, plan: plan, observer: observer)
            switch try trainer.run() {
            case .stopped: return .stopped
            case .finished(let url): previous = (s.stage, model, url)
            }
        }
        return .finished
    }

    /// A stage's starting weights when it does not resume, by its `init` source: random, the base or
    /// continual stage's final weights (in memory when this run trained them, else their checkpoint),
    /// or a model folder. Returns the description the stage plan prints.
    private func initializeWeights(_ model: any TrainableModel, stage s: StageConfig, previous: Trained?,
                                   continualFinal: (params: (any TrainableModel)?, checkpoint: URL)?) throws -> String {
        func copy(from other: any TrainableModel) {
            precondition(other.parameterCount == model.parameterCount, "stages of one run share the model's shape")
            model.parameterBase.update(from: other.parameterBase, count: model.parameterCount)
        }
        switch s.initSource {
        case .scratch:
            // A scratch model is a GPT-2 (rootDescription); Llama and Phi start from a model folder.
            if comm.isRoot, let gpt2 = model as? GPT2 { gpt2.params.initializeGPT2(seed: s.seed) }
            return "random GPT-2 initialisation (seed \(s.seed))"
        case .base:
            if let p = previous, p.stage == .base, let inMemory = p.params {
                copy(from: inMemory)
                return "the base stage's final weights (\(p.checkpoint.path))"
            }
            let url = try baseCheckpoint(previous)
            try rootLoad("the base stage's checkpoint \(url.path)") { try model.load(folder: url) }
            return "the base stage's final checkpoint \(url.path)"
        case .continual:
            if let p = continualFinal, let inMemory = p.params {
                copy(from: inMemory)
                return "the continual stage's final weights (\(p.checkpoint.path))"
            }
            let url = try continualFinal?.checkpoint ?? stageCheckpoint(.continual)
            try rootLoad("the continual stage's checkpoint \(url.path)") { try model.load(folder: url) }
            return "the continual stage's final checkpoint \(url.path)"
        case .folder(let url):
            try rootLoad("the model folder \(url.path)") { try model.load(folder: url) }
            return "the model folder \(url.path)"
        }
    }

    /// Settings that may change between a run and its resumption (HF allows the same). A stage resumed
    /// past a lowered end keeps its step as the end (global_step ≤ max_steps).
    private func applyCurrentSettings(to state: inout TrainerState, stage s: StageConfig, totalSteps total: Int) {
        state.maxSteps = max(total, state.globalStep)
        state.numTrainEpochs = s.numTrainEpochs
        state.loggingSteps = s.loggingSteps
        state.saveSteps = s.saveSteps
        state.evalSteps = s.evalSteps
        state.worldSize = comm.size
        state.blasThreads = threads
        state.deterministic = s.deterministic
        state.config = config.resolved.json
        state.source = DKCVersion.source
    }

    // MARK: - Checks

    /// Rank 0 takes the lock `.train.lock` in output_dir (docs/fault-tolerance.md); every rank learns
    /// whether it got it. A second job on the same folder is refused with the holder's pid and host.
    private func lockOutputFolder() throws -> FolderLock? {
        guard config.lock else { return nil }
        var lock: FolderLock?
        try comm.agree(exitCode: { ($0 as? UserFacingError)?.exitCode ?? 1 }, rootOnly: true) {
            guard comm.isRoot else { return }
            let dir = config.outputDir
            do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                throw TrainError.file(dir, "cannot be created (\(error.localizedDescription))", fix: "check that output_dir is writable")
            }
            do { lock = try FolderLock(folder: dir, name: ".train.lock") } catch let failure as FolderLock.Failure {
                switch failure {
                case .held(let holder):
                    throw TrainError("\(dir.path) is in use by another dkc train (\(holder)): wait for it to finish or stop it; two jobs must not train into one output_dir", exitCode: 1)
                case .unsupported(let reason):
                    throw TrainError("\(dir.appendingPathComponent(".train.lock").path): the file system does not support locks (flock: \(reason)); run with --no-lock (or lock = false) if you are sure no other job uses this output_dir", exitCode: 1)
                case .cannotOpen(let reason):
                    throw TrainError("\(dir.appendingPathComponent(".train.lock").path) cannot be opened: \(reason); check that output_dir is writable", exitCode: 1)
                }
            }
        }
        return lock
    }

    /// Every stage checked on every rank, the model shapes and resume states as rank 0 finds them.
    func prepareSetups() throws -> [Setup] {
        // Files every rank reads itself: data and tokenizer.
        let tokenizers = try comm.agree(exitCode: CorpusLoader.exitCode) { () -> [any Tokenizer] in
            var byPath: [String: any Tokenizer] = [:]
            return try config.stages.map { s in
                let files: [(String, URL?)] = [("train_file", s.trainFile), ("validation_file", s.validationFile)]
                    + s.extraValidationFiles.map { ("extra_validation_files.\($0.name)", $0.file) }
                for (key, file) in files {
                    guard let file else { continue }
                    guard FileManager.default.fileExists(atPath: file.path) else {
                        throw TrainError("\(key) of the \(s.stage.rawValue) stage, \(file.path), does not exist: run `dkc data generate --out \(s.dataDir.path)` or set data_dir / \(key)")
                    }
                }
                if let t = byPath[s.tokenizer.path] { return t }
                // The default folder is the fetched copy: the rule's loader says how to fetch it when absent.
                let t = try TokenizerLoader.resolve(explicit: s.tokenizer, model: nil)
                byPath[s.tokenizer.path] = t
                return t
            }
        }
        // Model shapes and checkpoints: rank 0 reads, everyone receives.
        let described = try comm.agree(exitCode: CorpusLoader.exitCode, rootOnly: true) { () -> [UInt8] in
            guard comm.isRoot else { return [] }
            return Array(try rootDescription(tokenizers).prettyText().utf8)
        }
        let json = try JSONValue(parsing: Data(try comm.broadcast(bytes: described)))
        guard case .array(let items) = json, items.count == config.stages.count else { preconditionFailure("malformed stage description") }
        var setups: [Setup] = []
        for (i, s) in config.stages.enumerated() {
            let item = items[i]
            guard let modelText = item["model"]?.stringValue else { preconditionFailure("malformed stage description") }
            let model = try ModelConfig(json: Data(modelText.utf8), source: "the \(s.stage.rawValue) stage's model")
            var resume: (URL, TrainerState)?
            if let path = item["resume"]?.stringValue, let stateJSON = item["state"] {
                let url = URL(fileURLWithPath: path)
                resume = (url, try TrainerState(json: stateJSON, file: url.appendingPathComponent(TrainCheckpoint.stateFileName)))
            }
            let files = Self.tokenizerFileNames.map { s.tokenizer.appendingPathComponent($0) }
                .filter { FileManager.default.fileExists(atPath: $0.path) }
            setups.append(Setup(stage: s, model: model, tokenizer: tokenizers[i], tokenizerFiles: files, resume: resume))
        }
        if requireResume, !setups.contains(where: { $0.resume != nil }) {
            throw CollectiveFailure(message: "--resume: no checkpoint to resume from under \(config.outputDir.path) (looked in \(config.stages.map { $0.checkpointsFolder.path }.joined(separator: ", "))); run without --resume to start training", exitCode: 65)
        }
        return setups
    }

    /// Rank 0: per stage, the model config (JSON text) and the newest checkpoint with its trainer state.
    private func rootDescription(_ tokenizers: [any Tokenizer]) throws -> JSONValue {
        var items: [JSONValue] = []
        var models: [TrainStage: ModelConfig] = [:]
        for (i, s) in config.stages.enumerated() {
            var model: ModelConfig
            switch s.initSource {
            case .scratch:
                let g = GPT2Config(nLayer: s.nLayer, nHead: s.nHead, nEmbd: s.nEmbd, nPositions: s.nPositions,
                                   vocabSize: tokenizers[i].vocabSize, eosTokenId: tokenizers[i].eosTokenId)
                try g.validate(source: "the \(s.stage.rawValue) stage's n_layer/n_head/n_embd/n_positions")
                model = ModelConfig(gpt2: g)
            case .folder(let url):
                model = try Self.checkModelFolder(url, key: "init")
            case .base:
                if let m = models[.base] {
                    model = m
                } else {
                    let url = try baseCheckpoint(nil)
                    model = try ModelConfig.load(from: url.appendingPathComponent(HFCheckpoint.configFileName))
                }
            case .continual:
                if let m = models[.continual] {
                    model = m
                } else {
                    let url = try stageCheckpoint(.continual)
                    model = try ModelConfig.load(from: url.appendingPathComponent(HFCheckpoint.configFileName))
                }
            }
            // Dropout set in the train config replaces the model's (and is what its checkpoints record). For Llama and
            // Phi, attn_pdrop is config.json's attention_dropout; Phi also has embd_pdrop and resid_pdrop, Llama not.
            if var g = model.gpt2 {
                if let p = s.residPdrop { g.residPdrop = p }
                if let p = s.embdPdrop { g.embdPdrop = p }
                if let p = s.attnPdrop { g.attnPdrop = p }
                model = ModelConfig(gpt2: g)
            } else {
                if let p = s.attnPdrop { model.attentionDropout = p }
                if model.family == .phi {
                    if let p = s.residPdrop { model.residPdrop = p }
                    if let p = s.embdPdrop { model.embdPdrop = p }
                } else if let (key, p) = [("resid_pdrop", s.residPdrop), ("embd_pdrop", s.embdPdrop)]
                            .compactMap({ k, v in v.map { (k, $0) } }).first(where: { $0.1 != 0 }) {
                    throw TrainError("\(key) = \(p) for the \(s.stage.rawValue) stage, but its model is llama, which transformers drops only in attention: set \(key) = 0 or leave it unset (attn_pdrop sets attention_dropout)")
                }
            }
            models[s.stage] = model
            guard s.blockSize <= model.maxPositions else {
                throw TrainError("block_size \(s.blockSize) of the \(s.stage.rawValue) stage exceeds the model's n_positions \(model.maxPositions): lower block_size (or, for init = \"scratch\", raise n_positions)")
            }
            guard tokenizers[i].vocabSize <= model.vocabSize else {
                throw TrainError("the tokenizer in \(s.tokenizer.path) has \(tokenizers[i].vocabSize) tokens but the \(s.stage.rawValue) stage's model only \(model.vocabSize): use the model's own tokenizer")
            }
            var pairs: [(String, JSONValue)] = [("model", .string(String(decoding: model.jsonData(), as: UTF8.self)))]
            TrainCheckpoint.removeLeftovers(in: s.checkpointsFolder)
            let found = TrainCheckpoint.resumable(in: s.checkpointsFolder)
            let rejected = found.rejected.map { "\($0.url.path): \($0.reason)" }
            if found.chosen == nil, !rejected.isEmpty {
                throw TrainError("the \(s.stage.rawValue) stage has no checkpoint to resume from: \(rejected.joined(separator: "; ")). Remove or move away these folders to train the stage from its start, or restore them from a copy")
            }
            if let newest = found.chosen {
                if !rejected.isEmpty {
                    observer(.notice("[\(s.stage.rawValue)] passed over incomplete or damaged checkpoint(s) — \(rejected.joined(separator: "; ")) — and resumes from \(newest.url.path), the newest complete one"))
                }
                let state = newest.state
                let cfg = try ModelConfig.load(from: newest.url.appendingPathComponent(HFCheckpoint.configFileName))
                guard cfg.family == model.family, cfg.numLayers == model.numLayers, cfg.numHeads == model.numHeads,
                      cfg.numKVHeads == model.numKVHeads, cfg.hiddenSize == model.hiddenSize, cfg.intermediateSize == model.intermediateSize,
                      cfg.maxPositions == model.maxPositions, cfg.vocabSize == model.vocabSize else {
                    throw TrainError("\(newest.url.path) holds a model of another shape than the \(s.stage.rawValue) stage's configuration: restore the configuration, or use a new output_dir")
                }
                pairs.append(("resume", .string(newest.url.path)))
                pairs.append(("state", state.json))
            }
            items.append(.object(pairs))
        }
        return .array(items)
    }

    /// The tokenizer files copied into every checkpoint when the tokenizer folder has them.
    static let tokenizerFileNames = ["vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                     "added_tokens.json"]

    /// The config of a Hugging Face model folder, checked to be a model dkc can train (GPT-2, Llama or Phi).
    static func checkModelFolder(_ url: URL, key: String) throws -> ModelConfig {
        let configURL = url.appendingPathComponent(HFCheckpoint.configFileName)
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw TrainError("\(key) = \(url.path): no config.json there; give a Hugging Face model folder (GPT-2, Llama or Phi: config.json + model.safetensors), \"scratch\" or \"base\"")
        }
        let model = try ModelConfig.load(from: configURL)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent(HFCheckpoint.weightsFileName).path) else {
            throw TrainError("\(key) = \(url.path): no model.safetensors there; save the model with save_pretrained(safe_serialization=True)")
        }
        return model
    }

    /// The base stage's final checkpoint (rank 0 looks on disk when this run did not train it).
    private func baseCheckpoint(_ previous: Trained?) throws -> URL {
        if let p = previous, p.stage == .base { return p.checkpoint }
        let folder = config.outputDir.appendingPathComponent(TrainStage.base.rawValue).appendingPathComponent("checkpoints")
        guard let newest = TrainCheckpoint.newest(in: folder),
              (try? TrainerState(file: newest.url.appendingPathComponent(TrainCheckpoint.stateFileName)))?.finished == true else {
            throw TrainError("init = \"base\" needs the base stage's final checkpoint in \(folder.path), and there is none: run the base stage first (stages = [\"base\", \"continual\"]) or set continual.init to a model folder")
        }
        return newest.url
    }

    /// Runs `load` on rank 0 and lets every rank know whether it worked.
    private func rootLoad(_ what: String, _ load: () throws -> Void) throws {
        var failure = ""
        if comm.isRoot { do { try load() } catch { failure = "\(error)" } }
        let status = try comm.broadcast(bytes: Array(failure.utf8))
        guard status.isEmpty else {
            throw CollectiveFailure(message: "cannot load \(what): \(String(decoding: status, as: UTF8.self))", exitCode: 65)
        }
    }

    // MARK: - Data

    private func loadData(_ setup: Setup) throws -> StageData {
        let s = setup.stage
        let eos = setup.tokenizer.eosTokenId
        if s.replay != nil { return try loadForgetData(setup) }
        let train = try CorpusLoader.blocks(file: s.trainFile, encoder: setup.tokenizer, eos: eos, blockSize: s.blockSize,
                                            groupSize: s.groupSize, seed: s.seed, bos: setup.bos, markLeadingSpace: setup.markLeadingSpace,
                                            comm: comm)
        var eval: (blocks: PackedBlocks, texts: Int)?
        if let v = s.validationFile, s.evalStrategy != .no {
            eval = try CorpusLoader.blocks(file: v, encoder: setup.tokenizer, eos: eos, blockSize: s.blockSize,
                                           groupSize: s.groupSize, seed: s.seed, bos: setup.bos, markLeadingSpace: setup.markLeadingSpace,
                                           comm: comm)
        }
        return StageData(train: train.blocks, eval: eval?.blocks, trainTexts: train.texts, evalTexts: eval?.texts ?? 0)
    }

    /// Enough blocks for one global batch, an evaluation set that yields blocks, and resumed states that
    /// belong to this data and batch.
    private func checkCompatibility(_ setups: [Setup], _ data: [StageData]) throws {
        for (setup, d) in zip(setups, data) {
            let s = setup.stage
            let G = s.globalBatch(ranks: comm.size)
            guard d.train.count >= G else {
                throw TrainError("the \(s.stage.rawValue) stage's \(s.trainFile.lastPathComponent) packs into \(d.train.count) blocks of \(s.blockSize) tokens (\(d.trainTexts) texts), fewer than one global batch of \(G) = \(comm.size) ranks × per_device_train_batch_size \(s.perDeviceTrainBatchSize) × gradient_accumulation_steps \(s.gradientAccumulationSteps): lower those, or block_size, or generate more data")
            }
            if let e = d.eval, e.count == 0 {
                throw TrainError("the \(s.stage.rawValue) stage's validation file \(s.validationFile!.lastPathComponent) (\(d.evalTexts) texts) packs into no block of \(s.blockSize) tokens (group_size \(s.groupSize)): lower block_size, use a larger validation set, or set validation_file = \"\"")
            }
            for (name, e) in d.extraEval where e.count == 0 {
                throw TrainError("the \(s.stage.rawValue) stage's extra validation file '\(name)' packs into no block of \(s.blockSize) tokens: lower block_size or use a larger file")
            }
            guard let r = setup.resume else { continue }
            let st = r.state
            if st.trainFingerprint != d.train.fingerprint || st.trainBlocks != d.train.count {
                throw TrainError("\(r.url.path) was trained on other blocks (\(st.trainBlocks) blocks of \(st.trainFile)) than the \(s.stage.rawValue) stage now prepares (\(d.train.count) of \(s.trainFile.path)): data, tokenizer, block_size, group_size or seed changed; restore them to resume, or use a new output_dir")
            }
            if st.globalBatchSize != G {
                throw TrainError("\(r.url.path) was trained with a global batch of \(st.globalBatchSize) blocks, this run has \(G) (\(comm.size) ranks × \(s.perDeviceTrainBatchSize) × \(s.gradientAccumulationSteps)): choose ranks, per_device_train_batch_size and gradient_accumulation_steps with the same product to resume")
            }
            // The data order resumes from global_step and steps per epoch: both must fit this data and batch.
            if st.stepsPerEpoch != d.train.count / G || st.globalStep < 0 || st.globalStep > st.maxSteps {
                throw TrainError("\(r.url.appendingPathComponent(TrainCheckpoint.stateFileName).path) is inconsistent: \(st.stepsPerEpoch) steps per epoch and global_step \(st.globalStep) of max_steps \(st.maxSteps), but \(d.train.count) blocks in global batches of \(G) give \(d.train.count / G) steps per epoch; remove that checkpoint folder to resume from the one before, or use a new output_dir")
            }
        }
    }
}
