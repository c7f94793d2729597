import Core
import Foundation
import MPIShim

/// What a sweep reports while it runs (rank 0 only), for the command to show.
public enum SweepEvent: Sendable {
    /// The grid is known: `planned` items, of which `alreadyDone` were found in the results folder.
    case started(planned: Int, alreadyDone: Int, ranks: Int)
    /// An item finished on `rank`; `done` of `planned` items are now done. `samples`: its circuit samples
    /// (0 for an acquisition).
    case finished(SweepItem, rank: Int, samples: Int, done: Int, planned: Int)
    /// The files were written, taking `seconds`.
    case wrote(seconds: Double)
    /// A stop was requested (signal name); items in flight are being finished.
    case stopping(signal: String)
}

/// How a sweep went, as rank 0 saw it.
public struct SweepSummary: Sendable {
    public var planned: Int
    /// Items computed by this run, and done before it.
    public var computed: Int
    public var alreadyDone: Int
    public var samples: Int
    public var wallSeconds: Double
    /// Summed over ranks: seconds loading checkpoints and computing items.
    public var loadSeconds: Double
    public var computeSeconds: Double
    /// Rank 0's seconds writing files, and how many writes.
    public var writeSeconds: Double
    public var writes: Int
    public var ranks: Int
    /// Items computed per rank.
    public var itemsPerRank: [Int]
    /// The signal that stopped the run early, if any.
    public var stoppedBy: String?
    public var outputDir: URL

    public var complete: Bool { alreadyDone + computed == planned }
}

/// `dkc sweep` on a communicator: rank 0 coordinates and works; every other rank works.
///
/// Rank 0's main thread makes every MPI call (the world runs with MPI_THREAD_FUNNELED): it answers
/// requests for work, stores results, appends the manifest and writes files, while a second thread
/// computes rank 0's own items. Another rank asks for an item, computes it, sends the result with its
/// next request, until rank 0 answers "stop". Each item is computed whole by one rank with the fixed
/// `blas_threads`, so results are the same for any number of ranks.
///
/// SIGTERM / SIGUSR1 (`StopRequest`, on any rank): no new items are handed out, items in flight are
/// finished and stored, the files are written, and the run ends normally (`stoppedBy` set).
public enum SweepRun {
    /// Planned items whose results are already in the results folder (what a run would skip).
    public static func finishedItems(plan: SweepPlan) -> Set<SweepItem> { SweepStore.finishedItems(plan: plan) }

    public static func run(plan: SweepPlan, comm: Communicator, report: @escaping (SweepEvent) -> Void = { _ in }) throws -> SweepSummary? {
        if plan.config.blasThreads > 0 { BLAS.setThreads(plan.config.blasThreads) }
        let tokenizer = try SweepWorker.tokenizer(for: plan)
        let worker = SweepWorker(plan: plan, tokenizer: tokenizer)
        if comm.isRoot { return try coordinate(plan: plan, comm: comm, worker: worker, report: report) }
        try serve(comm: comm, worker: worker)
        return nil
    }

    /// A rank other than 0: ask, compute, send, until told to stop.
    static func serve(comm: Communicator, worker: SweepWorker) throws {
        var result: SweepItemResult?
        while true {
            let times = worker.takeTimes()
            let request = SweepMessage.Request(stopRequested: StopRequest.shared.isRequested, loadSeconds: times.load,
                                               computeSeconds: times.compute, result: result)
            try comm.send(bytes: SweepMessage.encode(request), to: 0, tag: SweepMessage.requestTag)
            let reply = try comm.receive(from: 0, tag: SweepMessage.assignTag)
            guard case let .item(item, folder, sources) = try SweepMessage.decodeAssignment(reply.bytes) else { return }
            result = try worker.run(item, folder: URL(fileURLWithPath: folder), sourceCircuits: sources)
        }
    }

    static func coordinate(plan: SweepPlan, comm: Communicator, worker: SweepWorker,
                           report: @escaping (SweepEvent) -> Void) throws -> SweepSummary {
        try SweepCoordinator(plan: plan, comm: comm, worker: worker, report: report).run()
    }
}

/// Rank 0 of a sweep: hands out items to the other ranks as they ask and computes items itself on
/// its `LocalWorker` meanwhile, records every result in the `SweepStore` (written every
/// `write_interval` and at the end), and stops handing out work on a stop request from any rank.
final class SweepCoordinator {
    let plan: SweepPlan
    let comm: Communicator
    let report: (SweepEvent) -> Void
    let store: SweepStore
    let planned: Int
    var scheduler: SweepScheduler
    var summary: SweepSummary
    /// The item each rank computes (rank 0 included).
    var inFlight: [Int: SweepItem] = [:]
    /// Ranks not yet told to stop.
    var remote: Set<Int>
    /// Ranks that asked for work and got none yet (a transplant waits for its source cells).
    var waiting: [Int] = []
    var stopping = false
    let local: LocalWorker
    let start = Date()

    init(plan: SweepPlan, comm: Communicator, worker: SweepWorker, report: @escaping (SweepEvent) -> Void) throws {
        self.plan = plan
        self.comm = comm
        self.report = report
        store = try SweepStore(plan: plan, ranks: comm.size)
        planned = plan.allItems.count
        scheduler = SweepScheduler(items: plan.allItems.filter { [store] in !store.done.contains($0) })
        summary = SweepSummary(planned: planned, computed: 0, alreadyDone: store.done.count, samples: 0, wallSeconds: 0, loadSeconds: 0,
                               computeSeconds: 0, writeSeconds: 0, writes: 0, ranks: comm.size,
                               itemsPerRank: [Int](repeating: 0, count: comm.size), stoppedBy: nil, outputDir: plan.outputDir)
        remote = Set(1..<comm.size)
        local = LocalWorker(worker: worker)
    }

    func run() throws -> SweepSummary {
        defer { local.shutdown() }
        report(.started(planned: planned, alreadyDone: summary.alreadyDone, ranks: comm.size))
        startLocal()
        // Idle waits grow from 0.25 ms to 2 ms while nothing happens: a finished local item wakes the wait at
        // once; a request from another rank waits at most 2 ms. Every wait costs one MPI_Iprobe (microseconds),
        // while a rank kept waiting idles its core: with items of a second, 20 ms cost 1–2 % of the sweep.
        let shortestWait = 0.00025, longestWait = 0.002
        var idle = shortestWait
        while !(inFlight.isEmpty && remote.isEmpty) {
            if let signal = StopRequest.shared.signalName { stop(signal) }
            var progressed = try collectLocal()
            progressed = try collectRequests() || progressed
            progressed = try serveWaiting() || progressed
            if inFlight[0] == nil && !stopping { startLocal() }
            if inFlight.isEmpty && !stopping && scheduler.remaining > 0 {
                try? store.write()
                throw CircuitsError(item: "transplant_sources", problem: "\(scheduler.remaining) transplant item(s) wait for source cells that this run does not compute",
                                    fix: "run the sweep without --part (after --merge) to compute the transplants", exitCode: 1)
            }
            if try store.writeIfDue(interval: plan.config.writeInterval) {
                report(.wrote(seconds: store.writeSeconds))
            }
            if progressed {
                idle = shortestWait
            } else {
                local.wait(timeout: idle)
                idle = min(2 * idle, longestWait)
            }
        }
        try store.write()
        report(.wrote(seconds: store.writeSeconds))
        summary.writeSeconds = store.writeSeconds
        summary.writes = store.writes
        summary.wallSeconds = Date().timeIntervalSince(start)
        return summary
    }

    /// The next item for `rank`, none while stopping. A transplant item waits until every cell of its
    /// source checkpoint is done.
    func next(for rank: Int) -> SweepItem? {
        stopping ? nil : scheduler.next(for: rank) { [store] item in
            if case let .transplant(source, _) = item { return store.sourceDone(source) }
            return true
        }
    }

    func assign(_ item: SweepItem, to rank: Int) throws {
        inFlight[rank] = item
        try comm.send(bytes: SweepMessage.encode(.item(item, folder: plan.folder(of: item.checkpoint).path, sourceCircuits: store.sourceCircuits(of: item))),
                      to: rank, tag: SweepMessage.assignTag)
    }

    func finish(_ result: SweepItemResult, rank: Int) throws {
        try store.record(result, rank: rank)
        summary.computed += 1
        summary.itemsPerRank[rank] += 1
        var samples = 0
        if case let .cell(_, o) = result { samples = o.nSamples }
        summary.samples += samples
        report(.finished(result.item, rank: rank, samples: samples, done: store.done.count, planned: planned))
    }

    func stop(_ signal: String) {
        guard !stopping else { return }
        stopping = true
        summary.stoppedBy = signal
        report(.stopping(signal: signal))
    }

    func startLocal() {
        if let item = next(for: 0) {
            inFlight[0] = item
            local.submit(item, folder: plan.folder(of: item.checkpoint), sourceCircuits: store.sourceCircuits(of: item))
        }
    }

    /// Rank 0's own item, when finished: recorded and the next one started; a failure keeps what is
    /// finished, then brings the job down with the message. Returns whether anything happened.
    func collectLocal() throws -> Bool {
        guard let outcome = local.poll() else { return false }
        inFlight[0] = nil
        switch outcome {
        case let .done(result, load, compute):
            summary.loadSeconds += load
            summary.computeSeconds += compute
            try finish(result, rank: 0)
            startLocal()
        case let .failed(error):
            try? store.write()
            throw error
        }
        return true
    }

    /// Every pending request of the other ranks: its result recorded, the rank queued for work.
    func collectRequests() throws -> Bool {
        var progressed = false
        while let (source, _) = try comm.poll(tag: SweepMessage.requestTag) {
            progressed = true
            let message = try comm.receive(from: source, tag: SweepMessage.requestTag)
            let request = try SweepMessage.decodeRequest(message.bytes)
            summary.loadSeconds += request.loadSeconds
            summary.computeSeconds += request.computeSeconds
            if request.stopRequested { stop("a signal on rank \(source)") }
            if let result = request.result {
                inFlight[source] = nil
                try finish(result, rank: source)
            }
            waiting.append(source)
        }
        return progressed
    }

    /// Ranks without work: the next ready item, else wait while unready items remain, else stop.
    func serveWaiting() throws -> Bool {
        var progressed = false
        var stillWaiting: [Int] = []
        for rank in waiting {
            if let item = next(for: rank) {
                progressed = true
                try assign(item, to: rank)
            } else if !stopping && scheduler.remaining > 0 {
                stillWaiting.append(rank)
            } else {
                try comm.send(bytes: SweepMessage.encode(.stop), to: rank, tag: SweepMessage.assignTag)
                remote.remove(rank)
            }
        }
        waiting = stillWaiting
        return progressed
    }
}

/// Rank 0's own computing thread: one item at a time, results picked up by the coordinating thread.
final class LocalWorker: @unchecked Sendable {
    enum Outcome {
        case done(SweepItemResult, load: Double, compute: Double)
        case failed(Error)
    }

    private let worker: SweepWorker
    private let condition = NSCondition()
    private var job: (SweepItem, URL, [ResultCell: [Int: [Int8]]])?
    private var outcome: Outcome?
    private var quit = false
    private var thread: Thread?

    init(worker: SweepWorker) {
        self.worker = worker
    }

    /// Starts computing `item` (the previous outcome must have been taken).
    func submit(_ item: SweepItem, folder: URL, sourceCircuits: [ResultCell: [Int: [Int8]]] = [:]) {
        condition.lock()
        precondition(job == nil && outcome == nil, "one local item at a time")
        job = (item, folder, sourceCircuits)
        if thread == nil {
            // The thread holds the worker until its loop ends (after `shutdown`): the coordinator may
            // release its reference first, and the loop still reads `quit` after waking.
            let t = Thread { self.loop() }
            t.stackSize = 8 << 20
            thread = t
            t.start()
        }
        condition.broadcast()
        condition.unlock()
    }

    /// The outcome of the submitted item once it is finished, else nil.
    func poll() -> Outcome? {
        condition.lock()
        defer { condition.unlock() }
        let o = outcome
        outcome = nil
        return o
    }

    /// Waits until the submitted item is finished or `timeout` seconds passed.
    func wait(timeout: Double) {
        condition.lock()
        defer { condition.unlock() }
        if outcome == nil { _ = condition.wait(until: Date(timeIntervalSinceNow: timeout)) }
    }

    /// Ends the thread after its current item.
    func shutdown() {
        condition.lock()
        quit = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while job == nil && !quit { condition.wait() }
            guard let (item, folder, sources) = job else { condition.unlock(); return }
            condition.unlock()
            let result: Outcome
            do {
                let r = try worker.run(item, folder: folder, sourceCircuits: sources)
                let t = worker.takeTimes()
                result = .done(r, load: t.load, compute: t.compute)
            } catch {
                result = .failed(error)
            }
            condition.lock()
            job = nil
            outcome = result
            condition.broadcast()
            condition.unlock()
        }
    }
}
