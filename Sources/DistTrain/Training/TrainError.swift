import Foundation
import Core

/// Everything that stops `dkc train` for a reason the user can fix: missing or malformed data files,
/// settings that cannot work together, checkpoints that do not belong to the run. The message names
/// the file, line, key or option, and says what to do.
public struct TrainError: UserFacingError, Equatable {
    public let message: String
    public let exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 65) {
        self.message = message
        self.exitCode = exitCode
    }

    public var description: String { message }

    /// A problem with one file (and line).
    public static func file(_ url: URL, line: Int? = nil, _ problem: String, fix: String? = nil) -> TrainError {
        let place = url.path + (line.map { " line \($0)" } ?? "")
        return TrainError("\(place): \(problem)" + (fix.map { "; \($0)" } ?? ""))
    }
}
