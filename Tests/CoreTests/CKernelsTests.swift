import XCTest
@testable import Numerics

/// The C kernels (`Sources/CKernels`) against float64: the exponentials of the cross-entropy, the attention softmax,
/// GELU and SwiGLU, on lengths that are not multiples of the 16-float vector, so loop tails are checked too.
final class CKernelsTests: XCTestCase {
    func testCrossEntropyExponentials() {
        let n = 10_007
        let row = (0..<n).map { Float(-80 + 87 * Double($0) / Double(n - 1)) }   // x − max in [-87, 0]: the unclamped range
        var exps = row
        let (m, sum) = exps.withUnsafeMutableBufferPointer { CrossEntropy.maxAndSumExp(overwriting: $0.baseAddress!, n) }
        XCTAssertEqual(m, row.max()!)
        var worst = 0.0, sum64 = 0.0
        for i in 0..<n {
            let ref = Foundation.exp(Double(row[i] - m))
            sum64 += Double(exps[i])
            worst = max(worst, abs(Double(exps[i]) - ref) / ref)
        }
        XCTAssertLessThan(worst, 3e-7, "relative error against float64 (the polynomial's 2 ulp)")
        XCTAssertEqual(sum, sum64, accuracy: 1e-12 * sum64, "the sum is the float exponentials summed in double")
        let (m2, sum2) = row.withUnsafeBufferPointer { CrossEntropy.maxAndSumExp($0.baseAddress!, n) }
        XCTAssertEqual(m2, m)
        XCTAssertEqual(sum2, sum, "with and without storing the exponentials")
    }

    func testSoftmaxRow() {
        for n in [1, 5, 16, 37] {
            let x = (0..<n).map { Float(sin(Double($0) * 1.7) * 6) }
            var row = x
            row.withUnsafeMutableBufferPointer { Attention.softmaxRow($0.baseAddress!, n) }
            let m = Double(x.max()!), z = x.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) }
            for i in 0..<n { XCTAssertEqual(Double(row[i]), Foundation.exp(Double(x[i]) - m) / z, accuracy: 1e-6, "n \(n), \(i)") }
        }
    }

    func testGELUAndSwiGLUIncludingTails() {
        let n = 37
        let x = (0..<n).map { Float(-6 + 12 * Double($0) / Double(n - 1)) }, u = (0..<n).map { Float(cos(Double($0))) }
        var g = [Float](repeating: 0, count: n), s = g
        GELU.forward(out: &g, inp: x, count: n, threads: 2)
        SwiGLU.forward(out: &s, gate: x, up: u, count: n, threads: 2)
        for i in 0..<n {
            let v = Double(x[i]), t = 0.7978845608028654 * (v + 0.044715 * v * v * v)
            XCTAssertEqual(Double(g[i]), 0.5 * v * (1 + Foundation.tanh(t)), accuracy: 1e-6, "gelu \(i)")
            XCTAssertEqual(g[i], GELU.scalar(x[i]), "a tail element gets the arithmetic of the vector body")
            XCTAssertEqual(Double(s[i]), v / (1 + Foundation.exp(-v)) * Double(u[i]), accuracy: 1e-6, "swiglu \(i)")
        }
    }

    func testInstructionSetIsNamed() {
        XCTAssertTrue(["avx512", "avx2", "baseline"].contains(NativeKernels.instructionSet), NativeKernels.instructionSet)
    }
}
