import Foundation
import Core

/// Everything that stops `dkc train` for a reason the user can fix: missing or malformed data files,
/// settings that cannot work together, checkpoints that do not belong to the run. The message names
/// the file, line, key or option, and says what to do (exit 65 unless said otherwise).
public typealias TrainError = MessageError

extension MessageError {
    /// A problem with one file (and line).
    public static func file(_ url: URL, line: Int? = nil, _ problem: String, fix: String? = nil) -> MessageError {
        let place = url.path + (line.map { " line \($0)" } ?? "")
        return MessageError("\(place): \(problem)" + (fix.map { "; \($0)" } ?? ""))
    }
}
