import Foundation
import Numerics

/// Draws the entities of a world (docs/pipeline.md §1): names, frequencies and attributes.
///
/// Random streams of generator `seed` (see `DeterministicRandom`), each used for one purpose:
/// - "names": the new names, their shuffle, and the revised names;
/// - "frequencies": the exponential draws;
/// - "attributes": the attributes of new then revised entities;
/// - "original_attributes": the revised entities' original attributes (base corpus).
public enum EntityGenerator {
    /// N frequencies as the study draws them: exponential with rate λ (scale 1/λ), rounded half to
    /// even (numpy's `np.round`), values ≤ 0 raised to 1, sorted ascending.
    public static func frequencies(count: Int, rate: Double, rng: inout DeterministicRandom) -> [Int] {
        let scale = 1.0 / rate
        var f = [Int](repeating: 0, count: count)
        for i in 0..<count { f[i] = frequency(fromDraw: rng.exponential(scale: scale)) }
        f.sort()
        return f
    }

    /// One draw as a frequency: rounded half to even (0.5 → 0, 2.5 → 2, 3.5 → 4), ≤ 0 → 1.
    @inline(__always)
    public static func frequency(fromDraw x: Double) -> Int {
        let r = x.rounded(.toNearestOrEven)
        return r <= 0 ? 1 : Int(r)
    }

    /// The sorted array thinned evenly to `n` values: the value at index ⌊i · count / n⌋.
    public static func thin(_ sorted: [Int], to n: Int) -> [Int] {
        precondition(!sorted.isEmpty || n == 0)
        return (0..<n).map { sorted[$0 * sorted.count / n] }
    }

    /// Generates the world of `config` from `pools`; `revisedNames` (the lines of the
    /// `revised_names` file, with the file's path for errors) replaces pool-drawn revised names.
    public static func generate(config: DataConfig, pools: DataPools,
                                revisedNames: (file: String, names: [String])? = nil) throws -> EntityWorld {
        let nNew = config.nNew, nRev = config.nRevised
        var names = DeterministicRandom(seed: config.seed, stream: "names")

        // New names: unique "First Middle Last", then shuffled.
        let p = pools
        let possibleNew = p.firstNames.count * p.middleNames.count * p.lastNames.count
        var newNames = try uniqueNames(count: nNew, excluding: [], possible: possibleNew, folder: config.pools.path, rng: &names,
            draw: { r in "\(r.choice(p.firstNames)) \(r.choice(p.middleNames)) \(r.choice(p.lastNames))" },
            all: { p.firstNames.flatMap { f in p.middleNames.flatMap { m in p.lastNames.map { l in "\(f) \(m) \(l)" } } } })
        names.shuffle(&newNames)
        let newSet = Set(newNames)

        // Revised names: from the file (a sample), or two- or three-part names from the pools.
        let revNames: [String]
        if let given = revisedNames {
            var seen = Set<String>()
            let usable = given.names.filter { !newSet.contains($0) && seen.insert($0).inserted }
            guard usable.count >= nRev else {
                throw DataError.notEnoughRevisedNames(file: given.file, needed: nRev, available: usable.count)
            }
            revNames = names.sample(usable.count, nRev).map { usable[$0] }
        } else {
            let possibleRev = p.firstNames.count * p.lastNames.count + possibleNew
            revNames = try uniqueNames(count: nRev, excluding: newSet, possible: possibleRev - nNew, folder: config.pools.path, rng: &names,
                draw: { r in
                    r.below(2) == 0 ? "\(r.choice(p.firstNames)) \(r.choice(p.lastNames))"
                                    : "\(r.choice(p.firstNames)) \(r.choice(p.middleNames)) \(r.choice(p.lastNames))"
                },
                all: { p.firstNames.flatMap { f in p.lastNames.map { l in "\(f) \(l)" } }
                       + p.firstNames.flatMap { f in p.middleNames.flatMap { m in p.lastNames.map { l in "\(f) \(m) \(l)" } } } })
        }

        var freqRNG = DeterministicRandom(seed: config.seed, stream: "frequencies")
        let newFreq = frequencies(count: nNew, rate: config.frequencyRate, rng: &freqRNG)
        let revFreq = thin(newFreq, to: nRev)

        var attributes = DeterministicRandom(seed: config.seed, stream: "attributes")
        let new = zip(newNames, newFreq).map { entity($0, $1, .new, pools, &attributes) }
        let revised = zip(revNames, revFreq).map { entity($0, $1, .revised, pools, &attributes) }
        var originalRNG = DeterministicRandom(seed: config.seed, stream: "original_attributes")
        let original = zip(revNames, revFreq).map { entity($0, $1, .revised, pools, &originalRNG) }
        return EntityWorld(new: new, revised: revised, original: original)
    }

    /// Attributes drawn uniformly, in the study's field order.
    static func entity(_ name: String, _ frequency: Int, _ type: EntityType, _ p: DataPools,
                       _ rng: inout DeterministicRandom) -> Entity {
        let date = rng.choice(p.days), month = rng.choice(p.months), year = rng.choice(p.years)
        let city = rng.choice(p.cities), major = rng.choice(p.majors)
        let university = rng.choice(p.universities), company = rng.choice(p.companies)
        return Entity(fullName: name, birthDate: date, birthMonth: month, birthYear: year, city: city, major: major,
                      university: university, company: company, frequency: frequency, type: type)
    }

    /// `count` distinct names not in `excluding`, in the order drawn. While at most half of the
    /// `possible` names are needed they are drawn and redrawn on collision; beyond that, or if
    /// redraws keep colliding (pool entries that join to equal strings), every name is listed and
    /// a sample taken, which also settles whether enough exist.
    static func uniqueNames(count: Int, excluding: Set<String>, possible: Int, folder: String, rng: inout DeterministicRandom,
                            draw: (inout DeterministicRandom) -> String, all: () -> [String]) throws -> [String] {
        var out: [String] = []
        out.reserveCapacity(count)
        if count <= possible / 2 {
            var seen = Set<String>(minimumCapacity: count)
            var attempts = 0
            let limit = 20 * count + 1000
            while out.count < count && attempts < limit {
                let name = draw(&rng)
                attempts += 1
                if !excluding.contains(name) && seen.insert(name).inserted { out.append(name) }
            }
            if out.count == count { return out }
        }
        var seen = Set<String>()
        let candidates = all().filter { !excluding.contains($0) && seen.insert($0).inserted }
        guard candidates.count >= count else {
            throw DataError.notEnoughNames(needed: count + excluding.count, possible: candidates.count + excluding.count, folder: folder)
        }
        return rng.sample(candidates.count, count).map { candidates[$0] }
    }
}
