import Dispatch
import Foundation

/// A request to stop cleanly, raised by SIGTERM or SIGUSR1 (what Slurm sends before a time limit or
/// preemption, and what `scancel --signal` forwards).
///
/// Long-running engines poll `isRequested` at safe points (between optimizer steps, between grid
/// cells); the distributed commands agree on it across ranks before acting, write their state, and
/// exit 0 with a line saying how to resume. The signal itself only sets a flag: handlers run on a
/// dispatch queue, never inside the interrupted code.
public final class StopRequest: @unchecked Sendable {
    public static let shared = StopRequest()

    private let lock = NSLock()
    private var requestedBy: Int32? = nil
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "dkc.stop-request")

    private init() {}

    /// Starts listening for `signals` (SIGTERM and SIGUSR1 by default). Safe to call more than once.
    public func install(signals: [Int32] = [SIGTERM, SIGUSR1]) {
        lock.lock(); defer { lock.unlock() }
        guard sources.isEmpty else { return }
        for s in signals {
            signal(s, SIG_IGN)  // the dispatch source receives it instead of the default action (termination)
            let src = DispatchSource.makeSignalSource(signal: s, queue: queue)
            src.setEventHandler { [weak self] in self?.request(signal: s) }
            src.resume()
            sources.append(src)
        }
    }

    /// Records a stop request (also usable directly, e.g. by tests).
    public func request(signal: Int32) {
        lock.lock(); defer { lock.unlock() }
        if requestedBy == nil { requestedBy = signal }
    }

    public var isRequested: Bool {
        lock.lock(); defer { lock.unlock() }
        return requestedBy != nil
    }

    /// The name of the signal that asked to stop ("SIGTERM", "SIGUSR1"), if any.
    public var signalName: String? {
        lock.lock(); defer { lock.unlock() }
        guard let s = requestedBy else { return nil }
        switch s {
        case SIGTERM: return "SIGTERM"
        case SIGUSR1: return "SIGUSR1"
        case SIGINT: return "SIGINT"
        default: return "signal \(s)"
        }
    }

    /// Forgets a request (tests).
    public func reset() {
        lock.lock(); defer { lock.unlock() }
        requestedBy = nil
    }
}
