import ArgumentParser
import Core
import DistTrain
import Foundation
import MPIShim

/// `dkc train --config NAME|FILE [--set key=value ...] [--resume] [--threads N]`
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train GPT-2 (or continue a Llama / Phi model) on the synthetic corpus: the base stage, then continual pre-training (data-parallel over MPI).",
        discussion: """
        Runs the stages of `stages` in order, each in <output_dir>/<stage>/: a checkpoint per epoch in \
        checkpoints/checkpoint-<step>/ (Hugging Face format, plus optimizer.safetensors and \
        trainer_state.json), and metrics.jsonl (Hugging Face log_history keys). Under `mpirun -np R` \
        the global batch is R × per_device_train_batch_size × gradient_accumulation_steps blocks; the \
        result does not depend on how it is split over ranks (bit for bit with deterministic = true \
        and the same per-rank batch).

        Stage "forget" (the forgetting experiment, docs/forgetting.md) starts from the continual \
        stage's final weights with a fresh optimizer and runs one sub-run per forget.replay_ratios \
        entry in <output_dir>/forget/replay_<r>/ (replay.json, checkpoints/ with checkpoint-0 = the \
        initial weights, metrics.jsonl); it evaluates at step 0 too. save_strategy = "exponential" \
        saves at intervals 1, 2, 2, 4, 4, … capped at save_steps, and the last step.

        A stage continues by itself from its newest checkpoint; --resume insists on one. SIGTERM or \
        SIGUSR1 (e.g. from Slurm before a time limit) stops after the current step with a checkpoint \
        and exit code 0; run the same command again to continue.

        Faults (docs/fault-tolerance.md): a checkpoint folder counts only when its marker \
        dkc_checkpoint.json (written last, with every file's size and SHA-256) matches, so a crash \
        loses at most the steps since the last checkpoint; an incomplete or damaged newest checkpoint \
        is reported and the one before it is used. A loss or gradient that is inf or NaN stops every \
        rank with the step and the last good checkpoint (skip_nonfinite_steps to skip such steps \
        instead). The output folder is locked while training: a second job on it is refused.

        Config keys (configs/train/*.toml; override with --set key=value, or --set continual.key=value \
        for one stage):
        \(ConfigSchema.train.keys.map { "  \($0.name): \($0.help)" }.joined(separator: "\n"))
        Keys of the [forget] table only:
        \((ConfigSchema.train.section("forget")?.ownKeys ?? []).map { "  forget.\($0.name): \($0.help)" }.joined(separator: "\n"))
        """
    )

    @OptionGroup var configOptions: ConfigOptions<TrainConfigKind>

    @Flag(name: .long, help: "Continue from the newest checkpoint; fail if there is none.")
    var resume = false

    @Flag(name: .long, help: "Do not lock output_dir (same as --set lock=false): only for file systems without locks, when no other job uses the folder.")
    var noLock = false

    @Option(name: .long, help: "Threads per rank for OpenBLAS and the model's kernels (default: OPENBLAS_NUM_THREADS, else cores / ranks on this node).")
    var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let commandLine = Provenance.quote(CommandLine.arguments)
        let threads = self.threads
        let configOptions = self.configOptions, overrides = configOptions.overrides + (noLock ? ["lock=false"] : []), resume = self.resume
        withWorld { comm in
            StopRequest.shared.install()
            let n = threads ?? defaultThreadsPerRank()
            BLAS.setThreads(n)
            let trainConfig = try comm.agree(exitCode: { ($0 as? UserFacingError)?.exitCode ?? 1 }) {
                try TrainConfig.load(file: try configOptions.file(), overrides: overrides)
            }
            let display = TrainProgressDisplay(enabled: comm.isRoot, live: liveProgress(1))
            let run = TrainRun(config: trainConfig, comm: comm, threads: n, requireResume: resume, observer: display.show)
            let outcome = try run.run()
            display.finish()
            if comm.isRoot, outcome == .stopped {
                let launcher = comm.size > 1 ? "mpirun -np \(comm.size) " : ""
                print("The run can be resumed with the same command (any rank count that keeps the global batch):\n  \(launcher)\(commandLine)")
            }
        }
    }
}

/// Threads per rank when not given: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS if set, else the cores of
/// this node shared among the ranks mpirun placed on it.
func defaultThreadsPerRank() -> Int {
    let env = ProcessInfo.processInfo.environment
    for key in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"] {
        if let v = env[key], let n = Int(v), n >= 1 { return n }
    }
    let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"].lazy
        .compactMap { env[$0].flatMap { Int($0) } }.first ?? 1
    return max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, local))
}


/// Shows training events on rank 0: on a terminal a live status line (step, epoch, loss, tokens/s, ETA)
/// redrawn after every step with the metrics lines printed above it; otherwise plain lines only.
final class TrainProgressDisplay {
    let enabled: Bool
    let live: Bool
    private var lineShown = false

    init(enabled: Bool, live: Bool) {
        self.enabled = enabled
        self.live = live
    }

    func show(_ event: TrainEvent) {
        guard enabled else { return }
        switch event {
        case .stageStarted(let p):
            let start = p.startStep > 0 ? ", resuming at step \(p.startStep)" : ""
            say("""
            [\(p.stage.rawValue)] \(p.parameters) parameters from \(p.initDescription)
            [\(p.stage.rawValue)] \(p.trainBlocks) blocks of \(p.blockSize) tokens, \(p.evalBlocks) evaluation blocks; \
            global batch \(p.globalBatch) blocks over \(p.ranks) rank(s) × \(p.threads) thread(s); \
            \(p.stepsPerEpoch) steps per epoch, \(p.totalSteps) steps in \(p.epochs) epoch(s)\(start)\
            \(p.deterministic ? "; deterministic reduction" : "")
            """)
        case .stageAlreadyComplete(let stage, let step, let url):
            say("[\(stage.rawValue)] already complete at step \(step) (\(url.path)); skipped")
        case .step(let s):
            guard live else { return }
            let line = "[\(s.stage.rawValue)] step \(s.step)/\(s.totalSteps)  epoch \(String(format: "%.2f", s.epoch))  " +
                "loss \(String(format: "%.4f", s.loss))  \(Int(s.tokensPerSecond.rounded())) tok/s  ETA \(duration(s.etaSeconds))"
            FileHandle.standardOutput.write(Data("\r\u{1B}[2K\(line)".utf8))
            lineShown = true
        case .metrics(let stage, let line):
            let body = line.values.map { key, v -> String in
                let text = abs(v) >= 1e4 || v == v.rounded() ? String(format: "%.6g", v) : String(format: "%.5g", v)
                return "\(key)=\(text)"
            }.joined(separator: " ")
            say("[\(stage.rawValue)] step \(line.step): \(body)")
        case .checkpointSaved(let stage, let step, let folder):
            say("[\(stage.rawValue)] step \(step): saved \(folder.path)")
        case .notice(let text):
            say("note: \(text)")
        case .stageFinished(let stage, let step, let url, let seconds):
            say("[\(stage.rawValue)] finished at step \(step) in \(duration(seconds)); final checkpoint \(url.path)")
        case .stopped(let stage, let step, let url, let signal):
            say("[\(stage.rawValue)] stopped by \(signal) after step \(step); state saved in \(url.path)")
        }
    }

    func finish() {
        if enabled && lineShown { FileHandle.standardOutput.write(Data("\r\u{1B}[2K".utf8)); lineShown = false }
    }

    private func say(_ text: String) {
        if lineShown { FileHandle.standardOutput.write(Data("\r\u{1B}[2K".utf8)); lineShown = false }
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    private func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "?" }
        let t = Int(s.rounded())
        if t >= 3600 { return "\(t / 3600)h\(String(format: "%02d", (t % 3600) / 60))m" }
        if t >= 60 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
        return "\(t)s"
    }
}
