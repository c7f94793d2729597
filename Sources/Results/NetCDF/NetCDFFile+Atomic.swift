import Foundation
import Support

extension NetCDFFile {
    /// The temporary path `writeAtomically` uses for `url`: `<name>.tmp-<pid>` in the same folder
    /// (same file system, so the final rename is atomic).
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent("\(url.lastPathComponent).tmp-\(getpid())")
    }

    /// Writes a NetCDF file so that `url` only ever names a complete file.
    ///
    /// Creates `<name>.tmp-<pid>` next to `url` (a fresh NetCDF-4 file, or, with
    /// `updatingExisting` and an existing target, a copy of the target opened writable), runs
    /// `body` on it, closes it, flushes it to disk, renames it over `url` and flushes the folder. A job killed
    /// part-way leaves at most the temporary file, never a half-written file under the real
    /// name. If `body` or any step throws, the temporary file is removed and the error rethrown;
    /// the target is left as it was.
    @discardableResult
    public static func writeAtomically<T>(to url: URL, updatingExisting: Bool = false,
                                          body: (NetCDFFile) throws -> T) throws -> T {
        let target = url.path
        let temporary = temporaryURL(for: url).path
        let manager = FileManager.default
        var file: NetCDFFile?
        do {
            if manager.fileExists(atPath: temporary) { try manager.removeItem(atPath: temporary) }
            if updatingExisting && manager.fileExists(atPath: target) {
                try manager.copyItem(atPath: target, toPath: temporary)
                file = try NetCDFFile.open(path: temporary, writable: true)
            } else {
                file = try NetCDFFile.create(path: temporary)
            }
            let result = try body(file!)
            try file!.close()
            try flush(temporary)
            guard rename(temporary, target) == 0 else {
                throw NetCDFError(call: "rename", path: target, object: "from \(temporary)",
                                  reason: String(cString: strerror(errno)),
                                  hint: "check that the folder is writable")
            }
            // The folder too, so the new name survives a crash as well as the data.
            try DurableFiles.sync(url.deletingLastPathComponent())
            return result
        } catch {
            try? file?.close()
            unlink(temporary)
            throw error
        }
    }

    /// `fsync` so the rename never publishes a name whose data is still only in memory.
    private static func flush(_ path: String) throws {
        let fd = Foundation.open(path, O_RDONLY)
        guard fd >= 0 else {
            throw NetCDFError(call: "open", path: path, reason: String(cString: strerror(errno)))
        }
        defer { Foundation.close(fd) }
        guard fsync(fd) == 0 else {
            throw NetCDFError(call: "fsync", path: path, reason: String(cString: strerror(errno)))
        }
    }
}
