import Core
import Foundation

/// What `dkc sweep --merge` found and wrote.
public struct SweepMergeSummary: Sendable {
    /// The parts found under `circuits/parts/`, and how many planned items each added.
    public var parts: [SweepPart]
    public var itemsAdded: [Int]
    /// Parts of the split that have no folder.
    public var absentParts: [Int]
    /// Items in the merged files, planned items, and the planned items still missing.
    public var done: Int
    public var planned: Int
    public var missing: [SweepItem]
    /// Transplant items not yet computed (parts never compute them; a plain `dkc sweep` after the merge does).
    public var transplantsLeft: Int
    public var outputDir: URL

    public var complete: Bool { missing.isEmpty }
}

extension SweepRun {
    /// Joins the parts of a sweep split with `--part I/N` (folders `circuits/parts/part-I-of-N/`) into the
    /// three files of `circuits/`, exactly as one job over the whole grid would have written them (the
    /// creation time and the history aside). Results already in `circuits/` are kept; the parts must come
    /// from one split and the same result-affecting settings, and none may still be running. Incomplete
    /// parts are merged too: the summary lists what is missing, and a later merge (or a plain
    /// `dkc sweep`) completes the files.
    public static func merge(plan: SweepPlan) throws -> SweepMergeSummary {
        precondition(plan.part == nil, "merge writes the whole grid's files")
        let dir = SweepPlan.partsDir(plan.config)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        let parts = names.compactMap(SweepPart.fromFolderName).sorted { $0.index < $1.index }
        guard let count = parts.first?.count else {
            throw CircuitsError(item: dir.path, problem: "holds no part folders (part-<I>-of-<N>)",
                                fix: "run the parts first (dkc sweep --config … --part I/N), then merge")
        }
        let counts = Set(parts.map(\.count))
        guard counts.count == 1 else {
            throw CircuitsError(item: dir.path, problem: "holds parts of different splits (into \(counts.sorted().map(String.init).joined(separator: " and ")) parts)",
                                fix: "remove the folders of the split you no longer use")
        }
        if plan.config.blasThreads > 0 { BLAS.setThreads(plan.config.blasThreads) }
        // The files record the ranks the parts ran on (each part's first start line).
        let ranks = parts.compactMap { p -> Int? in
            let manifest = dir.appendingPathComponent(p.folderName).appendingPathComponent("manifest.jsonl")
            return SweepStore.readManifest(manifest).first { $0["event"]?.stringValue == "start" }?["ranks"]?.intValue
        }.max() ?? 1
        let store = try SweepStore(plan: plan, ranks: ranks)
        var added: [Int] = []
        for p in parts { added.append(try store.absorb(part: dir.appendingPathComponent(p.folderName))) }
        try store.write()
        let present = Set(parts.map(\.index))
        let absent = (0..<count).filter { !present.contains($0) }
        let missing = plan.gridItems.filter { !store.done.contains($0) }
        let transplantsLeft = plan.transplantItems.filter { !store.done.contains($0) }.count
        try store.appendManifest(.object([
            ("event", .string("merge")), ("time", .string(Provenance.timestamp(Date()))),
            ("parts", .array(parts.map { .string($0.folderName) })), ("items_added", .array(added.map { .int($0) })),
            ("items_done", .int(store.done.count)), ("items_planned", .int(plan.allItems.count)),
        ]))
        return SweepMergeSummary(parts: parts, itemsAdded: added, absentParts: absent, done: store.done.count, planned: plan.allItems.count,
                                 missing: missing, transplantsLeft: transplantsLeft, outputDir: plan.outputDir)
    }
}
