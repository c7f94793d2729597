import Foundation
import Core

/// A benchmark that cannot run as asked (`dkc bench …`): a usage problem, exit 64 (`BenchError.usage`).
public typealias BenchError = MessageError

extension MessageError {
    /// A usage problem (exit 64).
    public static func usage(_ message: String) -> MessageError { MessageError(message, exitCode: 64) }
}
