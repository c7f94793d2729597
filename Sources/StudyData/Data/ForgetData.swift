import Support
import Numerics

/// The forgetting experiment's data sets (docs/forgetting.md), written under `forget/` of the data
/// folder when `[forget] n_new` > 0:
/// - `forget/new.jsonl`: the forgetting people, one entity a line, frequency "1", type "new";
/// - `forget/train.jsonl`: one biography per forgetting person (what the forget stage trains on);
/// - `forget/replay.jsonl`: one biography per continual-corpus person (new, then revised) with
///   the attributes the continual corpus taught, type kept;
/// - `forget/conflict.jsonl` (`conflict = true`): the same people with every attribute redrawn to
///   a value different from the continual one;
/// - `forget/validation.jsonl` (`validation_size` > 0): texts sampled from `forget/train.jsonl`.
///
/// Every record carries two fields after the study's: `origin` ("forget_new", "replay",
/// "conflict") and `cpt_frequency` (the person's frequency in the continual corpus, "0" for a
/// person the continual corpus never saw), both strings like `frequency`.
///
/// With `include_cpt_new` (the study's set-up) the forgetting people begin with the continual
/// corpus's new people (all of them, or a sample when `n_new` is smaller), with redrawn attributes;
/// the rest are fresh "First Middle Last" names outside the continual corpus. Without it every
/// name is fresh. The list is then shuffled.
///
/// Random streams of `forget.seed`, one per purpose: "forget_names", "forget_attributes",
/// "forget_texts", "forget_replay_texts", "forget_conflict", "forget_conflict_texts",
/// "forget_validation". The same configuration gives the same bytes.
public enum ForgetData {
    /// Where a record comes from (the `origin` field).
    public enum Origin: String, CaseIterable, Sendable {
        case forgetNew = "forget_new", replay, conflict
    }

    /// The generated sets: files (paths under `forget/`) and the manifest's `forget` object.
    public struct Result {
        public let people: [Entity]
        public let files: [DataGeneration.OutputFile]
        public let manifest: JSONValue
    }

    /// Builds the sets for `world` (the continual corpus's people); nil when `n_new` = 0.
    public static func build(config: DataConfig, world: EntityWorld, pools: DataPools,
                             templates: BiographyTemplates) throws -> Result? {
        let f = config.forget
        guard f.nNew > 0 else { return nil }
        let cptFrequency = Dictionary(world.new.map { ($0.fullName, $0.frequency) } + world.revised.map { ($0.fullName, $0.frequency) },
                                      uniquingKeysWith: { a, _ in a })
        let cptNewNames = Set(world.new.map(\.fullName))
        let cptRevisedNames = Set(world.revised.map(\.fullName))
        let names = try peopleNames(config: config, world: world, excluding: cptNewNames.union(cptRevisedNames), pools: pools)
        var attributes = DeterministicRandom(seed: f.seed, stream: "forget_attributes")
        let people = names.map { EntityGenerator.entity($0, 1, .new, pools, &attributes) }

        var files: [DataGeneration.OutputFile] = []
        var peopleFile: [UInt8] = []
        for e in people { e.appendJSONLine(to: &peopleFile, extra: extraFields(.forgetNew, cptFrequency[e.fullName] ?? 0)) }
        files.append(DataGeneration.OutputFile(path: "forget/new.jsonl", bytes: peopleFile))

        var train: [UInt8] = [], trainStarts: [Int] = []
        var textRNG = DeterministicRandom(seed: f.seed, stream: "forget_texts")
        BiographyCorpus.appendRecords(for: people, templates: templates, rng: &textRNG, to: &train, lineStarts: &trainStarts,
                                      extraFields: { extraFields(.forgetNew, cptFrequency[people[$0].fullName] ?? 0) })
        files.append(DataGeneration.OutputFile(path: "forget/train.jsonl", bytes: train))

        let replay = try replayFiles(config: config, world: world, pools: pools, templates: templates)
        files += replay.files

        let nValidation = min(f.validationSize, trainStarts.count)
        if nValidation > 0 {
            var validationRNG = DeterministicRandom(seed: f.seed, stream: "forget_validation")
            let validation = BiographyCorpus.sampleLines(of: train, lineStarts: trainStarts, count: nValidation, rng: &validationRNG)
            files.append(DataGeneration.OutputFile(path: "forget/validation.jsonl", bytes: validation))
        }

        // Overlaps counted on the written names, not assumed from the construction.
        let overlapNew = people.filter { cptNewNames.contains($0.fullName) }.count
        let overlapRevised = people.filter { cptRevisedNames.contains($0.fullName) }.count
        let manifest: JSONValue = .object([
            ("folder", .string("forget")),
            ("seed", .int(Int(f.seed))),
            ("n_new", .int(f.nNew)),
            ("include_cpt_new", .bool(f.includeCPTNew)),
            ("people", .object([
                ("total", .int(people.count)),
                ("cpt_new", .int(overlapNew)),
                ("cpt_revised", .int(overlapRevised)),
                ("fresh", .int(people.count - overlapNew - overlapRevised)),
            ])),
            ("texts", .object([
                ("train", .int(trainStarts.count)),
                ("replay", .int(replay.replayCount)),
                ("replay_new", .int(world.new.count)),
                ("replay_revised", .int(world.revised.count)),
                ("conflict", .int(replay.conflictCount)),
                ("validation", .int(nValidation)),
            ])),
        ])
        return Result(people: people, files: files, manifest: manifest)
    }

    /// The extra fields of a forget-set line: where the person comes from and their continual frequency.
    private static func extraFields(_ origin: Origin, _ cpt: Int) -> [(String, String)] {
        [("origin", origin.rawValue), ("cpt_frequency", String(cpt))]
    }

    /// The forget people's names: continual new people first (Q1), then fresh ones outside `excluded`, shuffled.
    private static func peopleNames(config: DataConfig, world: EntityWorld, excluding excluded: Set<String>,
                                    pools p: DataPools) throws -> [String] {
        let f = config.forget
        var namesRNG = DeterministicRandom(seed: f.seed, stream: "forget_names")
        var names: [String] = []
        if f.includeCPTNew {
            if f.nNew >= world.new.count {
                names = world.new.map(\.fullName)
            } else {
                names = namesRNG.sample(world.new.count, f.nNew).map { world.new[$0].fullName }
            }
        }
        let possible = p.firstNames.count * p.middleNames.count * p.lastNames.count
        names += try EntityGenerator.uniqueNames(
            count: f.nNew - names.count, excluding: excluded, possible: max(0, possible - excluded.count),
            folder: config.pools.path, rng: &namesRNG,
            draw: { r in "\(r.choice(p.firstNames)) \(r.choice(p.middleNames)) \(r.choice(p.lastNames))" },
            all: { p.firstNames.flatMap { a in p.middleNames.flatMap { m in p.lastNames.map { l in "\(a) \(m) \(l)" } } } })
        namesRNG.shuffle(&names)
        return names
    }

    /// forget/replay.jsonl (every continual person once, with the continual attributes; Q3: type kept) and, with
    /// `conflict`, forget/conflict.jsonl (the same people with every attribute redrawn), and their line counts.
    private static func replayFiles(config: DataConfig, world: EntityWorld, pools: DataPools, templates: BiographyTemplates) throws
        -> (files: [DataGeneration.OutputFile], replayCount: Int, conflictCount: Int) {
        let f = config.forget
        let cptPeople = world.new + world.revised
        let replayPeople = cptPeople.map { e -> Entity in var o = e; o.frequency = 1; return o }
        var replay: [UInt8] = [], replayStarts: [Int] = []
        var replayRNG = DeterministicRandom(seed: f.seed, stream: "forget_replay_texts")
        BiographyCorpus.appendRecords(for: replayPeople, templates: templates, rng: &replayRNG, to: &replay, lineStarts: &replayStarts,
                                      extraFields: { extraFields(.replay, cptPeople[$0].frequency) })
        var files = [DataGeneration.OutputFile(path: "forget/replay.jsonl", bytes: replay)]
        guard f.conflict else { return (files, replayStarts.count, 0) }

        var redraw = DeterministicRandom(seed: f.seed, stream: "forget_conflict")
        let conflictPeople = try replayPeople.map { try conflicting($0, pools: pools, folder: config.pools.path, rng: &redraw) }
        var conflict: [UInt8] = [], conflictStarts: [Int] = []
        var conflictRNG = DeterministicRandom(seed: f.seed, stream: "forget_conflict_texts")
        BiographyCorpus.appendRecords(for: conflictPeople, templates: templates, rng: &conflictRNG, to: &conflict,
                                      lineStarts: &conflictStarts, extraFields: { extraFields(.conflict, cptPeople[$0].frequency) })
        files.append(DataGeneration.OutputFile(path: "forget/conflict.jsonl", bytes: conflict))
        return (files, replayStarts.count, conflictStarts.count)
    }

    /// `e` with every attribute redrawn uniformly until it differs from `e`'s (Q4).
    static func conflicting(_ e: Entity, pools p: DataPools, folder: String, rng: inout DeterministicRandom) throws -> Entity {
        func redraw(_ pool: [String], _ old: String, _ file: String) throws -> String {
            guard pool.contains(where: { $0 != old }) else { throw DataError.conflictPoolTooSmall(file: "\(folder)/\(file)") }
            var v = old
            while v == old { v = rng.choice(pool) }
            return v
        }
        var o = e
        o.birthDate = try redraw(p.days, e.birthDate, "days.txt")
        o.birthMonth = try redraw(p.months, e.birthMonth, "months.txt")
        o.birthYear = try redraw(p.years, e.birthYear, "years.txt")
        o.city = try redraw(p.cities, e.city, "cities.txt")
        o.major = try redraw(p.majors, e.major, "majors.txt")
        o.university = try redraw(p.universities, e.university, "universities.txt")
        o.company = try redraw(p.companies, e.company, "companies.txt")
        return o
    }
}
