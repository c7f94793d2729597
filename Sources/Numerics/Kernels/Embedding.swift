/// Token plus position embedding (positions 0 ..< T for every row, as HF derives them regardless of padding).
public enum Embedding {
    /// `out (B, T, C) = wte[tokens[b, t]] + wpe[t]`; tokens (B, T) must be valid ids.
    /// TransformerLens: `hook_embed` + `hook_pos_embed` = `blocks.0.hook_resid_pre`.
    public static func forward(out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>,
                               wte: UnsafePointer<Float>, wpe: UnsafePointer<Float>,
                               B: Int, T: Int, C: Int, threads: Int) {
        Parallel.pieces(B * T, threads: threads, minPerPiece: 64) { rows in
            for n in rows {
                let e = wte + Int(tokens[n]) * C, p = wpe + (n % T) * C, o = out + n * C
                for i in 0..<C { o[i] = e[i] + p[i] }
            }
        }
    }

    /// `dwte[tokens[b, t]] += dout[b, t]`, `dwpe[t] += Σ_b dout[b, t]` (columns split across threads, so
    /// repeated tokens never race).
    public static func backward(dwte: UnsafeMutablePointer<Float>, dwpe: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, tokens: UnsafePointer<Int32>,
                                B: Int, T: Int, C: Int, threads: Int) {
        Parallel.pieces(C, threads: threads, minPerPiece: 64) { cols in
            let c0 = cols.lowerBound, w = cols.count
            for n in 0..<(B * T) {
                let d = dout + n * C + c0
                let e = dwte + Int(tokens[n]) * C + c0, p = dwpe + (n % T) * C + c0
                for i in 0..<w { e[i] += d[i]; p[i] += d[i] }
            }
        }
    }
}
