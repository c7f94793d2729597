import Foundation

/// An exclusive lock on an output folder (`flock` on a lock file in it), held for the life of the
/// object, so two jobs never write one folder. The lock file holds "pid <pid> on <host>" of the holder;
/// the kernel releases the lock when the process ends, however it ends, so a killed job leaves no
/// stale lock. One lock implementation for every command that owns a folder (`dkc train`, `dkc sweep`).
public final class FolderLock {
    /// Why the lock was not taken.
    public enum Failure: Error, Equatable {
        /// Another process holds it; `holder` is what it wrote ("pid … on …").
        case held(holder: String)
        /// The file system does not support `flock` (ENOSYS, ENOLCK, EOPNOTSUPP: e.g. some network file
        /// systems); `reason` is the C library's text.
        case unsupported(reason: String)
        /// The lock file cannot be opened.
        case cannotOpen(reason: String)
    }

    public let url: URL
    private let fd: Int32

    /// Takes the lock `name` in `folder` (which must exist) without waiting.
    public init(folder: URL, name: String) throws(Failure) {
        url = folder.appendingPathComponent(name)
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotOpen(reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            if code == EWOULDBLOCK || code == EAGAIN || code == EINTR {
                let holder = (try? String(contentsOfFile: url.path, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                close(fd)
                throw .held(holder: holder.isEmpty ? "a process that has not written its id yet" : holder)
            }
            close(fd)
            throw .unsupported(reason: String(cString: strerror(code)))
        }
        ftruncate(fd, 0)
        let text = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName)\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.fd = fd
    }

    deinit { close(fd) }
}
