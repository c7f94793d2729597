import Foundation

/// An error that every rank throws at the same point, after the ranks agreed on it (`Communicator.agree`):
/// the job can end cleanly (finalize, exit code on every rank, rank 0 prints `message`) instead of
/// through MPI_Abort.
public protocol CollectiveError: Error, CustomStringConvertible {
    /// What rank 0 reports (other ranks may hold an empty text).
    var message: String { get }
    var exitCode: Int32 { get }
}

/// The agreed outcome of a failed collective check: rank 0 holds every failing rank's message.
public struct CollectiveFailure: CollectiveError {
    public let message: String
    public let exitCode: Int32
    public init(message: String, exitCode: Int32) {
        self.message = message
        self.exitCode = exitCode
    }
    public var description: String { message }
}

extension Communicator {
    /// Runs `body` on every rank, then agrees on the outcome: when any rank threw, every rank throws a
    /// `CollectiveFailure` carrying (on rank 0) the failing ranks' messages — one message when they all
    /// failed alike or when only rank 0 does the work (`rootOnly`), else each prefixed with its rank —
    /// and the largest exit code among them. `exitCode` maps an error to its code.
    public func agree<T>(exitCode code: (Error) -> Int32, rootOnly: Bool = false, _ body: () throws -> T) throws -> T {
        var result: T?
        var message = ""
        var myCode: Int32 = 0
        do { result = try body() } catch {
            message = "\(error)"
            myCode = max(1, code(error))
        }
        let worst = try allreduce(myCode, op: .max)
        guard worst != 0 else { return result! }
        let messages = try gather(string: myCode != 0 ? message : "")
        var text = ""
        if isRoot {
            let failing = messages.enumerated().filter { !$0.element.isEmpty }
            if Set(failing.map(\.element)).count == 1, failing.count == size || size == 1 || rootOnly {
                text = failing[0].element
            } else {
                text = failing.map { "rank \($0.offset): \($0.element)" }.joined(separator: "\n")
            }
        }
        throw CollectiveFailure(message: text, exitCode: worst)
    }
}
