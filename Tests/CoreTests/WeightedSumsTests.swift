import XCTest
@testable import Numerics

/// `WeightedSums` (the patched runs' rebuilt inputs) against a float64 reference: outputs started from the base and
/// from the total, lengths that are not a multiple of the register block or the cache block, an output written in
/// place over its base, and the same bits on one thread and on two.
final class WeightedSumsTests: XCTestCase {
    func testAgainstReferenceOnBothFormsAndThreadCounts() {
        var rng = SplitMix64(seed: 7)
        let rows = 23, count = 2 * WeightedSums.blockLength(sourceRows: rows) + 77   // two full blocks and a ragged one
        let sources = (0..<(rows * count)).map { _ in Float(rng.nextGaussian()) }
        let base = (0..<count).map { _ in Float(rng.nextGaussian()) }
        // Output 0: a few terms from the base; 1: from the total, minus a few rows; 2: from the total with
        // fractional coefficients; 3: no terms (a copy of the base).
        let terms: [[(Int32, Float)]] = [[(3, 1), (17, -0.5), (0, 2)], [(1, -1), (22, -1)], [(5, 0.25), (9, -0.75)], []]
        let fromTotal = [false, true, true, false]
        let indices = terms.flatMap { $0.map(\.0) }, coefficients = terms.flatMap { $0.map(\.1) }

        func run(threads: Int) -> [[Float]] {
            var out = [[Float]](repeating: [Float](repeating: .nan, count: count), count: terms.count)
            sources.withUnsafeBufferPointer { s in
                base.withUnsafeBufferPointer { b in
                    let dst = (0..<terms.count).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: count) }
                    defer { dst.forEach { $0.deallocate() } }
                    var first = 0
                    let outputs = terms.indices.map { k -> WeightedSums.Output in
                        defer { first += terms[k].count }
                        return .init(dst: dst[k], fromTotal: fromTotal[k], terms: first..<(first + terms[k].count))
                    }
                    WeightedSums.run(outputs, indices: indices, coefficients: coefficients, base: b.baseAddress!, sources: s.baseAddress!,
                                     stride: count, sourceRows: rows, count: count, threads: threads)
                    for k in terms.indices { out[k] = Array(UnsafeBufferPointer(start: dst[k], count: count)) }
                }
            }
            return out
        }
        let one = run(threads: 1), two = run(threads: 2)
        XCTAssertEqual(one, two, "the result depends on the thread count")
        for k in terms.indices {
            var worst = 0.0
            for i in 0..<count {
                var ref = Double(base[i])
                if fromTotal[k] { for f in 0..<rows { ref += Double(sources[f * count + i]) } }
                for (f, c) in terms[k] { ref += Double(c) * Double(sources[Int(f) * count + i]) }
                worst = max(worst, abs(Double(one[k][i]) - ref))
            }
            XCTAssertLessThan(worst, 2e-5, "output \(k) (from the \(fromTotal[k] ? "total" : "base")): max error \(worst)")
        }
    }

    func testInPlaceOverTheBase() {
        let rows = 3, count = 150
        let sources = (0..<(rows * count)).map { Float($0 % 11) - 5 }
        var buffer = (0..<count).map { Float($0) }
        let expected = (0..<count).map { i in Float(i) + sources[i] - 2 * sources[2 * count + i] }
        sources.withUnsafeBufferPointer { s in
            buffer.withUnsafeMutableBufferPointer { b in
                WeightedSums.run([.init(dst: b.baseAddress!, fromTotal: false, terms: 0..<2)], indices: [0, 2], coefficients: [1, -2],
                                 base: UnsafePointer(b.baseAddress!), sources: s.baseAddress!, stride: count, sourceRows: rows,
                                 count: count, threads: 2)
            }
        }
        XCTAssertEqual(buffer, expected)
    }
}
