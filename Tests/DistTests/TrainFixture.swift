import Foundation
import XCTest

/// A tiny world for training tests: a word-level GPT-2-style tokenizer (byte tokens plus one merged token
/// per word of the corpus, a vocabulary of a few hundred), a biography corpus in `dkc data generate`'s
/// JSONL form, and a training config for a 2-layer, 32-wide GPT-2 with 32-token blocks. A step takes
/// milliseconds even in a debug build, so tests can afford several runs under mpirun.
enum TrainFixture {
    static let firstNames = ["Ada", "Bram", "Cleo", "Dov", "Eda", "Finn", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lena"]
    static let lastNames = ["Moss", "Nash", "Orr", "Pike", "Quin", "Rask", "Stone", "Tate"]
    static let cities = ["Boston", "Denver", "Austin", "Tulsa", "Reno", "Dayton", "Salem", "Provo"]
    static let companies = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay"]
    static let majors = ["Physics", "History", "Biology", "Law", "Music", "Chemistry"]
    static let universities = ["Yale", "Duke", "Rice", "Brown", "Emory", "Tufts"]
    static let months = ["May", "June", "July", "March"]

    /// Creates `<root>/tokenizer`, `<root>/data` (train/validation/base.jsonl) and returns the root.
    static func make(root: URL, entities: Int = 40, seed: UInt64 = 7) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: root.appendingPathComponent("data"), withIntermediateDirectories: true)
        var rng = SeededRNG(seed)
        struct Person { var name, birthday, city, company, major, university, type: String; var frequency: Int }
        var people: [Person] = []
        for i in 0..<entities {
            let name = "\(firstNames[i % firstNames.count]) \(lastNames[(i / firstNames.count + i) % lastNames.count])\(i)"
            people.append(Person(name: name, birthday: "\(1 + rng.below(28)) \(months[rng.below(months.count)]), \(1950 + rng.below(50))",
                                 city: cities[rng.below(cities.count)], company: companies[rng.below(companies.count)],
                                 major: majors[rng.below(majors.count)], university: universities[rng.below(universities.count)],
                                 type: i % 5 == 4 ? "revised" : "new", frequency: 1 + rng.below(3)))
        }
        func text(_ p: Person) -> String {
            var s = ["\(p.name) was born on \(p.birthday).", "\(p.name) lives in \(p.city).", "\(p.name) works for \(p.company).",
                     "\(p.name) studied \(p.major).", "\(p.name) graduated from \(p.university)."]
            for i in stride(from: s.count - 1, to: 0, by: -1) { s.swapAt(i, rng.below(i + 1)) }
            return s.joined(separator: " ")
        }
        func record(_ p: Person, _ t: String) -> String {
            let fields: [(String, String)] = [("text", t), ("full_name", p.name), ("city", p.city), ("major", p.major),
                                              ("university", p.university), ("company", p.company), ("birthday", p.birthday),
                                              ("frequency", String(p.frequency)), ("type", p.type)]
            return "{" + fields.map { "\"\($0.0)\": \"\($0.1)\"" }.joined(separator: ", ") + "}"
        }
        var train: [String] = [], base: [String] = []
        for p in people { for _ in 0..<p.frequency { train.append(record(p, text(p))) } }
        for p in people where p.type == "revised" {
            var q = p
            q.city = cities[rng.below(cities.count)]
            for _ in 0..<3 { base.append(record(q, text(q))) }
        }
        let validation = Array(train.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
        let data = root.appendingPathComponent("data")
        try (train.joined(separator: "\n") + "\n").write(to: data.appendingPathComponent("train.jsonl"), atomically: true, encoding: .utf8)
        try (base.joined(separator: "\n") + "\n").write(to: data.appendingPathComponent("base.jsonl"), atomically: true, encoding: .utf8)
        try (validation.joined(separator: "\n") + "\n").write(to: data.appendingPathComponent("validation.jsonl"), atomically: true, encoding: .utf8)

        let words = Set((firstNames + lastNames + cities + companies + majors + universities + months
                         + ["was", "born", "on", "lives", "in", "works", "for", "studied", "graduated", "from"]))
        try writeTokenizer(to: root.appendingPathComponent("tokenizer"), words: words.sorted())
        return root
    }

    /// GPT-2's byte ↔ printable-character table (`bytes_to_unicode`).
    static let byteCharacters: [Character] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var chars = printable
        var n = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            chars.append(256 + n)
            n += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(printable, chars) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }
        return table
    }()

    /// vocab.json + merges.txt: the 256 byte tokens, then for every word "Ġword" built left to right by
    /// merges, then `<|endoftext|>`.
    static func writeTokenizer(to dir: URL, words: [String]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var vocab: [String: Int] = [:]
        var order: [String] = []
        func add(_ t: String) { if vocab[t] == nil { vocab[t] = order.count; order.append(t) } }
        for b in 0..<256 { add(String(byteCharacters[b])) }
        var merges: [String] = []
        var seen = Set<String>()
        for w in words {
            let chars = [String(byteCharacters[0x20])] + w.utf8.map { String(byteCharacters[Int($0)]) }
            var left = chars[0]
            for c in chars.dropFirst() {
                let rule = "\(left) \(c)"
                if !seen.contains(rule) { seen.insert(rule); merges.append(rule) }
                left += c
                add(left)
            }
        }
        add("<|endoftext|>")
        let body = order.map { t -> String in
            let escaped = t.unicodeScalars.map { s -> String in
                switch s {
                case "\"": return "\\\""
                case "\\": return "\\\\"
                default: return s.value < 0x20 || s.value > 0x7E ? String(format: "\\u%04x", s.value) : String(s)
                }
            }.joined()
            return "\"\(escaped)\": \(vocab[t]!)"
        }.joined(separator: ", ")
        try ("{" + body + "}").write(to: dir.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        try (["#version: 0.2"] + merges).joined(separator: "\n").appending("\n")
            .write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
    }

    /// A training config for the tiny world; `extra` lines are appended (TOML).
    /// With only the continual stage it starts from scratch; with both, the stage defaults apply.
    static func config(root: URL, output: URL, stages: [String] = ["continual"], extra: String = "") throws -> URL {
        let text = """
        stages = [\(stages.map { "\"\($0)\"" }.joined(separator: ", "))]
        data_dir = "\(root.appendingPathComponent("data").path)"
        output_dir = "\(output.path)"
        tokenizer = "\(root.appendingPathComponent("tokenizer").path)"
        \(stages == ["continual"] ? "init = \"scratch\"" : "")
        n_layer = 2
        n_head = 2
        n_embd = 32
        n_positions = 32
        block_size = 32
        group_size = 1000
        num_train_epochs = 1
        per_device_train_batch_size = 2
        per_device_eval_batch_size = 4
        gradient_accumulation_steps = 1
        learning_rate = 3e-3
        logging_steps = 1
        seed = 11
        """
        // A key in `extra` replaces the default line (TOML forbids setting a key twice).
        let extraKeys = Set(extra.split(separator: "\n").prefix { !$0.hasPrefix("[") }
            .compactMap { $0.split(separator: "=").first?.trimmingCharacters(in: .whitespaces) })
        let kept = text.split(separator: "\n").filter { line in
            guard let key = line.split(separator: "=").first?.trimmingCharacters(in: .whitespaces) else { return true }
            return !extraKeys.contains(key)
        }
        let url = output.deletingLastPathComponent().appendingPathComponent(output.lastPathComponent + ".toml")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try (kept.joined(separator: "\n") + "\n" + extra + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// A fresh temporary folder, removed by the test's teardown (kept, and its path printed, when
    /// DKC_KEEP_TEST_FILES is set).
    static func temporaryFolder(_ test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        if ProcessInfo.processInfo.environment["DKC_KEEP_TEST_FILES"] != nil {
            print("\(test.name): files kept in \(url.path)")
        } else {
            test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        }
        return url
    }
}

/// SplitMix64, for the fixture's own draws.
struct SeededRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
