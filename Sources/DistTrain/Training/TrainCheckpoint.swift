import Foundation
import Core

/// A training checkpoint folder, `<stage>/checkpoints/checkpoint-<step>/`:
///
///     config.json, model.safetensors     the model, as `GPT2LMHeadModel.save_pretrained` writes it (HFCheckpoint)
///     vocab.json, merges.txt             the tokenizer, copied
///     optimizer.safetensors              AdamW state: `exp_avg.<name>`, `exp_avg_sq.<name>` (F32, the
///                                        parameter's shape, HF names) and `step` (I64 [1])
///     trainer_state.json                 `TrainerState`
///     dkc_checkpoint.json                the completeness marker, written last: step, and every other
///                                        file's name, size and SHA-256 (transformers ignores it)
///
/// Whole or absent (docs/fault-tolerance.md): every file is written into a hidden temporary folder
/// `.checkpoint-<step>.tmp-<pid>`, flushed to disk, the marker written and flushed last, the folder
/// renamed into place and its parent flushed. A folder counts as a complete checkpoint only when its
/// marker is there and every file it lists has the recorded size (`list`); resuming also checks the
/// hashes (`resumable`). Rewriting a step moves the old folder aside to `.checkpoint-<step>.old-<pid>`
/// only once the new one is complete, and `removeLeftovers` puts it back if a crash came between the
/// two renames. The marker rule is for dkc's own run folders: Hugging Face folders given to `init` are
/// loaded without one.
public enum TrainCheckpoint {
    public static let optimizerFileName = "optimizer.safetensors"
    public static let stateFileName = "trainer_state.json"
    public static let markerFileName = "dkc_checkpoint.json"
    public static let prefix = "checkpoint-"
    static let markerFormat = "dkc checkpoint 1"
    static let requiredFiles = [HFCheckpoint.configFileName, HFCheckpoint.weightsFileName, optimizerFileName, stateFileName]
    /// Test hook (docs/fault-tolerance.md): milliseconds to pause inside the temporary folder before the
    /// marker is written, so a fault test can kill a job during a checkpoint write. Never set it otherwise.
    static let testWriteDelayVariable = "DKC_TEST_CHECKPOINT_WRITE_DELAY_MS"

    public static func folder(in checkpoints: URL, step: Int) -> URL { checkpoints.appendingPathComponent("\(prefix)\(step)") }

    /// Folders named `checkpoint-<step>` in `checkpoints`, complete or not, by step ascending.
    public static func folders(in checkpoints: URL) -> [(step: Int, url: URL)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path) else { return [] }
        var out: [(Int, URL)] = []
        for name in names where name.hasPrefix(prefix) {
            guard let step = Int(name.dropFirst(prefix.count)), step >= 0 else { continue }
            out.append((step, checkpoints.appendingPathComponent(name)))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Complete checkpoints in `checkpoints` (marker present, every listed file of the recorded size,
    /// optimizer state included), by step ascending.
    public static func list(in checkpoints: URL) -> [(step: Int, url: URL)] {
        folders(in: checkpoints).filter { problem(with: $0.url, step: $0.step, checkHashes: false) == nil }
    }

    /// The newest complete checkpoint, if any.
    public static func newest(in checkpoints: URL) -> (step: Int, url: URL)? { list(in: checkpoints).last }

    /// What makes `folder` (the checkpoint of `step`) incomplete or corrupt, nil when it is whole: a
    /// missing or unreadable marker, a required file the marker does not list, a listed file missing or of
    /// another size, and with `checkHashes` a SHA-256 that differs.
    public static func problem(with folder: URL, step: Int, checkHashes: Bool) -> String? {
        let markerURL = folder.appendingPathComponent(markerFileName)
        guard let data = FileManager.default.contents(atPath: markerURL.path) else {
            return "has no \(markerFileName), so its write did not finish"
        }
        guard let marker = try? JSONValue(parsing: data), marker["format"]?.stringValue == markerFormat,
              let files = marker["files"]?.arrayValue else {
            return "\(markerFileName) is not a dkc checkpoint marker"
        }
        guard marker["step"]?.intValue == step else {
            return "\(markerFileName) records step \(marker["step"]?.intValue.map(String.init) ?? "?"), not \(step)"
        }
        var listed = Set<String>()
        for f in files {
            guard let name = f["name"]?.stringValue, !name.contains("/"), let bytes = f["bytes"]?.intValue,
                  let hash = f["sha256"]?.stringValue else { return "\(markerFileName) has a malformed file entry" }
            listed.insert(name)
            let url = folder.appendingPathComponent(name)
            guard let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int else {
                return "lacks \(name)"
            }
            guard size == bytes else { return "\(name) has \(size) bytes, the marker records \(bytes) (truncated or overwritten)" }
            if checkHashes {
                guard let actual = try? SHA256.hex(fileAt: url) else { return "\(name) cannot be read" }
                guard actual == hash else { return "\(name) does not match its SHA-256 in the marker (the file was changed or damaged)" }
            }
        }
        if let absent = requiredFiles.first(where: { !listed.contains($0) }) { return "\(markerFileName) does not list \(absent)" }
        return nil
    }

    /// A checkpoint to resume from, and why newer ones were passed over.
    public struct ResumePoint {
        public let step: Int
        public let url: URL
        public let state: TrainerState
    }

    /// The newest checkpoint folder in `checkpoints` that is whole (marker, sizes and hashes) and whose
    /// `trainer_state.json` is consistent (`TrainerState.inconsistency`), going back past incomplete or
    /// corrupt newer ones; `rejected` lists those, newest first, with the reason. `chosen` is nil when no
    /// folder qualifies (then `rejected` names every folder there is).
    public static func resumable(in checkpoints: URL) -> (chosen: ResumePoint?, rejected: [(url: URL, reason: String)]) {
        var rejected: [(URL, String)] = []
        for (step, url) in folders(in: checkpoints).reversed() {
            if let p = problem(with: url, step: step, checkHashes: true) { rejected.append((url, p)); continue }
            let stateURL = url.appendingPathComponent(stateFileName)
            let state: TrainerState
            do { state = try TrainerState(file: stateURL) } catch {
                rejected.append((url, "\(stateFileName): \(error)")); continue
            }
            if let p = state.inconsistency(folderStep: step) { rejected.append((url, "\(stateFileName): \(p)")); continue }
            return (ResumePoint(step: step, url: url, state: state), rejected)
        }
        return (nil, rejected)
    }

    /// Clears what an interrupted write left: hidden temporary folders and files are removed; an old
    /// folder moved aside for a rewrite (`.checkpoint-<step>.old-<pid>`) is put back when the new
    /// `checkpoint-<step>` never arrived, removed otherwise. Call only while holding the run's lock.
    public static func removeLeftovers(in checkpoints: URL) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: checkpoints.path) else { return }
        for name in names where name.hasPrefix(".") && name.contains(prefix) {
            let url = checkpoints.appendingPathComponent(name)
            if name.hasPrefix(".\(prefix)"), let r = name.range(of: ".old-") {
                let final = checkpoints.appendingPathComponent(String(name[name.index(after: name.startIndex)..<r.lowerBound]))
                if !fm.fileExists(atPath: final.path), (try? fm.moveItem(at: url, to: final)) != nil {
                    try? DurableFiles.sync(checkpoints)
                    continue
                }
                try? fm.removeItem(at: url)
            } else if name.contains(".tmp-") {
                try? fm.removeItem(at: url)
            }
        }
    }

    /// Writes a complete checkpoint for `state.globalStep` into `checkpoints` and returns its folder.
    /// An existing folder of the same step is replaced, and removed only once the new one is in place.
    /// - Throws: `TrainError` naming the file that could not be written (disk full included); the
    ///   checkpoints already there are left as they were.
    public static func write(model: any TrainableModel, optimizer: AdamW, state: TrainerState, tokenizerFiles: [URL],
                             in checkpoints: URL) throws -> URL {
        let fm = FileManager.default
        let final = folder(in: checkpoints, step: state.globalStep)
        let pid = ProcessInfo.processInfo.processIdentifier
        let tmp = checkpoints.appendingPathComponent(".\(final.lastPathComponent).tmp-\(pid)")
        try? fm.removeItem(at: tmp)
        var done = false
        defer { if !done { try? fm.removeItem(at: tmp) } }
        func failed(_ url: URL, _ error: Error) -> TrainError {
            TrainError("cannot write checkpoint \(final.path): \(error) — the checkpoints already there are untouched; free space (or raise the file size limit) and run the same command again to resume", exitCode: 1)
        }
        do {
            try model.save(to: tmp, extraFiles: tokenizerFiles)
            try writeOptimizer(optimizer, tensors: model.parameterTensors, to: tmp.appendingPathComponent(optimizerFileName))
            try DurableFiles.write(Data(state.json.prettyText().utf8), to: tmp.appendingPathComponent(stateFileName))
            if let ms = ProcessInfo.processInfo.environment[testWriteDelayVariable].flatMap(Int.init), ms > 0 {
                usleep(useconds_t(min(ms, 60_000)) * 1000)
            }
            try DurableFiles.syncContents(of: tmp)
            try DurableFiles.write(Data(try marker(for: tmp, step: state.globalStep).prettyText().utf8),
                                   to: tmp.appendingPathComponent(markerFileName))
        } catch let e as TrainError { throw e } catch {
            throw failed(tmp, error)
        }
        let old = checkpoints.appendingPathComponent(".\(final.lastPathComponent).old-\(pid)")
        var movedOld = false
        if fm.fileExists(atPath: final.path) {
            try? fm.removeItem(at: old)
            guard rename(final.path, old.path) == 0 else {
                throw TrainError.file(final, "cannot be replaced (\(String(cString: strerror(errno))))", fix: "check permissions of \(checkpoints.path)")
            }
            movedOld = true
        }
        guard rename(tmp.path, final.path) == 0 else {
            let reason = String(cString: strerror(errno))
            if movedOld { _ = rename(old.path, final.path) }
            throw TrainError.file(final, "cannot be moved into place (\(reason))", fix: "check permissions of \(checkpoints.path)")
        }
        done = true
        do { try DurableFiles.sync(checkpoints) } catch { throw failed(checkpoints, error) }
        if movedOld { try? fm.removeItem(at: old) }
        return final
    }

    /// The marker of the finished files in `folder`: step, and each file's name, size and SHA-256.
    static func marker(for folder: URL, step: Int) throws -> JSONValue {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0 != markerFileName && !$0.hasPrefix(".") }.sorted()
        var files: [JSONValue] = []
        for name in names {
            let url = folder.appendingPathComponent(name)
            let size = (try FileManager.default.attributesOfItem(atPath: url.path))[.size] as? Int ?? -1
            files.append(.object([("name", .string(name)), ("bytes", .int(size)), ("sha256", .string(try SHA256.hex(fileAt: url)))]))
        }
        return .object([("format", .string(markerFormat)), ("step", .int(step)), ("files", .array(files))])
    }

    /// Writes AdamW's moments and step count with the parameters' HF names (`tensors`: the model's, in buffer order).
    public static func writeOptimizer(_ optimizer: AdamW, tensors: [ParameterLayout.Tensor], to url: URL) throws {
        precondition(optimizer.count == tensors.reduce(0) { $0 + $1.count }, "optimizer and layout disagree")
        var entries: [SafetensorsWriter.Entry] = []
        for t in tensors {
            entries.append(.float32("exp_avg." + t.name, shape: t.shape, pointer: UnsafePointer(optimizer.m.base + t.offset)))
        }
        for t in tensors {
            entries.append(.float32("exp_avg_sq." + t.name, shape: t.shape, pointer: UnsafePointer(optimizer.v.base + t.offset)))
        }
        entries.append(.int64("step", shape: [1], values: [Int64(optimizer.stepCount)]))
        var metadata = SafetensorsWriter.ptMetadata
        metadata["optimizer"] = "AdamW"
        try SafetensorsWriter.write(entries, metadata: metadata, to: url)
    }

    /// Reads `optimizer.safetensors` into `optimizer` (moments and step count).
    /// - Throws: `TrainError` naming the tensor that is missing or has the wrong shape.
    public static func readOptimizer(from url: URL, into optimizer: AdamW, tensors: [ParameterLayout.Tensor]) throws {
        precondition(optimizer.count == tensors.reduce(0) { $0 + $1.count }, "optimizer and layout disagree")
        let file = try SafetensorsFile(url: url)
        for t in tensors {
            for (prefix, buffer) in [("exp_avg.", optimizer.m), ("exp_avg_sq.", optimizer.v)] {
                let name = prefix + t.name
                guard file.contains(name) else {
                    throw TrainError.file(url, "lacks tensor \(name)", fix: "the checkpoint does not belong to this model; remove it or use another output_dir")
                }
                let info = try file.info(name)
                guard info.shape == t.shape, info.dtype == .F32 else {
                    throw TrainError.file(url, "tensor \(name) is \(info.dtype.rawValue) \(info.shape), expected F32 \(t.shape)")
                }
                try file.readFloats(name, into: UnsafeMutableBufferPointer(start: buffer.base + t.offset, count: t.count))
            }
        }
        guard file.contains("step"), let step = try file.ints("step").first, step >= 0 else {
            throw TrainError.file(url, "lacks the I64 tensor step")
        }
        optimizer.stepCount = step
    }
}
