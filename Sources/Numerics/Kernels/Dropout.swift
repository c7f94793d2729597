import Foundation

/// Training-time dropout as `transformers`' GPT-2 (and Phi; Llama: the attention probabilities only) applies
/// it (inverted: kept values are scaled by 1 / (1 − p)), at its three places: the embeddings (`embd`), the
/// attention probabilities (`attn`) and the output of each block's two residual branches (`resid`).
///
/// Masks are not stored: the keep decision of an element is a hash of (seed, the row's key, the site,
/// the element's index), so backward regenerates the forward's mask, and a row gets the same mask
/// whichever rank or micro-batch runs it (the trainer keys rows by optimizer step and position in the
/// global batch). The probabilities are those of the model's config (`resid_pdrop`, `embd_pdrop`,
/// `attn_pdrop`); evaluation, attribution and generation never use dropout.
public struct DropoutPlan: Equatable, Sendable {
    public var embd: Float
    public var attn: Float
    public var resid: Float
    public var seed: UInt64
    /// One key per batch row.
    public var rowKeys: [UInt64]

    public init(embd: Float, attn: Float, resid: Float, seed: UInt64, rowKeys: [UInt64]) {
        self.embd = embd; self.attn = attn; self.resid = resid; self.seed = seed; self.rowKeys = rowKeys
    }

    public var isActive: Bool { embd > 0 || attn > 0 || resid > 0 }

    /// The places masks are drawn for; with the layer they make a mask's site.
    package enum Place: UInt64 { case embedding = 1, attention = 2, attentionOutput = 3, mlpOutput = 4 }

    /// The key of row `b`'s mask at a place of a layer (and head, for attention).
    package func key(row b: Int, _ place: Place, layer: Int = 0, head: Int = 0) -> UInt64 {
        Dropout.mix(Dropout.mix(Dropout.mix(seed ^ rowKeys[b]) ^ (place.rawValue << 56 | UInt64(layer) << 24 | UInt64(head))))
    }
}

public enum Dropout {
    /// SplitMix64's finaliser: a bijective 64-bit mixer.
    @inline(__always)
    @usableFromInline static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Whether element `i` of the mask `key` is kept with drop probability `p`: a uniform draw in [0, 1) from
    /// 24 hashed bits, kept when ≥ p.
    @inlinable @inline(__always)
    public static func keeps(key: UInt64, index i: Int, p: Float) -> Bool {
        Float(mix(key ^ UInt64(truncatingIfNeeded: i) &* 0xD6E8_FEB8_6659_FD93) >> 40) * 0x1.0p-24 >= p
    }

    /// `x[i] *= keep(i) / (1 − p)` for i in 0..<count.
    @inlinable @inline(__always)
    public static func apply(_ x: UnsafeMutablePointer<Float>, count: Int, p: Float, key: UInt64) {
        let scale = 1 / (1 - p)
        for i in 0..<count { x[i] = keeps(key: key, index: i, p: p) ? x[i] * scale : 0 }
    }

    /// `row[j] *= keep(rowStart + j) / (1 − p)` for j in `range`: `apply` on part of a row of a larger mask.
    @inlinable @inline(__always)
    public static func applyRange(_ row: UnsafeMutablePointer<Float>, range: Range<Int>, rowStart: Int, p: Float, key: UInt64) {
        let scale = 1 / (1 - p)
        for j in range { row[j] = keeps(key: key, index: rowStart + j, p: p) ? row[j] * scale : 0 }
    }

    /// `out[i] = residual[i] + keep(i) / (1 − p) · out[i]` for i in 0..<count: a residual branch's output
    /// dropped and added.
    @inlinable @inline(__always)
    package static func applyAdding(_ out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>, count: Int, p: Float, key: UInt64) {
        let scale = 1 / (1 - p)
        for i in 0..<count { out[i] = residual[i] + (keeps(key: key, index: i, p: p) ? out[i] * scale : 0) }
    }

    /// `out[i] = keep(i) / (1 − p) · inp[i]` for i in 0..<count.
    @inlinable @inline(__always)
    package static func copy(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int, p: Float, key: UInt64) {
        let scale = 1 / (1 - p)
        for i in 0..<count { out[i] = keeps(key: key, index: i, p: p) ? inp[i] * scale : 0 }
    }
}
