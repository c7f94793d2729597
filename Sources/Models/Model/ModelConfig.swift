import Foundation
import Support

/// The model families dkc reads from a Hugging Face `config.json` (`model_type`).
public enum ModelFamily: String, CaseIterable, Sendable {
    /// `GPT2LMHeadModel`: LayerNorm, learned positions, GELU MLP, tied embeddings (see `GPT2Config`).
    case gpt2
    /// `LlamaForCausalLM` (TinyLlama): RMSNorm, rotary on the whole head, grouped-query attention, SwiGLU MLP.
    case llama
    /// `PhiForCausalLM` (phi-1_5): one LayerNorm feeding attention and MLP in parallel, partial rotary,
    /// GELU MLP, biases on every linear map.
    case phi

    /// Whether a circuit or acquisition label is the first token of " " + the attribute (GPT-2, Phi) or
    /// of the attribute itself (Llama: the study's circuit data script drops the space for TinyLlama,
    /// whose tokenizer would otherwise start every label with the bare `▁▁` piece). docs/model-families.md.
    public var circuitLabelHasLeadingSpace: Bool { self != .llama }
}

/// One configuration type for every family, read from `config.json`. GPT-2 keeps its own `GPT2Config`
/// (carried in `gpt2`); Llama and Phi are described by the common fields below. docs/model-families.md
/// lists the keys each family accepts; any other key, or an unsupported value, is refused by name.
///
/// Shapes: d_model = `hiddenSize`, d_head = hiddenSize / numHeads, K/V width = numKVHeads · d_head,
/// d_mlp = `intermediateSize`, rotary on the first `rotaryDim` dimensions of each head (`rotate_half` layout).
public struct ModelConfig: Equatable, Sendable {
    public var family: ModelFamily
    /// The GPT-2 configuration when `family == .gpt2` (nil otherwise).
    public var gpt2: GPT2Config?
    public var numLayers: Int
    public var numHeads: Int
    /// Key/value heads (`num_key_value_heads`); query head h reads KV head ⌊h / (numHeads / numKVHeads)⌋.
    public var numKVHeads: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var vocabSize: Int
    /// Longest sequence (`max_position_embeddings`).
    public var maxPositions: Int
    /// ε of RMSNorm (`rms_norm_eps`, Llama) or LayerNorm (`layer_norm_eps`, Phi).
    public var normEps: Double
    public var ropeTheta: Double
    /// `partial_rotary_factor` (Phi); 1 for Llama.
    public var partialRotaryFactor: Double
    /// `silu` (Llama) or `gelu_new` (Phi).
    public var hiddenAct: String
    public var tieWordEmbeddings: Bool
    public var bosTokenId: Int
    public var eosTokenId: Int
    public var initializerRange: Double
    /// Training dropout where the family's transformers model applies it: `attention_dropout` on the attention
    /// probabilities (both), `embd_pdrop` on the token embeddings and `resid_pdrop` on the attention and MLP
    /// outputs (Phi only; 0 for Llama). TinyLlama and phi-1_5 ship with 0.
    public var attentionDropout: Double = 0
    public var embdPdrop: Double = 0
    public var residPdrop: Double = 0

    public var headSize: Int { hiddenSize / numHeads }
    public var kvSize: Int { numKVHeads * headSize }
    /// Rotated dimensions per head: round(partial_rotary_factor · d_head), as transformers and TransformerLens
    /// take it for Phi (the whole head for Llama).
    public var rotaryDim: Int { family == .llama ? headSize : Int((partialRotaryFactor * Double(headSize)).rounded()) }
    /// Whether every linear map has a bias (Phi) or none (Llama).
    public var hasBiases: Bool { family == .phi }

    /// Keys a family accepts besides its shape keys and the dropout rates (`attentionDropout` …): informational ones.
    static let informational: Set<String> = ["architectures", "model_type", "torch_dtype", "transformers_version", "_name_or_path",
                                              "use_cache", "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range"]
    static let llamaKeys: Set<String> = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                         "num_key_value_heads", "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta",
                                         "rope_scaling", "hidden_act", "tie_word_embeddings", "attention_bias", "mlp_bias",
                                         "attention_dropout", "pretraining_tp", "head_dim"]
    static let phiKeys: Set<String> = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                       "num_key_value_heads", "vocab_size", "max_position_embeddings", "layer_norm_eps", "rope_theta",
                                       "rope_scaling", "hidden_act", "tie_word_embeddings", "partial_rotary_factor", "qk_layernorm",
                                       "attention_dropout", "embd_pdrop", "resid_pdrop"]

    /// A Llama or Phi configuration; call `validate` before allocating anything from it.
    public init(family: ModelFamily, numLayers: Int, numHeads: Int, numKVHeads: Int, hiddenSize: Int, intermediateSize: Int,
                vocabSize: Int, maxPositions: Int, normEps: Double = 1e-5, ropeTheta: Double = 10_000,
                partialRotaryFactor: Double = 1, hiddenAct: String? = nil, tieWordEmbeddings: Bool = false,
                bosTokenId: Int = 1, eosTokenId: Int = 2, initializerRange: Double = 0.02) {
        self.family = family
        self.gpt2 = nil
        self.numLayers = numLayers; self.numHeads = numHeads; self.numKVHeads = numKVHeads
        self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize; self.vocabSize = vocabSize
        self.maxPositions = maxPositions; self.normEps = normEps; self.ropeTheta = ropeTheta
        self.partialRotaryFactor = partialRotaryFactor
        self.hiddenAct = hiddenAct ?? (family == .llama ? "silu" : "gelu_new")
        self.tieWordEmbeddings = tieWordEmbeddings
        self.bosTokenId = bosTokenId; self.eosTokenId = eosTokenId; self.initializerRange = initializerRange
    }

    /// Wraps a GPT-2 configuration (the common fields mirror it).
    public init(gpt2 c: GPT2Config) {
        self.init(family: .gpt2, numLayers: c.nLayer, numHeads: c.nHead, numKVHeads: c.nHead, hiddenSize: c.nEmbd,
                  intermediateSize: c.mlpSize, vocabSize: c.vocabSize, maxPositions: c.nPositions, normEps: c.layerNormEpsilon,
                  hiddenAct: c.activationFunction, tieWordEmbeddings: true, bosTokenId: c.bosTokenId, eosTokenId: c.eosTokenId,
                  initializerRange: c.initializerRange)
        gpt2 = c
    }

    // MARK: - Validation

    /// The number of floats `FamilyLayout` lays out, with overflow-reporting arithmetic; nil on overflow.
    public var checkedParameterCount: Int? {
        if let g = gpt2 { return g.checkedParameterCount }
        func mul(_ a: Int, _ b: Int) -> Int? { let (r, o) = a.multipliedReportingOverflow(by: b); return o ? nil : r }
        func add(_ xs: Int?...) -> Int? {
            var s = 0
            for x in xs { guard let x else { return nil }; let (r, o) = s.addingReportingOverflow(x); if o { return nil }; s = r }
            return s
        }
        let C = hiddenSize, F = intermediateSize, V = vocabSize
        guard let kv = mul(numKVHeads, C / max(numHeads, 1)) else { return nil }
        let bias = hasBiases
        // Attention: q (C·C), k and v (kv·C each), o (C·C) [+ biases C + 2kv + C].
        let attn = add(mul(C, C), mul(kv, C), mul(kv, C), mul(C, C), bias ? add(C, kv, kv, C) : 0)
        // MLP: Llama gate, up, down (3·F·C); Phi fc1, fc2 (2·F·C) + biases F + C.
        let mlp = family == .llama ? mul(mul(F, C) ?? -1, 3) : add(mul(mul(F, C) ?? -1, 2), F, C)
        // Norms: Llama two RMSNorm weights; Phi one LayerNorm weight and bias.
        let norms = family == .llama ? mul(C, 2) : mul(C, 2)
        guard let block = add(attn, mlp, norms), let blocks = mul(block, numLayers) else { return nil }
        let embed = mul(V, C)
        let head = tieWordEmbeddings ? 0 : add(mul(V, C), bias ? V : 0)
        let finalNorm = bias ? mul(C, 2) : C
        return add(embed, blocks, finalNorm, head)
    }

    /// Throws when the numbers cannot describe a model dkc runs; every check is an explicit comparison.
    public func validate(source: String = "model config") throws {
        if let g = gpt2 { return try g.validate(source: source) }
        func bad(_ field: String, _ problem: String, _ fix: String) -> CheckpointError {
            CheckpointError(file: source, item: field, problem: problem, fix: fix)
        }
        for (field, p) in [("attention_dropout", attentionDropout), ("embd_pdrop", embdPdrop), ("resid_pdrop", residPdrop)] {
            guard p >= 0 && p < 1 else { throw bad(field, "is \(p)", "a dropout probability in [0, 1)") }
        }
        guard family == .phi || (embdPdrop == 0 && residPdrop == 0) else {
            throw bad(embdPdrop != 0 ? "embd_pdrop" : "resid_pdrop", "is not 0", "Llama applies dropout to the attention probabilities only (attention_dropout)")
        }
        typealias L = GPT2Config.Limits
        for (field, v, cap) in [("num_hidden_layers", numLayers, L.nLayer), ("num_attention_heads", numHeads, L.nHead),
                                ("num_key_value_heads", numKVHeads, L.nHead), ("hidden_size", hiddenSize, L.nEmbd),
                                ("intermediate_size", intermediateSize, 4 * L.nEmbd),
                                ("max_position_embeddings", maxPositions, L.nPositions), ("vocab_size", vocabSize, L.vocabSize)] {
            guard v >= 1 else { throw bad(field, "is \(v)", "must be a positive integer") }
            guard v <= cap else { throw bad(field, "is \(v), above dkc's limit \(cap)", "the file is corrupt or describes a model far too large") }
        }
        guard hiddenSize % numHeads == 0 else {
            throw bad("hidden_size", "\(hiddenSize) is not divisible by num_attention_heads \(numHeads)", "choose a multiple of the head count")
        }
        guard numHeads % numKVHeads == 0 else {
            throw bad("num_key_value_heads", "\(numKVHeads) does not divide num_attention_heads \(numHeads)",
                      "grouped-query attention needs equal groups: choose a divisor of num_attention_heads")
        }
        guard partialRotaryFactor > 0, partialRotaryFactor <= 1 else {
            throw bad("partial_rotary_factor", "is \(partialRotaryFactor)", "a fraction of the head in (0, 1], such as 0.5")
        }
        guard rotaryDim >= 2, rotaryDim % 2 == 0 else {
            throw bad(family == .phi ? "partial_rotary_factor" : "hidden_size",
                      "gives \(rotaryDim) rotated dimensions per head", "rotary needs an even number ≥ 2 of dimensions per head")
        }
        guard ropeTheta > 1, ropeTheta.isFinite else { throw bad("rope_theta", "is \(ropeTheta)", "a base above 1 such as 10000.0") }
        guard normEps > 0, normEps.isFinite else {
            throw bad(family == .llama ? "rms_norm_eps" : "layer_norm_eps", "is \(normEps)", "a small positive number such as 1e-05")
        }
        let acts = family == .llama ? ["silu"] : ["gelu_new", "gelu_pytorch_tanh"]
        guard acts.contains(hiddenAct) else {
            throw bad("hidden_act", "\"\(hiddenAct)\" is not supported for \(family.rawValue)", "use \(acts.map { "\"\($0)\"" }.joined(separator: " or "))")
        }
        for (field, v) in [("bos_token_id", bosTokenId), ("eos_token_id", eosTokenId)] where v < 0 || v >= L.tokenId {
            throw bad(field, "is \(v)", "a token id lies in 0 ..< 2^31")
        }
        guard initializerRange >= 0, initializerRange.isFinite else {
            throw bad("initializer_range", "is \(initializerRange)", "a non-negative number such as 0.02")
        }
        guard let params = checkedParameterCount, params <= L.parameters else {
            throw bad("num_hidden_layers/hidden_size/intermediate_size/vocab_size", "describe more than \(L.parameters) parameters",
                      "dkc holds at most \(L.parameters) float32 parameters in memory; the file is corrupt or the model too large")
        }
    }

    // MARK: - config.json

    /// Reads and validates a `config.json` of any supported family.
    public static func load(from url: URL) throws -> ModelConfig {
        try ModelConfig(json: configData(url), source: url.path)
    }

    /// The bytes of a model folder's config.json, or the error that names it.
    static func configData(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch {
            throw CheckpointError(file: url, problem: "cannot read: \(error.localizedDescription)",
                                  fix: "a model folder needs a config.json beside model.safetensors")
        }
    }

    /// Parses and validates config JSON; `model_type` picks the family (absent: GPT-2, as dkc wrote it before).
    public init(json data: Data, source: String) throws {
        func bad(_ field: String, _ problem: String, _ fix: String) -> CheckpointError {
            CheckpointError(file: source, item: field, problem: problem, fix: fix)
        }
        guard let object = try? JSONValue(parsing: data), object.isObject else {
            throw CheckpointError(file: source, problem: "not a JSON object", fix: "write the config.json that save_pretrained produces")
        }
        let d = JSONFields(object, bad: bad)
        let typeName = try d.string("model_type", "gpt2", fix: "write \"gpt2\", \"llama\" or \"phi\"")
        guard let family = ModelFamily(rawValue: typeName) else {
            throw bad("model_type", "\"\(typeName)\" is not supported",
                      "dkc runs \(ModelFamily.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
        }
        if family == .gpt2 {
            self.init(gpt2: try GPT2Config(json: data, source: source))
            return
        }
        let allowed = Self.informational.union(family == .llama ? Self.llamaKeys : Self.phiKeys)
        if let unknown = d.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw bad(unknown, "is not a \(family.rawValue) setting dkc supports",
                      "remove it, or see docs/model-families.md for the keys dkc reads")
        }
        func int(_ key: String, _ def: Int?) throws -> Int { try d.int(key, def) }
        func double(_ key: String, _ def: Double) throws -> Double { try d.double(key, def) }
        func bool(_ key: String, _ def: Bool) throws -> Bool { try d.bool(key, def) }
        if let arch = d["architectures"] {
            let expected = family == .llama ? "LlamaForCausalLM" : "PhiForCausalLM"
            guard let list = arch.arrayValue?.compactMap(\.stringValue), list.contains(expected) else {
                throw bad("architectures", "\(arch.compactText) does not name \(expected)", "expected [\"\(expected)\"]")
            }
        }
        let heads = try int("num_attention_heads", nil)
        let actName = try d.string("hidden_act", family == .llama ? "silu" : "gelu_new", fix: "write \"silu\" or \"gelu_new\"")
        self.init(family: family, numLayers: try int("num_hidden_layers", nil), numHeads: heads,
                  numKVHeads: try int("num_key_value_heads", heads), hiddenSize: try int("hidden_size", nil),
                  intermediateSize: try int("intermediate_size", nil), vocabSize: try int("vocab_size", nil),
                  maxPositions: try int("max_position_embeddings", nil),
                  normEps: try double(family == .llama ? "rms_norm_eps" : "layer_norm_eps", family == .llama ? 1e-6 : 1e-5),
                  ropeTheta: try double("rope_theta", 10_000),
                  partialRotaryFactor: family == .phi ? try double("partial_rotary_factor", 0.5) : 1,
                  hiddenAct: actName, tieWordEmbeddings: try bool("tie_word_embeddings", false),
                  bosTokenId: try int("bos_token_id", family == .llama ? 1 : 50256),
                  eosTokenId: try int("eos_token_id", family == .llama ? 2 : 50256),
                  initializerRange: try double("initializer_range", 0.02))
        // Settings dkc does not compute must have their neutral value.
        if let rs = d["rope_scaling"] {
            throw bad("rope_scaling", "is \(rs.compactText)", "dkc implements plain rotary embeddings; set it to null")
        }
        for key in family == .llama ? ["attention_dropout"] : ["attention_dropout", "embd_pdrop", "resid_pdrop"] {
            let p = try double(key, 0)
            guard p >= 0 && p < 1 else { throw bad(key, "is \(p)", "a dropout probability in [0, 1), such as 0.0") }
        }
        attentionDropout = try double("attention_dropout", 0)
        if family == .phi {
            embdPdrop = try double("embd_pdrop", 0)
            residPdrop = try double("resid_pdrop", 0)
        }
        for key in ["attention_bias", "mlp_bias", "qk_layernorm"] where try bool(key, false) {
            throw bad(key, "is true", "not supported for \(family.rawValue); set it to false")
        }
        guard try int("pretraining_tp", 1) == 1 else { throw bad("pretraining_tp", "is not 1", "set it to 1 (it only changes rounding)") }
        try validate(source: source)
        if d["head_dim"] != nil {
            let hd = try int("head_dim", nil)
            guard hd == headSize else {
                throw bad("head_dim", "\(hd) differs from hidden_size / num_attention_heads = \(headSize)", "remove it or set it to \(headSize)")
            }
        }
    }

    /// A `config.json` that transformers 4.42 loads as `LlamaForCausalLM` / `PhiForCausalLM` (keys sorted,
    /// two-space indentation); GPT-2 writes `GPT2Config.jsonData()`.
    public func jsonData() -> Data {
        if let g = gpt2 { return g.jsonData() }
        var fields: [(String, String)] = [
            ("architectures", "[\n    \"\(family == .llama ? "LlamaForCausalLM" : "PhiForCausalLM")\"\n  ]"),
            ("attention_dropout", "\(attentionDropout)"),
            ("bos_token_id", "\(bosTokenId)"),
            ("eos_token_id", "\(eosTokenId)"),
            ("hidden_act", "\"\(hiddenAct)\""),
            ("hidden_size", "\(hiddenSize)"),
            ("initializer_range", "\(initializerRange)"),
            ("intermediate_size", "\(intermediateSize)"),
            ("max_position_embeddings", "\(maxPositions)"),
            ("model_type", "\"\(family.rawValue)\""),
            ("num_attention_heads", "\(numHeads)"),
            ("num_hidden_layers", "\(numLayers)"),
            ("num_key_value_heads", "\(numKVHeads)"),
            ("rope_scaling", "null"),
            ("rope_theta", "\(ropeTheta)"),
            ("tie_word_embeddings", "\(tieWordEmbeddings)"),
            ("torch_dtype", "\"float32\""),
            ("use_cache", "true"),
            ("vocab_size", "\(vocabSize)"),
        ]
        if family == .llama {
            fields += [("attention_bias", "false"), ("mlp_bias", "false"), ("pretraining_tp", "1"), ("rms_norm_eps", "\(normEps)")]
        } else {
            fields += [("embd_pdrop", "\(embdPdrop)"), ("layer_norm_eps", "\(normEps)"), ("partial_rotary_factor", "\(partialRotaryFactor)"),
                       ("qk_layernorm", "false"), ("resid_pdrop", "\(residPdrop)")]
        }
        fields.sort { $0.0 < $1.0 }
        let body = fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n")
        return Data("{\n\(body)\n}\n".utf8)
    }
}
