import Foundation

/// Written only by the signal handler (one aligned word), read under `StopRequest`'s lock.
private var stopRequestPendingSignal: Int32 = 0

/// A request to stop cleanly, raised by SIGTERM or SIGUSR1 (what Slurm sends before a time limit or
/// preemption, and what `scancel --signal` forwards).
///
/// Long-running engines poll `isRequested` at safe points (between optimizer steps, between grid
/// cells); the distributed commands agree on it across ranks before acting, write their state, and
/// exit 0 with a line saying how to resume. The signal handler only stores the signal number in a
/// word (async-signal-safe; any thread may receive a process-directed signal, OpenBLAS's and MPI's
/// included, so a handler, not a blocked-signal queue, is what reliably sees it).
public final class StopRequest: @unchecked Sendable {
    public static let shared = StopRequest()

    private let lock = NSLock()
    private var requestedBy: Int32? = nil
    private var installed = false

    private init() {}

    /// Starts listening for `signals` (SIGTERM and SIGUSR1 by default). Safe to call more than once.
    public func install(signals: [Int32] = [SIGTERM, SIGUSR1]) {
        lock.lock(); defer { lock.unlock() }
        guard !installed else { return }
        installed = true
        for s in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in stopRequestPendingSignal = sig }
            action.sa_flags = SA_RESTART  // interrupted system calls (file writes, MPI progress) resume
            sigemptyset(&action.sa_mask)
            sigaction(s, &action, nil)
        }
    }

    /// Records a stop request (also usable directly, e.g. by tests).
    public func request(signal: Int32) {
        lock.lock(); defer { lock.unlock() }
        if requestedBy == nil { requestedBy = signal }
    }

    public var isRequested: Bool {
        lock.lock(); defer { lock.unlock() }
        absorbPending()
        return requestedBy != nil
    }

    /// Moves a signal the handler recorded into the request (caller holds the lock).
    private func absorbPending() {
        let pending = stopRequestPendingSignal
        if pending != 0 && requestedBy == nil { requestedBy = pending }
    }

    /// The name of the signal that asked to stop ("SIGTERM", "SIGUSR1"), if any.
    public var signalName: String? {
        lock.lock(); defer { lock.unlock() }
        absorbPending()
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
        stopRequestPendingSignal = 0
    }
}
