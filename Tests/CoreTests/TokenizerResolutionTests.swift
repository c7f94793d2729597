import Foundation
import XCTest
@testable import Core

/// The one tokenizer resolution rule (explicit path > model folder > cache, docs/tokenizers.md) as the
/// commands, training and the sweep use it through `TokenizerLoader.resolveGPT2`.
final class TokenizerResolutionTests: XCTestCase {
    func gpt2Dir() throws -> URL {
        let dir = Paths.fixtures.appendingPathComponent("tokenizer")
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("vocab.json").path) else {
            throw missingFixtures(dir.path)
        }
        return dir
    }

    /// Runs `body` with `DKC_CACHE` pointing at a fresh folder (the cache step of the rule), then restores it.
    func withCache(holdingGPT2 gpt2: URL?, _ body: () throws -> Void) throws {
        let cache = try ModelFixtures.tempDir(self)
        if let gpt2 {
            let dst = cache.appendingPathComponent("gpt2-tokenizer")
            try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
            for f in ["vocab.json", "merges.txt"] { try FileManager.default.copyItem(at: gpt2.appendingPathComponent(f), to: dst.appendingPathComponent(f)) }
        }
        let old = ProcessInfo.processInfo.environment["DKC_CACHE"]
        setenv("DKC_CACHE", cache.path, 1)
        defer { if let old { setenv("DKC_CACHE", old, 1) } else { unsetenv("DKC_CACHE") } }
        try body()
    }

    func testExplicitPathWinsOverModelFolderAndCache() throws {
        let gpt2 = try gpt2Dir()
        let model = Paths.fixtures.appendingPathComponent("model")
        try withCache(holdingGPT2: nil) {
            let t = try TokenizerLoader.resolveGPT2(explicit: gpt2, model: model)
            XCTAssertEqual(t.vocabSize, 50257)
            XCTAssertEqual(t.encode("Hello", addSpecialTokens: false), [15496])   // the reference's special_tokens.json example
        }
    }

    func testModelFolderBeforeCacheAndCacheLast() throws {
        let gpt2 = try gpt2Dir()
        let model = Paths.fixtures.appendingPathComponent("model")
        let empty = try ModelFixtures.tempDir(self)
        // The model folder's files are used although the cache is empty.
        try withCache(holdingGPT2: nil) {
            XCTAssertEqual(try TokenizerLoader.resolveGPT2(explicit: nil, model: model).encode("Hello", addSpecialTokens: false), [15496])
            // Neither: the cache's absence is a named error saying how to fetch it, also for the cache folder given explicitly.
            for explicit in [nil, Paths.gpt2Tokenizer] {
                XCTAssertThrowsError(try TokenizerLoader.resolveGPT2(explicit: explicit, model: empty)) { e in
                    let err = e as? TokenizerError
                    XCTAssertNotNil(err, "\(e)")
                    XCTAssertTrue(err?.fix?.contains("fetch-gpt2-tokenizer") ?? false, "\(e)")
                }
            }
        }
        // With a model folder holding no tokenizer, the cache is used.
        try withCache(holdingGPT2: gpt2) {
            let t = try TokenizerLoader.resolveGPT2(explicit: nil, model: empty)
            XCTAssertEqual(t.vocabSize, 50257)
            XCTAssertEqual(t.encode(" lives in the city of", addSpecialTokens: false).count, 5)
        }
    }

    func testAnExplicitPathThatIsMissingIsNamed() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-no-such-\(UUID().uuidString)")
        XCTAssertThrowsError(try TokenizerLoader.resolveGPT2(explicit: missing, model: nil)) { e in
            XCTAssertEqual((e as? TokenizerError)?.file.path, missing.path, "\(e)")
        }
    }

    func testANonGPT2TokenizerIsANamedErrorWhereGPT2IsNeeded() throws {
        let llama = Paths.fixtures.appendingPathComponent("llama/tokenizer")
        guard FileManager.default.fileExists(atPath: llama.appendingPathComponent("tokenizer.json").path) else { throw missingFixtures(llama.path) }
        XCTAssertTrue(try TokenizerLoader.resolve(explicit: llama, model: nil) is SentencePieceBPETokenizer)
        XCTAssertThrowsError(try TokenizerLoader.resolveGPT2(explicit: llama, model: nil)) { e in
            let err = e as? TokenizerError
            XCTAssertEqual(err?.file.path, llama.path, "\(e)")
            XCTAssertTrue(err?.problem.contains("SentencePieceBPETokenizer") ?? false, "\(e)")
        }
    }
}
