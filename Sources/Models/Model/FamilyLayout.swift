import Foundation
import Numerics

/// Where every parameter of a Llama or Phi model lives inside one flat Float buffer, with Hugging Face names,
/// shapes and order (`named_parameters()`), like `ParameterLayout` does for GPT-2. The same offsets serve
/// parameters, gradients and AdamW's moments. Linear weights keep `nn.Linear`'s [out, in] layout (y = x·Wᵀ + b).
///
///     model.embed_tokens.weight                        (V, C)
///     per layer l, prefix model.layers.l.:
///       self_attn.q_proj.weight (C, C)  [.bias (C), Phi]          rows head-major
///       self_attn.k_proj.weight (KV, C) [.bias (KV), Phi]         KV = num_key_value_heads · d_head
///       self_attn.v_proj.weight (KV, C) [.bias (KV), Phi]
///       self_attn.o_proj.weight (C, C)         Llama   |  self_attn.dense.weight (C, C) + .bias (C)   Phi
///       mlp.gate_proj.weight (F, C), mlp.up_proj.weight (F, C), mlp.down_proj.weight (C, F)            Llama
///       mlp.fc1.weight (F, C) + .bias (F), mlp.fc2.weight (C, F) + .bias (C)                          Phi
///       input_layernorm.weight (C) [.bias (C), Phi]; post_attention_layernorm.weight (C), Llama only
///     model.norm.weight (C)   Llama   |   model.final_layernorm.weight (C) + .bias (C)   Phi
///     lm_head.weight (V, C) [lm_head.bias (V), Phi]   absent when tie_word_embeddings (then the embedding)
///
/// Decay group (HF Trainer): the two-dimensional tensors; biases and norm weights are not decayed.
public struct FamilyLayout: Equatable, Sendable {
    /// Offsets of one block's tensors; nil where the family has no such tensor.
    public struct Block: Equatable, Sendable {
        public var q = 0, k = 0, v = 0, o = 0
        public var qBias: Int?, kBias: Int?, vBias: Int?, oBias: Int?
        /// Llama gate_proj (nil for Phi).
        public var gate: Int?
        /// Llama up_proj / Phi fc1, and their bias (Phi).
        public var up = 0
        public var upBias: Int?
        /// Llama down_proj / Phi fc2, and their bias (Phi).
        public var down = 0
        public var downBias: Int?
        public var norm1 = 0
        public var norm1Bias: Int?
        /// Llama post_attention_layernorm (nil for Phi, whose MLP reads input_layernorm's output).
        public var norm2: Int?
    }

    public let config: ModelConfig
    public let tensors: [ParameterLayout.Tensor]
    public let count: Int
    public let embed: Int
    public let blocks: [Block]
    public let finalNorm: Int
    public let finalNormBias: Int?
    /// The output matrix (the embedding's offset when tied).
    public let lmHead: Int
    public let lmHeadBias: Int?

    /// The layout of a validated Llama or Phi configuration.
    public init(config: ModelConfig) {
        precondition(config.family != .gpt2, "GPT-2 uses ParameterLayout")
        let C = config.hiddenSize, V = config.vocabSize, F = config.intermediateSize, KV = config.kvSize
        let bias = config.hasBiases, llama = config.family == .llama
        var tensors: [ParameterLayout.Tensor] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], layer: Int?) -> Int {
            let n = shape.reduce(1, *)
            tensors.append(.init(name: name, shape: shape, offset: offset, count: n, layer: layer, decay: shape.count == 2))
            defer { offset += n }
            return offset
        }
        embed = add("model.embed_tokens.weight", [V, C], layer: nil)
        var blocks: [Block] = []
        for l in 0..<config.numLayers {
            let p = "model.layers.\(l)."
            var b = Block()
            b.q = add(p + "self_attn.q_proj.weight", [C, C], layer: l)
            if bias { b.qBias = add(p + "self_attn.q_proj.bias", [C], layer: l) }
            b.k = add(p + "self_attn.k_proj.weight", [KV, C], layer: l)
            if bias { b.kBias = add(p + "self_attn.k_proj.bias", [KV], layer: l) }
            b.v = add(p + "self_attn.v_proj.weight", [KV, C], layer: l)
            if bias { b.vBias = add(p + "self_attn.v_proj.bias", [KV], layer: l) }
            if llama {
                b.o = add(p + "self_attn.o_proj.weight", [C, C], layer: l)
                b.gate = add(p + "mlp.gate_proj.weight", [F, C], layer: l)
                b.up = add(p + "mlp.up_proj.weight", [F, C], layer: l)
                b.down = add(p + "mlp.down_proj.weight", [C, F], layer: l)
                b.norm1 = add(p + "input_layernorm.weight", [C], layer: l)
                b.norm2 = add(p + "post_attention_layernorm.weight", [C], layer: l)
            } else {
                b.o = add(p + "self_attn.dense.weight", [C, C], layer: l)
                b.oBias = add(p + "self_attn.dense.bias", [C], layer: l)
                b.up = add(p + "mlp.fc1.weight", [F, C], layer: l)
                b.upBias = add(p + "mlp.fc1.bias", [F], layer: l)
                b.down = add(p + "mlp.fc2.weight", [C, F], layer: l)
                b.downBias = add(p + "mlp.fc2.bias", [C], layer: l)
                b.norm1 = add(p + "input_layernorm.weight", [C], layer: l)
                b.norm1Bias = add(p + "input_layernorm.bias", [C], layer: l)
            }
            blocks.append(b)
        }
        if llama {
            finalNorm = add("model.norm.weight", [C], layer: nil)
            finalNormBias = nil
        } else {
            finalNorm = add("model.final_layernorm.weight", [C], layer: nil)
            finalNormBias = add("model.final_layernorm.bias", [C], layer: nil)
        }
        lmHead = config.tieWordEmbeddings ? embed : add("lm_head.weight", [V, C], layer: nil)
        lmHeadBias = bias ? add("lm_head.bias", [V], layer: nil) : nil
        self.blocks = blocks
        self.tensors = tensors
        self.count = offset
        self.config = config
    }

    public func tensor(named name: String) -> ParameterLayout.Tensor? { tensors.first { $0.name == name } }

    /// AdamW segments: one per tensor, decayed when two-dimensional.
    public var adamWSegments: [AdamW.Segment] { tensors.map { AdamW.Segment(range: $0.range, decay: $0.decay) } }
}

/// One flat buffer laid out by a `FamilyLayout`: a model's parameters, or its gradients, or an AdamW moment.
public final class FamilyArena: ParameterStore, @unchecked Sendable {
    public let layout: FamilyLayout
    public let storage: FloatBuffer

    /// A zero-filled arena.
    public init(layout: FamilyLayout) {
        self.layout = layout
        storage = FloatBuffer(count: layout.count)
    }

    public var config: ModelConfig { layout.config }

    /// Fills the parameters as `LlamaForCausalLM(config)` / `PhiForCausalLM(config)` initialise them (not the same
    /// random numbers): matrices ~ N(0, initializer_range²), biases 0, norm weights 1. Deterministic in `seed`.
    public func initialize(seed: UInt64) {
        let std = Float(config.initializerRange)
        var rng = SplitMix64(seed: seed)
        for t in layout.tensors {
            let p = pointer(t)
            if t.shape.count == 2 {
                for i in 0..<t.count { p[i] = std * rng.nextGaussian() }
            } else {
                let one = t.name.contains("norm") && t.name.hasSuffix(".weight")
                p.update(repeating: one ? 1 : 0, count: t.count)
            }
        }
    }
}

/// Llama and Phi checkpoints in Hugging Face layout: a folder with config.json and model.safetensors.
public enum FamilyCheckpoint {
    /// Reads the folder's config.json (which must name llama or phi) and its weights.
    public static func load(folder: URL) throws -> FamilyArena {
        let configURL = folder.appendingPathComponent(HFCheckpoint.configFileName)
        let config = try ModelConfig.load(from: configURL)
        guard config.family != .gpt2 else {
            throw CheckpointError(file: configURL, item: "model_type", problem: "is gpt2", fix: "load GPT-2 folders with HFCheckpoint.load")
        }
        let layout = FamilyLayout(config: config)
        // Every tensor is checked against the layout before the arena is allocated.
        let st = try SafetensorsFile(url: folder.appendingPathComponent(HFCheckpoint.weightsFileName))
        let plan = try checkedPlan(st, layout: layout)
        let arena = FamilyArena(layout: layout)
        try copy(plan, from: st, into: arena)
        return arena
    }

    /// Copies every tensor of `file` into `arena` after checking each name, shape and dtype against the layout
    /// (all checks first, so a bad file leaves the arena untouched). A tied model may store `lm_head.weight`
    /// only as an exact copy of the embedding.
    public static func loadWeights(from file: URL, into arena: FamilyArena) throws {
        let st = try SafetensorsFile(url: file)
        try copy(try checkedPlan(st, layout: arena.layout), from: st, into: arena)
    }

    /// The file's tensors matched to the layout's (all checks, nothing allocated or copied), and the stored
    /// `lm_head.weight` of a tied model, which must equal the embedding.
    private struct Plan {
        var copies: [(SafetensorsTensorInfo, ParameterLayout.Tensor)] = []
        var tiedHead: SafetensorsTensorInfo?
    }

    private static func checkedPlan(_ st: SafetensorsFile, layout: FamilyLayout) throws -> Plan {
        let file = st.url
        var plan: [(SafetensorsTensorInfo, ParameterLayout.Tensor)] = []
        var found = Set<String>()
        var tiedHead: SafetensorsTensorInfo?
        for info in st.tensors {
            if info.name.hasSuffix(".self_attn.rotary_emb.inv_freq") { continue }
            let target: ParameterLayout.Tensor
            if info.name == "lm_head.weight" && layout.config.tieWordEmbeddings {
                target = layout.tensors[0]
                tiedHead = info
            } else {
                guard let t = layout.tensor(named: info.name) else {
                    throw CheckpointError(file: file, item: info.name, problem: "is not a parameter of the \(layout.config.family.rawValue) model that config.json describes",
                                          fix: "check that config.json belongs to this model.safetensors")
                }
                target = t
            }
            guard info.shape == target.shape else {
                throw CheckpointError(file: file, item: info.name, problem: "has shape \(info.shape), expected \(target.shape)",
                                      fix: "check that config.json belongs to this model.safetensors")
            }
            guard info.dtype.isFloatingPoint else {
                throw CheckpointError(file: file, item: info.name, problem: "has dtype \(info.dtype.rawValue)", fix: "expected F32, F16, BF16 or F64")
            }
            let (bytes, overflow) = target.count.multipliedReportingOverflow(by: info.dtype.byteSize)
            guard !overflow, info.byteRange.count == bytes else {
                throw CheckpointError(file: file, item: info.name, problem: "holds \(info.byteRange.count) bytes, expected \(target.count) × \(info.dtype.byteSize)",
                                      fix: "the header is corrupt; write the file again")
            }
            if tiedHead?.name == info.name && info.name == "lm_head.weight" { continue }
            plan.append((info, target))
            found.insert(target.name)
        }
        if let missing = layout.tensors.first(where: { !found.contains($0.name) }) {
            throw CheckpointError(file: file, item: missing.name, problem: "is missing (\(layout.tensors.count - found.count) of \(layout.tensors.count) parameters missing)",
                                  fix: "the file is incomplete or belongs to another model")
        }
        return Plan(copies: plan, tiedHead: tiedHead)
    }

    private static func copy(_ plan: Plan, from st: SafetensorsFile, into arena: FamilyArena) throws {
        let file = st.url
        for (info, t) in plan.copies { try st.readFloats(info.name, into: arena.buffer(t)) }
        if let head = plan.tiedHead {
            let values = try st.floats(head.name)
            let emb = arena.buffer(arena.layout.tensors[0])
            guard values.indices.allSatisfy({ values[$0].bitPattern == emb[$0].bitPattern }) else {
                throw CheckpointError(file: file, item: head.name, problem: "differs from model.embed_tokens.weight although config.json ties them",
                                      fix: "set tie_word_embeddings to false in config.json, or store one matrix")
            }
        }
    }

    /// Writes config.json and model.safetensors into a temporary folder beside `folder`, then renames it into
    /// place (replacing an existing folder), so a reader never sees half a checkpoint. `extraFiles` (tokenizer
    /// files) are copied in.
    public static func save(_ arena: FamilyArena, to folder: URL, extraFiles: [URL] = []) throws {
        let fm = FileManager.default
        let parent = folder.deletingLastPathComponent()
        let tmp = parent.appendingPathComponent(".\(folder.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        do {
            try fm.createDirectory(at: parent, withIntermediateDirectories: true)
            try? fm.removeItem(at: tmp)
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
        } catch {
            throw CheckpointError(file: tmp, problem: "cannot create folder: \(error.localizedDescription)", fix: "check that \(parent.path) is writable")
        }
        var done = false
        defer { if !done { try? fm.removeItem(at: tmp) } }
        do { try arena.config.jsonData().write(to: tmp.appendingPathComponent(HFCheckpoint.configFileName)) } catch {
            throw CheckpointError(file: tmp, problem: "cannot write config.json: \(error.localizedDescription)", fix: "check the disk")
        }
        let entries = arena.layout.tensors.map {
            SafetensorsWriter.Entry.float32($0.name, shape: $0.shape, pointer: UnsafePointer(arena.pointer($0)))
        }
        try SafetensorsWriter.write(entries, metadata: SafetensorsWriter.ptMetadata, to: tmp.appendingPathComponent(HFCheckpoint.weightsFileName))
        for f in extraFiles {
            do { try fm.copyItem(at: f, to: tmp.appendingPathComponent(f.lastPathComponent)) } catch {
                throw CheckpointError(file: f, problem: "cannot copy into the checkpoint: \(error.localizedDescription)")
            }
        }
        if fm.fileExists(atPath: folder.path) {
            do { try fm.removeItem(at: folder) } catch {
                throw CheckpointError(file: folder, problem: "cannot replace the existing folder: \(error.localizedDescription)")
            }
        }
        do { try fm.moveItem(at: tmp, to: folder) } catch {
            throw CheckpointError(file: folder, problem: "cannot move the finished checkpoint into place: \(error.localizedDescription)")
        }
        done = true
    }
}
