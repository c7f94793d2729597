import Foundation
import XCTest

/// Runs the package's executables (dkc, MPISelfTest) as a user would, with or without mpirun.
enum Launch {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        let seconds: Double
        let timedOut: Bool
    }

    /// The folder holding the built products (beside the test bundle), or `$DKC_BIN_DIR`.
    static var productsDirectory: URL {
        if let d = ProcessInfo.processInfo.environment["DKC_BIN_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            if url.pathExtension == "xctest" { return url.deletingLastPathComponent() }
            url.deleteLastPathComponent()
        }
        // `swift test` on Linux runs the .xctest binary directly: its folder is the products folder.
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    static func executable(_ name: String) throws -> URL {
        let url = productsDirectory.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw XCTSkip("\(name) not built at \(url.path); run `swift build` first or set DKC_BIN_DIR")
        }
        return url
    }

    static func mpirun() throws -> URL {
        for p in ["/usr/bin/mpirun", "/usr/local/bin/mpirun"] where FileManager.default.isExecutableFile(atPath: p) {
            return URL(fileURLWithPath: p)
        }
        throw XCTSkip("mpirun not found: run scripts/bootstrap (installs openmpi-bin)")
    }

    /// Environment for child processes: root may run mpirun; launcher variables of an outer job removed.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for k in env.keys where k.hasPrefix("OMPI_") || k.hasPrefix("PMI") || k.hasPrefix("SLURM_") || k.hasPrefix("PMIX_") {
            env.removeValue(forKey: k)
        }
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Runs `exe args` (under `mpirun -np ranks` when ranks is given), killing it after `timeout` seconds.
    static func run(_ exe: URL, _ args: [String], ranks: Int? = nil, env extra: [String: String] = [:],
                    timeout: Double = 120, cwd: URL? = nil) throws -> Result {
        let p = Process()
        if let ranks {
            p.executableURL = try mpirun()
            p.arguments = ["--oversubscribe", "-np", String(ranks), exe.path] + args
        } else {
            p.executableURL = exe
            p.arguments = args
        }
        p.environment = environment(extra)
        if let cwd { p.currentDirectoryURL = cwd }
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-test-\(UUID().uuidString).out")
        let errURL = outURL.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardInput = FileHandle.nullDevice
        let start = Date()
        try p.run()
        var timedOut = false
        while p.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                p.terminate()
                Thread.sleep(forTimeInterval: 1)
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        p.waitUntilExit()
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return Result(status: p.terminationStatus, stdout: out, stderr: err,
                      seconds: Date().timeIntervalSince(start), timedOut: timedOut)
    }
}

/// A dkc job under `mpirun` in the background, its output in temporary files (removed with the job); a job
/// still running when it is released is killed.
class BackgroundJob {
    let process = Process()
    let out: URL, err: URL

    init(dkc: URL, _ arguments: [String], ranks: Int, env: [String: String] = [:], label: String) throws {
        process.executableURL = try Launch.mpirun()
        process.arguments = ["--oversubscribe", "-np", String(ranks), dkc.path] + arguments
        process.environment = Launch.environment(env)
        out = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-\(label)-\(UUID().uuidString).out")
        err = out.appendingPathExtension("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: err)
    }

    var stdout: String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }
    var output: String { stdout + stderr }

    /// Every process whose parent is this mpirun (a scan of /proc/*/stat, which, unlike
    /// /proc/<pid>/task/*/children, sees children forked by any of mpirun's threads at once).
    var children: [pid_t] {
        let me = process.processIdentifier
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == me
        }
    }
}
