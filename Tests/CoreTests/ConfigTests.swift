import Foundation
import XCTest
@testable import Core
@testable import Support

/// The configuration system: files, `--set` overrides, schema checks, paths, serialisation.
final class ConfigTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private func write(_ text: String, _ name: String = "c.toml") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// A schema with a section, like the training configuration will have.
    private let stagedSchema = ConfigSchema(kind: "staged", command: "dkc staged", keys: [
        ConfigKey("learning_rate", .double, default: .double(1e-3), help: "peak learning rate"),
        ConfigKey("num_train_epochs", .int, default: .int(25), help: "epochs"),
        ConfigKey("stages", .array(.string), default: .array([.string("base"), .string("continual")]), help: "stages in order"),
        ConfigKey("output_dir", .path, default: nil, required: true, help: "where the run goes"),
    ], sections: [
        ConfigSection("base", help: "overrides for the base stage", keys: ["learning_rate", "num_train_epochs"]),
        ConfigSection("continual", help: "overrides for the continual stage", keys: ["learning_rate", "num_train_epochs"]),
    ])

    func testDefaultsAndNamedConfig() throws {
        let url = try ConfigLoader.locate("tiny", kind: "data")
        XCTAssertEqual(url.path, Paths.sourceRoot.appendingPathComponent("configs/data/tiny.toml").path)
        let c = try DataConfig.load(file: url)
        XCTAssertEqual(c.nEntities, 400)
        XCTAssertEqual(c.seed, 42)
        // Relative paths in the file resolve from the file's folder.
        XCTAssertEqual(c.pools.path, Paths.sourceRoot.appendingPathComponent("data/pools").standardizedFileURL.path)
        XCTAssertEqual(c.templates.path, Paths.sourceRoot.appendingPathComponent("data/templates").standardizedFileURL.path)
        XCTAssertNil(c.revisedNames)
        XCTAssertEqual(c.frequencyBuckets.map(\.name), ["high", "medium", "low"])
        XCTAssertEqual(c.tasks, [.city, .company, .major])

        let d = try DataConfig.load(file: nil)
        XCTAssertEqual(d.nEntities, 50_000)
        XCTAssertEqual(d.nNew, 40_000)
        XCTAssertEqual(d.nRevised, 10_000)
        XCTAssertEqual(d.validationSize, 5000)
        XCTAssertEqual(d.tokenizer.path, Paths.gpt2Tokenizer.path)
        for name in ["tiny", "paper", "gpt2", "gpt2-medium"] {
            XCTAssertNoThrow(try DataConfig.load(file: ConfigLoader.locate(name, kind: "data")), name)
        }
        XCTAssertEqual(try DataConfig.load(file: ConfigLoader.locate("gpt2-medium", kind: "data")).modelName, "gpt2-medium")
    }

    func testNamedConfigNotFoundListsNames() {
        XCTAssertThrowsError(try ConfigLoader.locate("tinyy", kind: "data")) { error in
            guard case let ConfigError.namedConfigNotFound(name, kind, _, available) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "tinyy")
            XCTAssertEqual(kind, "data")
            XCTAssertTrue(available.contains("tiny") && available.contains("paper"), "\(available)")
        }
        XCTAssertThrowsError(try ConfigLoader.locate("/no/such/file.toml", kind: "data")) { error in
            XCTAssertEqual(error as? ConfigError, .fileNotFound(path: "/no/such/file.toml"))
        }
    }

    func testOverridesInTOMLSyntax() throws {
        let c = try DataConfig.load(file: nil, overrides: [
            "tasks=[\"city\"]", "frequency_rate=5e-4", "n_entities=1000", "model_name=gpt2-medium",
            "seed = 7", "new_fraction=0.75",
        ])
        XCTAssertEqual(c.tasks, [.city])
        XCTAssertEqual(c.frequencyRate, 5e-4)
        XCTAssertEqual(c.nEntities, 1000)
        XCTAssertEqual(c.modelName, "gpt2-medium")
        XCTAssertEqual(c.seed, 7)
        XCTAssertEqual(c.nNew, 750)
        XCTAssertEqual(c.resolved.origin(of: "seed"), "--set seed = 7")
        XCTAssertEqual(c.resolved.origin(of: "circuit_n"), "default")

        // What the shell leaves of tasks=["city","company"]; and a textual key given a number.
        let d = try DataConfig.load(file: nil, overrides: ["tasks=[city,company]", "model_name=2024", "n_entities=5e4"])
        XCTAssertEqual(d.tasks, [.city, .company])
        XCTAssertEqual(d.modelName, "2024")
        XCTAssertEqual(d.nEntities, 50_000)
        // Later overrides win over earlier ones and over the file.
        let file = try write("seed = 1\n")
        XCTAssertEqual(try DataConfig.load(file: file, overrides: ["seed=2", "seed=3"]).seed, 3)
    }

    func testDottedKeysReachSectionsAndMaps() throws {
        let file = try write("""
        output_dir = "runs/a"
        learning_rate = 2e-3
        [continual]
        num_train_epochs = 3
        """)
        let c = try ConfigLoader.load(schema: stagedSchema, file: file, overrides: ["continual.num_train_epochs=2", "base.learning_rate=1e-4"])
        XCTAssertEqual(c.int("num_train_epochs", section: "continual"), 2)
        XCTAssertEqual(c.int("num_train_epochs", section: "base"), 25)  // falls back to top level
        XCTAssertEqual(c.double("learning_rate", section: "base"), 1e-4)
        XCTAssertEqual(c.double("learning_rate", section: "continual"), 2e-3)
        XCTAssertEqual(c.url("output_dir").path, folder.appendingPathComponent("runs/a").path)

        let d = try DataConfig.load(file: nil, overrides: ["frequency_buckets.low=[1,2]", "frequency_buckets.medium=[3,5]"])
        XCTAssertEqual(d.frequencyBuckets, [FrequencyBucket(name: "high", min: 6, max: 1_000_000),
                                            FrequencyBucket(name: "medium", min: 3, max: 5),
                                            FrequencyBucket(name: "low", min: 1, max: 2)])
        let e = try DataConfig.load(file: nil, overrides: ["frequency_buckets={ rare = [1, 2], common = [3, 100] }"])
        XCTAssertEqual(e.frequencyBuckets.map(\.name), ["common", "rare"])

        XCTAssertThrowsError(try ConfigLoader.load(schema: stagedSchema, file: file, overrides: ["continual.num_train_epoch=2"])) { error in
            XCTAssertEqual(error as? ConfigError, .unknownKey(key: "continual.num_train_epoch", location: "--set continual.num_train_epoch=2",
                                                              suggestion: "continual.num_train_epochs"))
        }
        XCTAssertThrowsError(try ConfigLoader.load(schema: stagedSchema, file: nil, overrides: [])) { error in
            guard case .missingRequired(let key, _) = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "output_dir")
        }
    }

    func testUnknownKeyInFileNamesFileLineAndNearestKey() throws {
        let file = try write("""
        # a comment
        seed = 1

        n_entites = 500
        """)
        XCTAssertThrowsError(try DataConfig.load(file: file)) { error in
            XCTAssertEqual(error as? ConfigError, .unknownKey(key: "n_entites", location: "\(file.path) line 4", suggestion: "n_entities"))
            XCTAssertTrue("\(error)".contains("did you mean 'n_entities'"), "\(error)")
        }
        let sectioned = try write("output_dir = \"x\"\n\n[continual]\nlearning_rat = 1\n", "s.toml")
        XCTAssertThrowsError(try ConfigLoader.load(schema: stagedSchema, file: sectioned)) { error in
            XCTAssertEqual(error as? ConfigError, .unknownKey(key: "continual.learning_rat", location: "\(sectioned.path) line 4",
                                                              suggestion: "continual.learning_rate"))
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["circuit_sed=3"])) { error in
            XCTAssertEqual(error as? ConfigError, .unknownKey(key: "circuit_sed", location: "--set circuit_sed=3", suggestion: "circuit_seed"))
        }
    }

    func testWrongTypesNameKeyAndExpectedType() throws {
        let file = try write("seed = 1\nn_entities = \"many\"\n")
        XCTAssertThrowsError(try DataConfig.load(file: file)) { error in
            XCTAssertEqual(error as? ConfigError, .wrongType(key: "n_entities", location: "\(file.path) line 2",
                                                             expected: "integer", got: "string \"many\""))
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["n_entities=2.5"])) { error in
            guard case let .wrongType(key, _, expected, _) = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "n_entities"); XCTAssertEqual(expected, "integer")
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["tasks=\"city\""])) { error in
            guard case let .wrongType(key, _, expected, _) = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "tasks")
            XCTAssertTrue(expected.hasPrefix("array of strings"), expected)
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["tasks=[\"cty\"]"])) { error in
            guard case let .invalidValue(key, _, reason) = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "tasks[0]")
            XCTAssertTrue(reason.contains("did you mean \"city\""), reason)
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["new_fraction=1.5"])) { error in
            guard case let .invalidValue(key, location, _) = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "new_fraction"); XCTAssertEqual(location, "--set new_fraction=1.5")
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["frequency_buckets.low=[1,3]"])) { error in
            guard case let .invalidValue(key, _, reason) = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "frequency_buckets"); XCTAssertTrue(reason.contains("overlap"), reason)
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["seed"])) { error in
            guard case .badOverride = error as? ConfigError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try DataConfig.load(file: nil, overrides: ["tasks=[\"city\""])) { error in
            guard case .badOverride = error as? ConfigError else { return XCTFail("\(error)") }
        }
    }

    func testParseErrorNamesLine() throws {
        let file = try write("seed = 1\nn_entities = = 3\n")
        XCTAssertThrowsError(try DataConfig.load(file: file)) { error in
            guard case let .parse(f, line, _, _) = error as? ConfigError else { return XCTFail("\(error)") }
            XCTAssertEqual(f, file.path); XCTAssertEqual(line, 2)
        }
    }

    func testPathsResolveFromFileAndFromWorkingDirectory() throws {
        let sub = folder.appendingPathComponent("cfg")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let file = sub.appendingPathComponent("d.toml")
        try "pools = \"mypools\"\ntemplates = \"../tpl\"\nrevised_names = \"/abs/names.txt\"\n".write(to: file, atomically: true, encoding: .utf8)
        let cwd = URL(fileURLWithPath: "/some/where")
        let c = try DataConfig.load(file: file, overrides: ["tokenizer=tok"], workingDirectory: cwd)
        XCTAssertEqual(c.pools.path, sub.appendingPathComponent("mypools").path)
        XCTAssertEqual(c.templates.path, folder.appendingPathComponent("tpl").path)
        XCTAssertEqual(c.revisedNames?.path, "/abs/names.txt")
        XCTAssertEqual(c.tokenizer.path, "/some/where/tok")
        let home = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent("x").standardizedFileURL.path
        XCTAssertEqual(try DataConfig.load(file: nil, overrides: ["pools=~/x"]).pools.path, home)
    }

    func testTOMLRoundTripAndJSON() throws {
        let original = try DataConfig.load(file: ConfigLoader.locate("tiny", kind: "data"),
                                           overrides: ["tasks=[\"city\", \"birthday\"]", "frequency_rate=0.1", "revised_names=/r/n.txt",
                                                       "model_name=my \"model\""])
        let text = original.resolved.tomlText
        XCTAssertTrue(text.contains("# one RNG seed for every random choice\nseed = 42\n"), text)
        let file = try write(text, "resolved.toml")
        let back = try DataConfig.load(file: file)
        XCTAssertEqual(back.resolved.values, original.resolved.values)
        XCTAssertEqual(back.modelName, "my \"model\"")

        // Unset optional keys are written as comments and read back as unset.
        let plain = try DataConfig.load(file: nil)
        XCTAssertTrue(plain.resolved.tomlText.contains("# revised_names =  (not set)"))
        XCTAssertNil(try DataConfig.load(file: write(plain.resolved.tomlText, "plain.toml")).revisedNames)

        // Sections round-trip too.
        let staged = try ConfigLoader.load(schema: stagedSchema, file: nil, overrides: ["output_dir=/o", "continual.learning_rate=1e-4"])
        let stagedBack = try ConfigLoader.load(schema: stagedSchema, file: write(staged.tomlText, "staged.toml"))
        XCTAssertEqual(stagedBack.values, staged.values)
        XCTAssertEqual(stagedBack.sections, staged.sections)

        let json = original.resolved.json.compactText
        XCTAssertTrue(json.hasPrefix("{\"seed\": 42, \"n_entities\": 400, \"new_fraction\": 0.8, \"frequency_rate\": 0.1,"), json)
        let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        XCTAssertEqual(decoded?["tasks"] as? [String], ["city", "birthday"])
        XCTAssertEqual(decoded?["revised_names"] as? String, "/r/n.txt")
        XCTAssertEqual(decoded?["model_name"] as? String, "my \"model\"")
    }

    func testEditDistanceAndSuggestion() {
        XCTAssertEqual(NameSuggestion.editDistance("", "abc"), 3)
        XCTAssertEqual(NameSuggestion.editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(NameSuggestion.editDistance("seed", "seed"), 0)
        XCTAssertEqual(NameSuggestion.nearest("validaton_size", in: ConfigSchema.data.allNames), "validation_size")
        XCTAssertEqual(NameSuggestion.nearest("tokeniser", in: ConfigSchema.data.allNames), "tokenizer")
    }

    func testQuotingBareWords() {
        XCTAssertEqual(ConfigLoader.quotingBareWords("[city, company]"), "[\"city\", \"company\"]")
        XCTAssertEqual(ConfigLoader.quotingBareWords("[1, 2.5, true]"), "[1, 2.5, true]")
        XCTAssertEqual(ConfigLoader.quotingBareWords("[\"a b\", c]"), "[\"a b\", \"c\"]")
    }
}
