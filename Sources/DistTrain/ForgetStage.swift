import Core
import Foundation
import MPIShim

/// The forget stage's parts of `dkc train` (docs/forgetting.md): each replay ratio is a sub-run of its
/// own in `<output_dir>/forget/replay_<r>/`, trained like any stage (`StageTrainer`) on the forgetting
/// texts mixed with replay texts (`ReplayMix`), and described by `replay.json`; its `checkpoints/
/// checkpoint-0/` is the initial model (links to the continual stage's final weights), so a sweep sees
/// step 0 without a copy of the weights.
extension TrainRun {
    /// The training blocks of a forget sub-run: the forgetting file and the replay file tokenised (once for
    /// all ratios), mixed at the sub-run's ratio, then shuffled and packed as any corpus.
    func loadForgetData(_ setup: Setup) throws -> StageData {
        let s = setup.stage
        guard let replay = s.replay else { preconditionFailure("loadForgetData needs a forget sub-run") }
        let eos = setup.tokenizer.eosTokenId
        func texts(_ url: URL) throws -> [TokenizedText] {
            let key = "\(url.path)\n\(s.blockSize)\n\(s.tokenizer.path)"
            if let t = tokenizedCache[key] { return t }
            let t = try CorpusLoader.tokenized(file: url, encoder: setup.tokenizer, eos: eos, blockSize: s.blockSize, bos: setup.bos,
                                               markLeadingSpace: setup.markLeadingSpace, comm: comm)
            tokenizedCache[key] = t
            return t
        }
        let forget = try texts(s.trainFile)
        let replayTexts = try texts(replay.file)
        let mix = try comm.agree(exitCode: CorpusLoader.exitCode) {
            try ReplayMix(ratio: replay.ratio, forgetCount: forget.count, replayCount: replayTexts.count,
                          mode: replay.mode, draw: replay.draw, seed: s.seed)
        }
        let mixed = mix.apply(forget: forget, replay: replayTexts)
        let train = PackedBlocks.prepare(texts: mixed, blockSize: s.blockSize, groupSize: s.groupSize, seed: s.seed)
        var eval: (blocks: PackedBlocks, texts: Int)?
        var extra: [(name: String, blocks: PackedBlocks)] = []
        if let v = s.validationFile, s.evalStrategy != .no {
            let e = try texts(v)
            eval = (PackedBlocks.prepare(texts: e, blockSize: s.blockSize, groupSize: s.groupSize, seed: s.seed), e.count)
            for (name, file) in s.extraValidationFiles {
                let blocks = PackedBlocks.prepare(texts: try texts(file), blockSize: s.blockSize, groupSize: s.groupSize, seed: s.seed)
                extra.append((name, blocks))
            }
        }
        return StageData(train: train, eval: eval?.blocks, trainTexts: mixed.count, evalTexts: eval?.texts ?? 0, replayMix: mix,
                         extraEval: extra)
    }

    /// The folder a stage starts from, when it is a checkpoint (nil: random initialisation).
    func initCheckpoint(_ s: StageConfig, continual: URL?) throws -> URL? {
        switch s.initSource {
        case .scratch: return nil
        case .base: return try stageCheckpoint(.base)
        case .continual: return try continual ?? stageCheckpoint(.continual)
        case .folder(let url): return url
        }
    }

    /// The final checkpoint of an earlier stage of this run, found on disk.
    func stageCheckpoint(_ stage: TrainStage) throws -> URL {
        let folder = config.outputDir.appendingPathComponent(stage.rawValue).appendingPathComponent("checkpoints")
        guard let newest = TrainCheckpoint.newest(in: folder),
              (try? TrainerState(file: newest.url.appendingPathComponent(TrainCheckpoint.stateFileName)))?.finished == true else {
            throw TrainError("init = \"\(stage.rawValue)\" needs the \(stage.rawValue) stage's final checkpoint in \(folder.path), and there is none: run that stage first (list it in stages) or set init to a model folder")
        }
        return newest.url
    }

    /// Rank 0 writes the sub-run's `replay.json` (atomically) and, once, `checkpoints/checkpoint-0/` as
    /// links to the initial model's files; every rank learns whether it worked.
    func writeForgetRecords(stage s: StageConfig, mix: ReplayMix, initCheckpoint: URL?) throws {
        var failure = ""
        if comm.isRoot {
            do {
                let fm = FileManager.default
                try fm.createDirectory(at: s.checkpointsFolder, withIntermediateDirectories: true)
                guard case .object(var record) = mix.json else { preconditionFailure("ReplayMix.json is an object") }
                record += [
                    ("train_file", .string(s.trainFile.path)),
                    ("replay_file", .string(s.replay?.file.path ?? "")),
                    ("init", JSONValue.string(initCheckpoint?.path ?? s.initSource.description)),
                ]
                try Data((JSONValue.object(record).prettyText() + "\n").utf8)
                    .write(to: s.folder.appendingPathComponent("replay.json"), options: .atomic)
                if let initCheckpoint { try Self.linkInitialCheckpoint(initCheckpoint, into: s.checkpointsFolder) }
            } catch {
                failure = "\(error)"
            }
        }
        let status = try comm.broadcast(bytes: Array(failure.utf8))
        guard status.isEmpty else {
            throw CollectiveFailure(message: "cannot write the records of \(s.folder.path): \(String(decoding: status, as: UTF8.self))", exitCode: 1)
        }
    }

    /// Makes `checkpoints/checkpoint-0/` hold symbolic links to the model and tokenizer files of `source`
    /// (relative when both lie in the run folder). It has no optimizer state or trainer state, so it is a
    /// model folder to sweep, never a checkpoint to resume from (`TrainCheckpoint.list` skips it). Made
    /// under a temporary name and renamed; an existing one is kept.
    static func linkInitialCheckpoint(_ source: URL, into checkpoints: URL) throws {
        let fm = FileManager.default
        let final = TrainCheckpoint.folder(in: checkpoints, step: 0)
        if fm.fileExists(atPath: final.path) { return }
        let tmp = checkpoints.appendingPathComponent(".\(final.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        let names = [HFCheckpoint.configFileName, HFCheckpoint.weightsFileName, "vocab.json", "merges.txt", "tokenizer.json"]
        for name in names {
            let target = source.appendingPathComponent(name)
            guard fm.fileExists(atPath: target.path) else { continue }
            try fm.createSymbolicLink(atPath: tmp.appendingPathComponent(name).path,
                                      withDestinationPath: relativePath(from: final, to: target))
        }
        try fm.moveItem(at: tmp, to: final)
    }

    /// `target` relative to the folder `from` when they share a parent beyond the root, else its absolute path.
    static func relativePath(from folder: URL, to target: URL) -> String {
        let a = folder.standardizedFileURL.resolvingSymlinksInPath().pathComponents
        let b = target.standardizedFileURL.resolvingSymlinksInPath().pathComponents
        var common = 0
        while common < a.count, common < b.count, a[common] == b[common] { common += 1 }
        guard common > 1 else { return target.path }
        return (Array(repeating: "..", count: a.count - common) + b[common...]).joined(separator: "/")
    }
}
