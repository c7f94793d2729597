import Core
import Foundation

/// What one rank computed for one item, as it travels to rank 0.
public enum SweepItemResult: Sendable {
    /// A grid cell: its scores and its circuits evaluation.
    case cell(ResultCell, CellOutcome)
    /// The acquisition of a checkpoint: one result per attribute × type × bucket, and the per-entity results.
    case acquisition(checkpoint: Int64, [AcquisitionCell: AcquisitionTable.Result], entities: AcquisitionTable.EntityResults,
                     prompts: Int, seconds: Double)
    /// The circuits of checkpoint `source` on the model of `checkpoint`, per cell (labelled with `checkpoint`).
    case transplant(source: Int64, checkpoint: Int64, [ResultCell: CircuitsTable.Transplant], seconds: Double)

    public var item: SweepItem {
        switch self {
        case .cell(let c, _): return .cell(c)
        case .acquisition(let s, _, _, _, _): return .acquisition(checkpoint: s)
        case .transplant(let source, let s, _, _): return .transplant(source: source, checkpoint: s)
        }
    }
}

/// A computed grid cell.
public struct CellOutcome: Sendable {
    /// Edge scores, (n_forward, n_backward) row-major, 0 where not an edge.
    public var scores: [Float]
    public var nSamples: Int
    /// Wall time of the attribution (the `seconds` of scores.nc) and of the evaluation.
    public var discoverSeconds: Double
    public var evaluateSeconds: Double
    public var circuits: CircuitsTable.Cell
    /// The cell's component analysis (nil when the sweep's `components` key is false).
    public var components: ComponentsTable.Cell?
    /// Wall time of the component analysis.
    public var componentsSeconds: Double = 0
}

/// Messages between the ranks of a sweep, as bytes (little-endian, length-prefixed strings and arrays).
///
/// - request (worker → rank 0, tag `requestTag`): whether the worker saw a stop signal, the seconds it
///   spent loading checkpoints and computing since its last request, and the result of its last item (none
///   in the first request).
/// - assignment (rank 0 → worker, tag `assignTag`): stop, or the next item and its checkpoint folder.
enum SweepMessage {
    static let requestTag = 7101
    static let assignTag = 7102

    struct Request {
        var stopRequested: Bool
        var loadSeconds: Double
        var computeSeconds: Double
        var result: SweepItemResult?
    }

    enum Assignment: Equatable {
        case stop
        /// An item and its checkpoint folder; a transplant item also carries the source checkpoint's circuits
        /// (per source cell, the `in_circuit` mask of each top-n).
        case item(SweepItem, folder: String, sourceCircuits: [ResultCell: [Int: [Int8]]] = [:])
    }

    static func encode(_ r: Request) -> [UInt8] {
        var w = ByteWriter()
        w.bool(r.stopRequested)
        w.double(r.loadSeconds)
        w.double(r.computeSeconds)
        w.bool(r.result != nil)
        if let result = r.result { encode(result, &w) }
        return w.bytes
    }

    static func decodeRequest(_ bytes: [UInt8]) throws -> Request {
        var r = ByteReader(bytes)
        let stop = try r.bool(), load = try r.double(), compute = try r.double()
        let result = try r.bool() ? try decodeResult(&r) : nil
        try r.finish()
        return Request(stopRequested: stop, loadSeconds: load, computeSeconds: compute, result: result)
    }

    static func encode(_ a: Assignment) -> [UInt8] {
        var w = ByteWriter()
        switch a {
        case .stop: w.u8(0)
        case let .item(item, folder, sources):
            switch item {
            case .cell(let c): w.u8(1); cell(c, &w)
            case .acquisition(let s): w.u8(2); w.i64(s)
            case let .transplant(source, s): w.u8(3); w.i64(source); w.i64(s)
            }
            w.string(folder)
            if case .transplant = item {
                let cells = sources.keys.sorted { $0.description < $1.description }
                w.int(cells.count)
                for c in cells {
                    cell(c, &w)
                    let sizes = sources[c]!.keys.sorted()
                    w.int(sizes.count)
                    for n in sizes { w.int(n); w.int8s(sources[c]![n]!) }
                }
            }
        }
        return w.bytes
    }

    static func decodeAssignment(_ bytes: [UInt8]) throws -> Assignment {
        var r = ByteReader(bytes)
        let kind = try r.u8()
        let a: Assignment
        switch kind {
        case 0: a = .stop
        case 1: let c = try readCell(&r); a = .item(.cell(c), folder: try r.string())
        case 2: let s = try r.i64(); a = .item(.acquisition(checkpoint: s), folder: try r.string())
        case 3:
            let source = try r.i64(), s = try r.i64(), folder = try r.string()
            var sources: [ResultCell: [Int: [Int8]]] = [:]
            for _ in 0..<(try r.count()) {
                let c = try readCell(&r)
                var masks: [Int: [Int8]] = [:]
                for _ in 0..<(try r.count()) { let n = try r.int(); masks[n] = try r.int8s() }
                sources[c] = masks
            }
            a = .item(.transplant(source: source, checkpoint: s), folder: folder, sourceCircuits: sources)
        default: throw ByteReader.Malformed(what: "assignment kind \(kind)")
        }
        try r.finish()
        return a
    }

    // MARK: Results

    static func encode(_ result: SweepItemResult, _ w: inout ByteWriter) {
        switch result {
        case let .cell(c, o):
            w.u8(1)
            cell(c, &w)
            w.floats(o.scores)
            w.int(o.nSamples)
            w.double(o.discoverSeconds)
            w.double(o.evaluateSeconds)
            w.double(o.circuits.cleanBaseline)
            w.double(o.circuits.corruptedBaseline)
            let sizes = o.circuits.circuits.keys.sorted()
            w.int(sizes.count)
            for n in sizes {
                let k = o.circuits.circuits[n]!
                w.int(n)
                w.double(k.performance)
                w.int(k.nEdges)
                w.int(k.nNodes)
                w.float(k.edgeEntropy)
                w.int8s(k.inCircuit)
                let targets = k.targets.keys.sorted { ($0.type, $0.frequency) < ($1.type, $1.frequency) }
                w.int(targets.count)
                for t in targets {
                    let v = k.targets[t]!
                    w.string(t.type); w.string(t.frequency)
                    w.double(v.labelProb); w.double(v.labelRankMean); w.double(v.hitsAt1); w.double(v.hitsAt10); w.int(v.nTest)
                }
            }
            w.bool(o.components != nil)
            if let k = o.components {
                w.double(o.componentsSeconds)
                w.int(k.nEntities)
                for a in [k.rankPlus1, k.probability, k.subjectRankPlus1, k.meanSubject, k.meanRelation] { w.doubles(a) }
                let sizes = k.circuitHeads.keys.sorted()
                w.int(sizes.count)
                for n in sizes { w.int(n); w.int(k.circuitNodes[n]!); w.ints(k.circuitHeads[n]!) }
            }
        case let .acquisition(step, results, entities, prompts, seconds):
            w.u8(2)
            w.i64(step)
            w.int(prompts)
            w.double(seconds)
            let keys = results.keys.sorted { ($0.attribute, $0.type, $0.frequency) < ($1.attribute, $1.type, $1.frequency) }
            w.int(keys.count)
            for k in keys {
                let v = results[k]!
                w.string(k.attribute); w.string(k.type); w.string(k.frequency)
                w.double(v.queryAccuracy); w.double(v.exactMatch); w.double(v.hitsAt1); w.double(v.hitsAt10); w.double(v.labelProb)
                w.int(v.nEntities)
            }
            let attributes = entities.query.keys.sorted()
            w.int(attributes.count)
            for a in attributes {
                w.string(a)
                w.int8s(entities.query[a]!)
                w.int8s(entities.exact[a] ?? [])
            }
        case let .transplant(source, step, results, seconds):
            w.u8(3)
            w.i64(source); w.i64(step); w.double(seconds)
            let cells = results.keys.sorted { $0.description < $1.description }
            w.int(cells.count)
            for c in cells {
                let t = results[c]!
                cell(c, &w)
                w.double(t.cleanBaseline); w.double(t.corruptedBaseline)
                let sizes = t.circuits.keys.sorted()
                w.int(sizes.count)
                for n in sizes {
                    let k = t.circuits[n]!
                    w.int(n); w.double(k.performance); w.double(k.hitsAt10); w.int(k.nTest)
                }
            }
        }
    }

    static func decodeResult(_ r: inout ByteReader) throws -> SweepItemResult {
        switch try r.u8() {
        case 1:
            let c = try readCell(&r)
            let scores = try r.floats()
            let nSamples = try r.int(), discover = try r.double(), evaluate = try r.double()
            var cell = CircuitsTable.Cell(cleanBaseline: try r.double(), corruptedBaseline: try r.double())
            for _ in 0..<(try r.count()) {
                let n = try r.int()
                let performance = try r.double(), nEdges = try r.int(), nNodes = try r.int(), entropy = try r.float()
                let mask = try r.int8s()
                var targets: [CircuitsTable.Target: CircuitsTable.TargetResult] = [:]
                for _ in 0..<(try r.count()) {
                    let t = CircuitsTable.Target(type: try r.string(), frequency: try r.string())
                    targets[t] = CircuitsTable.TargetResult(labelProb: try r.double(), labelRankMean: try r.double(), hitsAt1: try r.double(),
                                                            hitsAt10: try r.double(), nTest: try r.int())
                }
                cell.circuits[n] = CircuitsTable.Circuit(performance: performance, nEdges: nEdges, nNodes: nNodes, edgeEntropy: entropy,
                                                         inCircuit: mask, targets: targets)
            }
            var outcome = CellOutcome(scores: scores, nSamples: nSamples, discoverSeconds: discover, evaluateSeconds: evaluate, circuits: cell)
            if try r.bool() {
                outcome.componentsSeconds = try r.double()
                let n = try r.int()
                let arrays = try (0..<5).map { _ in try r.doubles() }
                var heads: [Int: [Int]] = [:], nodes: [Int: Int] = [:]
                for _ in 0..<(try r.count()) {
                    let size = try r.int()
                    nodes[size] = try r.int()
                    heads[size] = try r.ints()
                }
                outcome.components = ComponentsTable.Cell(nEntities: n, rankPlus1: arrays[0], probability: arrays[1], subjectRankPlus1: arrays[2],
                                                          meanSubject: arrays[3], meanRelation: arrays[4], circuitHeads: heads, circuitNodes: nodes)
            }
            return .cell(c, outcome)
        case 2:
            let step = try r.i64(), prompts = try r.int(), seconds = try r.double()
            var results: [AcquisitionCell: AcquisitionTable.Result] = [:]
            for _ in 0..<(try r.count()) {
                let k = AcquisitionCell(checkpoint: step, attribute: try r.string(), type: try r.string(), frequency: try r.string())
                results[k] = AcquisitionTable.Result(queryAccuracy: try r.double(), exactMatch: try r.double(), hitsAt1: try r.double(),
                                                     hitsAt10: try r.double(), labelProb: try r.double(), nEntities: try r.int())
            }
            var entities = AcquisitionTable.EntityResults(query: [:], exact: [:])
            for _ in 0..<(try r.count()) {
                let a = try r.string()
                entities.query[a] = try r.int8s()
                entities.exact[a] = try r.int8s()
            }
            return .acquisition(checkpoint: step, results, entities: entities, prompts: prompts, seconds: seconds)
        case 3:
            let source = try r.i64(), step = try r.i64(), seconds = try r.double()
            var results: [ResultCell: CircuitsTable.Transplant] = [:]
            for _ in 0..<(try r.count()) {
                let c = try readCell(&r)
                var t = CircuitsTable.Transplant(cleanBaseline: try r.double(), corruptedBaseline: try r.double())
                for _ in 0..<(try r.count()) {
                    let n = try r.int()
                    t.circuits[n] = CircuitsTable.TransplantCircuit(performance: try r.double(), hitsAt10: try r.double(), nTest: try r.int())
                }
                results[c] = t
            }
            return .transplant(source: source, checkpoint: step, results, seconds: seconds)
        case let kind:
            throw ByteReader.Malformed(what: "result kind \(kind)")
        }
    }

    static func cell(_ c: ResultCell, _ w: inout ByteWriter) {
        w.i64(c.checkpoint); w.string(c.task); w.string(c.type); w.string(c.frequency)
    }

    static func readCell(_ r: inout ByteReader) throws -> ResultCell {
        ResultCell(checkpoint: try r.i64(), task: try r.string(), type: try r.string(), frequency: try r.string())
    }
}

/// Little-endian bytes out.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func int(_ v: Int) { i64(Int64(v)) }
    mutating func double(_ v: Double) { u64(v.bitPattern) }
    mutating func float(_ v: Float) { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ s: String) { let u = Array(s.utf8); int(u.count); bytes.append(contentsOf: u) }
    mutating func floats(_ a: [Float]) {
        int(a.count)
        for v in a { float(v) }
    }
    mutating func int8s(_ a: [Int8]) { int(a.count); bytes.append(contentsOf: a.map { UInt8(bitPattern: $0) }) }
    mutating func doubles(_ a: [Double]) {
        int(a.count)
        for v in a { double(v) }
    }
    mutating func ints(_ a: [Int]) {
        int(a.count)
        for v in a { int(v) }
    }
}

/// Little-endian bytes in; every read checks the length.
struct ByteReader {
    struct Malformed: Error, CustomStringConvertible {
        let what: String
        var description: String { "malformed sweep message: \(what) (ranks running different dkc builds?)" }
    }

    private let bytes: [UInt8]
    private var at = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, at + n <= bytes.count else { throw Malformed(what: "\(n) bytes wanted at offset \(at) of \(bytes.count)") }
        defer { at += n }
        return bytes[at..<(at + n)]
    }

    mutating func u8() throws -> UInt8 { try take(1).first! }
    mutating func bool() throws -> Bool { try u8() != 0 }
    mutating func u64() throws -> UInt64 { try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    mutating func int() throws -> Int { Int(try i64()) }
    mutating func count() throws -> Int {
        let n = try int()
        guard n >= 0, n <= bytes.count else { throw Malformed(what: "count \(n)") }
        return n
    }
    mutating func double() throws -> Double { Double(bitPattern: try u64()) }
    mutating func float() throws -> Float { Float(bitPattern: try take(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }) }
    mutating func string() throws -> String { String(decoding: try take(try count()), as: UTF8.self) }
    mutating func floats() throws -> [Float] {
        let n = try count()
        let raw = try take(4 * n)
        return raw.withUnsafeBytes { p in (0..<n).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
    }
    mutating func int8s() throws -> [Int8] { try take(try count()).map { Int8(bitPattern: $0) } }
    mutating func doubles() throws -> [Double] { try (0..<(try count())).map { _ in try double() } }
    mutating func ints() throws -> [Int] { try (0..<(try count())).map { _ in try int() } }
    func finish() throws {
        guard at == bytes.count else { throw Malformed(what: "\(bytes.count - at) trailing bytes") }
    }
}
