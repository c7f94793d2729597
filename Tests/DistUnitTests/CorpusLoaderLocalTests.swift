import Foundation
import XCTest
import Core
@testable import DistTrain
import MPIShim

/// `CorpusLoader` on R = 1…4 in-process ranks: each rank tokenises its share of the records, and every
/// rank ends with every record in file order, the same as reading the whole file in one process; a bad
/// line in one rank's share makes every rank fail together, rank 0 naming the file and line.
final class CorpusLoaderLocalTests: XCTestCase {
    static func tokenizer() throws -> GPT2Tokenizer {
        let dir = Paths.fixtures.appendingPathComponent("tokenizer")
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("vocab.json").path) else {
            let text = "fixture tokenizer not found at \(dir.path): set DKC_FIXTURES or keep Tests/Fixtures"
            if Paths.fixtureSkipAllowed { throw XCTSkip(text) }
            throw CommunicatorError(text)
        }
        return try GPT2Tokenizer(directory: dir)
    }

    /// Seven records (not a multiple of 2, 3 or 4), every other one a marked "new" person, and a blank line.
    static func corpus(badLine: String? = nil) throws -> URL {
        var lines = (0..<7).map { i -> String in
            i % 2 == 0
                ? #"{"text": "Person \#(i) was born in City\#(i) and works for Firm\#(i).", "type": "new", "city": "City\#(i)", "company": "Firm\#(i)"}"#
                : #"{"text": "Record \#(i) has no marks at all."}"#
        }
        lines.insert("", at: 3)
        if let badLine { lines[6] = badLine }  // file line 7, in the last rank's share
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-corpus-\(UUID().uuidString).jsonl")
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func testEveryRankGetsEveryRecordInFileOrder() throws {
        let tokenizer = try Self.tokenizer()
        let file = try Self.corpus()
        defer { try? FileManager.default.removeItem(at: file) }
        let eos = tokenizer.eosTokenId
        let reference = try BiographyRecord.read(file).records.map { $0.tokenized(encoder: tokenizer, eos: eos, blockSize: 32) }
        XCTAssertEqual(reference.count, 7)
        XCTAssertTrue(reference.contains { $0.attributeMask.contains { $0 != 0 } }, "the corpus marks attribute tokens")
        for R in 1...4 {
            let results = try LocalGroup.runAll(ranks: R, timeout: 30) { comm in
                try CorpusLoader.tokenized(file: file, encoder: tokenizer, eos: eos, blockSize: 32, comm: comm)
            }
            for (rank, texts) in results.enumerated() {
                XCTAssertEqual(texts, reference, "R \(R) rank \(rank)")
            }
        }
    }

    func testBadLineInOneShareFailsEveryRankTogether() throws {
        let tokenizer = try Self.tokenizer()
        let file = try Self.corpus(badLine: "{not json")
        defer { try? FileManager.default.removeItem(at: file) }
        let eos = tokenizer.eosTokenId
        let outcomes = try LocalGroup.run(ranks: 3, timeout: 30) { comm in
            try CorpusLoader.tokenized(file: file, encoder: tokenizer, eos: eos, blockSize: 32, comm: comm)
        }
        for (rank, outcome) in outcomes.enumerated() {
            XCTAssertThrowsError(try outcome.get(), "rank \(rank)") { error in
                guard let failure = error as? CollectiveFailure else { return XCTFail("rank \(rank): \(error)") }
                if rank == 0 {
                    XCTAssertTrue(failure.message.hasPrefix("rank 2: ") && failure.message.contains("\(file.path) line 7: is not a JSON object"),
                                  failure.message)
                } else {
                    XCTAssertEqual(failure.message, "")
                }
            }
        }
    }
}
