import Foundation

/// Rotary position embeddings in the `rotate_half` layout (Llama and Phi as transformers and TransformerLens
/// run them): inside each head the first `rotaryDim` dimensions rotate, dimension i pairing with i + rotaryDim/2;
/// the rest pass unchanged. For i < rotaryDim/2 at position p, with θᵢ = base^(−2i / rotaryDim):
///
///     x'[i]        = x[i] · cos(p·θᵢ) − x[i + half] · sin(p·θᵢ)
///     x'[i + half] = x[i + half] · cos(p·θᵢ) + x[i] · sin(p·θᵢ)
public struct RotaryTable: Sendable {
    public let rotaryDim: Int
    public let positions: Int
    /// (positions, rotaryDim / 2) each; angles computed in Double, then rounded.
    public let cos: [Float]
    public let sin: [Float]

    public init(rotaryDim: Int, base: Double, positions: Int) {
        precondition(rotaryDim >= 2 && rotaryDim % 2 == 0 && positions >= 1)
        let half = rotaryDim / 2
        var c = [Float](repeating: 0, count: positions * half), s = c
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Double(p) * Foundation.pow(base, -2 * Double(i) / Double(rotaryDim))
                c[p * half + i] = Float(Foundation.cos(angle))
                s[p * half + i] = Float(Foundation.sin(angle))
            }
        }
        self.rotaryDim = rotaryDim
        self.positions = positions
        cos = c
        sin = s
    }
}

public enum Rotary {
    /// Rotates, in place, `heads` heads of `headSize` floats in each of the N = B·T rows of `x` (row stride `rowStride`,
    /// heads contiguous from the row start); row n is at position n mod T. `inverse` applies the transpose
    /// (rotation by −p·θ), which is the backward pass of the forward rotation.
    public static func apply(_ x: UnsafeMutablePointer<Float>, table: RotaryTable, N: Int, T: Int, heads: Int, headSize: Int,
                             rowStride: Int, inverse: Bool = false, threads: Int) {
        precondition(T <= table.positions && table.rotaryDim <= headSize)
        let half = table.rotaryDim / 2
        let sign: Float = inverse ? -1 : 1
        table.cos.withUnsafeBufferPointer { cosT in
            table.sin.withUnsafeBufferPointer { sinT in
                Parallel.pieces(N, threads: threads, minPerPiece: max(1, 4096 / max(1, heads * headSize))) { rows in
                    for n in rows {
                        rotate(x + n * rowStride, cos: cosT.baseAddress! + (n % T) * half, sin: sinT.baseAddress! + (n % T) * half,
                               half: half, heads: heads, headSize: headSize, sign: sign)
                    }
                }
            }
        }
    }

    /// Rotates, in place, the `heads` heads of one row `x` sitting at `position` (the decoder's new token).
    public static func apply(row x: UnsafeMutablePointer<Float>, position: Int, table: RotaryTable, heads: Int, headSize: Int) {
        precondition(position >= 0 && position < table.positions && table.rotaryDim <= headSize)
        let half = table.rotaryDim / 2
        table.cos.withUnsafeBufferPointer { cosT in
            table.sin.withUnsafeBufferPointer { sinT in
                rotate(x, cos: cosT.baseAddress! + position * half, sin: sinT.baseAddress! + position * half,
                       half: half, heads: heads, headSize: headSize, sign: 1)
            }
        }
    }

    @inline(__always)
    private static func rotate(_ row: UnsafeMutablePointer<Float>, cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>,
                               half: Int, heads: Int, headSize: Int, sign: Float) {
        for h in 0..<heads {
            let v = row + h * headSize
            for i in 0..<half {
                let a = v[i], b = v[i + half], sn = sign * s[i]
                v[i] = a * c[i] - b * sn
                v[i + half] = b * c[i] + a * sn
            }
        }
    }
}
