import CKernels

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
/// an output's terms is formed first and added to its start last, in a fixed order, so results do not depend on the
/// thread count. They may differ in the last bits between CPUs: the loops are C (`CKernels`), compiled per x86-64
/// level with fused multiply-adds where the level has them. `dst` of an output must not overlap `base` or `sources`
/// unless it is the only output and equals `base`.
public enum WeightedSums {
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

    /// total[i] = base[i] + Σ_{f < rows} sources[f · stride + i], i < count (the C kernel, in row order).
    @inline(__always)
    static func sumRows(into total: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>, sources: UnsafePointer<Float>,
                        stride: Int, rows: Int, count: Int) {
        dkc_sum_rows(total, base, sources, stride, rows, count)
    }

    /// dst[i] = start[i] + Σ_t coefficients[t] · sources[indices[t] · stride + i], i < count (the C kernel: 64 floats
    /// at a time in registers, even and odd terms in two partial sums).
    @inline(__always)
    static func weightedSum(into dst: UnsafeMutablePointer<Float>, start: UnsafePointer<Float>, sources: UnsafePointer<Float>,
                            stride: Int, indices: UnsafePointer<Int32>, coefficients: UnsafePointer<Float>, terms: Int, count: Int) {
        dkc_weighted_sum(dst, start, sources, stride, indices, coefficients, terms, count)
    }
}
