import Foundation
import XCTest
@testable import Core
@testable import Numerics

/// Each kernel's forward against a float64 reference, and its backward against central differences of that
/// reference (the scalar is Σ out ⊙ R for a fixed random R, so dout = R). Then the whole model the same way.
final class KernelGradientTests: XCTestCase {
    static let forwardTolerance = 1e-5     // max abs, inputs of size ~1
    static let gradientTolerance = 1e-4    // rel L2 against the float64 finite differences

    func floats(_ x: [Double]) -> [Float] { x.map { Float($0) } }
    func doubles(_ x: [Float]) -> [Double] { x.map { Double($0) } }
    func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    func assertClose(_ ours: [Float], _ ref: [Double], _ what: String, tol: Double, relL2: Bool, file: StaticString = #filePath, line: UInt = #line) {
        let d = Diff(ours, ref)
        let value = relL2 ? d.relL2 : d.maxAbs
        XCTAssertLessThanOrEqual(value, tol, "\(what): \(d.summary), tolerance \(relL2 ? "rel L2" : "max abs") \(tol)", file: file, line: line)
    }

    func testLayerNorm() {
        let N = 6, C = 19
        let x = floats(Ref.random(N * C, seed: 1, scale: 2)), w = floats(Ref.random(C, seed: 2, scale: 0.5).map { $0 + 1 })
        let b = floats(Ref.random(C, seed: 3)), R = Ref.random(N * C, seed: 4)
        var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
        LayerNorm.forward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, N: N, C: C, eps: 1e-5, threads: 2)
        let ref = { (x: [Double], w: [Double], b: [Double]) in Ref.layerNorm(x, w[...], b[...], N: N, C: C, eps: 1e-5) }
        assertClose(out, ref(doubles(x), doubles(w), doubles(b)), "layernorm forward", tol: Self.forwardTolerance, relL2: false)

        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), db = dw
        var scratch = [Float](repeating: 0, count: 2 * C * 2)
        LayerNorm.backward(dinp: &dx, dweight: &dw, dbias: &db, scratch: &scratch, dout: floats(R), inp: x, weight: w,
                           mean: mean, rstd: rstd, N: N, C: C, threads: 2)
        let xd = doubles(x), wd = doubles(w), bd = doubles(b)
        assertClose(dx, Ref.numericalGradient(xd) { self.dot(ref($0, wd, bd), R) }, "layernorm dinp", tol: Self.gradientTolerance, relL2: true)
        assertClose(dw, Ref.numericalGradient(wd) { self.dot(ref(xd, $0, bd), R) }, "layernorm dweight", tol: Self.gradientTolerance, relL2: true)
        assertClose(db, Ref.numericalGradient(bd) { self.dot(ref(xd, wd, $0), R) }, "layernorm dbias", tol: Self.gradientTolerance, relL2: true)
    }

    func testGELU() {
        let n = 45
        let x = floats(Ref.random(n, seed: 5, scale: 7)), R = Ref.random(n, seed: 6)
        var out = [Float](repeating: 0, count: n)
        GELU.forward(out: &out, inp: x, count: n, threads: 2)
        assertClose(out, doubles(x).map(Ref.gelu), "gelu forward", tol: Self.forwardTolerance, relL2: false)
        var dx = [Float](repeating: 0, count: n)
        GELU.backward(dinp: &dx, inp: x, dout: floats(R), count: n, threads: 2)
        let g = Ref.numericalGradient(doubles(x)) { self.dot($0.map(Ref.gelu), R) }
        assertClose(dx, g, "gelu dinp", tol: Self.gradientTolerance, relL2: true)
        // The bias form: pre += bias, out = gelu(pre), rows of C = 9 (a vector body and a tail).
        let rows = 5, width = 9
        let xb = floats(Ref.random(rows * width, seed: 7, scale: 4)), bias = floats(Ref.random(width, seed: 8, scale: 2))
        var pre = xb, act = [Float](repeating: .nan, count: rows * width)
        GELU.forward(out: &act, pre: &pre, bias: bias, N: rows, C: width, threads: 2)
        let sum = (0..<(rows * width)).map { xb[$0] + bias[$0 % width] }
        XCTAssertEqual(pre, sum, "pre holds the biased input")
        assertClose(act, doubles(sum).map(Ref.gelu), "gelu forward with bias", tol: Self.forwardTolerance, relL2: false)
        // Far tails: gelu(−10) ≈ −7e-22 and gelu(10) = 10 without cancellation.
        XCTAssertEqual(GELU.scalar(10), 10)
        XCTAssertLessThan(abs(GELU.scalar(-10)), 1e-20)
    }

    func testMatmulWithBiasAndResidual() {
        let N = 5, IC = 13, OC = 11
        let x = floats(Ref.random(N * IC, seed: 7)), w = floats(Ref.random(IC * OC, seed: 8)), b = floats(Ref.random(OC, seed: 9))
        let res = floats(Ref.random(N * OC, seed: 10)), R = Ref.random(N * OC, seed: 11)
        var out = [Float](repeating: 0, count: N * OC)
        Matmul.forward(out: &out, inp: x, weight: w, bias: b, residual: res, N: N, IC: IC, OC: OC, threads: 2)
        let ref = { (x: [Double], w: [Double], b: [Double]) -> [Double] in
            zip(Ref.linear(x, w[...], b[...], N: N, IC: IC, OC: OC), self.doubles(res)).map { $0 + $1 }
        }
        let xd = doubles(x), wd = doubles(w), bd = doubles(b)
        assertClose(out, ref(xd, wd, bd), "matmul forward", tol: Self.forwardTolerance, relL2: false)
        var dx = [Float](repeating: 0, count: N * IC), dw = [Float](repeating: 0, count: IC * OC), db = [Float](repeating: 0, count: OC)
        Matmul.backward(dinp: &dx, dweight: &dw, dbias: &db, dout: floats(R), inp: x, weight: w, N: N, IC: IC, OC: OC, threads: 2)
        assertClose(dx, Ref.numericalGradient(xd) { self.dot(ref($0, wd, bd), R) }, "matmul dinp", tol: Self.gradientTolerance, relL2: true)
        assertClose(dw, Ref.numericalGradient(wd) { self.dot(ref(xd, $0, bd), R) }, "matmul dweight", tol: Self.gradientTolerance, relL2: true)
        assertClose(db, Ref.numericalGradient(bd) { self.dot(ref(xd, wd, $0), R) }, "matmul dbias", tol: Self.gradientTolerance, relL2: true)
    }

    func testAttentionWithRightPadding() {
        let B = 3, T = 7, C = 16, NH = 2
        let lengths = [7, 4, 1]
        let qkv = floats(Ref.random(B * T * 3 * C, seed: 12, scale: 1.5)), R = Ref.random(B * T * C, seed: 13)
        var out = [Float](repeating: 0, count: B * T * C), att = [Float](repeating: 0, count: B * NH * T * T)
        let len32 = lengths.map(Int32.init)
        Attention.forward(out: &out, att: &att, qkv: qkv, lengths: len32, B: B, T: T, C: C, NH: NH, threads: 2)
        let ref = { (q: [Double]) in Ref.attention(q, lengths: lengths, B: B, T: T, C: C, NH: NH) }
        assertClose(out, ref(doubles(qkv)), "attention forward", tol: Self.forwardTolerance, relL2: false)
        // Masked probabilities are exactly 0 and rows sum to 1.
        for b in 0..<B {
            for h in 0..<NH {
                for i in 0..<T {
                    let row = att[((b * NH + h) * T + i) * T ..< ((b * NH + h) * T + i + 1) * T]
                    XCTAssertEqual(Double(row.reduce(0, +)), 1, accuracy: 1e-6)
                    for j in 0..<T where j > min(i, lengths[b] - 1) { XCTAssertEqual(row[row.startIndex + j], 0) }
                }
            }
        }
        var dqkv = [Float](repeating: 0, count: B * T * 3 * C), scratch = [Float](repeating: 0, count: B * NH * T * T)
        Attention.backward(dqkv: &dqkv, scratch: &scratch, dout: floats(R), qkv: qkv, att: att, lengths: len32,
                           B: B, T: T, C: C, NH: NH, threads: 2)
        let g = Ref.numericalGradient(doubles(qkv)) { self.dot(ref($0), R) }
        assertClose(dqkv, g, "attention dqkv", tol: Self.gradientTolerance, relL2: true)
        // Unpadded (lengths nil) equals lengths all T, serial equals threaded.
        var out2 = out, att2 = att
        Attention.forward(out: &out2, att: &att2, qkv: qkv, lengths: nil, B: B, T: T, C: C, NH: NH, threads: 1)
        var out3 = out, att3 = att
        Attention.forward(out: &out3, att: &att3, qkv: qkv, lengths: [Int32](repeating: Int32(T), count: B), B: B, T: T, C: C, NH: NH, threads: 2)
        XCTAssertEqual(out2, out3)
    }

    func testCrossEntropy() {
        let N = 4, V = 37
        let logits = floats(Ref.random(N * V, seed: 14, scale: 6))
        let targets: [Int32] = [3, -1, 0, 36]
        let ref = { (l: [Double]) in Ref.crossEntropy(l, targets: targets.map(Int.init), V: V) }
        let g = Ref.numericalGradient(doubles(logits)) { ref($0) }
        for keep in [false, true] {
            var buf = logits
            var losses = [Double](repeating: 0, count: N), stats = [Float](repeating: 0, count: 2 * N)
            let (sum, count) = CrossEntropy.forward(losses: &losses, stats: &stats, logits: &buf, targets: targets, N: N, V: V,
                                                    keepExponentials: keep, threads: 2)
            XCTAssertEqual(count, 3)
            XCTAssertEqual(sum / Double(count), ref(doubles(logits)), accuracy: 1e-6)
            if !keep { XCTAssertEqual(buf, logits, "forward leaves the logits alone") }
            CrossEntropy.backward(dlogits: &buf, stats: stats, targets: targets, scale: 1 / Float(count), N: N, V: V,
                                  keepExponentials: keep, threads: 2)
            assertClose(buf, g, "cross-entropy dlogits (keepExponentials \(keep))", tol: Self.gradientTolerance, relL2: true)
            XCTAssertTrue(buf[V..<(2 * V)].allSatisfy { $0 == 0 }, "ignored row has zero gradient")
        }
        // forward with gradientScale leaves the same bits as forward then backward, with the same losses.
        var fused = logits, separate = logits
        var l1 = [Double](repeating: 0, count: N), l2 = l1, s1 = [Float](repeating: 0, count: 2 * N), s2 = s1
        fused[V] = .nan   // an ignored row's gradient is written, whatever the buffer held
        let r1 = CrossEntropy.forward(losses: &l1, stats: &s1, logits: &fused, targets: targets, N: N, V: V,
                                      gradientScale: 1 / 3, threads: 2)
        let r2 = CrossEntropy.forward(losses: &l2, stats: &s2, logits: &separate, targets: targets, N: N, V: V,
                                      keepExponentials: true, threads: 2)
        CrossEntropy.backward(dlogits: &separate, stats: s2, targets: targets, scale: 1 / 3, N: N, V: V, keepExponentials: true, threads: 2)
        XCTAssertEqual(r1.sum, r2.sum)
        XCTAssertEqual(r1.count, r2.count)
        XCTAssertEqual(l1, l2)
        XCTAssertEqual(fused, separate, "forward(gradientScale:) equals forward + backward bit for bit")
        assertClose(fused, g, "cross-entropy dlogits (fused)", tol: Self.gradientTolerance, relL2: true)
    }

    /// Attention on rows longer than the causal query block (`Attention.queryBlock`), with lengths at, inside and
    /// across block edges, with and without dropout: every block's products and the skipped triangle must give
    /// the float64 reference, and buffers filled with NaN beforehand must be fully written where promised.
    func testAttentionCausalBlocksOnLongRows() {
        let QB = Attention.queryBlock
        let B = 4, T = 2 * QB + 6, C = 4, NH = 2
        let lengths = [T, QB, QB + 1, 5]
        let qkv = floats(Ref.random(B * T * 3 * C, seed: 31, scale: 1.5)), R = Ref.random(B * T * C, seed: 32)
        let len32 = lengths.map(Int32.init)
        for p: Float in [0, 0.3] {
            let keyOf = { (bh: Int) -> UInt64 in UInt64(1000 + bh) }
            let keep: ((Int, Int, Int, Int) -> Double)? = p == 0 ? nil : { b, h, i, j in
                Dropout.keeps(key: keyOf(b * NH + h), index: i * T + j, p: p) ? 1 / Double(1 - p) : 0
            }
            var out = [Float](repeating: .nan, count: B * T * C), att = [Float](repeating: .nan, count: B * NH * T * T)
            var scratch = [Float](repeating: .nan, count: B * NH * T * T)
            Attention.forward(out: &out, att: &att, qkv: qkv, lengths: len32, B: B, T: T, C: C, NH: NH, threads: 2,
                              dropout: p, dropKey: p == 0 ? nil : keyOf, scratch: &scratch)
            let ref = { (q: [Double]) in Ref.attention(q, lengths: lengths, B: B, T: T, C: C, NH: NH, keep: keep) }
            assertClose(out, ref(doubles(qkv)), "blocked attention forward, dropout \(p)", tol: Self.forwardTolerance, relL2: false)
            for b in 0..<B {
                for h in 0..<NH {
                    for i in 0..<T {
                        let row = att[((b * NH + h) * T + i) * T ..< ((b * NH + h) * T + i + 1) * T]
                        XCTAssertEqual(Double(row.reduce(0, +)), 1, accuracy: 1e-5, "row \(b), \(h), \(i)")
                        for j in 0..<T where j > min(i, lengths[b] - 1) { XCTAssertEqual(row[row.startIndex + j], 0) }
                    }
                }
            }
            var dqkv = [Float](repeating: .nan, count: B * T * 3 * C)
            scratch = [Float](repeating: .nan, count: B * NH * T * T)
            Attention.backward(dqkv: &dqkv, scratch: &scratch, dout: floats(R), qkv: qkv, att: att, lengths: len32,
                               B: B, T: T, C: C, NH: NH, threads: 2, dropout: p, dropKey: p == 0 ? nil : keyOf)
            let g = Ref.numericalGradient(doubles(qkv)) { self.dot(ref($0), R) }
            assertClose(dqkv, g, "blocked attention dqkv, dropout \(p)", tol: Self.gradientTolerance, relL2: true)
            // Keys past a row's length get exactly zero gradient (k and v columns of padded positions).
            for t in lengths[3]..<T {
                let r = (3 * T + t) * 3 * C
                XCTAssertTrue(dqkv[(r + C)..<(r + 3 * C)].allSatisfy { $0 == 0 }, "padded key \(t) has zero dk, dv")
            }
        }
    }

    /// A 2-layer, 2-head, width-8 model over 23 tokens with larger-than-default weights (so every nonlinearity
    /// is exercised), and a right-padded batch of 3 × 6 tokens.
    func tinyRandomModel(seed: UInt64) -> (model: GPT2, tokens: [Int], lengths: [Int], B: Int, T: Int) {
        let model = GPT2(config: GPT2Config(nLayer: 2, nHead: 2, nEmbd: 8, nPositions: 8, vocabSize: 23), seed: 42, threads: 2)
        let rnd = Ref.random(model.layout.count, seed: seed, scale: 0.5)
        for t in model.layout.tensors {
            for i in t.range { model.params.base[i] = Float(t.name.contains(".ln_") && t.name.hasSuffix("weight") ? 1 + rnd[i] : rnd[i]) }
        }
        let B = 3, T = 6
        let tokens = Ref.random(B * T, seed: seed + 1).map { Int(($0 + 1) / 2 * 23) % 23 }
        return (model, tokens, [6, 4, 5], B, T)
    }

    /// The whole model on a tiny random config with right padding and a label mask: loss against the float64
    /// reference, every parameter gradient against its central differences.
    func testWholeModelGradientOnTinyRandomConfig() throws {
        let (model, tokens, lengths, B, T) = tinyRandomModel(seed: 15)
        let cfg = model.config, layout = model.layout
        var mask = [Bool](repeating: true, count: B * T)
        mask[2] = false
        mask[T + 1] = false

        model.zeroGradients()
        let loss = try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, lengths: lengths, labelMask: mask)
        model.backward()
        let p = doubles(Array(model.params.buffer))
        let refLoss = Ref.loss(p, layout: layout, tokens: tokens, B: B, T: T, lengths: lengths, labelMask: mask)
        XCTAssertEqual(loss, refLoss, accuracy: 1e-6, "loss vs float64 reference")
        let g = Ref.numericalGradient(p) { Ref.loss($0, layout: layout, tokens: tokens, B: B, T: T, lengths: lengths, labelMask: mask) }
        var worst = 0.0
        for t in layout.tensors {
            let d = Diff(Array(model.grads.buffer(t)), g[t.range])
            worst = max(worst, d.relL2)
            XCTAssertLessThanOrEqual(d.relL2, Self.gradientTolerance, "gradient \(t.name): \(d.summary), tolerance rel L2 \(Self.gradientTolerance)")
        }
        print("tiny model gradient vs finite differences: worst rel L2 \(worst)")

        // The gradient accumulates: a second backward of the same batch doubles it.
        let first = Array(model.grads.buffer)
        _ = try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, lengths: lengths, labelMask: mask)
        model.backward()
        let d = Diff(Array(model.grads.buffer), first.map { 2 * $0 })
        XCTAssertLessThanOrEqual(d.maxAbs, 1e-6, "accumulated gradient: \(d.summary)")

        // Padded rows: batched logits equal one-at-a-time logits on real positions.
        let V = cfg.vocabSize
        let batched = Array(try model.forward(tokens: tokens, batch: B, seqLen: T, lengths: lengths))
        for b in 0..<B {
            let L = lengths[b]
            let single = Array(try model.forward(tokens: Array(tokens[(b * T)..<(b * T + L)]), batch: 1, seqLen: L))
            let d = Diff(single, batched[(b * T * V)..<((b * T + L) * V)])
            XCTAssertLessThanOrEqual(d.maxAbs, 1e-5, "row \(b): batched vs alone: \(d.summary)")
        }
    }

    /// Training dropout (embeddings, attention probabilities, residual branches; p = 0.3 so many elements
    /// drop): loss and every gradient against the float64 reference with the same masks; masks are a
    /// function of the row keys (a row moved to another batch position keeps its mask); p = 0 is eval mode.
    func testDropoutGradientMatchesReferenceWithTheSameMasks() throws {
        let (model, tokens, lengths, B, T) = tinyRandomModel(seed: 25)
        let layout = model.layout
        let plan = DropoutPlan(embd: 0.3, attn: 0.3, resid: 0.3, seed: 7, rowKeys: [11, 12, 13])

        model.zeroGradients()
        let loss = try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, lengths: lengths, dropout: plan)
        model.backward()
        let p = doubles(Array(model.params.buffer))
        let refLoss = Ref.loss(p, layout: layout, tokens: tokens, B: B, T: T, lengths: lengths, labelMask: nil, dropout: plan)
        XCTAssertEqual(loss, refLoss, accuracy: 1e-6, "loss with dropout vs float64 reference")
        let evalLoss = Ref.loss(p, layout: layout, tokens: tokens, B: B, T: T, lengths: lengths, labelMask: nil)
        XCTAssertGreaterThan(abs(refLoss - evalLoss), 1e-3, "dropout changes the loss")
        let g = Ref.numericalGradient(p) { Ref.loss($0, layout: layout, tokens: tokens, B: B, T: T, lengths: lengths, labelMask: nil, dropout: plan) }
        var worst = 0.0
        for t in layout.tensors {
            let d = Diff(Array(model.grads.buffer(t)), g[t.range])
            worst = max(worst, d.relL2)
            XCTAssertLessThanOrEqual(d.relL2, Self.gradientTolerance, "gradient with dropout \(t.name): \(d.summary)")
        }
        print("tiny model gradient with dropout vs finite differences: worst rel L2 \(worst)")

        // Masks follow the row keys, not batch positions: the rows in another order, each with its key, give the
        // same loss; the same rows under other keys do not.
        let order = [2, 0, 1]
        let permuted = order.flatMap { Array(tokens[($0 * T)..<($0 * T + T)]) }
        let moved = try model.forwardLoss(tokens: permuted, batch: B, seqLen: T, lengths: order.map { lengths[$0] },
                                          dropout: DropoutPlan(embd: 0.3, attn: 0.3, resid: 0.3, seed: 7, rowKeys: order.map { plan.rowKeys[$0] }))
        XCTAssertEqual(moved, loss, accuracy: 1e-6, "rows moved with their keys")
        let rekeyed = try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, lengths: lengths,
                                            dropout: DropoutPlan(embd: 0.3, attn: 0.3, resid: 0.3, seed: 7, rowKeys: [21, 22, 23]))
        XCTAssertGreaterThan(abs(rekeyed - loss), 1e-4, "other keys, other masks")
        // Probabilities 0: exactly eval mode.
        let zero = try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, lengths: lengths,
                                         dropout: DropoutPlan(embd: 0, attn: 0, resid: 0, seed: 7, rowKeys: [11, 12, 13]))
        let eval = try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, lengths: lengths)
        XCTAssertEqual(zero, eval)
        XCTAssertThrowsError(try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, dropout: DropoutPlan(embd: 1, attn: 0, resid: 0, seed: 1, rowKeys: [1, 2, 3])))
        XCTAssertThrowsError(try model.forwardLoss(tokens: tokens, batch: B, seqLen: T, dropout: DropoutPlan(embd: 0.1, attn: 0, resid: 0, seed: 1, rowKeys: [1])))
    }

    /// The keep decisions: a share 1 − p of a million draws (within 5σ), kept values scaled by 1 / (1 − p),
    /// the same for the same key and different for another.
    func testDropoutMaskStatistics() {
        let n = 1_000_000, p: Float = 0.1
        var x = [Float](repeating: 2, count: n)
        x.withUnsafeMutableBufferPointer { Dropout.apply($0.baseAddress!, count: n, p: p, key: 99) }
        let kept = x.filter { $0 != 0 }
        let share = Double(kept.count) / Double(n)
        XCTAssertEqual(share, 0.9, accuracy: 5 * (0.9 * 0.1 / Double(n)).squareRoot(), "kept share")
        XCTAssertTrue(kept.allSatisfy { $0 == 2 / (1 - p) })
        let again = (0..<1000).map { Dropout.keeps(key: 99, index: $0, p: p) }
        XCTAssertEqual(again, (0..<1000).map { x[$0] != 0 })
        let other = (0..<1000).map { Dropout.keeps(key: 100, index: $0, p: p) }
        XCTAssertNotEqual(again, other)
    }

    func testBadInputsAreRejected() {
        let model = GPT2(config: GPT2Config(nLayer: 1, nHead: 2, nEmbd: 8, nPositions: 8, vocabSize: 23), seed: 1, threads: 1)
        XCTAssertThrowsError(try model.forward(tokens: [1, 2, 23], batch: 1, seqLen: 3)) { XCTAssertTrue("\($0)".contains("23")) }
        XCTAssertThrowsError(try model.forward(tokens: [Int](repeating: 1, count: 9), batch: 1, seqLen: 9)) { XCTAssertTrue("\($0)".contains("n_positions")) }
        XCTAssertThrowsError(try model.forward(tokens: [1, 2, 3, 4], batch: 2, seqLen: 2, lengths: [2, 0])) { XCTAssertTrue("\($0)".contains("lengths[1]")) }
        XCTAssertThrowsError(try model.forward(tokens: [1, 2], batch: 1, seqLen: 2, positions: [2])) { XCTAssertTrue("\($0)".contains("positions[0]")) }
        XCTAssertThrowsError(try model.forwardLoss(tokens: [1], batch: 1, seqLen: 1)) { XCTAssertTrue("\($0)".contains("no position")) }
    }

    /// Schedules at the values transformers' get_scheduler gives (W = 2 warm-up steps of N = 6).
    func testLRScheduleFactors() {
        XCTAssertEqual((0..<6).map { LRSchedule.linear.factor(step: $0, warmupSteps: 2, totalSteps: 6) }, [0, 0.5, 1, 0.75, 0.5, 0.25])
        let cos = (0..<6).map { LRSchedule.cosine.factor(step: $0, warmupSteps: 2, totalSteps: 6) }
        for (a, b) in zip(cos, [0, 0.5, 1, 0.8535533905932737, 0.5, 0.14644660940672628]) { XCTAssertEqual(a, b, accuracy: 1e-15) }
        XCTAssertEqual(LRSchedule.constant.factor(step: 0, warmupSteps: 0, totalSteps: 6), 1)
    }
}
