import Foundation
import Support

/// The shape and constants of a GPT-2, as the Hugging Face `config.json` of a `GPT2LMHeadModel` states them.
///
/// Only what dkc computes is supported: tied input/output embeddings, the tanh form of GELU
/// (`gelu_new` or `gelu_pytorch_tanh`, the same function), attention scaled by 1/√d_head, an MLP of width
/// 4·n_embd. Anything else is rejected when a config is read, naming the field.
public struct GPT2Config: Equatable, Sendable {
    /// Transformer blocks (`n_layer`).
    public var nLayer: Int
    /// Attention heads per block (`n_head`).
    public var nHead: Int
    /// Residual width d_model (`n_embd`).
    public var nEmbd: Int
    /// Rows of the positional embedding, the longest sequence (`n_positions`; `n_ctx` is written equal).
    public var nPositions: Int
    /// Rows of the token embedding (`vocab_size`).
    public var vocabSize: Int
    /// LayerNorm ε (`layer_norm_epsilon`).
    public var layerNormEpsilon: Double
    /// `gelu_new` or `gelu_pytorch_tanh`.
    public var activationFunction: String
    public var bosTokenId: Int
    public var eosTokenId: Int
    /// Standard deviation of the normal initialisation (`initializer_range`).
    public var initializerRange: Double
    /// Dropout probabilities, kept so a saved config says what training used; the dkc model has no dropout.
    public var residPdrop: Double
    public var embdPdrop: Double
    public var attnPdrop: Double

    /// d_head = n_embd / n_head.
    public var headSize: Int { nEmbd / nHead }
    /// Width of the MLP hidden layer, 4·n_embd.
    public var mlpSize: Int { 4 * nEmbd }

    public static let supportedActivations = ["gelu_new", "gelu_pytorch_tanh"]

    public init(nLayer: Int, nHead: Int, nEmbd: Int, nPositions: Int = 1024, vocabSize: Int = 50257,
                layerNormEpsilon: Double = 1e-5, activationFunction: String = "gelu_new",
                bosTokenId: Int = 50256, eosTokenId: Int = 50256, initializerRange: Double = 0.02,
                residPdrop: Double = 0.1, embdPdrop: Double = 0.1, attnPdrop: Double = 0.1) {
        self.nLayer = nLayer
        self.nHead = nHead
        self.nEmbd = nEmbd
        self.nPositions = nPositions
        self.vocabSize = vocabSize
        self.layerNormEpsilon = layerNormEpsilon
        self.activationFunction = activationFunction
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.initializerRange = initializerRange
        self.residPdrop = residPdrop
        self.embdPdrop = embdPdrop
        self.attnPdrop = attnPdrop
    }

    /// GPT-2 small: 12 layers, 12 heads, d_model 768, 1024 positions, vocabulary 50257.
    public static let gpt2Small = GPT2Config(nLayer: 12, nHead: 12, nEmbd: 768)
    /// The benchmarks' "tiny" model: 4 layers, 4 heads, d_model 128, 1024 positions, vocabulary 50257.
    public static let tiny = GPT2Config(nLayer: 4, nHead: 4, nEmbd: 128)

    /// The largest model dkc accepts. A config.json is untrusted input: these caps, and the parameter count
    /// computed with overflow-reporting arithmetic, keep every size and offset derived from it (`ParameterLayout`,
    /// the arenas, activation buffers) far from `Int` overflow and allocations from absurd sizes, whatever the
    /// optimisation level. GPT-2 XL (48 layers, 25 heads, d_model 1600, 1.6 G parameters) is well inside.
    /// docs/input-validation.md lists them.
    public enum Limits {
        public static let nLayer = 1_024
        public static let nHead = 1_024
        public static let nEmbd = 65_536
        public static let nPositions = 1 << 20
        public static let vocabSize = 1 << 24
        /// Token ids (`bos_token_id`, `eos_token_id`) must lie in 0 ..< 2^31 (they are stored as Int32).
        public static let tokenId = 1 << 31
        /// Floats in one parameter arena (32 GiB of float32).
        public static let parameters = 1 << 33
    }

    /// The number of floats `ParameterLayout` lays out, computed with overflow-reporting arithmetic;
    /// nil when it overflows `Int` (the caps of `Limits` rule that out for a validated config).
    public var checkedParameterCount: Int? {
        func mul(_ a: Int, _ b: Int) -> Int? { let (r, o) = a.multipliedReportingOverflow(by: b); return o ? nil : r }
        func add(_ a: Int, _ b: Int) -> Int? { let (r, o) = a.addingReportingOverflow(b); return o ? nil : r }
        let C = nEmbd
        // Per block: ln_1, ln_2 (2·2C), c_attn (C·3C + 3C), attn c_proj (C·C + C), c_fc (C·4C + 4C), mlp c_proj (4C·C + C).
        guard let cc = mul(C, C), let blockSquares = mul(cc, 12), let blockLinear = mul(C, 13),
              let block = add(blockSquares, blockLinear), let blocks = mul(block, nLayer),
              let wte = mul(vocabSize, C), let wpe = mul(nPositions, C), let lnf = mul(C, 2),
              let a = add(wte, wpe), let b = add(a, blocks), let total = add(b, lnf) else { return nil }
        return total
    }

    /// Throws when the numbers cannot describe a model dkc runs; `source` names the file for the message.
    /// Every check is an explicit comparison that survives `-Ounchecked`.
    public func validate(source: String = "GPT-2 config") throws {
        func bad(_ field: String, _ problem: String, _ fix: String) -> CheckpointError {
            CheckpointError(file: source, item: field, problem: problem, fix: fix)
        }
        for (field, v, cap) in [("n_layer", nLayer, Limits.nLayer), ("n_head", nHead, Limits.nHead), ("n_embd", nEmbd, Limits.nEmbd),
                                ("n_positions", nPositions, Limits.nPositions), ("vocab_size", vocabSize, Limits.vocabSize)] {
            guard v >= 1 else { throw bad(field, "is \(v)", "must be a positive integer") }
            guard v <= cap else { throw bad(field, "is \(v), above dkc's limit \(cap)", "the file is corrupt or describes a model far larger than GPT-2 XL") }
        }
        guard nEmbd % nHead == 0 else {
            throw bad("n_embd", "\(nEmbd) is not divisible by n_head \(nHead)", "choose n_embd a multiple of n_head")
        }
        for (field, v) in [("bos_token_id", bosTokenId), ("eos_token_id", eosTokenId)] where v < 0 || v >= Limits.tokenId {
            throw bad(field, "is \(v)", "a token id lies in 0 ..< 2^31")
        }
        guard let params = checkedParameterCount, params <= Limits.parameters else {
            throw bad("n_layer/n_embd/vocab_size/n_positions", "describe more than \(Limits.parameters) parameters",
                      "dkc holds at most \(Limits.parameters) float32 parameters in memory; the file is corrupt or the model too large")
        }
        guard Self.supportedActivations.contains(activationFunction) else {
            throw bad("activation_function", "\"\(activationFunction)\" is not supported",
                      "dkc implements the tanh GELU: use \(Self.supportedActivations.map { "\"\($0)\"" }.joined(separator: " or "))")
        }
        guard layerNormEpsilon > 0, layerNormEpsilon.isFinite else {
            throw bad("layer_norm_epsilon", "is \(layerNormEpsilon)", "must be a small positive number such as 1e-05")
        }
        guard initializerRange >= 0, initializerRange.isFinite else {
            throw bad("initializer_range", "is \(initializerRange)", "must be a non-negative number such as 0.02")
        }
        for (field, p) in [("resid_pdrop", residPdrop), ("embd_pdrop", embdPdrop), ("attn_pdrop", attnPdrop)] where !(p >= 0 && p < 1) {
            throw bad(field, "is \(p)", "a dropout probability lies in [0, 1)")
        }
    }

    // MARK: - config.json

    /// Reads and validates a Hugging Face GPT-2 `config.json`. Missing fields take transformers' defaults.
    public static func load(from url: URL) throws -> GPT2Config {
        try GPT2Config(json: ModelConfig.configData(url), source: url.path)
    }

    /// Parses and validates config JSON; `source` names the file in errors.
    public init(json data: Data, source: String) throws {
        func bad(_ field: String, _ problem: String, _ fix: String) -> CheckpointError {
            CheckpointError(file: source, item: field, problem: problem, fix: fix)
        }
        let object: JSONValue
        do { object = try JSONValue(parsing: data) } catch {
            throw CheckpointError(file: source, problem: "not valid JSON (\(error))", fix: "write a JSON object such as transformers' GPT2Config.save_pretrained produces")
        }
        guard object.isObject else {
            throw CheckpointError(file: source, problem: "not a JSON object", fix: "write a JSON object with n_layer, n_head, n_embd, …")
        }
        let d = JSONFields(object, bad: bad)
        func int(_ key: String, _ def: Int) throws -> Int { try d.int(key, def) }
        func double(_ key: String, _ def: Double) throws -> Double { try d.double(key, def) }
        func bool(_ key: String, _ def: Bool) throws -> Bool { try d.bool(key, def) }
        if let mt = object["model_type"] {
            guard mt.stringValue == "gpt2" else {
                throw bad("model_type", "\(mt.compactText) is not a GPT-2", "this needs a GPT-2 (model_type \"gpt2\"); Llama and Phi folders load through ModelConfig (train, data generate, discover, evaluate and sweep take them; docs/model-families.md)")
            }
        }
        if let arch = d["architectures"] {
            let supported = ["GPT2LMHeadModel", "GPT2Model"]
            guard let list = arch.arrayValue?.compactMap(\.stringValue), list.contains(where: supported.contains) else {
                throw bad("architectures", "\(arch.compactText) names no GPT-2 architecture", "expected [\"GPT2LMHeadModel\"]")
            }
        }
        nLayer = try int("n_layer", 12)
        nHead = try int("n_head", 12)
        nEmbd = try int("n_embd", 768)
        nPositions = try int("n_positions", 1024)
        vocabSize = try int("vocab_size", 50257)
        layerNormEpsilon = try double("layer_norm_epsilon", 1e-5)
        bosTokenId = try int("bos_token_id", 50256)
        eosTokenId = try int("eos_token_id", 50256)
        initializerRange = try double("initializer_range", 0.02)
        residPdrop = try double("resid_pdrop", 0.1)
        embdPdrop = try double("embd_pdrop", 0.1)
        attnPdrop = try double("attn_pdrop", 0.1)
        activationFunction = try d.string("activation_function", "gelu_new", fix: "use \"gelu_new\"")
        let nCtx = try int("n_ctx", nPositions)
        guard nCtx == nPositions else {
            throw bad("n_ctx", "\(nCtx) differs from n_positions \(nPositions)", "set both to the context length")
        }
        // Sizes are validated (capped) before any arithmetic on them, such as 4 × n_embd below.
        try validate(source: source)
        let nInner = try int("n_inner", 4 * nEmbd)
        guard nInner == 4 * nEmbd else {
            throw bad("n_inner", "\(nInner) is not 4 × n_embd = \(4 * nEmbd)", "dkc supports the standard MLP width; remove n_inner or set it to null")
        }
        guard try bool("tie_word_embeddings", true) else {
            throw bad("tie_word_embeddings", "is false", "dkc ties lm_head to transformer.wte; set it to true")
        }
        guard try bool("scale_attn_weights", true) else {
            throw bad("scale_attn_weights", "is false", "dkc scales attention scores by 1/sqrt(d_head); set it to true")
        }
        guard try !bool("scale_attn_by_inverse_layer_idx", false) else {
            throw bad("scale_attn_by_inverse_layer_idx", "is true", "not supported; set it to false")
        }
        guard try !bool("add_cross_attention", false) else {
            throw bad("add_cross_attention", "is true", "cross-attention is not supported; set it to false")
        }
    }

    /// A `config.json` that `GPT2LMHeadModel.from_pretrained` (and TransformerLens, which reads `n_ctx`) accepts:
    /// keys sorted, two-space indentation, as transformers writes them.
    public func jsonData() -> Data {
        func num(_ x: Double) -> String { "\(x)" }
        let fields: [(String, String)] = [
            ("activation_function", "\"\(activationFunction)\""),
            ("architectures", "[\n    \"GPT2LMHeadModel\"\n  ]"),
            ("attn_pdrop", num(attnPdrop)),
            ("bos_token_id", "\(bosTokenId)"),
            ("dtype", "\"float32\""),
            ("embd_pdrop", num(embdPdrop)),
            ("eos_token_id", "\(eosTokenId)"),
            ("initializer_range", num(initializerRange)),
            ("layer_norm_epsilon", num(layerNormEpsilon)),
            ("model_type", "\"gpt2\""),
            ("n_ctx", "\(nPositions)"),
            ("n_embd", "\(nEmbd)"),
            ("n_head", "\(nHead)"),
            ("n_inner", "null"),
            ("n_layer", "\(nLayer)"),
            ("n_positions", "\(nPositions)"),
            ("reorder_and_upcast_attn", "false"),
            ("resid_pdrop", num(residPdrop)),
            ("scale_attn_by_inverse_layer_idx", "false"),
            ("scale_attn_weights", "true"),
            ("summary_activation", "null"),
            ("summary_first_dropout", "0.1"),
            ("summary_proj_to_labels", "true"),
            ("summary_type", "\"cls_index\""),
            ("summary_use_proj", "true"),
            ("tie_word_embeddings", "true"),
            ("torch_dtype", "\"float32\""),
            ("use_cache", "true"),
            ("vocab_size", "\(vocabSize)"),
        ]
        let body = fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n")
        return Data("{\n\(body)\n}\n".utf8)
    }

    /// Writes `jsonData()` to `url`.
    public func write(to url: URL) throws {
        do { try jsonData().write(to: url) } catch {
            throw CheckpointError(file: url, problem: "cannot write: \(error.localizedDescription)", fix: "check that the folder is writable")
        }
    }

    /// Number of parameters (embeddings counted once: the output matrix is tied).
    public var parameterCount: Int { ParameterLayout(config: self).count }
}
