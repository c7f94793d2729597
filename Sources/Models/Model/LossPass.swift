import Numerics

/// What a training forward (`forwardLoss`) leaves for the backward that follows it, shared by `GPT2` and
/// `FamilyModel`: the dropout it drew (the backward regenerates the same masks from it), the scale of
/// dloss/dlogits (1 / labels, the mean's), the labels counted, and whether a backward may run. Any other
/// forward clears it; a backward consumes it, so a second backward without a new `forwardLoss` traps.
struct LossPass {
    /// Labels the last loss averaged over.
    private(set) var labelCount = 0
    /// dloss/dlogits per label: 1 / labelCount.
    private(set) var scale: Float = 0
    /// The dropout of the last `forwardLoss` (nil: none, eval mode).
    private(set) var dropout: DropoutPlan?
    private var backwardAllowed = false

    /// An inference forward: nothing for a backward to use.
    mutating func inference() {
        backwardAllowed = false
        dropout = nil
    }

    /// A training forward over `batch` rows starts: its dropout is checked and kept.
    mutating func begin(dropout plan: DropoutPlan?, batch: Int) throws {
        backwardAllowed = false
        dropout = try plan?.checked(batch: batch)
    }

    /// The labels are counted (at least one): the loss is their mean. `backward`: whether a backward may follow.
    mutating func labels(_ count: Int, backward: Bool) {
        labelCount = count
        scale = Float(1.0 / Double(count))
        backwardAllowed = backward
    }

    /// A backward takes the pass; it needs a `forwardLoss` that allowed one.
    mutating func takeForBackward() {
        precondition(backwardAllowed, "backward() needs a forwardLoss() first")
        backwardAllowed = false
    }
}
