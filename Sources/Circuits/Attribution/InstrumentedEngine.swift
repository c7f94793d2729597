import Foundation
import Numerics

/// What the two instrumented models (`InstrumentedGPT2`, `InstrumentedFamily`) share: their dimensions, the
/// activation buffers of the last forward pass and the bookkeeping of its batch, and the hooks of the
/// `InstrumentedModel` contract that do not depend on the architecture — recording node outputs, rebuilding the
/// downstream inputs a patch names, gathering the read-out rows of the final residual, and the checks a backward
/// pass starts with. Each model adds its own parameters, blocks and norms.
public class InstrumentedEngine: @unchecked Sendable {
    public let graph: AttributionGraph
    /// Workers for the non-GEMM kernels (OpenBLAS uses its own setting).
    public var threads: Int
    let L: Int, H: Int, C: Int, dh: Int, V: Int, F: Int
    let eps: Float
    /// Folded attention output bias b_O' per layer.   // (L, C)
    let foldedBias: FloatBuffer
    /// Whether the model keeps `residMid` (the residual between attention and MLP; Phi's parallel block has none).
    let keepsResidMid: Bool

    // Activations of the last forward pass; row strides use `capacity` (≥ B·T).
    final var capacity = 0, batchCapacity = 0, seqCapacity = 0
    final var resid = FloatBuffer(count: 0)       // (L+1, BT, C)  x_ℓ, the input of block ℓ; x_L the final residual
    final var residMid = FloatBuffer(count: 0)    // (L, BT, C)    x_ℓ + attention output (blocks.ℓ.hook_resid_mid)
    final var norm1Stats = FloatBuffer(count: 0)  // (L, 2, BT)    mean (LayerNorm), rstd of the attention norm's input
    final var norm2Stats = FloatBuffer(count: 0)  // (L, 2, BT)    mean (LayerNorm), rstd of the MLP norm's input
    final var qkv = FloatBuffer(count: 0)         // (L, BT, 3C)   q | k | v per head
    final var pattern = FloatBuffer(count: 0)     // (L, B, H, T, T) blocks.ℓ.attn.hook_pattern
    final var mlpPre = FloatBuffer(count: 0)      // (L, BT, F)    the MLP's first projection (blocks.ℓ.mlp.hook_pre)
    final var scratchC = FloatBuffer(count: 0)    // (4, BT, C)    norm / z / head or MLP output / attention output
    final var scratchF = FloatBuffer(count: 0)    // (BT, F)
    final var statScratch = FloatBuffer(count: 0) // (2, 2, BT)    norm stats of rebuilt inputs (one pair per side: forEachRebuiltColumn)
    final var patchInputs = FloatBuffer(count: 0) // (3H + 1, BT, C) rebuilt head inputs and the MLP's partial sum (patched runs)
    final var lnfIn = FloatBuffer(count: 0)       // (B, C)        final residual at the read-out rows
    final var lnfOut = FloatBuffer(count: 0)      // (B, C)
    final var lnfStats = FloatBuffer(count: 0)    // (2, B)
    /// Logits of the last forward pass at the read-out positions.   // (B, V)
    public internal(set) final var logits = FloatBuffer(count: 0)
    // Backward scratch.
    final var dResid = FloatBuffer(count: 0)      // (BT, C)
    final var dMid = FloatBuffer(count: 0)        // (BT, C)
    final var dTmp = FloatBuffer(count: 0)        // (BT, C)
    final var dQKV = FloatBuffer(count: 0)        // (BT, 3C)
    final var dLnf = FloatBuffer(count: 0)        // (B, C)
    final var attScratch = FloatBuffer(count: 0)  // (B, H, T, T)  Attention.backward's per-head blocks

    /// How often the activation buffers were (re)allocated: once per run whose batches were reserved up front.
    package private(set) final var bufferGrowths = 0

    final var lastBatch: PromptBatch?
    final var lastLengths: [Int32] = []
    final var lastWasPatched = false
    /// Whether the last forward ran its last MLP at the read-out rows only (GPT-2's `readOutOnly`): its
    /// activations then hold those rows alone, gathered, and the backward pass takes that MLP on those rows.
    final var lastMLPReadOutOnly = false
    final var lastReplaced: Set<Int> = []

    init(graph: AttributionGraph, threads: Int, layers L: Int, heads H: Int, width C: Int, headSize dh: Int, vocab V: Int,
         mlpWidth F: Int, eps: Float, keepsResidMid: Bool) {
        self.graph = graph
        self.threads = max(1, threads)
        self.L = L; self.H = H; self.C = C; self.dh = dh; self.V = V; self.F = F
        self.eps = eps
        self.keepsResidMid = keepsResidMid
        foldedBias = FloatBuffer(count: L * C)
    }

    /// Width of the residual stream (d_model).
    public final var dModel: Int { C }
    /// Vocabulary size (columns of the logits).
    public final var vocabSize: Int { V }
    /// Logits of the last forward pass at the read-out positions, `(B, V)`.
    public final var readOutLogits: UnsafeMutablePointer<Float> { logits.base }

    /// The folded output bias b_O' of layer `l`.
    public final func foldedOutputBias(layer l: Int) -> [Float] { Array(UnsafeBufferPointer(start: foldedBias.base + l * C, count: C)) }

    /// Grows the buffers to hold a batch of B sequences of T tokens (never shrinks them).
    final func ensureCapacity(B: Int, T: Int) { ensureCapacity(rows: B * T, batch: B, seqLen: T) }

    /// Sizes the buffers once for every batch of `shapes` (sequences, padded length), so a run whose batches grow
    /// (length-ordered batches run shortest first) does not reallocate and refill them batch after batch.
    public final func reserve(_ shapes: [(batch: Int, seqLen: Int)]) {
        guard let rows = shapes.map({ $0.batch * $0.seqLen }).max() else { return }
        ensureCapacity(rows: rows, batch: shapes.map(\.batch).max()!, seqLen: shapes.map(\.seqLen).max()!)
    }

    /// Grows the buffers to hold `rows` token rows in batches of up to B sequences of up to T tokens.
    final func ensureCapacity(rows: Int, batch B: Int, seqLen T: Int) {
        if B * H * T * T > attScratch.count { attScratch = FloatBuffer(count: B * H * T * T) }
        guard rows > capacity || B > batchCapacity || T > seqCapacity else { return }
        let nB = max(B, batchCapacity), nT = max(T, seqCapacity), nBT = max(rows, capacity)
        bufferGrowths += 1
        capacity = nBT; batchCapacity = nB; seqCapacity = nT
        resid = FloatBuffer(count: (L + 1) * nBT * C)
        residMid = FloatBuffer(count: keepsResidMid ? L * nBT * C : 0)
        norm1Stats = FloatBuffer(count: L * 2 * nBT)
        norm2Stats = FloatBuffer(count: L * 2 * nBT)
        qkv = FloatBuffer(count: L * nBT * 3 * C)
        pattern = FloatBuffer(count: L * nB * H * nT * nT)
        mlpPre = FloatBuffer(count: L * nBT * F)
        scratchC = FloatBuffer(count: 4 * nBT * C)
        scratchF = FloatBuffer(count: nBT * F)
        statScratch = FloatBuffer(count: 4 * nBT)
        patchInputs = FloatBuffer(count: 0)
        lnfIn = FloatBuffer(count: nB * C)
        lnfOut = FloatBuffer(count: nB * C)
        lnfStats = FloatBuffer(count: 2 * nB)
        logits = FloatBuffer(count: nB * V)
        dResid = FloatBuffer(count: nBT * C)
        dMid = FloatBuffer(count: nBT * C)
        dTmp = FloatBuffer(count: nBT * C)
        dQKV = FloatBuffer(count: nBT * 3 * C)
        dLnf = FloatBuffer(count: nB * C)
        allocateModelBuffers(rows: nBT, batch: nB)
    }

    /// The buffers only one architecture has, sized for `rows` = capacity token rows; called when the shared ones grow.
    func allocateModelBuffers(rows nBT: Int, batch nB: Int) {}

    /// Pointer to layer ℓ's slice of a per-layer activation buffer with `width` floats per row.
    @inline(__always)
    final func layerSlice(_ buffer: FloatBuffer, _ l: Int, width: Int) -> UnsafeMutablePointer<Float> {
        buffer.base + l * capacity * width
    }

    /// Layer ℓ's attention patterns `(B, H, T, T)` (strides of the capacity).
    @inline(__always)
    final func patternSlice(layer l: Int) -> UnsafeMutablePointer<Float> {
        pattern.base + l * batchCapacity * H * seqCapacity * seqCapacity
    }

    /// What every forward pass does first: checks the request, grows the buffers, and remembers the batch, its
    /// lengths, whether it is patched, which nodes are replaced and whether the last MLP runs at the read-out rows
    /// alone (the backward pass reads them). `readOutOnly`: the engine's forward runs that MLP so (GPT-2; the
    /// families run every row and leave it false).
    final func beginForward(_ batch: PromptBatch, maxPositions: Int, record: UnsafeMutablePointer<Float>?,
                            recordMode: InstrumentedGPT2.RecordMode, replace: [Int: UnsafePointer<Float>], patch: InstrumentedGPT2.Patch?,
                            readOutOnly: Bool = false) {
        let B = batch.batch, T = batch.seqLen
        precondition(T <= maxPositions, "sequence longer than the model's positions")
        precondition(patch == nil || (record != nil && recordMode != .set), "patching reads the record buffer of the same run")
        ensureCapacity(B: B, T: T)
        if let patch, patch.rebuildHeads.contains(true), patchInputs.count < (3 * H + 1) * B * T * C {
            patchInputs = FloatBuffer(count: (3 * H + 1) * capacity * C)
        }
        lastBatch = batch
        lastLengths = batch.lengths.map { Int32($0) }
        lastWasPatched = patch != nil
        lastReplaced = Set(replace.keys)
        lastMLPReadOutOnly = readOutOnly && !lastReplaced.contains(graph.mlpForward(layer: L - 1))
    }

    /// Writes node `f`'s output `out` (`count` floats) into its row of `record` as `mode` says; nothing without a record.
    @inline(__always)
    final func record(_ f: Int, _ out: UnsafePointer<Float>, into record: UnsafeMutablePointer<Float>?, mode: InstrumentedGPT2.RecordMode,
                      count: Int) {
        guard let record else { return }
        let kept = mode.recordedRows(count), n = kept.count
        mode.write(out + kept.lowerBound, into: record + f * n, count: n)
    }

    /// The rebuilt inputs of `outputs` (a graph column and where its input goes), all over the parents `parents`:
    /// dst = base + Σ_{f ∈ parents} absent[f, column] · record[f], `count` floats each (`WeightedSums`). Each column's
    /// sum is formed from the shorter of its two sparse forms: the parents with a nonzero coefficient, or, starting
    /// from the total base + Σ_f record[f], the parents whose coefficient is not 1 (with coefficient − 1). A circuit
    /// that keeps a quarter of the edges is then a sum over that quarter, not over the three quarters it leaves out,
    /// and parents with coefficient 0 are never read. `dst` may equal `base` only for a single output.
    final func rebuildSums(_ outputs: [(column: Int, dst: UnsafeMutablePointer<Float>)], base: UnsafePointer<Float>, parents: Range<Int>,
                           patch: InstrumentedGPT2.Patch, record: UnsafePointer<Float>, count: Int) {
        let nB = graph.nBackward
        var indices: [Int32] = [], coefficients: [Float] = [], sums: [WeightedSums.Output] = []
        patch.absent.withUnsafeBufferPointer { a in
            for (col, dst) in outputs {
                var nonzero = 0, notOne = 0
                for f in parents { let v = a[f * nB + col]; if v != 0 { nonzero += 1 }; if v != 1 { notOne += 1 } }
                let fromTotal = notOne < nonzero, first = indices.count
                for f in parents {
                    let v = a[f * nB + col]
                    if fromTotal ? v != 1 : v != 0 {
                        indices.append(Int32(f - parents.lowerBound))
                        coefficients.append(fromTotal ? v - 1 : v)
                    }
                }
                sums.append(.init(dst: dst, fromTotal: fromTotal, terms: first..<indices.count))
            }
        }
        WeightedSums.run(sums, indices: indices, coefficients: coefficients, base: base, sources: record + parents.lowerBound * count,
                         stride: count, sourceRows: parents.count, count: count, threads: threads)
    }

    /// The q/k/v inputs of layer ℓ's heads that `patch` rebuilds: for each column c (j · H + h) with an absent edge,
    /// `patchInputs` row c becomes x + Σ_f absent[f, b] · record[f] (`rebuildSums`, all 3H columns in one pass over
    /// the record). Returns those columns; the others are left as the shared projection made them (their update is
    /// exactly 0), so a circuit holding every edge reproduces the clean run bit for bit.
    ///
    /// When the layer's MLP input is rebuilt too, the same pass also forms its sum over the parents the heads share
    /// (row 3H of `patchInputs`), while those parents' records are in cache, and `rebuildMLPInput` then adds only the
    /// parents the heads do not have (the layer's own heads).
    final func rebuildHeadInputs(layer l: Int, x: UnsafePointer<Float>, patch: InstrumentedGPT2.Patch, record: UnsafePointer<Float>,
                                 count: Int) -> [Int] {
        let col0 = graph.headBackward(layer: l, head: 0, qkv: .q), prev = graph.backwardPrevIndex[col0]
        let columns = (0..<(3 * H)).filter { patch.hasAbsent[col0 + $0] }
        guard !columns.isEmpty else { return [] }
        precondition(graph.mlpBackward(layer: l) == col0 + 3 * H, "the MLP column follows the layer's head columns")
        let U = patchInputs.base
        var outputs = columns.map { (column: col0 + $0, dst: U + $0 * count) }
        if headProductFormsMLPPartial(layer: l, patch: patch) { outputs.append((column: col0 + 3 * H, dst: U + 3 * H * count)) }
        rebuildSums(outputs, base: x, parents: 0..<prev, patch: patch, record: record, count: count)
        return columns
    }

    /// Whether `rebuildHeadInputs` of layer ℓ (run when `patch` rebuilds the layer's heads) also forms the MLP
    /// input's sum over the heads' parents: when some head input and the MLP input of ℓ have absent edges.
    final func headProductFormsMLPPartial(layer l: Int, patch: InstrumentedGPT2.Patch) -> Bool {
        let col0 = graph.headBackward(layer: l, head: 0, qkv: .q), mlp = graph.mlpBackward(layer: l)
        return patch.rebuildHeads[l] && patch.rebuildMLP[l] && patch.hasAbsent[mlp] && patch.hasAbsent[col0..<(col0 + 3 * H)].contains(true)
    }

    /// The rebuilt input of MLP ℓ into `dst`: base + Σ_{f < prev(mlp)} absent[f, mlp] · record[f]. `base` is the MLP's
    /// unpatched input and `x` the block input. After `rebuildHeadInputs` of the same layer formed x plus the sum over
    /// the heads' parents, only `base` − x (`added`, e.g. the attention output; nil when the MLP reads x itself) and the
    /// remaining parents are added; otherwise the whole sum is formed here.
    final func rebuildMLPInput(layer l: Int, base: UnsafePointer<Float>, added: UnsafePointer<Float>?, into dst: UnsafeMutablePointer<Float>,
                               patch: InstrumentedGPT2.Patch, record: UnsafePointer<Float>, count: Int) {
        let col = graph.mlpBackward(layer: l), to = graph.backwardPrevIndex[col]
        guard headProductFormsMLPPartial(layer: l, patch: patch) else {
            rebuildSums([(column: col, dst: dst)], base: base, parents: 0..<to, patch: patch, record: record, count: count)
            return
        }
        let partial = UnsafePointer(patchInputs.base + 3 * H * count)
        if let added { for i in 0..<count { dst[i] = partial[i] + added[i] } } else { dst.update(from: partial, count: count) }
        let from = graph.backwardPrevIndex[graph.headBackward(layer: l, head: 0, qkv: .q)]
        guard to > from else { return }
        rebuildSums([(column: col, dst: dst)], base: dst, parents: from..<to, patch: patch, record: record, count: count)
    }

    /// Runs `body(column, norm, stats, threads)` for each of `columns` (rebuilt head inputs, `rebuildHeadInputs`):
    /// `norm` is a (BT, C) buffer for the column's normalised input, `stats` 2 · `capacity` floats for its
    /// statistics, `threads` the thread count its kernels use (`inHalves`). The second half's norm buffer is the `z`
    /// slot of `scratchC`, free until the layer's attention runs.
    final func forEachRebuiltColumn(_ columns: [Int],
                                    _ body: (_ column: Int, _ norm: UnsafeMutablePointer<Float>, _ stats: UnsafeMutablePointer<Float>, _ threads: Int) -> Void) {
        inHalves(columns) { c, half, threads in
            body(c, scratchC.base + half * capacity * C, statScratch.base + half * 2 * capacity, threads)
        }
    }

    /// Runs `body(column, out, acc, threads)` for the q/k/v input columns c = j · H + h of layer's heads not `cut`, in
    /// halves (`inHalves`), for the attribution backward: `out` is a (BT, C) buffer for the column's product and `acc`
    /// the residual gradient the column's norm gradient adds to. The first half uses `scratch.0` and `dx`; the second
    /// `scratch.1` and `spare`, which is zeroed first and added to `dx` at the end (`count` floats), so the two halves
    /// never write the same memory. Only the summation order of `dx` depends on the split.
    final func forEachHeadInputGradient(cut: [Bool], scratch: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>),
                                        dx: UnsafeMutablePointer<Float>, spare: UnsafeMutablePointer<Float>, count: Int,
                                        _ body: (_ column: Int, _ out: UnsafeMutablePointer<Float>, _ acc: UnsafeMutablePointer<Float>, _ threads: Int) -> Void) {
        let columns = QKV.allCases.flatMap { j in (0..<H).filter { !cut[$0] }.map { j.rawValue * H + $0 } }
        let split = splitsInHalves(columns.count)
        if split { spare.update(repeating: 0, count: count) }
        inHalves(columns) { c, half, threads in
            half == 0 ? body(c, scratch.0, dx, threads) : body(c, scratch.1, spare, threads)
        }
        if split { for i in 0..<count { dx[i] += spare[i] } }
    }

    /// Whether `inHalves` runs `count` items in two halves side by side.
    final func splitsInHalves(_ count: Int) -> Bool { threads == 2 && BLAS.threads == 2 && count > 1 }

    /// Runs `body(item, half, threads)` for each of `items`, in order within each half. On two threads (OpenBLAS at
    /// two) the items run in two halves side by side with one thread each (`Matmul.pair`): one head input's norm and
    /// narrow (BT, C)·(C, d_head) product, or its gradient, are too small to split well over two cores. `half` (0 or
    /// 1) names the scratch the call may use; otherwise every item runs with half 0 at `threads`. Each item's result
    /// does not depend on the split.
    final func inHalves(_ items: [Int], _ body: (_ item: Int, _ half: Int, _ threads: Int) -> Void) {
        guard splitsInHalves(items.count) else {
            for c in items { body(c, 0, threads) }
            return
        }
        let mid = (items.count + 1) / 2
        Matmul.pair(threads: threads, { for c in items[..<mid] { body(c, 0, 1) } }, { for c in items[mid...] { body(c, 1, 1) } })
    }

    /// Layer ℓ's attention output into `attnOut (BT, C)`: b_O' plus z·W_O in one product, unless a head's output is
    /// replaced (then b_O' + Σ_h result_h). Each head's own output result_h = z_h·W_O,h (`blocks.ℓ.attn.hook_result`)
    /// is formed, in `head`, only when it is recorded or replaced. `wo` is W_O stored (in, out) (GPT-2's Conv1D) or,
    /// `transposed`, (out, in) (a Hugging Face Linear). With a `spare` (BT, C) buffer and no head replaced, the recorded
    /// heads run in two halves side by side (`inHalves`, the second half's output in `spare`): a head's
    /// (BT, d_head)·(d_head, C) product is too narrow to split well over two threads.
    final func attentionOutput(layer l: Int, z: UnsafePointer<Float>, wo: UnsafePointer<Float>, transposed: Bool,
                               head: UnsafeMutablePointer<Float>, spare: UnsafeMutablePointer<Float>? = nil,
                               attnOut: UnsafeMutablePointer<Float>, rows BT: Int,
                               replace: [Int: UnsafePointer<Float>], record recordBuffer: UnsafeMutablePointer<Float>?,
                               mode: InstrumentedGPT2.RecordMode) {
        let BTC = BT * C
        let anyReplaced = (0..<H).contains { replace[graph.headForward(layer: l, head: $0)] != nil }
        for row in 0..<BT { (attnOut + row * C).update(from: foldedBias.base + l * C, count: C) }
        if !anyReplaced {
            Matmul.sgemm(false, transposed, M: BT, N: C, K: C, alpha: 1, A: z, lda: C, B: wo, ldb: C, beta: 1, C: attnOut, ldc: C)
        }
        guard recordBuffer != nil || anyReplaced else { return }
        // Each head's own output is formed only for the rows that are recorded (all of them when a head is replaced).
        let rows = anyReplaced ? 0..<BT : mode.recordedRows(BT)
        let rowMode = rows.count == BT ? mode : .subtract
        func headOutput(_ h: Int, into out: UnsafeMutablePointer<Float>) {
            Matmul.sgemm(false, transposed, M: rows.count, N: C, K: dh, alpha: 1, A: z + rows.lowerBound * C + h * dh, lda: C,
                         B: wo + (transposed ? h * dh : h * dh * C), ldb: C, beta: 0, C: out, ldc: C)
            record(graph.headForward(layer: l, head: h), out, into: recordBuffer, mode: rowMode, count: rows.count * C)
        }
        if let spare, !anyReplaced {
            // Each head's record is its own rows of the buffer, so the halves never write the same place.
            inHalves(Array(0..<H)) { h, half, _ in headOutput(h, into: half == 0 ? head : spare) }
            return
        }
        for h in 0..<H {
            let f = graph.headForward(layer: l, head: h)
            if let r = replace[f] {
                head.update(from: r, count: BTC)
                record(f, head, into: recordBuffer, mode: rowMode, count: rows.count * C)
            } else {
                headOutput(h, into: head)
            }
            if anyReplaced { for i in 0..<BTC { attnOut[i] += head[i] } }
        }
    }

    /// MLP ℓ's output (`blocks.ℓ.hook_mlp_out`) into `out (BT, C)`: its replacement when `replace` has one, else what
    /// `compute` writes there; then recorded.
    final func mlpOutput(layer l: Int, into out: UnsafeMutablePointer<Float>, rows BT: Int, replace: [Int: UnsafePointer<Float>],
                         record recordBuffer: UnsafeMutablePointer<Float>?, mode: InstrumentedGPT2.RecordMode, compute: () -> Void) {
        let f = graph.mlpForward(layer: l)
        if let r = replace[f] { out.update(from: r, count: BT * C) } else { compute() }
        record(f, out, into: recordBuffer, mode: mode, count: BT * C)
    }

    /// Records node `f`'s output at the read-out rows only: `out (B, C)` holds row `rows[b]`'s output at b (a
    /// `readOutOnly` run's last MLP; `count` = B·T·C). `.set` zeroes the node's other rows; the other modes leave
    /// them, since nothing reads them (the node feeds only the logits, at the read-out rows). `.subtractLastCopy(n)`
    /// subtracts the last copy's rows from a record of one copy.
    final func recordReadOutRows(_ f: Int, _ out: UnsafePointer<Float>, rows: [Int], into record: UnsafeMutablePointer<Float>?,
                                 mode: InstrumentedGPT2.RecordMode, count: Int) {
        guard let record else { return }
        let kept = mode.recordedRows(count), dst = record + f * kept.count
        let firstRow = kept.lowerBound / C, B = rows.count, firstSample = B - B * kept.count / count
        if mode == .set { dst.update(repeating: 0, count: kept.count) }
        for b in firstSample..<B { mode.write(out + b * C, into: dst + (rows[b] - firstRow) * C, count: C) }
    }

    /// Copies the final residual's read-out rows to `lnfIn` and, when `patch` rebuilds the logits' input, adds
    /// Σ_f absent[f, logits] · record[f] at those rows.
    final func gatherReadOut(_ batch: PromptBatch, patch: InstrumentedGPT2.Patch?, record: UnsafePointer<Float>?) {
        let B = batch.batch, BTC = B * batch.seqLen * C, nB = graph.nBackward
        let xL = layerSlice(resid, L, width: C)
        let rows = batch.readRows
        for b in 0..<B { (lnfIn.base + b * C).update(from: xL + rows[b] * C, count: C) }
        guard let patch, patch.rebuildLogits, patch.hasAbsent[graph.logitsBackward], let record else { return }
        let col = graph.logitsBackward
        for f in 0..<graph.nForward where patch.absent[f * nB + col] != 0 {
            let d = record + f * BTC, a = patch.absent[f * nB + col]
            for b in 0..<B {
                let dst = lnfIn.base + b * C, src = d + rows[b] * C
                for i in 0..<C { dst[i] += a * src[i] }
            }
        }
    }

    /// The batch of the last forward pass, checked for a backward pass over `copies` stacked copies.
    final func backwardBatch(copies: Int) -> PromptBatch {
        guard let batch = lastBatch else { preconditionFailure("backward needs a forward pass first") }
        precondition(!lastWasPatched, "backward through a patched forward pass is not supported")
        precondition(copies >= 1 && batch.batch % copies == 0, "the batch is not a stack of \(copies) copies")
        return batch
    }

    /// Which heads of layer ℓ had their output replaced (they pass no gradient).
    final func replacedHeads(layer l: Int) -> [Bool] {
        (0..<H).map { lastReplaced.contains(graph.headForward(layer: l, head: $0)) }
    }

    /// Zeroes the columns of the replaced heads in `dz (BT, C)`.
    final func cutReplacedHeads(_ dz: UnsafeMutablePointer<Float>, _ cut: [Bool], rows BT: Int) {
        for h in 0..<H where cut[h] {
            for row in 0..<BT { (dz + row * C + h * dh).update(repeating: 0, count: dh) }
        }
    }
}
