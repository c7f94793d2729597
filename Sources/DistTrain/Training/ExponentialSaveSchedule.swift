/// The forgetting runs' checkpoint steps (docs/forgetting.md, `save_strategy = "exponential"`):
/// intervals 1, 2, 2, 4, 4, 8, 8, … (the interval doubles every second save), each capped at `cap`
/// (`save_steps`), counted from the previous save. With cap 16: steps 1, 3, 5, 9, 13, 21, 29, 45, 61,
/// 77, 93, …; with cap 32: … 45, 61, 93, 125, 157, ….
///
/// The steps are true optimizer steps. Step 0 (the initial weights) and the stage's last step are
/// checkpoints too: `steps(total:)` lists them.
public struct ExponentialSaveSchedule: Equatable, Sendable {
    /// Largest interval between two saves (≥ 1).
    public let cap: Int

    public init(cap: Int) {
        precondition(cap >= 1, "the exponential save schedule needs a cap ≥ 1")
        self.cap = cap
    }

    /// The interval after the `saves`-th save (`saves` = 0: the first, from step 0):
    /// min(2^(saves − ⌊saves / 2⌋), cap).
    public func interval(afterSaves saves: Int) -> Int {
        let exponent = saves - saves / 2
        guard exponent < 62 else { return cap }
        return Swift.min(1 << exponent, cap)
    }

    /// Checkpoint steps of a stage of `total` optimizer steps, ascending: 0, the schedule's steps
    /// below `total`, and `total` itself.
    public func steps(total: Int) -> [Int] {
        precondition(total >= 0)
        var out = [0]
        var step = 0, saves = 0
        while true {
            step += interval(afterSaves: saves)
            saves += 1
            guard step < total else { break }
            out.append(step)
        }
        if total > 0 { out.append(total) }
        return out
    }

    /// Whether step `step` (1 … total) of a stage of `total` steps is saved.
    public func isSaveStep(_ step: Int, total: Int) -> Bool {
        if step == total { return true }
        var s = 0, saves = 0
        while s < step {
            s += interval(afterSaves: saves)
            saves += 1
        }
        return s == step
    }
}
