import Foundation

/// A training checkpoint folder, `<stage>/checkpoints/checkpoint-<step>/`:
///
///     config.json, model.safetensors     the model, as `GPT2LMHeadModel.save_pretrained` writes it (HFCheckpoint)
///     vocab.json, merges.txt             the tokenizer, copied
///     optimizer.safetensors              AdamW state: `exp_avg.<name>`, `exp_avg_sq.<name>` (F32, the
///                                        parameter's shape, HF names) and `step` (I64 [1])
///     trainer_state.json                 `TrainerState`
///
/// A folder is written under a hidden temporary name and renamed when every file is in place, so a
/// folder named `checkpoint-<step>` is always complete; leftovers of an interrupted write are hidden
/// `.checkpoint-<step>.tmp-<pid>` folders, removed by `removeLeftovers`.
public enum TrainCheckpoint {
    public static let optimizerFileName = "optimizer.safetensors"
    public static let stateFileName = "trainer_state.json"
    public static let prefix = "checkpoint-"
    static let requiredFiles = [HFCheckpoint.configFileName, HFCheckpoint.weightsFileName, optimizerFileName, stateFileName]

    public static func folder(in checkpoints: URL, step: Int) -> URL { checkpoints.appendingPathComponent("\(prefix)\(step)") }

    /// Complete checkpoints in `checkpoints`, by step ascending.
    public static func list(in checkpoints: URL) -> [(step: Int, url: URL)] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: checkpoints.path) else { return [] }
        var out: [(Int, URL)] = []
        for name in names where name.hasPrefix(prefix) {
            guard let step = Int(name.dropFirst(prefix.count)), step >= 0 else { continue }
            let url = checkpoints.appendingPathComponent(name)
            guard requiredFiles.allSatisfy({ fm.fileExists(atPath: url.appendingPathComponent($0).path) }) else { continue }
            out.append((step, url))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// The newest complete checkpoint, if any.
    public static func newest(in checkpoints: URL) -> (step: Int, url: URL)? { list(in: checkpoints).last }

    /// Removes hidden temporary folders an interrupted write left behind.
    public static func removeLeftovers(in checkpoints: URL) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: checkpoints.path) else { return }
        for name in names where name.hasPrefix(".\(prefix)") && (name.contains(".tmp-") || name.contains(".old-")) {
            try? fm.removeItem(at: checkpoints.appendingPathComponent(name))
        }
    }

    /// Writes a complete checkpoint for `state.globalStep` into `checkpoints` and returns its folder.
    /// An existing folder of the same step is replaced.
    public static func write(params: ParameterArena, optimizer: AdamW, state: TrainerState, tokenizerFiles: [URL],
                             in checkpoints: URL) throws -> URL {
        let fm = FileManager.default
        let final = folder(in: checkpoints, step: state.globalStep)
        let tmp = checkpoints.appendingPathComponent(".\(final.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: tmp)
        var done = false
        defer { if !done { try? fm.removeItem(at: tmp) } }
        try HFCheckpoint.save(params, to: tmp, extraFiles: tokenizerFiles)
        try writeOptimizer(optimizer, layout: params.layout, to: tmp.appendingPathComponent(optimizerFileName))
        let stateURL = tmp.appendingPathComponent(stateFileName)
        do { try Data(state.json.prettyText().utf8).write(to: stateURL) } catch {
            throw TrainError.file(stateURL, "cannot be written (\(error.localizedDescription))", fix: "check free space and permissions")
        }
        if fm.fileExists(atPath: final.path) {
            let old = checkpoints.appendingPathComponent(".\(final.lastPathComponent).old-\(ProcessInfo.processInfo.processIdentifier)")
            try? fm.removeItem(at: old)
            do { try fm.moveItem(at: final, to: old) } catch {
                throw TrainError.file(final, "cannot be replaced (\(error.localizedDescription))")
            }
            try? fm.removeItem(at: old)
        }
        do { try fm.moveItem(at: tmp, to: final) } catch {
            throw TrainError.file(final, "cannot be moved into place (\(error.localizedDescription))", fix: "check permissions of \(checkpoints.path)")
        }
        done = true
        return final
    }

    /// Writes AdamW's moments and step count with the parameters' HF names.
    public static func writeOptimizer(_ optimizer: AdamW, layout: ParameterLayout, to url: URL) throws {
        precondition(optimizer.count == layout.count, "optimizer and layout disagree")
        var entries: [SafetensorsWriter.Entry] = []
        for t in layout.tensors {
            entries.append(.float32("exp_avg." + t.name, shape: t.shape, pointer: UnsafePointer(optimizer.m.base + t.offset)))
        }
        for t in layout.tensors {
            entries.append(.float32("exp_avg_sq." + t.name, shape: t.shape, pointer: UnsafePointer(optimizer.v.base + t.offset)))
        }
        entries.append(.int64("step", shape: [1], values: [Int64(optimizer.stepCount)]))
        var metadata = SafetensorsWriter.ptMetadata
        metadata["optimizer"] = "AdamW"
        try SafetensorsWriter.write(entries, metadata: metadata, to: url)
    }

    /// Reads `optimizer.safetensors` into `optimizer` (moments and step count).
    /// - Throws: `TrainError` naming the tensor that is missing or has the wrong shape.
    public static func readOptimizer(from url: URL, into optimizer: AdamW, layout: ParameterLayout) throws {
        precondition(optimizer.count == layout.count, "optimizer and layout disagree")
        let file = try SafetensorsFile(url: url)
        for t in layout.tensors {
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
