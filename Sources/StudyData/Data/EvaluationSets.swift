import Numerics
import Models

/// The test entities and circuit data sets (docs/pipeline.md §1 buckets, §2 test set, §3 circuit data).
///
/// Cells are visited in the study's order: type new then revised; buckets by descending lower
/// bound (high, medium, low). Circuit entities and corrupted subjects come from stream "circuits" of
/// `circuit_seed`; test entities are that circuit sample (`test_set = "circuit"`) or come from stream
/// "test" of `seed` (`"independent"`).
public enum EvaluationSets {
    /// The entities of one type whose frequency falls in one bucket, in world order.
    public struct Cell {
        public let type: EntityType
        public let bucket: FrequencyBucket
        public let entities: [Entity]
    }

    /// Every type × bucket cell.
    public static func cells(of world: EntityWorld, buckets: [FrequencyBucket]) -> [Cell] {
        EntityType.allCases.flatMap { type in
            buckets.map { b in Cell(type: type, bucket: b, entities: world.entities(of: type).filter { b.contains($0.frequency) }) }
        }
    }

    /// `perCell` entities of every cell, sampled without replacement, cell after cell.
    public static func testEntities(cells: [Cell], perCell: Int, rng: inout DeterministicRandom) throws -> [Entity] {
        var out: [Entity] = []
        for c in cells {
            guard c.entities.count >= perCell else {
                throw DataError.cellTooSmall(type: c.type.rawValue, bucket: c.bucket.name, entities: c.entities.count,
                                             key: "test_per_cell", requested: perCell)
            }
            out += rng.sample(c.entities.count, perCell).map { c.entities[$0] }
        }
        return out
    }

    /// A circuit data set: clean entities with their corrupted partners.
    public struct CircuitSet {
        /// Clean entity and corrupted entity (a different name of the same token length).
        public var pairs: [(clean: Entity, corrupted: Entity)]
        /// Every sampled entity, cell after cell, before the token-length filter: the study's test set.
        public var sample: [Entity]
        /// Per cell ("new/high"): entities sampled and entities kept after dropping short lengths.
        public var sampled: [(cell: String, count: Int)]
        public var kept: [(cell: String, count: Int)]
        /// Token length → number of names dropped because that length had 5 or fewer names.
        public var droppedLengths: [(length: Int, names: Int)]

        /// The records of one task as JSONL, fields in the study's order; labels are " " + value, or the value
        /// alone when `leadingSpace` is false (Llama, `ModelFamily.circuitLabelHasLeadingSpace`), and label ids
        /// their first token.
        public func jsonl(task: CircuitTask, encoder: TextEncoder, leadingSpace: Bool = true) throws -> [UInt8] {
            let space = leadingSpace ? " " : ""
            var cache: [String: Int] = [:]
            func firstToken(_ label: String) throws -> Int {
                if let id = cache[label] { return id }
                guard let id = encoder.encode(label).first else { throw DataError.emptyEncoding(text: label) }
                cache[label] = id
                return id
            }
            var out: [UInt8] = []
            for (clean, corrupted) in pairs {
                let cleanLabel = space + clean.value(of: task)
                let corruptedLabel = space + corrupted.value(of: task)
                let sample = CircuitSample(cleanSubject: clean.fullName, cleanLabel: cleanLabel, cleanLabelIndex: try firstToken(cleanLabel),
                                           corruptedSubject: corrupted.fullName, corruptedLabel: corruptedLabel,
                                           corruptedLabelIndex: try firstToken(corruptedLabel), frequency: clean.frequency, type: clean.type.rawValue)
                out.append(contentsOf: Array(sample.jsonObject.compactText.utf8))
                out.append(0x0A)
            }
            return out
        }
    }

    /// The study's circuit sampling: `n` entities per cell; all sampled names grouped by token
    /// length (`encoder`, no special tokens); lengths with 5 or fewer names dropped with their
    /// entities; each remaining entity paired with a different name of its length, drawn uniformly.
    public static func circuitSet(cells: [Cell], n: Int, encoder: TextEncoder, rng: inout DeterministicRandom) throws -> CircuitSet {
        var sampled: [(cell: Cell, entity: Entity)] = []
        for c in cells {
            guard c.entities.count >= n else {
                throw DataError.cellTooSmall(type: c.type.rawValue, bucket: c.bucket.name, entities: c.entities.count,
                                             key: "circuit_n", requested: n)
            }
            sampled += rng.sample(c.entities.count, n).map { (c, c.entities[$0]) }
        }
        var lengthOf: [String: Int] = [:]
        var byLength: [Int: [Entity]] = [:]
        for (_, e) in sampled {
            let len = encoder.encode(e.fullName).count
            lengthOf[e.fullName] = len
            byLength[len, default: []].append(e)
        }
        let dropped = byLength.filter { $0.value.count <= 5 }
        let kept = sampled.filter { dropped[lengthOf[$0.entity.fullName]!] == nil }

        var pairs: [(clean: Entity, corrupted: Entity)] = []
        pairs.reserveCapacity(kept.count)
        for (_, e) in kept {
            let group = byLength[lengthOf[e.fullName]!]!
            var partner = e
            while partner.fullName == e.fullName { partner = rng.choice(group) }
            pairs.append((e, partner))
        }
        let key = { (c: Cell) in "\(c.type.rawValue)/\(c.bucket.name)" }
        let keptCounts = cells.map { c in (key(c), kept.filter { $0.cell.type == c.type && $0.cell.bucket == c.bucket }.count) }
        for (c, (_, count)) in zip(cells, keptCounts) where count == 0 {
            throw DataError.circuitCellEmpty(type: c.type.rawValue, bucket: c.bucket.name, sampled: n)
        }
        return CircuitSet(pairs: pairs, sample: sampled.map(\.entity), sampled: cells.map { (key($0), n) }, kept: keptCounts,
                          droppedLengths: dropped.map { ($0.key, $0.value.count) }.sorted { $0.length < $1.length })
    }
}
