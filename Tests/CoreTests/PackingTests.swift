import XCTest
@testable import Core
@testable import DistTrain

/// One token per character; enough to check packing arithmetic by hand.
private struct CharEncoder: TextEncoder {
    func encode(_ text: String) -> [Int] { text.unicodeScalars.map { Int($0.value) } }
}

final class PackingTests: XCTestCase {
    private func text(_ n: Int, _ v: Int32) -> TokenizedText {
        TokenizedText(ids: [Int32](repeating: v, count: n), attributeMask: [UInt8](repeating: 0, count: n))
    }

    func testBlocksStartAtTextBoundariesAndLastBlockIsDropped() {
        // Lengths 4, 3, 5, 2, 6 with block 8: starts 0 (4+3=7 fits), 7 (text 3 would end at 12 > 8),
        // then 12 (text 4 ends at 14 <= 15), then 14 (text 5 would end at 20 > 15). Last start dropped.
        XCTAssertEqual(PackedBlocks.blockStarts(lengths: [4, 3, 5, 2, 6], blockSize: 8), [0, 7, 14])
        let texts = [text(4, 1), text(3, 2), text(5, 3), text(2, 4), text(6, 5)]
        let packed = PackedBlocks(texts: texts, blockSize: 8, groupSize: 1000)
        XCTAssertEqual(packed.count, 2)
        XCTAssertEqual(Array(packed.block(0)), [1, 1, 1, 1, 2, 2, 2, 3])     // tail holds text 3's beginning
        XCTAssertEqual(Array(packed.block(1)), [3, 3, 3, 3, 3, 4, 4, 5])     // text 3 again, whole
    }

    func testGroupsArePackedSeparately() {
        let texts = (0..<6).map { text(3, Int32($0)) }
        // Groups of 3 texts (9 tokens each) with block 4: starts 0, 3, 6 -> two blocks per group.
        let packed = PackedBlocks(texts: texts, blockSize: 4, groupSize: 3)
        XCTAssertEqual(packed.count, 4)
        XCTAssertEqual(Array(packed.block(2)), [3, 3, 3, 4])
        XCTAssertTrue(packed.tokens.count == 16)
    }

    func testTokenizeAppendsEOSUnlessTruncatedAndMarksFirstAttributeToken() {
        let enc = CharEncoder()
        let t = TokenizedText.make(text: "ab cd", attributes: ["cd"], typeCode: 2, encoder: enc, eos: 0, blockSize: 10)
        XCTAssertEqual(t.ids, [97, 98, 32, 99, 100, 0])
        XCTAssertEqual(t.attributeMask, [0, 0, 1 * 2, 0, 0, 0])  // " cd" begins at the space, index 2
        let long = TokenizedText.make(text: "abcdef", attributes: [], typeCode: 1, encoder: enc, eos: 0, blockSize: 4)
        XCTAssertEqual(long.ids, [97, 98, 99, 100])
    }

    func testPermutationKeepsTokensAndMasksTogether() {
        var a = text(4, 1); a.attributeMask[1] = 1
        let packed = PackedBlocks(texts: [a, text(4, 2), text(4, 3)], blockSize: 4, groupSize: 10)
        let p = packed.permuted([1, 0])
        XCTAssertEqual(Array(p.block(1)), [1, 1, 1, 1])
        XCTAssertEqual(Array(p.mask(1)), [0, 1, 0, 0])
    }
}
