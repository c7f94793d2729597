import Foundation

/// Where dkc looks for files it did not get on the command line.
public enum Paths {
    /// The source checkout this binary was built from (two folders above Sources/Core).
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

    /// The reference fixtures: `$DKC_FIXTURES`, else `../shared/fixtures` beside the checkout.
    public static var fixtures: URL {
        if let f = ProcessInfo.processInfo.environment["DKC_FIXTURES"], !f.isEmpty { return URL(fileURLWithPath: f) }
        return sourceRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures").standardizedFileURL
    }
}
