import Core
import Foundation

/// Rank 0's results of a sweep and everything it writes into `<run_dir>/circuits/`:
///
/// - `scores.nc`, `circuits.nc`, `acquisition.nc` and (key `components`) `components.nc`, rewritten whole (temporary file, fsync, rename) at most
///   every `write_interval_s` and at the end, so a killed job never leaves a corrupt file;
/// - `manifest.jsonl`, one JSON line per run start and per finished item, appended and fsynced at once;
/// - `.sweep.lock`, held (flock) while a sweep runs, so two sweeps never write one folder (unless
///   the key `lock` is false: file systems without locks).
///
/// Resuming: an item counts as done when its results are in the files (a cell in scores.nc, circuits.nc
/// and, with `components`, components.nc; an acquisition with any cell of its checkpoint); cells missing
/// from one of them are dropped and computed again. The provenance of the first run (its start time) is kept, and a resumed
/// run with the same command line adds no history line, so the files end as an uninterrupted run's.
final class SweepStore {
    let plan: SweepPlan
    let directory: URL
    private(set) var scores: ScoresTable
    private(set) var circuits: CircuitsTable
    private(set) var acquisition: AcquisitionTable
    private(set) var components: ComponentsTable
    let provenance: Provenance
    /// Planned items whose results are already in the tables.
    private(set) var done: Set<SweepItem> = []
    /// Items finished since the last write.
    private(set) var unwritten = 0
    private(set) var writeSeconds = 0.0
    private(set) var writes = 0
    private var lastWrite = Date()
    private let lock: FolderLock?
    private let manifestURL: URL

    var scoresURL: URL { directory.appendingPathComponent("scores.nc") }
    var circuitsURL: URL { directory.appendingPathComponent("circuits.nc") }
    var acquisitionURL: URL { directory.appendingPathComponent("acquisition.nc") }
    var componentsURL: URL { directory.appendingPathComponent("components.nc") }

    init(plan: SweepPlan, ranks: Int, arguments: [String] = CommandLine.arguments) throws {
        self.plan = plan
        directory = plan.outputDir
        let fm = FileManager.default
        do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw CircuitsError(item: directory.path, problem: "cannot be created: \(error.localizedDescription)", fix: "check permissions", exitCode: 1)
        }
        lock = plan.config.lock ? try Self.lock(directory) : nil
        // Temporary files of a killed run (only a run holding the lock writes here).
        for name in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? [] where name.contains(".nc.tmp-") {
            try? fm.removeItem(at: directory.appendingPathComponent(name))
        }
        manifestURL = directory.appendingPathComponent("manifest.jsonl")
        let starts = Self.readManifest(manifestURL).filter { $0["event"]?.stringValue == "start" }
        let configJSON = plan.config.resolved.json
        if let first = starts.first { try Self.checkCompatible(first["config"], configJSON, manifest: manifestURL) }
        let created = starts.first?["created"]?.stringValue ?? Provenance.timestamp(Date())
        var provenance = try Provenance(commandLine: Provenance.quote(arguments), config: configJSON.compactText, mpiRanks: ranks,
                                        blasThreads: BLAS.threads, created: created, source: DKCVersion.source)
        provenance.testSet = plan.data.testSet
        self.provenance = provenance

        let edges = plan.modelConfig.attributionGraph.edgeLayout
        let attributes = plan.config.cell.scoreAttributes
        scores = try Self.existing(directory.appendingPathComponent("scores.nc"), ScoresTable.read)
            ?? ScoresTable(edges: edges, attributes: attributes)
        circuits = try Self.existing(directory.appendingPathComponent("circuits.nc"), CircuitsTable.read)
            ?? CircuitsTable(edges: edges, faithfulnessMinDenominator: plan.config.faithfulnessMinDenominator)
        acquisition = try Self.existing(directory.appendingPathComponent("acquisition.nc"), AcquisitionTable.read) ?? AcquisitionTable()
        let (L, H) = (plan.modelConfig.numLayers, plan.modelConfig.numHeads)
        components = try Self.existing(directory.appendingPathComponent("components.nc"), ComponentsTable.read)
            ?? ComponentsTable(nLayers: L, nHeads: H)
        guard scores.edges == edges, circuits.edges == edges, components.nLayers == L, components.nHeads == H else {
            throw CircuitsError(item: directory.path, problem: "holds results of a model with another graph than \(plan.checkpoints[0].folder.path)",
                                fix: "move the old circuits/ folder away or sweep the same model")
        }
        guard scores.attributes == attributes else {
            throw CircuitsError(item: scoresURL.path, problem: "was computed with \(scores.attributes), this sweep uses \(attributes)",
                                fix: "restore the settings, or move the old circuits/ folder away")
        }
        guard circuits.faithfulnessMinDenominator == plan.config.faithfulnessMinDenominator else {
            throw CircuitsError(item: circuitsURL.path, problem: "uses faithfulness_min_denominator \(circuits.faithfulnessMinDenominator)",
                                fix: "set faithfulness_min_denominator = \(circuits.faithfulnessMinDenominator), or move the old circuits/ folder away")
        }

        // The whole planned grid on every axis, so the files have their final shape from the first write.
        for c in plan.checkpoints {
            let path = c.folder.path
            try scores.addCheckpoint(step: c.step, path: path)
            try circuits.addCheckpoint(step: c.step, path: path)
            if plan.config.acquisition { try acquisition.addCheckpoint(step: c.step, path: path) }
            if plan.config.components { try components.addCheckpoint(step: c.step, path: path) }
        }
        let types = EntityType.allCases.map(\.rawValue), buckets = plan.data.buckets.names
        scores.declare(tasks: plan.tasks, types: plan.types, frequencies: plan.frequencies)
        try circuits.declare(tasks: plan.tasks, types: plan.types, frequencies: plan.frequencies, topn: plan.config.cell.topn,
                             targetTypes: types, targetFrequencies: buckets)
        acquisition.declare(attributes: Acquisition.attributes.map(\.rawValue), types: types, frequencies: buckets)
        if plan.config.acquisition {
            // The test_entity axis from the first write; a folder whose results came from another test.jsonl is refused.
            let labels = Acquisition.testEntityLabels(try TestEntities.read(plan.data.testFile), buckets: plan.data.buckets)
            do { try acquisition.setTestEntities(labels) } catch {
                throw CircuitsError(item: acquisitionURL.path, problem: "holds per-entity results of other test entities than \(plan.data.testFile.path)",
                                    fix: "sweep the data set the results came from, or move the old circuits/ folder away")
            }
        }
        circuits.declare(transplantSources: plan.transplantSources)
        if plan.config.components {
            components.declare(tasks: plan.tasks, types: plan.types, frequencies: plan.frequencies, topn: plan.config.cell.topn)
        }
        Self.dropIncomplete(&scores, &circuits, &components, withComponents: plan.config.components)
        refreshDone()
        try appendManifest(.object([
            ("event", .string("start")), ("time", .string(Provenance.timestamp(Date()))), ("created", .string(created)),
            ("ranks", .int(ranks)), ("blas_threads", .int(BLAS.threads)), ("items_planned", .int(plan.allItems.count)),
            ("items_done", .int(done.count)), ("command", .string(provenance.commandLine)), ("config", configJSON),
        ]))
    }

    /// Recomputes `done`: the planned items whose results are in the tables.
    private func refreshDone() {
        let acquired = Set(acquisition.cells.keys.map(\.checkpoint))
        for item in plan.allItems {
            switch item {
            case .cell(let c): if scores[c] != nil { done.insert(item) }
            case .acquisition(let s): if acquired.contains(s) { done.insert(item) }
            case let .transplant(source, s): if Self.transplanted(circuits, plan: plan, source: source, checkpoint: s) { done.insert(item) }
            }
        }
    }

    /// Whether `circuits` holds the transplant of `source`'s circuits on checkpoint `step` for every planned cell.
    static func transplanted(_ circuits: CircuitsTable, plan: SweepPlan, source: Int64, checkpoint step: Int64) -> Bool {
        plan.cells.filter { $0.checkpoint == step }.allSatisfy { circuits.transplants[.init(source: source, cell: $0)] != nil }
    }

    /// Whether every planned cell of checkpoint `source` is done (its transplants can start).
    func sourceDone(_ source: Int64) -> Bool {
        plan.cells.filter { $0.checkpoint == source }.allSatisfy { done.contains(.cell($0)) }
    }

    /// The circuits a transplant item evaluates: per cell of its source checkpoint, the in_circuit mask of each top-n.
    func sourceCircuits(of item: SweepItem) -> [ResultCell: [Int: [Int8]]] {
        guard case let .transplant(source, _) = item else { return [:] }
        var out: [ResultCell: [Int: [Int8]]] = [:]
        for cell in plan.cells where cell.checkpoint == source {
            guard let c = circuits[cell] else { continue }
            out[cell] = c.circuits.mapValues(\.inCircuit)
        }
        return out
    }

    /// Joins the results of one part of this sweep (`dkc sweep --part`, files in `directory`) into the
    /// tables and returns how many planned items that added. The part must have been run with the same
    /// result-affecting settings and must not be running; cells in only one of its files are left out.
    func absorb(part directory: URL) throws -> Int {
        let manifest = directory.appendingPathComponent("manifest.jsonl")
        guard let first = Self.readManifest(manifest).first(where: { $0["event"]?.stringValue == "start" }) else {
            throw CircuitsError(item: directory.path, problem: "has no manifest.jsonl with a start line, so it is not a sweep part",
                                fix: "remove the folder, or run that part again")
        }
        try Self.checkCompatible(first["config"], plan.config.resolved.json, manifest: manifest)
        if plan.config.lock { _ = try Self.lock(directory) }   // refuses a part that is still running (released at once)
        let url = { (name: String) in directory.appendingPathComponent(name) }
        guard var partScores = try Self.existing(url("scores.nc"), ScoresTable.read),
              var partCircuits = try Self.existing(url("circuits.nc"), CircuitsTable.read) else { return 0 }
        var partComponents = try Self.existing(url("components.nc"), ComponentsTable.read)
            ?? ComponentsTable(nLayers: components.nLayers, nHeads: components.nHeads)
        Self.dropIncomplete(&partScores, &partCircuits, &partComponents, withComponents: plan.config.components)
        try scores.merge(partScores)
        try circuits.merge(partCircuits)
        if !partComponents.cells.isEmpty { try components.merge(partComponents) }
        if let partAcquisition = try Self.existing(url("acquisition.nc"), AcquisitionTable.read) { try acquisition.merge(partAcquisition) }
        let before = done.count
        refreshDone()
        unwritten += done.count - before
        return done.count - before
    }

    /// Planned items whose results are already in the folder's files (read only, without taking the lock):
    /// what `--plan` reports and a run would skip.
    static func finishedItems(plan: SweepPlan) -> Set<SweepItem> {
        let d = plan.outputDir
        let scores = (try? existing(d.appendingPathComponent("scores.nc"), ScoresTable.read)) ?? nil
        let circuits = (try? existing(d.appendingPathComponent("circuits.nc"), CircuitsTable.read)) ?? nil
        let acquisition = (try? existing(d.appendingPathComponent("acquisition.nc"), AcquisitionTable.read)) ?? nil
        let components = (try? existing(d.appendingPathComponent("components.nc"), ComponentsTable.read)) ?? nil
        let acquired = Set(acquisition?.cells.keys.map(\.checkpoint) ?? [])
        return Set(plan.allItems.filter { item in
            switch item {
            case .cell(let c): return scores?[c] != nil && circuits?[c] != nil && (!plan.config.components || components?[c] != nil)
            case .acquisition(let s): return acquired.contains(s)
            case let .transplant(source, s): return circuits.map { transplanted($0, plan: plan, source: source, checkpoint: s) } ?? false
            }
        })
    }

    /// Drops the cells that are not in every file a finished cell writes (scores and circuits, and components
    /// when the sweep analyses them): they are computed again.
    static func dropIncomplete(_ scores: inout ScoresTable, _ circuits: inout CircuitsTable, _ components: inout ComponentsTable,
                               withComponents: Bool) {
        var complete = Set(scores.cells.keys).intersection(circuits.cells.keys)
        if withComponents { complete.formIntersection(components.cells.keys) }
        for cell in Set(scores.cells.keys).union(circuits.cells.keys).union(components.cells.keys) where !complete.contains(cell) {
            scores.removeCell(cell)
            circuits.removeCell(cell)
            components.removeCell(cell)
        }
    }

    /// The table in `url`, nil when there is no such file. A file that cannot be read (truncated or
    /// damaged outside dkc: dkc itself only ever renames complete files into place) is a named error.
    private static func existing<T>(_ url: URL, _ read: (URL) throws -> T) throws -> T? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do { return try read(url) } catch let error as CircuitsError { throw error } catch {
            throw CircuitsError(item: url.path, problem: "cannot be read, so the sweep cannot resume from it (\(error))",
                                fix: "move the file away (the sweep then computes its cells again; the other files are kept) or restore it from a copy")
        }
    }

    /// Stores a finished item and logs it in the manifest.
    func record(_ result: SweepItemResult, rank: Int) throws {
        var line: [(String, JSONValue)] = [("time", .string(Provenance.timestamp(Date()))), ("rank", .int(rank))]
        switch result {
        case let .cell(cell, o):
            try scores.set(cell, scores: o.scores, nSamples: o.nSamples, seconds: o.discoverSeconds)
            try circuits.set(cell, o.circuits)
            if let k = o.components { try components.set(cell, k) }
            line = [("event", .string("cell")), ("checkpoint", .int(Int(cell.checkpoint))), ("task", .string(cell.task)),
                    ("type", .string(cell.type)), ("frequency", .string(cell.frequency)), ("n_samples", .int(o.nSamples)),
                    ("discover_s", .double(o.discoverSeconds)), ("evaluate_s", .double(o.evaluateSeconds))]
                + (o.components != nil ? [("components_s", .double(o.componentsSeconds))] : []) + line
        case let .acquisition(step, results, entities, prompts, seconds):
            for (cell, v) in results { try acquisition.set(cell, v) }
            try acquisition.setEntityResults(checkpoint: step, entities)
            line = [("event", .string("acquisition")), ("checkpoint", .int(Int(step))), ("prompts", .int(prompts)),
                    ("seconds", .double(seconds))] + line
        case let .transplant(source, step, results, seconds):
            for (cell, t) in results { try circuits.setTransplant(.init(source: source, cell: cell), t) }
            line = [("event", .string("transplant")), ("source_checkpoint", .int(Int(source))), ("checkpoint", .int(Int(step))),
                    ("seconds", .double(seconds))] + line
        }
        done.insert(result.item)
        unwritten += 1
        try appendManifest(.object(line))
    }

    /// Writes the files when something is unwritten and `interval` seconds passed since the last write.
    @discardableResult
    func writeIfDue(interval: Double) throws -> Bool {
        guard unwritten > 0, Date().timeIntervalSince(lastWrite) >= interval else { return false }
        try write()
        return true
    }

    /// Rewrites the three files (each atomically).
    func write() throws {
        let start = Date()
        try scores.write(to: scoresURL, provenance: provenance)
        try circuits.write(to: circuitsURL, provenance: provenance)
        if plan.config.acquisition || !acquisition.cells.isEmpty { try acquisition.write(to: acquisitionURL, provenance: provenance) }
        if plan.config.components || !components.cells.isEmpty { try components.write(to: componentsURL, provenance: provenance) }
        let end = Date()
        writeSeconds += end.timeIntervalSince(start)
        writes += 1
        lastWrite = end
        unwritten = 0
    }

    /// Appends one JSON line and flushes it to disk. A line cut short by a kill is completed by a newline first.
    func appendManifest(_ value: JSONValue) throws {
        let fd = open(manifestURL.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else {
            throw CircuitsError(item: manifestURL.path, problem: "cannot be opened: \(String(cString: strerror(errno)))", exitCode: 1)
        }
        defer { close(fd) }
        var bytes = Array(value.compactText.utf8) + [0x0A]
        if let size = try? FileManager.default.attributesOfItem(atPath: manifestURL.path)[.size] as? Int, size > 0,
           let h = FileHandle(forReadingAtPath: manifestURL.path) {
            h.seek(toFileOffset: UInt64(size - 1))
            if h.readData(ofLength: 1).first != 0x0A { bytes.insert(0x0A, at: 0) }
            h.closeFile()
        }
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            throw CircuitsError(item: manifestURL.path, problem: "cannot be written: \(String(cString: strerror(errno)))", exitCode: 1)
        }
    }

    /// The JSON objects of a manifest; lines that do not parse (cut by a kill) are skipped.
    static func readManifest(_ url: URL) -> [JSONValue] {
        guard let data = try? Data(contentsOf: url) else { return [] }
        return data.split(separator: 0x0A).compactMap { line in (try? JSONValue(parsing: Data(line))).flatMap { $0.isObject ? $0 : nil } }
    }

    /// The result-relevant keys of the first run's configuration must equal this run's (numbers by
    /// value, so 5000 and 5000.0 agree; absent and null agree).
    static func checkCompatible(_ stored: JSONValue?, _ current: JSONValue, manifest: URL) throws {
        guard let old = stored, old.isObject, current.isObject else { return }
        func text(_ v: JSONValue?) -> String {
            guard let v, v != .null else { return "(unset)" }
            return v.compactText
        }
        func same(_ a: JSONValue?, _ b: JSONValue?) -> Bool {
            switch (a ?? .null, b ?? .null) {
            case (.null, .null): return true
            case let (.array(x), .array(y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
            case let (.object(x), .object(y)):
                return x.count == y.count && x.allSatisfy { key, value in same(value, y.first { $0.0 == key }?.1) }
            case let (x, y):
                if let p = x.doubleValue, let q = y.doubleValue { return p == q }
                return x == y
            }
        }
        for key in SweepConfig.resultKeys {
            if !same(old[key], current[key]) {
                throw CircuitsError(item: manifest.path, problem: "the results in this folder were computed with \(key) = \(text(old[key])), this sweep has \(text(current[key]))",
                                    fix: "restore \(key) to resume, or move the circuits/ folder away to start afresh")
            }
        }
    }

    /// Takes the folder's lock, or explains who holds it.
    private static func lock(_ directory: URL) throws -> FolderLock {
        do { return try FolderLock(folder: directory, name: ".sweep.lock") } catch let failure as FolderLock.Failure {
            switch failure {
            case .held(let holder):
                throw CircuitsError(item: directory.path, problem: "another sweep is writing here (\(holder))",
                                    fix: "wait for it to finish or stop it; two sweeps must not share a results folder")
            case .unsupported(let reason):
                throw CircuitsError(item: directory.appendingPathComponent(".sweep.lock").path,
                                    problem: "the file system does not support locks (flock: \(reason))",
                                    fix: "put the run folder on a local or lock-capable file system, or run with --no-lock (lock = false) if you are sure no other sweep uses it", exitCode: 1)
            case .cannotOpen(let reason):
                throw CircuitsError(item: directory.appendingPathComponent(".sweep.lock").path, problem: "cannot be opened: \(reason)", exitCode: 1)
            }
        }
    }
}
