import Core
import Foundation
import MPIShim

/// Trains one stage to its last step, Hugging Face Trainer style: epochs of `stepsPerEpoch` optimizer
/// steps over a per-epoch permutation of the blocks (the last partial global batch of an epoch is
/// dropped), a metrics line every `logging_steps`, evaluation and a checkpoint per the strategies, and a
/// final checkpoint marked finished. Rank 0 writes metrics.jsonl and the checkpoints; every rank runs the
/// same loop and reports the same events.
///
/// Order at a step that ends an epoch (as the HF Trainer): log line, evaluation, checkpoint. A stop
/// request (agreed across ranks inside the step's allreduce) ends the loop after the step with a
/// checkpoint, so a resumed run continues exactly where this one stopped.
final class StageTrainer {
    enum Outcome {
        case finished(checkpoint: URL)
        case stopped(checkpoint: URL)
    }

    let comm: Communicator
    let config: StageConfig
    let data: StageData
    let stepper: DataParallelStep
    var state: TrainerState
    let tokenizerFiles: [URL]
    let threads: Int
    let observer: (TrainEvent) -> Void
    let plan: StagePlan
    private var metrics: MetricsFile?

    var model: any TrainableModel { stepper.model }
    var optimizer: AdamW { stepper.optimizer }

    init(comm: Communicator, config: StageConfig, data: StageData, stepper: DataParallelStep, state: TrainerState,
         tokenizerFiles: [URL], threads: Int, plan: StagePlan, observer: @escaping (TrainEvent) -> Void) {
        self.comm = comm
        self.config = config
        self.data = data
        self.stepper = stepper
        self.state = state
        self.tokenizerFiles = tokenizerFiles
        self.threads = threads
        self.plan = plan
        self.observer = observer
    }

    func run() throws -> Outcome {
        let stage = config.stage
        if comm.isRoot {
            metrics = try MetricsFile(url: config.metricsFile, history: state.logHistory)
            try FileManager.default.createDirectory(at: config.checkpointsFolder, withIntermediateDirectories: true)
            TrainCheckpoint.removeLeftovers(in: config.checkpointsFolder)
        }
        observer(.stageStarted(plan))
        let total = state.maxSteps
        let G = stepper.globalBatch
        var order: (epoch: Int, permutation: [Int])?
        var lastSaved: (step: Int, url: URL)? = plan.resumedFrom.map { (state.globalStep, $0) }
        var lastEval = -1
        var trainingSeconds = 0.0, stepsRun = 0
        var windowSeconds = 0.0, windowTokens = 0
        let stageStart = Date()
        // The forget stage scores its initial weights first (step 0, docs/forgetting.md).
        if config.evaluatesAtStart, state.globalStep == 0, data.eval != nil {
            try evaluate()
            lastEval = 0
        }

        let poisoned = Self.testNaNGradientSteps()
        while state.globalStep < total {
            let (epoch, stepInEpoch) = state.position
            if order?.epoch != epoch {
                order = (epoch, DataOrder.epochPermutation(count: data.train.count, seed: config.seed, epoch: epoch))
            }
            let t0 = Date()
            stepper.injectNaNGradient = poisoned.contains(state.globalStep + 1)
            let result = try stepper.run(blocks: data.train, order: order!.permutation, start: stepInEpoch * G,
                                         stop: StopRequest.shared.isRequested)
            let dt = Date().timeIntervalSince(t0)
            if let what = result.nonFinite {
                try skipNonFiniteStep(what, lastSaved: lastSaved?.url)
            } else {
                state.globalStep += 1
                state.window.steps += 1
                state.window.lossSum += result.loss
            }
            trainingSeconds += dt; stepsRun += 1
            windowSeconds += dt; windowTokens += stepper.tokensPerStep
            let step = state.globalStep
            let tokensPerSecond = windowSeconds > 0 ? Double(windowTokens) / windowSeconds : 0
            observer(.step(StepProgress(stage: stage, step: step, totalSteps: total, epoch: state.epoch, loss: result.loss,
                                        learningRate: result.learningRate, gradNorm: result.gradNorm,
                                        tokensPerSecond: tokensPerSecond, secondsPerStep: trainingSeconds / Double(stepsRun))))

            let epochEnd = step % state.stepsPerEpoch == 0
            let last = step == total
            if state.window.steps > 0, step % config.loggingSteps == 0 || last {
                try logWindow(step: step, gradNorm: result.gradNorm, tokensPerSecond: tokensPerSecond)
                windowSeconds = 0; windowTokens = 0
            }
            if evaluationDue(step: step, epochEnd: epochEnd, last: last), data.eval != nil, lastEval != step {
                try evaluate()
                lastEval = step
            }
            let saveDue = config.saveDue(step: step, total: total, epochEnd: epochEnd)
            if saveDue || (result.stopRequested && lastSaved?.step != step) {
                lastSaved = (step, try save())
            }
            if result.stopRequested && !last {
                observer(.stopped(stage: stage, step: step, checkpoint: lastSaved!.url,
                                  signal: StopRequest.shared.signalName ?? "a stop request"))
                return .stopped(checkpoint: lastSaved!.url)
            }
        }
        return try finish(lastSaved: lastSaved, stageStart: stageStart, trainingSeconds: trainingSeconds, stepsRun: stepsRun)
    }

    /// The end of a stage: a finished checkpoint (also when resumed at or past the end, e.g. num_train_epochs
    /// lowered), the runtime line of metrics.jsonl, and the observer's last event.
    private func finish(lastSaved: (step: Int, url: URL)?, stageStart: Date, trainingSeconds: Double, stepsRun: Int) throws -> Outcome {
        var lastSaved = lastSaved
        if lastSaved?.step != state.globalStep || !state.finished {
            lastSaved = (state.globalStep, try save())
        }
        let seconds = Date().timeIntervalSince(stageStart)
        if stepsRun > 0 {
            try record(MetricsLine(values: [
                ("train_runtime", seconds),
                ("train_steps_per_second", Double(stepsRun) / max(seconds, 1e-9)),
                ("train_tokens_per_second", Double(stepsRun * stepper.tokensPerStep) / max(trainingSeconds, 1e-9)),
                ("epoch", state.epoch),
            ], step: state.globalStep), history: false)
        }
        observer(.stageFinished(stage: config.stage, step: state.globalStep, checkpoint: lastSaved!.url, seconds: seconds))
        return .finished(checkpoint: lastSaved!.url)
    }

    /// A step whose gradient was not finite updated nothing: its batch is skipped (within
    /// skip_nonfinite_steps) or the run stops here, on every rank, leaving the checkpoints as they are.
    private func skipNonFiniteStep(_ what: String, lastSaved: URL?) throws {
        let stage = config.stage
        let step = state.globalStep + 1
        guard state.nonfiniteSkipped < config.skipNonfiniteSteps else {
            let good = lastSaved.map { "the last good checkpoint, \($0.path), is untouched; run again to resume from it after" }
                ?? "no checkpoint of this stage was written yet (it started from \(plan.initDescription)); run again to start it afresh after"
            let budget = config.skipNonfiniteSteps > 0 ? " after skipping \(state.nonfiniteSkipped) such step(s), the skip_nonfinite_steps limit" : ""
            // Every rank reaches this alike (the verdict is agreed in the step): a clean collective end.
            throw CollectiveFailure(message: "[\(stage.rawValue)] step \(step): \(what)\(budget), so training stopped without applying it; \(good) lowering learning_rate, raising warmup_steps or keeping max_grad_norm > 0, or set skip_nonfinite_steps to skip such steps",
                                    exitCode: 1)
        }
        state.globalStep += 1
        state.nonfiniteSkipped += 1
        observer(.notice("[\(stage.rawValue)] step \(step): \(what); the step's batch was skipped without an update (\(state.nonfiniteSkipped) of at most \(config.skipNonfiniteSteps))"))
        try record(MetricsLine(values: [("skipped_nonfinite_steps", Double(state.nonfiniteSkipped)), ("epoch", state.epoch)], step: step))
    }

    /// The logging window's line of metrics.jsonl (mean loss since the last line), then a new window.
    private func logWindow(step: Int, gradNorm: Double?, tokensPerSecond: Double) throws {
        var values: [(String, Double)] = [("loss", state.window.lossSum / Double(state.window.steps))]
        if let g = gradNorm { values.append(("grad_norm", g)) }
        // HF logs the scheduler's current rate: the one the next step will use.
        values.append(("learning_rate", optimizer.config.learningRate(step: step + 1)))
        values.append(("tokens_per_s", tokensPerSecond))
        values.append(("epoch", state.epoch))
        try record(MetricsLine(values: values, step: step))
        state.window = .init()
    }

    /// Whether `eval_strategy` asks for an evaluation after `step`.
    private func evaluationDue(step: Int, epochEnd: Bool, last: Bool) -> Bool {
        switch config.evalStrategy {
        case .no: return false
        case .epoch: return epochEnd || last
        case .steps: return step % config.evalSteps == 0 || last
        }
    }

    /// Test hook (docs/fault-tolerance.md): `DKC_TEST_NAN_GRADIENT_STEPS`, comma-separated optimizer steps
    /// (1-based) at which a NaN is put into a gradient. Only fault tests set it.
    static func testNaNGradientSteps() -> Set<Int> {
        let text = ProcessInfo.processInfo.environment["DKC_TEST_NAN_GRADIENT_STEPS"] ?? ""
        return Set(text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) })
    }

    /// Appends a line to metrics.jsonl (rank 0) and, unless `history` is false, to the log history that
    /// checkpoints carry.
    private func record(_ line: MetricsLine, history: Bool = true) throws {
        if history { state.logHistory.append(line.json) }
        try metrics?.append(line.json)
        observer(.metrics(stage: config.stage, line: line))
    }

    private func evaluate() throws {
        guard let blocks = data.eval else { return }
        let t0 = Date()
        let counts = try DistributedEvaluation.run(model: model, blocks: blocks, batch: config.perDeviceEvalBatchSize, comm: comm)
        let seconds = Date().timeIntervalSince(t0)
        var values = counts.metrics
        let passes = (blocks.count + comm.size * config.perDeviceEvalBatchSize - 1) / (comm.size * config.perDeviceEvalBatchSize)
        values += [("eval_runtime", seconds),
                   ("eval_samples_per_second", Double(blocks.count) / max(seconds, 1e-9)),
                   ("eval_steps_per_second", Double(passes) / max(seconds, 1e-9)),
                   ("epoch", state.epoch)]
        try record(MetricsLine(values: values, step: state.globalStep))
        try evaluateExtraSets()
    }

    /// The further evaluation sets (`extra_validation_files`), one metrics line each, keys `eval_<name>_…`
    /// (as the Hugging Face Trainer names the metrics of several evaluation sets).
    private func evaluateExtraSets() throws {
        for (name, blocks) in data.extraEval {
            let t0 = Date()
            let counts = try DistributedEvaluation.run(model: model, blocks: blocks, batch: config.perDeviceEvalBatchSize, comm: comm)
            let seconds = Date().timeIntervalSince(t0)
            var values = counts.metrics.map { key, value in
                (key.hasPrefix("eval_") ? "eval_\(name)_" + key.dropFirst(5) : key, value)
            }
            values += [("eval_\(name)_runtime", seconds), ("epoch", state.epoch)]
            try record(MetricsLine(values: values, step: state.globalStep))
        }
    }

    /// Writes a checkpoint of the current step (rank 0) after making sure every replica agrees; every rank
    /// learns whether it worked.
    private func save() throws -> URL {
        if stepper.reducer.mode == .float, !(try ReplicaSync.ensureIdentical(model: model, optimizer: optimizer, comm: comm)) {
            observer(.notice("step \(state.globalStep): the ranks' parameters had drifted apart by float rounding; rank 0's were re-broadcast"))
        }
        state.finished = state.globalStep >= state.maxSteps
        let folder = TrainCheckpoint.folder(in: config.checkpointsFolder, step: state.globalStep)
        var failure = ""
        if comm.isRoot {
            do {
                _ = try TrainCheckpoint.write(model: model, optimizer: optimizer, state: state,
                                              tokenizerFiles: tokenizerFiles, in: config.checkpointsFolder)
                if !config.keepAllOptimizerStates {
                    // Older checkpoints become plain model folders; the newest one alone can be resumed from.
                    for older in TrainCheckpoint.list(in: config.checkpointsFolder) where older.step != state.globalStep {
                        try? FileManager.default.removeItem(at: older.url.appendingPathComponent(TrainCheckpoint.optimizerFileName))
                    }
                }
            } catch {
                failure = "\(error)"
            }
        }
        let status = try comm.broadcast(bytes: Array(failure.utf8))
        guard status.isEmpty else {
            throw CollectiveFailure(message: "cannot write checkpoint \(folder.path): \(String(decoding: status, as: UTF8.self))", exitCode: 1)
        }
        observer(.checkpointSaved(stage: config.stage, step: state.globalStep, folder: folder))
        return folder
    }
}

/// metrics.jsonl of a stage, rewritten from a checkpoint's log history when a run resumes (lines a stopped
/// run wrote after its last checkpoint are dropped), then appended to, one flushed line at a time.
final class MetricsFile {
    private let handle: FileHandle
    let url: URL

    init(url: URL, history: [JSONValue]) throws {
        self.url = url
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let text = history.map { $0.compactText + "\n" }.joined()
            try Data(text.utf8).write(to: url)
            handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
        } catch {
            throw TrainError.file(url, "cannot be written (\(error.localizedDescription))", fix: "check that output_dir is writable")
        }
    }

    deinit { try? handle.close() }

    func append(_ line: JSONValue) throws {
        do { try handle.write(contentsOf: Data((line.compactText + "\n").utf8)) } catch {
            throw TrainError.file(url, "cannot be appended to (\(error.localizedDescription))")
        }
    }
}
