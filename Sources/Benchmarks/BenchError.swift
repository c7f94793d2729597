import Foundation
import Core

/// A benchmark that cannot run as asked (`dkc bench …`): a usage problem (exit 64) unless it is bad
/// input data such as pools that cannot give the prompts (exit 65).
public struct BenchError: UserFacingError {
    public let message: String
    public let exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 64) {
        self.message = message
        self.exitCode = exitCode
    }

    public var description: String { message }
}
