/// Where every GPT-2 parameter lives inside one flat Float buffer, in Hugging Face order and layout.
///
/// The same layout serves the parameters, their gradients and AdamW's two moments (separate buffers,
/// identical offsets), so a checkpoint is one copy per tensor, and a data-parallel gradient allreduce is one
/// call over `count` floats. Tensors are packed back to back, without padding, in the order of
/// `GPT2LMHeadModel.named_parameters()`:
///
///     transformer.wte.weight               (V, C)
///     transformer.wpe.weight               (maxT, C)
///     per layer l:
///       transformer.h.l.ln_1.weight        (C)
///       transformer.h.l.ln_1.bias          (C)
///       transformer.h.l.attn.c_attn.weight (C, 3C)   Conv1D [in, out]; columns q | k | v, heads contiguous in each
///       transformer.h.l.attn.c_attn.bias   (3C)
///       transformer.h.l.attn.c_proj.weight (C, C)
///       transformer.h.l.attn.c_proj.bias   (C)
///       transformer.h.l.ln_2.weight        (C)
///       transformer.h.l.ln_2.bias          (C)
///       transformer.h.l.mlp.c_fc.weight    (C, 4C)
///       transformer.h.l.mlp.c_fc.bias      (4C)
///       transformer.h.l.mlp.c_proj.weight  (4C, C)
///       transformer.h.l.mlp.c_proj.bias    (C)
///     transformer.ln_f.weight              (C)
///     transformer.ln_f.bias                (C)
///
/// Linear weights keep the Conv1D [in, out] layout: y = x·W + b with x (N, in) row-major.
/// The output projection is tied to `wte` (no separate lm_head tensor).
public struct ParameterLayout: Equatable, Sendable {
    /// One named tensor of the layout.
    public struct Tensor: Equatable, Sendable {
        /// Hugging Face name as `named_parameters()` gives it, with the `transformer.` prefix.
        public let name: String
        public let shape: [Int]
        /// Offset in floats from the start of the buffer.
        public let offset: Int
        public let count: Int
        /// The block this tensor belongs to, nil for the embeddings and ln_f.
        public let layer: Int?
        /// Whether the HF Trainer puts it in the weight-decay group (embeddings and the four weight matrices
        /// of each block; not biases, not LayerNorm parameters).
        public let decay: Bool
        public var range: Range<Int> { offset..<(offset + count) }
    }

    /// Offsets of one block's tensors (llm.c's names in the comments).
    public struct LayerOffsets: Equatable, Sendable {
        public let ln1Weight, ln1Bias: Int           // ln1w, ln1b   (C)
        public let attnWeight, attnBias: Int         // qkvw (C, 3C), qkvb (3C)
        public let attnProjWeight, attnProjBias: Int // attprojw (C, C), attprojb (C)
        public let ln2Weight, ln2Bias: Int           // ln2w, ln2b   (C)
        public let fcWeight, fcBias: Int             // fcw (C, 4C), fcb (4C)
        public let fcProjWeight, fcProjBias: Int     // fcprojw (4C, C), fcprojb (C)
    }

    public let config: GPT2Config
    /// All tensors in HF order.
    public let tensors: [Tensor]
    /// Total number of floats.
    public let count: Int
    public let wte: Int
    public let wpe: Int
    public let layers: [LayerOffsets]
    public let lnfWeight: Int
    public let lnfBias: Int

    /// The prefix HF's `GPT2LMHeadModel` puts on every parameter name.
    public static let prefix = "transformer."

    public init(config: GPT2Config) {
        let C = config.nEmbd, V = config.vocabSize, maxT = config.nPositions
        var tensors: [Tensor] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], layer: Int?, decay: Bool) -> Int {
            let n = shape.reduce(1, *)
            tensors.append(Tensor(name: Self.prefix + name, shape: shape, offset: offset, count: n, layer: layer, decay: decay))
            defer { offset += n }
            return offset
        }
        wte = add("wte.weight", [V, C], layer: nil, decay: true)
        wpe = add("wpe.weight", [maxT, C], layer: nil, decay: true)
        var layers: [LayerOffsets] = []
        for l in 0..<config.nLayer {
            let h = "h.\(l)."
            let ln1w = add(h + "ln_1.weight", [C], layer: l, decay: false)
            let ln1b = add(h + "ln_1.bias", [C], layer: l, decay: false)
            let qkvw = add(h + "attn.c_attn.weight", [C, 3 * C], layer: l, decay: true)
            let qkvb = add(h + "attn.c_attn.bias", [3 * C], layer: l, decay: false)
            let apw = add(h + "attn.c_proj.weight", [C, C], layer: l, decay: true)
            let apb = add(h + "attn.c_proj.bias", [C], layer: l, decay: false)
            let ln2w = add(h + "ln_2.weight", [C], layer: l, decay: false)
            let ln2b = add(h + "ln_2.bias", [C], layer: l, decay: false)
            let fcw = add(h + "mlp.c_fc.weight", [C, 4 * C], layer: l, decay: true)
            let fcb = add(h + "mlp.c_fc.bias", [4 * C], layer: l, decay: false)
            let fpw = add(h + "mlp.c_proj.weight", [4 * C, C], layer: l, decay: true)
            let fpb = add(h + "mlp.c_proj.bias", [C], layer: l, decay: false)
            layers.append(LayerOffsets(ln1Weight: ln1w, ln1Bias: ln1b, attnWeight: qkvw, attnBias: qkvb,
                                       attnProjWeight: apw, attnProjBias: apb, ln2Weight: ln2w, ln2Bias: ln2b,
                                       fcWeight: fcw, fcBias: fcb, fcProjWeight: fpw, fcProjBias: fpb))
        }
        lnfWeight = add("ln_f.weight", [C], layer: nil, decay: false)
        lnfBias = add("ln_f.bias", [C], layer: nil, decay: false)
        self.layers = layers
        self.tensors = tensors
        self.count = offset
        self.config = config
    }

    /// The tensor with HF name `name`, given with or without the `transformer.` prefix.
    public func tensor(named name: String) -> Tensor? {
        let full = name.hasPrefix(Self.prefix) ? name : Self.prefix + name
        return tensors.first { $0.name == full }
    }

    /// Number of floats in the weight-decay group.
    public var decayCount: Int { tensors.filter(\.decay).reduce(0) { $0 + $1.count } }

    /// Pointers to every tensor of a buffer laid out like this (parameters, gradients or moments).
    public func views(_ base: UnsafeMutablePointer<Float>) -> GPT2Tensors {
        GPT2Tensors(
            wte: base + wte, wpe: base + wpe,
            layers: layers.map { o in
                GPT2Tensors.Layer(ln1Weight: base + o.ln1Weight, ln1Bias: base + o.ln1Bias,
                                  attnWeight: base + o.attnWeight, attnBias: base + o.attnBias,
                                  attnProjWeight: base + o.attnProjWeight, attnProjBias: base + o.attnProjBias,
                                  ln2Weight: base + o.ln2Weight, ln2Bias: base + o.ln2Bias,
                                  fcWeight: base + o.fcWeight, fcBias: base + o.fcBias,
                                  fcProjWeight: base + o.fcProjWeight, fcProjBias: base + o.fcProjBias)
            },
            lnfWeight: base + lnfWeight, lnfBias: base + lnfBias)
    }
}

/// Named pointers into one buffer with `ParameterLayout`'s offsets (parameters, gradients or moments).
/// Shapes use C = n_embd, V = vocab_size, maxT = n_positions.
public struct GPT2Tensors: @unchecked Sendable {
    public struct Layer: @unchecked Sendable {
        public let ln1Weight: UnsafeMutablePointer<Float>      // (C)
        public let ln1Bias: UnsafeMutablePointer<Float>        // (C)
        public let attnWeight: UnsafeMutablePointer<Float>     // (C, 3C)  [in, out]
        public let attnBias: UnsafeMutablePointer<Float>       // (3C)
        public let attnProjWeight: UnsafeMutablePointer<Float> // (C, C)   [in, out]
        public let attnProjBias: UnsafeMutablePointer<Float>   // (C)
        public let ln2Weight: UnsafeMutablePointer<Float>      // (C)
        public let ln2Bias: UnsafeMutablePointer<Float>        // (C)
        public let fcWeight: UnsafeMutablePointer<Float>       // (C, 4C)  [in, out]
        public let fcBias: UnsafeMutablePointer<Float>         // (4C)
        public let fcProjWeight: UnsafeMutablePointer<Float>   // (4C, C)  [in, out]
        public let fcProjBias: UnsafeMutablePointer<Float>     // (C)
    }
    public let wte: UnsafeMutablePointer<Float>                // (V, C), also the tied output matrix
    public let wpe: UnsafeMutablePointer<Float>                // (maxT, C)
    public let layers: [Layer]
    public let lnfWeight: UnsafeMutablePointer<Float>          // (C)
    public let lnfBias: UnsafeMutablePointer<Float>            // (C)
}
