import Foundation

/// Provenance: the dkc version and the git commit of the source tree it was built from.
public enum DKCVersion {
    public static let version = "0.1.0"

    /// The commit of the source tree this binary was compiled from (`git rev-parse`), with `-dirty`
    /// when the tree had uncommitted changes, or "unknown" when the tree is gone or is not a checkout.
    /// `DKC_GIT_COMMIT` in the environment overrides it (for installed copies).
    public static let gitCommit: String = {
        if let env = ProcessInfo.processInfo.environment["DKC_GIT_COMMIT"], !env.isEmpty { return env }
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: dir) else { return "unknown" }
        guard let head = runGit(["-C", dir, "rev-parse", "--short=12", "HEAD"]), !head.isEmpty else { return "unknown" }
        let dirty = runGit(["-C", dir, "status", "--porcelain", "--untracked-files=no"]).map { !$0.isEmpty } ?? false
        return dirty ? head + "-dirty" : head
    }()

    /// "dkc 0.1.0 (abc123)", the form every output file's `source` attribute carries.
    public static var source: String { "dkc \(version) (\(gitCommit))" }

    private static func runGit(_ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
