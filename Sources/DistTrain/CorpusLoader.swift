import Core
import Foundation
import MPIShim

/// A stage's training and evaluation blocks, identical on every rank.
public struct StageData {
    public let train: PackedBlocks
    public let eval: PackedBlocks?
    public let trainTexts: Int
    public let evalTexts: Int
    /// How a forget sub-run's training texts were mixed (nil for the other stages).
    public var replayMix: ReplayMix? = nil
    /// Further evaluation sets by name (a forget sub-run's `extra_validation_files`), evaluated with `eval`.
    public var extraEval: [(name: String, blocks: PackedBlocks)] = []
}

/// Reads a JSONL corpus and turns it into packed blocks, the work split over the ranks: rank r parses and
/// tokenises the r-th contiguous share of the records, the shares are gathered on rank 0 in order and
/// broadcast, and every rank then shuffles and packs the same texts (`PackedBlocks.prepare`). The result
/// does not depend on the number of ranks.
public enum CorpusLoader {
    public static func blocks(file: URL, encoder: TextEncoder, eos: Int, blockSize: Int, groupSize: Int, seed: UInt64,
                              bos: Int? = nil, markLeadingSpace: Bool = true,
                              comm: Communicator) throws -> (blocks: PackedBlocks, texts: Int) {
        let texts = try tokenized(file: file, encoder: encoder, eos: eos, blockSize: blockSize, bos: bos, markLeadingSpace: markLeadingSpace,
                                  comm: comm)
        return (PackedBlocks.prepare(texts: texts, blockSize: blockSize, groupSize: groupSize, seed: seed), texts.count)
    }

    /// Every record of `file` tokenised (`BiographyRecord.tokenized`, with the family's `bos` and mark rule),
    /// in file order, on every rank. Parse errors are agreed on: every rank throws, rank 0 reports the failing
    /// rank's message.
    public static func tokenized(file: URL, encoder: TextEncoder, eos: Int, blockSize: Int, bos: Int? = nil, markLeadingSpace: Bool = true,
                                 comm: Communicator) throws -> [TokenizedText] {
        let mine = try comm.agree(exitCode: exitCode) {
            try BiographyRecord.read(file, part: comm.rank, of: comm.size).records
                .map { $0.tokenized(encoder: encoder, eos: eos, blockSize: blockSize, bos: bos, markLeadingSpace: markLeadingSpace) }
        }
        guard comm.size > 1 else { return mine }
        // Flatten this rank's share: lengths, ids, marks.
        let lengths = mine.map { Int32($0.ids.count) }
        let ids = mine.flatMap(\.ids)
        let marks = mine.flatMap(\.attributeMask)
        var allLengths = try comm.gatherv(lengths).flatMap { $0 }
        var allIds = try comm.gatherv(ids).flatMap { $0 }
        var allMarks = try comm.gatherv(marks).flatMap { $0 }
        try broadcastArray(&allLengths, comm: comm)
        try broadcastArray(&allIds, comm: comm)
        try broadcastArray(&allMarks, comm: comm)
        var out: [TokenizedText] = []
        out.reserveCapacity(allLengths.count)
        var at = 0
        for n in allLengths {
            let r = at..<(at + Int(n))
            out.append(TokenizedText(ids: Array(allIds[r]), attributeMask: Array(allMarks[r])))
            at += Int(n)
        }
        return out
    }

    /// Broadcasts an array whose length only rank 0 knows.
    static func broadcastArray<T: MPIScalar>(_ a: inout [T], comm: Communicator) throws {
        var n: [Int64] = [Int64(a.count)]
        try comm.broadcast(&n)
        if !comm.isRoot { a = [T](unsafeUninitializedCapacity: Int(n[0])) { _, c in c = Int(n[0]) } }
        try comm.broadcast(&a)
    }

    static func exitCode(_ error: Error) -> Int32 { (error as? UserFacingError)?.exitCode ?? 1 }
}
