import Numerics

/// Every intermediate value of one forward pass for a batch of B rows × T positions, in one allocation, with
/// the scratch the backward pass needs. N = B·T, C = n_embd, L = n_layer, NH = n_head, V = vocab_size.
/// Names in the comments are TransformerLens hook names.
///
/// `reshape(B:T:fullLogits:)` lays the views out for a batch shape; the buffer is reallocated only when the
/// shape needs more floats than it holds, so steps of one shape never allocate. Views stay valid until the
/// next reshape that reallocates.
public final class GPT2Activations: @unchecked Sendable {
    public struct Layer {
        public var ln1: UnsafeMutablePointer<Float>        // (N, C)      blocks.l.ln1.hook_normalized
        public var ln1Mean: UnsafeMutablePointer<Float>    // (N)
        public var ln1Rstd: UnsafeMutablePointer<Float>    // (N)         1 / blocks.l.ln1.hook_scale
        public var qkv: UnsafeMutablePointer<Float>        // (N, 3C)     hook_q | hook_k | hook_v, heads contiguous
        public var attY: UnsafeMutablePointer<Float>       // (N, C)      blocks.l.attn.hook_z (flattened heads)
        public var att: UnsafeMutablePointer<Float>        // (B, NH, T, T) blocks.l.attn.hook_pattern
        public var residMid: UnsafeMutablePointer<Float>   // (N, C)      blocks.l.hook_resid_mid
        public var ln2: UnsafeMutablePointer<Float>        // (N, C)      blocks.l.ln2.hook_normalized
        public var ln2Mean: UnsafeMutablePointer<Float>    // (N)
        public var ln2Rstd: UnsafeMutablePointer<Float>    // (N)
        public var mlpPre: UnsafeMutablePointer<Float>     // (N, 4C)     blocks.l.mlp.hook_pre
        public var mlpPost: UnsafeMutablePointer<Float>    // (N, 4C)     blocks.l.mlp.hook_post
        public var residPost: UnsafeMutablePointer<Float>  // (N, C)      blocks.l.hook_resid_post
    }

    public let config: GPT2Config
    public private(set) var B = 0
    public private(set) var T = 0
    /// Whether `logits` holds (N, V) (training, all positions) or (B, V) (one chosen position per row).
    public private(set) var fullLogits = true
    /// Worker count the scratch is sized for.
    public private(set) var threads = 1

    public private(set) var embedded: UnsafeMutablePointer<Float>!   // (N, C)   blocks.0.hook_resid_pre
    public private(set) var layers: [Layer] = []
    public private(set) var lnf: UnsafeMutablePointer<Float>!        // (N, C)   ln_final.hook_normalized (or (B, C) at chosen positions)
    public private(set) var lnfMean: UnsafeMutablePointer<Float>!    // (N)
    public private(set) var lnfRstd: UnsafeMutablePointer<Float>!    // (N)
    public private(set) var gathered: UnsafeMutablePointer<Float>!   // (B, C)   final residual at the chosen positions
    public private(set) var logits: UnsafeMutablePointer<Float>!     // (N, V) or (B, V); overwritten by dlogits in backward
    public private(set) var ceStats: UnsafeMutablePointer<Float>!    // (2N)     row max and 1/Σexp for the backward
    // Backward scratch.
    public private(set) var dResid: UnsafeMutablePointer<Float>!     // (N, C)   gradient flowing down the residual stream
    public private(set) var dBuf: UnsafeMutablePointer<Float>!       // (N, C)   d(ln output) / d(attn z)
    public private(set) var dQKV: UnsafeMutablePointer<Float>!       // (N, 3C)
    public private(set) var dMLP: UnsafeMutablePointer<Float>!       // (N, 4C)
    public private(set) var lnScratch: UnsafeMutablePointer<Float>!  // (threads, 2C)
    public private(set) var attScratch: UnsafeMutablePointer<Float>! // (B, NH, T, T)

    /// Token ids (N), targets (N, −1 = no label), row lengths (B) and per-row losses (N).
    public private(set) var tokens: UnsafeMutablePointer<Int32>!
    public private(set) var targets: UnsafeMutablePointer<Int32>!
    public private(set) var lengths: UnsafeMutablePointer<Int32>!
    public private(set) var losses: UnsafeMutablePointer<Double>!

    private var storage: FloatBuffer?
    private var ints: UnsafeMutablePointer<Int32>?
    private var intCapacity = 0
    private var doubles: UnsafeMutablePointer<Double>?
    private var doubleCapacity = 0

    public init(config: GPT2Config) { self.config = config }

    deinit {
        ints?.deallocate()
        doubles?.deallocate()
    }

    /// Floats currently allocated.
    public var capacity: Int { storage?.count ?? 0 }

    /// Floats a shape needs.
    public static func floatsNeeded(config: GPT2Config, B: Int, T: Int, fullLogits: Bool, threads: Int) -> Int {
        let C = config.nEmbd, N = B * T, L = config.nLayer, NH = config.nHead, V = config.vocabSize
        let perLayer = N * C * 5 + N * 4 + N * 3 * C + NH * B * T * T + N * 8 * C
        let logits = (fullLogits ? N : B) * V
        let backward = N * C * 2 + N * 3 * C + N * 4 * C + threads * 2 * C + NH * B * T * T
        return N * C + L * perLayer + N * C + 2 * N + B * C + logits + 2 * N + backward
    }

    /// Lays the views out for (B, T), reallocating only when more floats are needed than are held.
    public func reshape(B: Int, T: Int, fullLogits: Bool, threads: Int) {
        let threads = max(1, threads)
        if B == self.B && T == self.T && fullLogits == self.fullLogits && threads == self.threads && storage != nil { return }
        let need = Self.floatsNeeded(config: config, B: B, T: T, fullLogits: fullLogits, threads: threads)
        if need > capacity { storage = nil; storage = FloatBuffer(count: need) }
        let N = B * T
        if 3 * N + B > intCapacity {
            ints?.deallocate()
            intCapacity = 3 * N + B
            ints = .allocate(capacity: intCapacity)
        }
        if N > doubleCapacity {
            doubles?.deallocate()
            doubleCapacity = N
            doubles = .allocate(capacity: N)
        }
        self.B = B; self.T = T; self.fullLogits = fullLogits; self.threads = threads
        let C = config.nEmbd, NH = config.nHead, V = config.vocabSize
        var p = storage!.base
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { p += n }; return p }
        embedded = take(N * C)
        layers = (0..<config.nLayer).map { _ in
            Layer(ln1: take(N * C), ln1Mean: take(N), ln1Rstd: take(N), qkv: take(N * 3 * C), attY: take(N * C),
                  att: take(NH * B * T * T), residMid: take(N * C), ln2: take(N * C), ln2Mean: take(N), ln2Rstd: take(N),
                  mlpPre: take(N * 4 * C), mlpPost: take(N * 4 * C), residPost: take(N * C))
        }
        lnf = take(N * C); lnfMean = take(N); lnfRstd = take(N)
        gathered = take(B * C)
        logits = take((fullLogits ? N : B) * V)
        ceStats = take(2 * N)
        dResid = take(N * C); dBuf = take(N * C); dQKV = take(N * 3 * C); dMLP = take(N * 4 * C)
        lnScratch = take(threads * 2 * C); attScratch = take(NH * B * T * T)
        precondition(p - storage!.base <= storage!.count)
        tokens = ints!; targets = ints! + N; lengths = ints! + 2 * N
        losses = doubles!
    }

    /// The residual stream entering block `l` (`blocks.l.hook_resid_pre`).
    public func residPre(_ l: Int) -> UnsafeMutablePointer<Float> { l == 0 ? embedded : layers[l - 1].residPost }

    /// The final residual stream (`blocks.{L−1}.hook_resid_post`), input of ln_f.
    public var residFinal: UnsafeMutablePointer<Float> { residPre(config.nLayer) }
}

extension GPT2Activations {
    /// One line of a matched trace: a TransformerLens hook name, the shape, and the sum of the values
    /// (in Double) over real positions only (padded positions differ between implementations by design).
    public struct TraceLine: Sendable {
        public let hook: String
        public let shape: [Int]
        public let sum: Double
        public init(hook: String, shape: [Int], sum: Double) {
            self.hook = hook
            self.shape = shape
            self.sum = sum
        }
        public var text: String { "\(hook) \(shape) \(String(format: "%.9g", sum))" }
    }

    /// `hook-name shape sum` for every stored activation of the last forward pass, in computation order,
    /// so two implementations can be compared hook by hook. Sums skip padded positions.
    public func trace() -> [TraceLine] {
        let C = config.nEmbd, NH = config.nHead, hs = C / NH
        var lines: [TraceLine] = []
        func rows(_ name: String, _ p: UnsafePointer<Float>, width: Int, shape: [Int]) {
            var s = 0.0
            for b in 0..<B {
                for t in 0..<Int(lengths[b]) {
                    let r = p + (b * T + t) * width
                    for i in 0..<width { s += Double(r[i]) }
                }
            }
            lines.append(TraceLine(hook: name, shape: shape, sum: s))
        }
        rows("blocks.0.hook_resid_pre", embedded, width: C, shape: [B, T, C])
        for (l, a) in layers.enumerated() {
            let h = "blocks.\(l)."
            rows(h + "ln1.hook_normalized", a.ln1, width: C, shape: [B, T, C])
            for (k, name) in ["hook_q", "hook_k", "hook_v"].enumerated() {
                var s = 0.0
                for b in 0..<B {
                    for t in 0..<Int(lengths[b]) {
                        let r = a.qkv + (b * T + t) * 3 * C + k * C
                        for i in 0..<C { s += Double(r[i]) }
                    }
                }
                lines.append(TraceLine(hook: h + "attn." + name, shape: [B, T, NH, hs], sum: s))
            }
            var ps = 0.0
            for b in 0..<B {
                for hh in 0..<NH {
                    for i in 0..<Int(lengths[b]) {
                        let r = a.att + ((b * NH + hh) * T + i) * T
                        for j in 0..<T { ps += Double(r[j]) }
                    }
                }
            }
            lines.append(TraceLine(hook: h + "attn.hook_pattern", shape: [B, NH, T, T], sum: ps))
            rows(h + "attn.hook_z", a.attY, width: C, shape: [B, T, NH, hs])
            rows(h + "hook_resid_mid", a.residMid, width: C, shape: [B, T, C])
            rows(h + "ln2.hook_normalized", a.ln2, width: C, shape: [B, T, C])
            rows(h + "mlp.hook_pre", a.mlpPre, width: 4 * C, shape: [B, T, 4 * C])
            rows(h + "mlp.hook_post", a.mlpPost, width: 4 * C, shape: [B, T, 4 * C])
            rows(h + "hook_resid_post", a.residPost, width: C, shape: [B, T, C])
        }
        if fullLogits { rows("ln_final.hook_normalized", lnf, width: C, shape: [B, T, C]) }
        return lines
    }
}
