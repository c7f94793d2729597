import XCTest
@testable import Core
@testable import DistTrain

/// The pure parts of `dkc train`: corpus records and first-token marks, data orders, evaluation counts,
/// the train configuration, trainer state and checkpoint files. (The distributed loop is tested under
/// mpirun in DistTests/TrainTests.)
final class TrainingTests: XCTestCase {
    private func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dkc-training-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func gpt2Tokenizer() throws -> GPT2Tokenizer {
        let dir = Paths.fixtures.appendingPathComponent("tokenizer")
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("vocab.json").path) else {
            throw missingFixtures(Paths.fixtures.path)
        }
        return try GPT2Tokenizer(directory: dir)
    }

    // MARK: records and marks

    func testRecordsAreReadWithTheirTypeAndAttributes() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("train.jsonl")
        try """
        {"text": "A B lives in Reno.", "full_name": "A B", "city": "Reno", "major": "Law", "university": "Yale", "company": "Acme", "birthday": "1 May, 1990", "frequency": "2", "type": "new"}

        {"text": "C D works for Acme.", "city": "Provo", "frequency": 1, "type": "revised"}
        {"text": "no type"}
        """.write(to: url, atomically: true, encoding: .utf8)
        let (records, total) = try BiographyRecord.read(url)
        XCTAssertEqual(total, 3, "blank lines are skipped")
        XCTAssertEqual(records.map(\.typeCode), [1, 2, 0])
        XCTAssertEqual(records[0].attributes, ["1 May, 1990", "Reno", "Acme", "Law", "Yale"])
        XCTAssertEqual(records[1].attributes, [nil, "Provo", nil, nil, nil])
        // Shares of the file, as ranks read them, cover it in order.
        let parts = try (0..<2).flatMap { try BiographyRecord.read(url, part: $0, of: 2).records }
        XCTAssertEqual(parts, records)
    }

    func testMalformedRecordsNameFileAndLine() throws {
        let dir = try temporaryFolder()
        let cases = [("{\"text\": \"ok\"}\nnot json\n", "line 2", "not a JSON object"),
                     ("{\"full_name\": \"x\"}\n", "line 1", "\"text\""),
                     ("{\"text\": \"ok\"}\n{\"text\": \"x\", \"type\": \"old\"}\n", "line 2", "\"new\" or \"revised\"")]
        for (i, (body, line, problem)) in cases.enumerated() {
            let url = dir.appendingPathComponent("bad\(i).jsonl")
            try body.write(to: url, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try BiographyRecord.read(url)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(url.path) && text.contains(line) && text.contains(problem), text)
                XCTAssertEqual((error as? TrainError)?.exitCode, 65)
            }
        }
        XCTAssertThrowsError(try BiographyRecord.read(dir.appendingPathComponent("missing.jsonl"))) { error in
            XCTAssertTrue("\(error)".contains("dkc data generate"), "\(error)")
        }
    }

    /// The study's first_token_attribute_mask with GPT-2's tokenizer: at the first occurrence of the ids of
    /// " " + value, the type code (here combined with the attribute).
    func testFirstTokenMarksWithGPT2Tokenizer() throws {
        let tok = try gpt2Tokenizer()
        let record = BiographyRecord(
            text: "Kit Faraday Waddington lives in Detroit, MI. Kit Faraday Waddington started working for Visa. Visa is in Detroit, MI.",
            typeCode: FirstTokenMark.revised, attributes: ["7 April, 1983", "Detroit, MI", "Visa", nil, "University of Denver"])
        let t = record.tokenized(encoder: tok, eos: tok.eosTokenId, blockSize: 1024)
        let ids = tok.encode(record.text).map { Int32($0) } + [Int32(tok.eosTokenId)]
        XCTAssertEqual(t.ids, ids)
        func first(_ value: String) -> Int? {
            let sub = tok.encode(" " + value).map { Int32($0) }
            return (0...(ids.count - sub.count)).first { Array(ids[$0..<($0 + sub.count)]) == sub }
        }
        let city = try XCTUnwrap(first("Detroit, MI")), company = try XCTUnwrap(first("Visa"))
        var expected = [UInt8](repeating: 0, count: ids.count)
        expected[city] = FirstTokenMark.code(type: 2, attribute: 1)
        expected[company] = FirstTokenMark.code(type: 2, attribute: 2)
        XCTAssertEqual(t.attributeMask, expected, "only the first occurrence of each present value is marked")
        XCTAssertEqual(FirstTokenMark.type(expected[city]), 2)
        XCTAssertEqual(FirstTokenMark.attribute(expected[company]), 2)
        // Truncation: no EOS when the text is cut to block_size.
        let cut = record.tokenized(encoder: tok, eos: tok.eosTokenId, blockSize: 5)
        XCTAssertEqual(cut.ids, Array(ids.prefix(5)))
    }

    // MARK: data order

    func testDataOrdersArePermutationsDeterminedBySeedAndEpoch() {
        let a = DataOrder.epochPermutation(count: 1000, seed: 42, epoch: 3)
        XCTAssertEqual(a.sorted(), Array(0..<1000))
        XCTAssertEqual(a, DataOrder.epochPermutation(count: 1000, seed: 42, epoch: 3))
        XCTAssertNotEqual(a, DataOrder.epochPermutation(count: 1000, seed: 42, epoch: 4))
        XCTAssertNotEqual(a, DataOrder.epochPermutation(count: 1000, seed: 43, epoch: 3))
        // Bounded draws are uniform: 60,000 draws below 6 land within 5 % of 10,000 per value.
        var rng = SplitMix64(seed: 9)
        var counts = [Int](repeating: 0, count: 6)
        for _ in 0..<60_000 { counts[DataOrder.below(6, using: &rng)] += 1 }
        for c in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 500) }
        // Every position is equally likely to receive a given element.
        var first = [Int](repeating: 0, count: 4)
        for e in 0..<8000 { first[DataOrder.epochPermutation(count: 4, seed: 1, epoch: e).firstIndex(of: 0)!] += 1 }
        for c in first { XCTAssertEqual(Double(c), 2000, accuracy: 200) }
    }

    func testPreparedBlocksDependOnSeedOnly() {
        let texts = (0..<50).map { i in
            TokenizedText(ids: (0..<(3 + i % 7)).map { Int32(i * 10 + $0) }, attributeMask: [UInt8](repeating: UInt8(i % 3), count: 3 + i % 7))
        }
        let a = PackedBlocks.prepare(texts: texts, blockSize: 8, groupSize: 20, seed: 5)
        let b = PackedBlocks.prepare(texts: texts, blockSize: 8, groupSize: 20, seed: 5)
        let c = PackedBlocks.prepare(texts: texts, blockSize: 8, groupSize: 20, seed: 6)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.fingerprint, b.fingerprint)
        XCTAssertNotEqual(a.fingerprint, c.fingerprint)
        // Every block starts at a text's first token and keeps its marks aligned.
        let starts = Set(texts.map { $0.ids[0] })
        for k in 0..<a.count {
            XCTAssertTrue(starts.contains(a.block(k).first!))
            XCTAssertEqual(Int(a.mask(k).first!), Int(a.block(k).first! / 10) % 3)
        }
    }

    // MARK: evaluation counts

    func testEvalCountsFollowTheStudyShift() {
        // T = 5: predictions at 0…3 are compared with tokens 1…4, and the mask is read at t + 1 (the mark
        // at position 0 is never scored, position 4's prediction is never scored).
        let tokens: [Int32] = [7, 8, 9, 10, 11]
        let cityNew = FirstTokenMark.code(type: 1, attribute: 1), majorRevised = FirstTokenMark.code(type: 2, attribute: 3)
        let mask: [UInt8] = [cityNew, 0, cityNew, majorRevised, 0]
        let pred: [Int32] = [8, 0, 10, 0, 99]   // right at t = 0 and t = 2 (token 10, revised major)
        var counts = EvalCounts()
        counts.add(tokens: tokens, mask: mask, predictions: pred, T: 5)
        counts.lossSum = 6
        XCTAssertEqual(counts.predictions, 4)
        XCTAssertEqual(counts.correct, 2)
        let m = Dictionary(uniqueKeysWithValues: counts.metrics)
        XCTAssertEqual(m["eval_loss"], 1.5)
        XCTAssertEqual(m["eval_accuracy"], 0.5)
        XCTAssertEqual(m["eval_first_token_accuracy_new"], 0.0)
        XCTAssertEqual(m["eval_first_token_accuracy_revised"], 1.0)
        XCTAssertEqual(m["eval_first_token_accuracy_new_city"], 0.0)
        XCTAssertEqual(m["eval_first_token_accuracy_revised_major"], 1.0)
        XCTAssertNil(m["eval_first_token_accuracy_new_major"], "an attribute without marks has no accuracy")
        // Counts from two shards add up to the counts of the whole.
        var twice = counts
        twice.add(tokens: tokens, mask: mask, predictions: pred, T: 5)
        let summed = zip(counts.packed, counts.packed).map { $0 + $1 }
        XCTAssertEqual(EvalCounts(packed: summed, lossSum: 6), { var t = twice; t.lossSum = 6; return t }())
    }

    func testArgmaxTakesTheFirstMaximum() {
        var row = [Float](repeating: -1, count: 37)
        row[5] = 3; row[30] = 3; row[36] = 2
        XCTAssertEqual(EvalCounts.argmax(row, 37), 5)
        row[33] = 4
        XCTAssertEqual(EvalCounts.argmax(row, 37), 33)
        XCTAssertEqual(EvalCounts.argmax([0.5], 1), 0)
    }

    // MARK: fixed-point sums

    /// The sum does not depend on the order or grouping of its terms, stays within float rounding of the
    /// exact sum, and refuses a term beyond its range.
    func testFixedPointSumIsOrderIndependent() {
        let n = 1000, k = 6
        var rng = SplitMix64(seed: 12)
        // Terms with entries over 12 orders of magnitude, both signs.
        let terms: [[Float]] = (0..<k).map { _ in
            (0..<n).map { i in Float(rng.nextGaussian()) * powf(10, Float(i % 13) - 9) }
        }
        let bound = terms[0].map { abs($0) }.max()!
        func sum(order: [Int], groups: Int) -> [Float] {
            // `groups` partial sums (as ranks would hold), each over some of the terms, then added as integers.
            let parts = (0..<groups).map { _ in FixedPointSum(count: n, terms: k) }
            for p in parts { p.reset(forMax: bound) }
            for (j, t) in order.enumerated() {
                let added = terms[t].withUnsafeBufferPointer { x in
                    parts[j % groups].add(x.baseAddress!, maxAbs: FixedPointSum.maxAbs(x.baseAddress!, n))
                }
                XCTAssertTrue(added, "term \(t) within range")
            }
            for p in parts.dropFirst() { for i in 0..<n { parts[0].values[i] &+= p.values[i] } }
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer { parts[0].result(into: $0.baseAddress!, dividedBy: Double(k)) }
            return out
        }
        let a = sum(order: Array(0..<k), groups: 1)
        XCTAssertEqual(a, sum(order: [5, 3, 1, 0, 2, 4], groups: 2))
        XCTAssertEqual(a, sum(order: [2, 0, 4, 1, 5, 3], groups: 3))
        for i in 0..<n {
            let exact = (0..<k).reduce(0.0) { $0 + Double(terms[$1][i]) } / Double(k)
            let resolution = Double(bound) * pow(2, -56 + 3)   // K = 6 ≤ 2³
            XCTAssertEqual(Double(a[i]), exact, accuracy: abs(exact) * 1.2e-7 + resolution, "entry \(i)")
        }
        // A term beyond 2⁶ × the bound, or not finite, is refused.
        let s = FixedPointSum(count: 1, terms: k)
        s.reset(forMax: 1)
        XCTAssertTrue(s.add([63], maxAbs: 63))
        XCTAssertFalse(s.add([Float(s.termLimit * 2)], maxAbs: Float(s.termLimit * 2)))
        XCTAssertFalse(s.add([.nan], maxAbs: FixedPointSum.maxAbs([.nan], 1)))
        XCTAssertTrue(FixedPointSum.maxAbs([1, -7, 3, 2, 0, 0, 0, 0, -9.5], 9) == 9.5)
    }

    // MARK: JSON and trainer state

    func testJSONReadsBackWhatItWrote() throws {
        let value = JSONValue.object([
            ("loss", .double(2.5)), ("tiny", .double(1e-05)), ("big", .double(1.5e300)), ("step", .int(120)),
            ("neg", .int(-3)), ("text", .string("Zoë \"quoted\" \\ tab\t 😀 \u{01}")), ("list", .array([.bool(true), .null, .array([])])),
            ("nested", .object([("b", .int(1)), ("a", .object([]))])),
        ])
        XCTAssertEqual(try JSONValue(parsing: value.compactText), value)
        XCTAssertEqual(try JSONValue(parsing: value.prettyText()), value)
        XCTAssertEqual(try JSONValue(parsing: "{\"a\": 1.0, \"b\": 2e3}")["a"], .double(1.0))
        XCTAssertEqual(try JSONValue(parsing: "[\"\\ud83d\\ude00\"]"), .array([.string("😀")]))
        for bad in ["{", "[1,]", "{\"a\" 1}", "\"open", "1 2", "tru"] {
            XCTAssertThrowsError(try JSONValue(parsing: bad), bad)
        }
    }

    func testTrainerStateRoundTrip() throws {
        let state = TrainerState(stage: "continual", globalStep: 37, maxSteps: 250, numTrainEpochs: 25, stepsPerEpoch: 10,
                                 globalBatchSize: 128, perDeviceTrainBatchSize: 16, loggingSteps: 10, saveSteps: 0, evalSteps: 0,
                                 logHistory: [.object([("loss", .double(3.25)), ("epoch", .double(1.0)), ("step", .int(10))])],
                                 window: .init(steps: 7, lossSum: 21.000000000000004), seed: UInt64.max - 1, trainFile: "/d/train.jsonl",
                                 trainBlocks: 1300, trainFingerprint: 0xDEAD_BEEF_0123_4567, worldSize: 2, blasThreads: 1,
                                 deterministic: true, finished: false, config: .object([("seed", .int(42))]))
        XCTAssertEqual(state.position.epoch, 3)
        XCTAssertEqual(state.position.step, 7)
        XCTAssertEqual(state.epoch, 3.7)
        let url = try temporaryFolder().appendingPathComponent("trainer_state.json")
        try Data(state.json.prettyText().utf8).write(to: url)
        XCTAssertEqual(try TrainerState(file: url), state)
        // HF's keys are there, sorted.
        let j = try JSONValue(parsing: Data(contentsOf: url))
        guard case .object(let pairs) = j else { return XCTFail("not an object") }
        XCTAssertEqual(pairs.map(\.0), pairs.map(\.0).sorted())
        XCTAssertEqual(j["global_step"], .int(37))
        XCTAssertEqual(j["log_history"]?.arrayValue?.count, 1)
    }

    // MARK: configuration

    private func trainConfig(_ text: String, overrides: [String] = []) throws -> TrainConfig {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("train.toml")
        try ("data_dir = \"data\"\noutput_dir = \"out\"\n" + text).write(to: url, atomically: true, encoding: .utf8)
        return try TrainConfig.load(file: url, overrides: overrides, workingDirectory: dir)
    }

    func testTrainConfigStageDefaultsAndOverrides() throws {
        let c = try trainConfig("learning_rate = 5e-4\n[continual]\nlearning_rate = 1e-4\nnum_train_epochs = 3\n")
        XCTAssertEqual(c.stages.map(\.stage), [.base, .continual])
        let (base, cont) = (c.stages[0], c.stages[1])
        XCTAssertEqual(base.learningRate, 5e-4)
        XCTAssertEqual(cont.learningRate, 1e-4)
        XCTAssertEqual(base.numTrainEpochs, 25)
        XCTAssertEqual(cont.numTrainEpochs, 3)
        XCTAssertEqual(base.initSource, .scratch)
        XCTAssertEqual(cont.initSource, .base)
        XCTAssertEqual(base.trainFile.lastPathComponent, "base.jsonl")
        XCTAssertNil(base.validationFile)
        XCTAssertEqual(cont.trainFile.lastPathComponent, "train.jsonl")
        XCTAssertEqual(cont.validationFile?.lastPathComponent, "validation.jsonl")
        XCTAssertEqual(cont.folder, c.outputDir.appendingPathComponent("continual"))
        XCTAssertTrue(c.outputDir.path.hasSuffix("/out") && c.outputDir.path.hasPrefix("/"), c.outputDir.path)
        XCTAssertEqual(cont.globalBatch(ranks: 2), 2 * 16 * 4)
        XCTAssertEqual(cont.maxGradNorm, 1.0)
        // init: keywords kept, a folder resolved against the config file's folder; --set against the working directory.
        let folder = try trainConfig("[continual]\ninit = \"models/gpt2\"\n")
        guard case .folder(let u) = folder.stages[1].initSource else { return XCTFail("init is not a folder") }
        XCTAssertTrue(u.path.hasSuffix("/models/gpt2") && u.path.hasPrefix("/"))
        let set = try trainConfig("", overrides: ["continual.init=scratch", "max_grad_norm=0"])
        XCTAssertEqual(set.stages[1].initSource, .scratch)
        XCTAssertNil(set.stages[1].maxGradNorm, "0 turns clipping off")
        XCTAssertEqual(ConfigSchema.train.kind, "train")
        // Dropout: unset means the model's own; set per stage; an integer 0 is a probability too.
        XCTAssertNil(base.residPdrop)
        let drop = try trainConfig("resid_pdrop = 0.2\nattn_pdrop = 0\n[continual]\nembd_pdrop = 0.05\n")
        XCTAssertEqual(drop.stages.map(\.residPdrop), [0.2, 0.2])
        XCTAssertEqual(drop.stages.map(\.attnPdrop), [0, 0])
        XCTAssertEqual(drop.stages.map(\.embdPdrop), [nil, 0.05])
    }

    func testTrainConfigErrorsNameTheKey() throws {
        let cases: [(String, [String], String)] = [
            ("lerning_rate = 1\n", [], "did you mean 'learning_rate'"),
            ("block_size = 2048\n", [], "exceeds n_positions"),
            ("save_strategy = \"steps\"\n", [], "save_steps"),
            ("stages = [\"continual\", \"base\"]\n", [], "before base"),
            ("[base]\ninit = \"base\"\n", [], "base stage itself"),
            ("", ["continual.per_device_train_batch_size=0"], "continual.per_device_train_batch_size"),
            ("n_head = 5\n", [], "multiple of n_head"),
            ("lr_scheduler_type = \"cosin\"\n", [], "did you mean \"cosine\""),
            ("resid_pdrop = 1.0\n", [], "resid_pdrop"),
            ("", ["continual.attn_pdrop=-0.1"], "continual.attn_pdrop"),
        ]
        for (text, overrides, expected) in cases {
            XCTAssertThrowsError(try trainConfig(text, overrides: overrides), text) { error in
                XCTAssertTrue("\(error)".contains(expected), "expected “\(expected)” in: \(error)")
            }
        }
        XCTAssertThrowsError(try TrainConfig.load(file: nil)) { error in
            XCTAssertTrue("\(error)".contains("data_dir"), "\(error)")
        }
    }

    // MARK: checkpoint files

    func testCheckpointWriteListAndOptimizerRoundTrip() throws {
        let dir = try temporaryFolder().appendingPathComponent("checkpoints")
        let config = GPT2Config(nLayer: 1, nHead: 2, nEmbd: 8, nPositions: 16, vocabSize: 11)
        let params = ParameterArena(config: config)
        params.initializeGPT2(seed: 3)
        let opt = AdamW(layout: params.layout, config: AdamWConfig())
        var rng = SplitMix64(seed: 4)
        for i in 0..<opt.count { opt.m.base[i] = rng.nextGaussian(); opt.v.base[i] = abs(rng.nextGaussian()) }
        opt.stepCount = 12
        let state = TrainerState(stage: "base", globalStep: 12, maxSteps: 24, numTrainEpochs: 2, stepsPerEpoch: 12,
                                 globalBatchSize: 4, perDeviceTrainBatchSize: 2, loggingSteps: 1, saveSteps: 0, evalSteps: 0,
                                 logHistory: [], window: .init(), seed: 1, trainFile: "t", trainBlocks: 50, trainFingerprint: 9,
                                 worldSize: 1, blasThreads: 1, deterministic: false, finished: false, config: .null)
        let url = try TrainCheckpoint.write(model: GPT2(params: params, threads: 1), optimizer: opt, state: state, tokenizerFiles: [], in: dir)
        XCTAssertEqual(url.lastPathComponent, "checkpoint-12")
        // A folder without its trainer state (an interrupted copy) and hidden leftovers are not checkpoints.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("checkpoint-30"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".checkpoint-24.tmp-1"), withIntermediateDirectories: true)
        XCTAssertEqual(TrainCheckpoint.list(in: dir).map(\.step), [12])
        TrainCheckpoint.removeLeftovers(in: dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(".checkpoint-24.tmp-1").path))

        let back = try HFCheckpoint.load(folder: url)
        XCTAssertEqual(Array(back.buffer), Array(params.buffer))
        let opt2 = AdamW(layout: params.layout, config: AdamWConfig())
        try TrainCheckpoint.readOptimizer(from: url.appendingPathComponent(TrainCheckpoint.optimizerFileName), into: opt2, tensors: params.layout.tensors)
        XCTAssertEqual(Array(opt2.m.buffer), Array(opt.m.buffer))
        XCTAssertEqual(Array(opt2.v.buffer), Array(opt.v.buffer))
        XCTAssertEqual(opt2.stepCount, 12)
        // Another shape is refused, naming the tensor.
        let other = ParameterArena(config: GPT2Config(nLayer: 1, nHead: 2, nEmbd: 4, nPositions: 16, vocabSize: 11))
        let opt3 = AdamW(layout: other.layout, config: AdamWConfig())
        XCTAssertThrowsError(try TrainCheckpoint.readOptimizer(from: url.appendingPathComponent(TrainCheckpoint.optimizerFileName),
                                                               into: opt3, tensors: other.layout.tensors)) { error in
            XCTAssertTrue("\(error)".contains("exp_avg.transformer.wte.weight"), "\(error)")
        }
        // Rewriting the same step replaces the folder.
        _ = try TrainCheckpoint.write(model: GPT2(params: params, threads: 1), optimizer: opt, state: state, tokenizerFiles: [], in: dir)
        XCTAssertEqual(TrainCheckpoint.list(in: dir).map(\.step), [12])
    }
}
