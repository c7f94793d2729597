import Foundation

/// A Hugging Face GPT-2 model folder: `config.json` + `model.safetensors`, as `GPT2LMHeadModel.save_pretrained`
/// writes it and `from_pretrained` reads it. This is the one place where HF tensor names meet the arena.
///
/// Reading accepts names with or without the `transformer.` prefix, F32/F16/BF16/F64 data, and an optional
/// `lm_head.weight` that must equal `transformer.wte.weight` (the output matrix is tied). The causal-mask
/// buffers old checkpoints carry (`h.{l}.attn.bias`, `h.{l}.attn.masked_bias`) are ignored; any other unknown
/// tensor is an error, since it means the file does not match its config.
///
/// Writing produces F32 tensors named as `named_parameters()` names them (prefix included, no `lm_head.weight`),
/// header metadata `{"format": "pt"}`, into a temporary folder renamed into place when complete.
public enum HFCheckpoint {
    public static let configFileName = "config.json"
    public static let weightsFileName = "model.safetensors"
    public static let lmHeadName = "lm_head.weight"

    /// Reads the folder's config and weights into a new arena. The weights file is opened and every tensor's
    /// name, shape, dtype and byte range checked against the layout `config.json` describes before the arena
    /// is allocated, so a corrupt or mismatched folder ends in a `CheckpointError`, never in a huge allocation.
    public static func load(folder: URL) throws -> ParameterArena {
        let config = try GPT2Config.load(from: folder.appendingPathComponent(configFileName))
        let layout = ParameterLayout(config: config)
        let file = folder.appendingPathComponent(weightsFileName)
        let st = try SafetensorsFile(url: file)
        let plan = try checkedPlan(st, layout: layout)
        let arena = ParameterArena(layout: layout)
        try copy(plan, from: st, into: arena)
        return arena
    }

    /// Reads the folder into an existing arena, reusing its memory; the folder's config must describe
    /// the same shapes as the arena's.
    public static func load(folder: URL, into arena: ParameterArena) throws {
        let configURL = folder.appendingPathComponent(configFileName)
        let config = try GPT2Config.load(from: configURL)
        let mine = arena.config
        let pairs: [(String, Int, Int)] = [("n_layer", config.nLayer, mine.nLayer), ("n_head", config.nHead, mine.nHead),
                                           ("n_embd", config.nEmbd, mine.nEmbd), ("n_positions", config.nPositions, mine.nPositions),
                                           ("vocab_size", config.vocabSize, mine.vocabSize)]
        for (field, theirs, ours) in pairs where theirs != ours {
            throw CheckpointError(file: configURL, item: field, problem: "is \(theirs), but the loaded model has \(ours)",
                                  fix: "every checkpoint loaded into one model must have the same shape")
        }
        if config.layerNormEpsilon != mine.layerNormEpsilon || config.activationFunction != mine.activationFunction {
            throw CheckpointError(file: configURL, item: "layer_norm_epsilon/activation_function",
                                  problem: "differ from the loaded model's", fix: "every checkpoint loaded into one model must have the same config")
        }
        try loadWeights(from: folder.appendingPathComponent(weightsFileName), into: arena)
    }

    /// Copies every tensor of `file` into `arena` (converting to Float), after checking every name, shape and
    /// dtype against the arena's layout; a file whose tensors do not match leaves the arena untouched.
    public static func loadWeights(from file: URL, into arena: ParameterArena) throws {
        let st = try SafetensorsFile(url: file)
        let plan = try checkedPlan(st, layout: arena.layout)
        try copy(plan, from: st, into: arena)
    }

    /// One file tensor and the layout tensor it fills.
    private typealias Plan = [(info: SafetensorsTensorInfo, target: ParameterLayout.Tensor)]

    /// Matches the file's tensors to `layout`: every parameter present once, with its shape, a floating-point
    /// dtype and a byte range of exactly count × dtype size (`SafetensorsFile` has already checked the ranges
    /// lie inside the file and tile it); a stored `lm_head.weight` must have the embedding's shape. Nothing is
    /// allocated or copied here.
    private static func checkedPlan(_ st: SafetensorsFile, layout: ParameterLayout) throws -> Plan {
        let file = st.url
        var plan: Plan = []
        var found = Set<String>()
        for info in st.tensors {
            let name = info.name
            if name == lmHeadName || name == ParameterLayout.prefix + lmHeadName {
                let wte = layout.tensors[0]
                guard info.shape == wte.shape else {
                    throw CheckpointError(file: file, item: name, problem: "has shape \(info.shape), expected \(wte.shape)",
                                          fix: "dkc ties lm_head.weight to transformer.wte.weight")
                }
                guard info.dtype.isFloatingPoint else {
                    throw CheckpointError(file: file, item: name, problem: "has dtype \(info.dtype.rawValue)", fix: "expected F32, F16, BF16 or F64")
                }
                continue
            }
            if name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") { continue }
            guard let t = layout.tensor(named: name) else {
                throw CheckpointError(file: file, item: name, problem: "is not a parameter of the GPT-2 that config.json describes",
                                      fix: "check that config.json (n_layer, …) belongs to this model.safetensors")
            }
            guard !found.contains(t.name) else {
                throw CheckpointError(file: file, item: name, problem: "appears both with and without the \"transformer.\" prefix",
                                      fix: "keep one copy of each tensor")
            }
            guard info.shape == t.shape else {
                throw CheckpointError(file: file, item: name, problem: "has shape \(info.shape), expected \(t.shape)",
                                      fix: "check that config.json belongs to this model.safetensors")
            }
            guard info.dtype.isFloatingPoint else {
                throw CheckpointError(file: file, item: name, problem: "has dtype \(info.dtype.rawValue)", fix: "expected F32, F16, BF16 or F64")
            }
            let (bytes, overflow) = t.count.multipliedReportingOverflow(by: info.dtype.byteSize)
            guard !overflow, info.count == t.count, info.byteRange.count == bytes else {
                throw CheckpointError(file: file, item: name, problem: "holds \(info.byteRange.count) bytes, expected \(t.count) × \(info.dtype.byteSize)",
                                      fix: "the header is corrupt; write the file again")
            }
            plan.append((info, t))
            found.insert(t.name)
        }
        if let missing = layout.tensors.first(where: { !found.contains($0.name) }) {
            throw CheckpointError(file: file, item: missing.name, problem: "is missing (\(layout.tensors.count - found.count) of \(layout.tensors.count) parameters missing)",
                                  fix: "the file is incomplete or belongs to another model")
        }
        return plan
    }

    /// Copies a checked plan into `arena`, then checks that a stored output matrix is the tied embedding.
    private static func copy(_ plan: Plan, from st: SafetensorsFile, into arena: ParameterArena) throws {
        let file = st.url
        for (info, t) in plan { try st.readFloats(info.name, into: arena.buffer(t)) }
        // A stored output matrix must be the tied embedding.
        for headName in [lmHeadName, ParameterLayout.prefix + lmHeadName] where st.contains(headName) {
            let head = try st.floats(headName)
            let emb = arena.buffer(arena.layout.tensors[0])
            var differ = 0
            for i in 0..<head.count where head[i].bitPattern != emb[i].bitPattern { differ += 1 }
            if differ > 0 {
                throw CheckpointError(file: file, item: headName, problem: "differs from transformer.wte.weight in \(differ) entries: the model is not tied",
                                      fix: "dkc supports only tied output embeddings (tie_word_embeddings true)")
            }
        }
    }

    /// Writes `arena` as a HF folder at `folder` (replacing one already there): config.json and
    /// model.safetensors, plus copies of `extraFiles` (e.g. vocab.json, merges.txt). Everything is written
    /// into a temporary folder beside `folder` and renamed into place, so a reader never sees half a checkpoint.
    public static func save(_ arena: ParameterArena, to folder: URL, extraFiles: [URL] = []) throws {
        let fm = FileManager.default
        let parent = folder.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw CheckpointError(file: parent, problem: "cannot create folder: \(error.localizedDescription)", fix: "check permissions")
        }
        let pid = ProcessInfo.processInfo.processIdentifier
        let tmp = parent.appendingPathComponent(".\(folder.lastPathComponent).tmp-\(pid)")
        try? fm.removeItem(at: tmp)
        do { try fm.createDirectory(at: tmp, withIntermediateDirectories: false) } catch {
            throw CheckpointError(file: tmp, problem: "cannot create folder: \(error.localizedDescription)", fix: "check that \(parent.path) is writable")
        }
        var done = false
        defer { if !done { try? fm.removeItem(at: tmp) } }
        try arena.config.write(to: tmp.appendingPathComponent(configFileName))
        let entries = arena.layout.tensors.map {
            SafetensorsWriter.Entry.float32($0.name, shape: $0.shape, pointer: UnsafePointer(arena.pointer($0)))
        }
        try SafetensorsWriter.write(entries, metadata: SafetensorsWriter.ptMetadata, to: tmp.appendingPathComponent(weightsFileName))
        for f in extraFiles {
            do { try fm.copyItem(at: f, to: tmp.appendingPathComponent(f.lastPathComponent)) } catch {
                throw CheckpointError(file: f, problem: "cannot copy into the checkpoint: \(error.localizedDescription)")
            }
        }
        // Swap into place; an old folder is moved aside first and removed after.
        let old = parent.appendingPathComponent(".\(folder.lastPathComponent).old-\(pid)")
        var movedOld = false
        if fm.fileExists(atPath: folder.path) {
            do { try fm.moveItem(at: folder, to: old); movedOld = true } catch {
                throw CheckpointError(file: folder, problem: "cannot replace the existing folder: \(error.localizedDescription)")
            }
        }
        do { try fm.moveItem(at: tmp, to: folder) } catch {
            if movedOld { try? fm.moveItem(at: old, to: folder) }
            throw CheckpointError(file: folder, problem: "cannot move the finished checkpoint into place: \(error.localizedDescription)")
        }
        done = true
        if movedOld { try? fm.removeItem(at: old) }
    }
}
