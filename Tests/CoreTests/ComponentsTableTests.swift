import Foundation
import XCTest
@testable import Core

/// components.nc of a sweep: write, read back, merge of disjoint parts, named errors.
final class ComponentsTableTests: XCTestCase {
    func cell(_ seed: Double) -> ComponentsTable.Cell {
        ComponentsTable.Cell(nEntities: 5, rankPlus1: [seed, 2, 1], probability: [1e-9, .nan, 0.25], subjectRankPlus1: [4, 5, 6],
                             meanSubject: [0.5, 0.001, 2, 0], meanRelation: [0.01, 0.125, 1, 0], circuitHeads: [10: [1, 0, 0, 1, 0, 0]],
                             circuitNodes: [10: 7])
    }

    func testWriteReadMerge() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-components-table-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let provenance = try Provenance(commandLine: "dkc sweep", config: "{}", mpiRanks: 1, blasThreads: 1, created: "2026-01-01T00:00:00Z", source: "dkc test")
        var a = ComponentsTable(nLayers: 2, nHeads: 2), b = a
        try a.addCheckpoint(step: 10, path: "/c/checkpoint-10")
        try b.addCheckpoint(step: 20, path: "/c/checkpoint-20")
        a.declare(tasks: ["city"], types: ["new", "revised"], frequencies: ["high"], topn: [10, 50])
        let c1 = ResultCell(checkpoint: 10, task: "city", type: "new", frequency: "high")
        let c2 = ResultCell(checkpoint: 20, task: "city", type: "revised", frequency: "high")
        try a.set(c1, cell(3))
        try b.set(c2, cell(4))
        let url = dir.appendingPathComponent("components.nc")
        var merged = a
        try merged.merge(b)
        try merged.write(to: url, provenance: provenance)
        let back = try ComponentsTable.read(from: url)
        XCTAssertEqual(back.cells, merged.cells)
        XCTAssertEqual(back.cells.count, 2)
        XCTAssertEqual(back[c1]?.circuitNodes[10], 7)
        XCTAssertNil(back[c1]?.circuitNodes[50], "top-50 not computed stays missing")
        let file = try NetCDFFile.open(path: url.path)
        defer { try? file.close() }
        let classes = try file.readStrings("head_class")
        // Grid (2 checkpoints, 1 task, 2 types, 1 frequency) × 2 layers × 2 heads; c1 at (0, 0, 0, 0).
        XCTAssertEqual(Array(classes[0..<4]), ["mover", "relation", "mixture", "mixture"], "|q| > 10, < 0.1, else (0/0) mixture")
        XCTAssertEqual(Array(classes[4..<8]), ["", "", "", ""], "missing cell")
        // A cell in both parts with other values cannot be merged; arrays must fit the table.
        var clash = ComponentsTable(nLayers: 2, nHeads: 2)
        try clash.addCheckpoint(step: 10, path: "/c/checkpoint-10")
        try clash.set(c1, cell(9))
        XCTAssertThrowsError(try merged.merge(clash))
        var bad = cell(1)
        bad.meanSubject = [1]
        XCTAssertThrowsError(try a.set(c1, bad))
        var empty = ComponentsTable(nLayers: 2, nHeads: 2)
        XCTAssertThrowsError(try empty.set(c1, cell(1)), "unknown checkpoint")
    }
}
