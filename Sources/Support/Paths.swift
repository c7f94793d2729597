import Foundation

/// Where dkc looks for files it did not get on the command line.
public enum Paths {
    /// The source checkout this binary was built from (two folders above this file's folder, Sources/Support).
    public static var sourceRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The cache folder: `$DKC_CACHE`, else `$XDG_CACHE_HOME/dkc`, else `~/.cache/dkc`.
    public static var cache: URL {
        let env = ProcessInfo.processInfo.environment
        if let c = env["DKC_CACHE"], !c.isEmpty { return URL(fileURLWithPath: c) }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return URL(fileURLWithPath: x).appendingPathComponent("dkc") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dkc")
    }

    /// GPT-2's vocab.json + merges.txt as `scripts/fetch-gpt2-tokenizer` stores them.
    public static var gpt2Tokenizer: URL { cache.appendingPathComponent("gpt2-tokenizer") }

    /// The reference fixtures, the first of: `$DKC_FIXTURES`; `../shared/fixtures` beside the checkout (the full
    /// set) when it has a README.md; `Tests/Fixtures` in the checkout (the committed compact set, docs/fixtures.md).
    public static var fixtures: URL {
        if let f = ProcessInfo.processInfo.environment["DKC_FIXTURES"], !f.isEmpty { return URL(fileURLWithPath: f) }
        let full = sourceRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures").standardizedFileURL
        if FileManager.default.fileExists(atPath: full.appendingPathComponent("README.md").path) { return full }
        return sourceRoot.appendingPathComponent("Tests/Fixtures")
    }

    /// Whether a test may skip when fixtures are missing: not under CI (`CI=true`), where a missing fixture
    /// fails the run instead (docs/fixtures.md). The one place that decides; every fixture loader asks it.
    public static var fixtureSkipAllowed: Bool {
        ProcessInfo.processInfo.environment["CI"]?.lowercased() != "true"
    }
}
