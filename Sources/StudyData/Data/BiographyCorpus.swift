import Support
import Numerics

/// Biographies (docs/pipeline.md §2): for each entity, `frequency` texts; each text is five sentences,
/// one per attribute group, each from a template of that group chosen uniformly, shuffled, and
/// joined by single spaces.
///
/// Per text the generator draws, in this order: one template index per group (birthday, city,
/// company, major, university), then a Fisher–Yates shuffle of the five sentences.
public enum BiographyCorpus {
    /// Which template each group uses and the order the five sentences appear in.
    public struct Plan: Equatable {
        /// Template index per group, indexed like `AttributeGroup.allCases`.
        public var templates: [Int]
        /// Group indices in text order.
        public var order: [Int]
    }

    @inline(__always)
    static func drawPlan(_ templates: BiographyTemplates, _ rng: inout DeterministicRandom, into plan: inout Plan) {
        for g in 0..<plan.templates.count { plan.templates[g] = rng.below(templates.groups[g].count) }
        for g in 0..<plan.order.count { plan.order[g] = g }
        rng.shuffle(&plan.order)
    }

    /// One biography as plain text (consumes the same draws as one text of `appendRecords`).
    public static func biography(of e: Entity, templates: BiographyTemplates, rng: inout DeterministicRandom) -> String {
        var plan = Plan(templates: [0, 0, 0, 0, 0], order: [0, 1, 2, 3, 4])
        drawPlan(templates, &rng, into: &plan)
        let groups = AttributeGroup.allCases
        return plan.order.map { g in
            templates.groups[g][plan.templates[g]].fill(fullName: e.fullName, value: e.value(of: groups[g]))
        }.joined(separator: " ")
    }

    /// `count` lines drawn without replacement from the JSONL bytes `bytes` (lines starting at `lineStarts`), in
    /// the order drawn: the validation sets' sample of their training texts.
    public static func sampleLines(of bytes: [UInt8], lineStarts: [Int], count: Int, rng: inout DeterministicRandom) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count * 800)
        for i in rng.sample(lineStarts.count, count) {
            let end = i + 1 < lineStarts.count ? lineStarts[i + 1] : bytes.count
            out.append(contentsOf: bytes[lineStarts[i]..<end])
        }
        return out
    }

    /// Appends `frequency` JSONL records `{"text": …, <entity fields>}` per entity, in entity order,
    /// and records where each line starts in `lineStarts`. `extraFields` (entity index → members)
    /// adds string members after the entity's fields.
    public static func appendRecords(for entities: [Entity], templates: BiographyTemplates, rng: inout DeterministicRandom,
                                     to out: inout [UInt8], lineStarts: inout [Int],
                                     extraFields: ((Int) -> [(String, String)])? = nil) {
        let groups = AttributeGroup.allCases
        var plan = Plan(templates: [0, 0, 0, 0, 0], order: [0, 1, 2, 3, 4])
        let head: [UInt8] = Array("{\"text\": \"".utf8)
        for (index, e) in entities.enumerated() {
            let name = JSONText.escaped(e.fullName)
            let values = groups.map { JSONText.escaped(e.value(of: $0)) }
            var tail: [UInt8] = [0x22]
            e.appendJSONFields(to: &tail, leadingSeparator: true, extra: extraFields?(index) ?? [])
            tail.append(0x7D); tail.append(0x0A)
            for _ in 0..<e.frequency {
                drawPlan(templates, &rng, into: &plan)
                lineStarts.append(out.count)
                out.append(contentsOf: head)
                for (k, g) in plan.order.enumerated() {
                    if k > 0 { out.append(0x20) }
                    templates.groups[g][plan.templates[g]].appendEscaped(name: name, value: values[g], to: &out)
                }
                out.append(contentsOf: tail)
            }
        }
    }
}
