import Foundation
import Numerics

/// One contiguous buffer of `layout.count` floats with named views: the parameters of a GPT-2, or its
/// gradients, or an AdamW moment (all share `ParameterLayout`). Loading checkpoint after checkpoint copies
/// into the same arena; the buffer is allocated once and never moves, so pointers from `views` stay valid
/// for the arena's lifetime.
public final class ParameterArena: ParameterStore, @unchecked Sendable {
    public let layout: ParameterLayout
    public let storage: FloatBuffer
    /// Named pointers into `storage`.
    public let views: GPT2Tensors

    /// A zero-filled arena for `layout`.
    public init(layout: ParameterLayout) {
        self.layout = layout
        storage = FloatBuffer(count: layout.count)
        views = layout.views(storage.base)
    }

    public convenience init(config: GPT2Config) { self.init(layout: ParameterLayout(config: config)) }

    public var config: GPT2Config { layout.config }

    /// Copies every float of `other`, which must have the same layout.
    public func copy(from other: ParameterArena) {
        precondition(other.layout == layout, "copy between arenas of different layouts")
        memcpy(storage.base, other.storage.base, layout.count * MemoryLayout<Float>.stride)
    }

    /// Fills the parameters the way `GPT2LMHeadModel(config)` initialises them (not the same random numbers):
    /// every linear weight and both embeddings ~ N(0, initializer_range²), the two residual projections
    /// (`attn.c_proj.weight`, `mlp.c_proj.weight`) ~ N(0, (initializer_range / √(2·n_layer))²), biases 0,
    /// LayerNorm weights 1 and biases 0. Deterministic in `seed`.
    public func initializeGPT2(seed: UInt64) {
        let cfg = layout.config
        let std = Float(cfg.initializerRange)
        let projStd = Float(cfg.initializerRange / (2.0 * Double(cfg.nLayer)).squareRoot())
        var rng = SplitMix64(seed: seed)
        for t in layout.tensors {
            let p = pointer(t)
            let leaf = t.name.split(separator: ".").suffix(2).joined(separator: ".")
            if t.name.contains(".ln_") {
                let v: Float = t.name.hasSuffix(".weight") ? 1 : 0
                for i in 0..<t.count { p[i] = v }
            } else if t.name.hasSuffix(".bias") {
                for i in 0..<t.count { p[i] = 0 }
            } else {
                let s = leaf == "c_proj.weight" ? projStd : std
                for i in 0..<t.count { p[i] = s * rng.nextGaussian() }
            }
        }
    }
}
