/// Sparse weighted sums of equal-length source rows, for the patched runs' rebuilt inputs.
///
/// Contract: `sources` holds rows f = 0..<`sourceRows` of `count` floats each, `stride` floats apart. Output k is
///
///     dst_k = start_k + Σ_{t ∈ terms_k} coefficients[t] · sources[indices[t]]
///
/// with start_k = `base` or, when `fromTotal`, base + Σ_{f < sourceRows} sources[f] (the total, formed once per block
/// for every output that asks for it). A patch whose coefficient matrix is mostly ones (a circuit that keeps a few
/// of many edges) is then a sum over its few zeros: start from the total and subtract those rows.
///
/// The work goes in blocks of `count` small enough that every source's part of a block stays in the core's cache
/// while all outputs read it; each output's part of a block is summed in registers and written once. The sum over
/// a output's terms is formed first and added to its start last, in term order, so results do not depend on the
/// thread count. `dst` of an output must not overlap `base` or `sources` unless it is the only output and equals `base`.
public enum WeightedSums {
    public typealias V16 = SIMD16<Float>

    public struct Output {
        public var dst: UnsafeMutablePointer<Float>
        public var fromTotal: Bool
        /// Range into `indices` / `coefficients`.
        public var terms: Range<Int>
        public init(dst: UnsafeMutablePointer<Float>, fromTotal: Bool, terms: Range<Int>) {
            self.dst = dst
            self.fromTotal = fromTotal
            self.terms = terms
        }
    }

    /// Floats per block for `sourceRows` sources: about 384 KiB of source data per block, a multiple of 64, 64–4,096.
    @inlinable
    public static func blockLength(sourceRows: Int) -> Int {
        max(64, min(4096, (96 * 1024 / max(1, sourceRows)) / 64 * 64))
    }

    public static func run(_ outputs: [Output], indices: [Int32], coefficients: [Float], base: UnsafePointer<Float>,
                           sources: UnsafePointer<Float>, stride: Int, sourceRows: Int, count: Int, threads: Int) {
        precondition(indices.count == coefficients.count, "one coefficient per term")
        precondition(outputs.allSatisfy { $0.terms.lowerBound >= 0 && $0.terms.upperBound <= indices.count }, "term range out of bounds")
        precondition(indices.allSatisfy { $0 >= 0 && Int($0) < sourceRows }, "term index out of bounds")
        guard count > 0, !outputs.isEmpty else { return }
        let needTotal = outputs.contains { $0.fromTotal }
        let block = blockLength(sourceRows: sourceRows), nBlocks = (count + block - 1) / block
        indices.withUnsafeBufferPointer { idx in
            coefficients.withUnsafeBufferPointer { coef in
                Parallel.pieces(nBlocks, threads: threads) { blocks in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: needTotal ? block : 1) { totalBuffer in
                        let total = totalBuffer.baseAddress!
                        for blk in blocks {
                            let i0 = blk * block, n = min(block, count - i0)
                            if needTotal {
                                sumRows(into: total, base: base + i0, sources: sources + i0, stride: stride, rows: sourceRows, count: n)
                            }
                            for o in outputs {
                                let start = o.fromTotal ? UnsafePointer(total) : base + i0
                                weightedSum(into: o.dst + i0, start: start, sources: sources + i0, stride: stride,
                                            indices: idx.baseAddress! + o.terms.lowerBound,
                                            coefficients: coef.baseAddress! + o.terms.lowerBound, terms: o.terms.count, count: n)
                            }
                        }
                    }
                }
            }
        }
    }

    /// total[i] = base[i] + Σ_{f < rows} sources[f · stride + i], i < count.
    @inline(__always)
    static func sumRows(into total: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>, sources: UnsafePointer<Float>,
                        stride: Int, rows: Int, count: Int) {
        total.update(from: base, count: count)
        for f in 0..<rows {
            let s = sources + f * stride
            var i = 0
            while i + 16 <= count { store(load(total + i) + load(s + i), total + i); i += 16 }
            while i < count { total[i] += s[i]; i += 1 }
        }
    }

    /// dst[i] = start[i] + Σ_t coefficients[t] · sources[indices[t] · stride + i], i < count, 64 floats at a time in
    /// registers.
    @inline(__always)
    static func weightedSum(into dst: UnsafeMutablePointer<Float>, start: UnsafePointer<Float>, sources: UnsafePointer<Float>,
                            stride: Int, indices: UnsafePointer<Int32>, coefficients: UnsafePointer<Float>, terms: Int, count: Int) {
        var i = 0
        while i + 64 <= count {
            var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16()
            for t in 0..<terms {
                let s = sources + Int(indices[t]) * stride + i, c = V16(repeating: coefficients[t])
                a0 += c * load(s); a1 += c * load(s + 16); a2 += c * load(s + 32); a3 += c * load(s + 48)
            }
            store(load(start + i) + a0, dst + i); store(load(start + i + 16) + a1, dst + i + 16)
            store(load(start + i + 32) + a2, dst + i + 32); store(load(start + i + 48) + a3, dst + i + 48)
            i += 64
        }
        while i < count {
            var a: Float = 0
            for t in 0..<terms { a += coefficients[t] * sources[Int(indices[t]) * stride + i] }
            dst[i] = start[i] + a
            i += 1
        }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V16 { UnsafeRawPointer(p).loadUnaligned(as: V16.self) }
    @inline(__always)
    static func store(_ v: V16, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self) }
}
