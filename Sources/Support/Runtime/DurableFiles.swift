import Foundation

/// What it takes for a file to survive a crash or power loss once its name is visible: its bytes
/// flushed (`fsync`) before the rename that publishes it, and the folder flushed after, so the new name
/// itself is on disk (docs/fault-tolerance.md).
public enum DurableFiles {
    /// A failed system call on a path, with the C library's reason.
    public struct Failure: UserFacingError {
        public let path: String
        public let call: String
        public let reason: String
        public let code: Int32
        public var exitCode: Int32 { 1 }
        public var description: String {
            "\(path): \(call) failed: \(reason)" + (code == ENOSPC || code == EFBIG || code == EDQUOT
                ? " (the disk, the quota or the file size limit is full: free space or raise the limit, then run again)" : "")
        }
        public init(path: String, call: String, code: Int32) {
            self.path = path; self.call = call; self.code = code; reason = String(cString: strerror(code))
        }
    }

    /// Flushes the file or folder at `url` to disk. File systems that cannot flush a folder (EINVAL) are
    /// accepted as they are.
    public static func sync(_ url: URL) throws {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
        let fd = open(url.path, isDirectory.boolValue ? O_RDONLY | O_DIRECTORY : O_RDONLY)
        guard fd >= 0 else { throw Failure(path: url.path, call: "open", code: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 || errno == EINVAL else { throw Failure(path: url.path, call: "fsync", code: errno) }
    }

    /// Flushes every regular file directly inside `folder`, then the folder itself.
    public static func syncContents(of folder: URL) throws {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder.path) } catch {
            throw Failure(path: folder.path, call: "opendir", code: (error as NSError).code == 0 ? EIO : Int32((error as NSError).code))
        }
        for name in names.sorted() { try sync(folder.appendingPathComponent(name)) }
        try sync(folder)
    }

    /// Writes `data` to `url` so that `url` names either the old contents or all of `data`: a temporary
    /// file beside it (`.<name>.tmp-<pid>`), written in full, flushed, renamed over `url`, and the folder
    /// flushed. On failure the temporary file is removed and `url` is left as it was.
    public static func write(_ data: Data, to url: URL) throws {
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw Failure(path: tmp.path, call: "open", code: errno) }
        var ok = false
        defer { if !ok { unlink(tmp.path) } }
        do {
            defer { close(fd) }
            try data.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let w = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                    if w < 0 {
                        if errno == EINTR { continue }
                        throw Failure(path: url.path, call: "write", code: errno)
                    }
                    done += w
                }
            }
            guard fsync(fd) == 0 || errno == EINVAL else { throw Failure(path: url.path, call: "fsync", code: errno) }
        }
        guard rename(tmp.path, url.path) == 0 else { throw Failure(path: url.path, call: "rename", code: errno) }
        ok = true
        try sync(url.deletingLastPathComponent())
    }
}
