import Foundation
import Core

/// How replay texts enter the forgetting corpus (docs/forgetting.md).
public enum ReplayMode: String, CaseIterable, Sendable {
    /// ⌊r·N⌋ of the N forgetting texts are overwritten by replay texts: the text count stays N (the study).
    case replace
    /// ⌊r·N⌋ replay texts are appended: N + ⌊r·N⌋ texts.
    case add
}

/// How replay texts are drawn from the replay file.
public enum ReplayDraw: String, CaseIterable, Sendable {
    /// Uniformly, independently: a replay text may appear more than once (the study).
    case withReplacement = "with_replacement"
    /// Distinct replay texts; needs ⌊r·N⌋ ≤ the replay file's size.
    case withoutReplacement = "without_replacement"
}

/// One text of a mixed forgetting corpus: the index of a line of the forgetting file or of the replay file.
public enum ReplaySource: Equatable, Hashable, Sendable {
    case forget(Int)
    case replay(Int)
}

/// The composition of the forgetting corpus at one replay ratio.
///
/// Nested across ratios: the slots to overwrite are the first k of one fixed random permutation of the
/// N forgetting texts (stream "replay_slots" of `seed`), and the replay texts are the first k of one
/// fixed draw sequence (stream "replay_draws"), k = ⌊r·N⌋ (Python's `int(N * r)` on the same doubles).
/// So the replay texts of ratio 0.1 are also in the corpus of ratio 0.2, in the same slots, and only
/// `r` decides how many. The study draws each ratio afresh (docs/forgetting.md, Q9).
public struct ReplayMix: Equatable, Sendable {
    public let ratio: Double
    public let mode: ReplayMode
    public let draw: ReplayDraw
    public let seed: UInt64
    /// Forgetting texts N and replay texts M the mix was made from.
    public let forgetCount: Int
    public let replayCount: Int
    /// The corpus, in forgetting-file order (replaced slots in place, added texts at the end); training
    /// shuffles it as any corpus.
    public let texts: [ReplaySource]

    /// Replay texts in the corpus: ⌊ratio · forgetCount⌋.
    public var replayed: Int { ReplayMix.replayTextCount(ratio: ratio, forgetCount: forgetCount) }
    /// Forgetting texts left in the corpus.
    public var forgetKept: Int { mode == .replace ? forgetCount - replayed : forgetCount }

    /// ⌊ratio · n⌋ with the study's arithmetic (`int(n * r)`).
    public static func replayTextCount(ratio: Double, forgetCount n: Int) -> Int {
        Int((Double(n) * ratio).rounded(.down))
    }

    /// Mixes `replayCount` replay texts into `forgetCount` forgetting texts at `ratio` ∈ [0, 1].
    /// - Throws: `TrainError` (exit 65) when the ratio is outside [0, 1], when there are replay slots but
    ///   no replay texts, or when `without_replacement` needs more replay texts than the file holds.
    public init(ratio: Double, forgetCount: Int, replayCount: Int, mode: ReplayMode, draw: ReplayDraw, seed: UInt64) throws {
        guard ratio >= 0, ratio <= 1 else {
            throw TrainError("replay ratio \(ratio) is outside [0, 1]; list ratios such as [0, 0.1, 1] in forget.replay_ratios")
        }
        precondition(forgetCount >= 0 && replayCount >= 0)
        self.ratio = ratio
        self.mode = mode
        self.draw = draw
        self.seed = seed
        self.forgetCount = forgetCount
        self.replayCount = replayCount
        let k = ReplayMix.replayTextCount(ratio: ratio, forgetCount: forgetCount)
        if k > 0, replayCount == 0 {
            throw TrainError("replay ratio \(ratio) needs \(k) replay texts but the replay file is empty; point forget.replay_file at replay.jsonl of dkc data generate")
        }
        if draw == .withoutReplacement, k > replayCount {
            throw TrainError("replay ratio \(ratio) needs \(k) distinct replay texts but the replay file holds \(replayCount); use forget.replay_draw = \"with_replacement\" or a lower ratio")
        }
        var drawsRNG = DeterministicRandom(seed: seed, stream: "replay_draws")
        let drawn: [Int]
        switch draw {
        case .withReplacement: drawn = (0..<k).map { _ in drawsRNG.below(replayCount) }
        case .withoutReplacement: drawn = drawsRNG.sample(replayCount, k)
        }
        var texts = (0..<forgetCount).map { ReplaySource.forget($0) }
        switch mode {
        case .replace:
            var slotsRNG = DeterministicRandom(seed: seed, stream: "replay_slots")
            for (slot, r) in zip(slotsRNG.sample(forgetCount, k), drawn) { texts[slot] = .replay(r) }
        case .add:
            texts += drawn.map { .replay($0) }
        }
        self.texts = texts
    }

    /// The mixed corpus from the forgetting and replay texts (any element type: records, token lists).
    public func apply<T>(forget: [T], replay: [T]) -> [T] {
        precondition(forget.count == forgetCount && replay.count == replayCount, "ReplayMix applied to other files than it was made for")
        return texts.map { s in
            switch s {
            case .forget(let i): return forget[i]
            case .replay(let i): return replay[i]
            }
        }
    }

    /// Distinct replay texts used.
    public var distinctReplayed: Int {
        Set(texts.compactMap { if case .replay(let i) = $0 { return i } else { return nil } }).count
    }

    /// The record `replay.json` keeps: ratio, counts, seed, mode and draw.
    public var json: JSONValue {
        .object([
            ("replay_ratio", .double(ratio)),
            ("replay_mode", .string(mode.rawValue)),
            ("replay_draw", .string(draw.rawValue)),
            ("seed", .int(Int(seed))),
            ("forget_texts_in_file", .int(forgetCount)),
            ("replay_texts_in_file", .int(replayCount)),
            ("forget_texts", .int(forgetKept)),
            ("replay_texts", .int(replayed)),
            ("distinct_replay_texts", .int(distinctReplayed)),
            ("total_texts", .int(texts.count)),
        ])
    }
}
