import Foundation
import Core

/// Sums behind the study's evaluation metrics (docs/pipeline.md §4), over any set of blocks; counts from
/// different ranks add up (`packed` / `init(packed:)` travel through one allreduce).
///
/// For a block of T tokens with argmax predictions `pred` (pred[t] = argmax of the logits at t):
/// - next-token accuracy compares pred[0 ..< T−1] with tokens[1 ..< T] (the study's preds[:, :-1] vs
///   labels[:, 1:]);
/// - first-token attribute accuracy uses the same pairs where the shifted mask, mask[t + 1], marks the
///   first token of an attribute value, split by entity type (`FirstTokenMark`) and by attribute;
/// - the loss is the mean cross-entropy over all T − 1 predictions of every block.
public struct EvalCounts: Equatable, Sendable {
    public static let attributeSlots = BiographyAttribute.allCases.count + 1  // the last: mark without attribute
    static let typeSlots = 3

    /// Σ cross-entropy over predictions.
    public var lossSum: Double = 0
    /// Predictions scored (blocks × (T − 1)).
    public var predictions: Int64 = 0
    /// Of those, argmax == next token.
    public var correct: Int64 = 0
    /// Marked positions and correct ones, indexed [type × attributeSlots + attribute slot].
    public var markTotal = [Int64](repeating: 0, count: typeSlots * attributeSlots)
    public var markCorrect = [Int64](repeating: 0, count: typeSlots * attributeSlots)
    /// Blocks counted.
    public var blocks: Int64 = 0

    public init() {}

    /// Adds one block: `tokens` and `mask` (T each) and the argmax prediction at every position (T).
    public mutating func add(tokens: UnsafePointer<Int32>, mask: UnsafePointer<UInt8>, predictions pred: UnsafePointer<Int32>, T: Int) {
        guard T >= 2 else { return }
        blocks += 1
        for t in 0..<(T - 1) {
            let hit = pred[t] == tokens[t + 1]
            predictions += 1
            if hit { correct += 1 }
            let code = mask[t + 1]
            if code != 0 {
                let slot = FirstTokenMark.type(code) * Self.attributeSlots + (FirstTokenMark.attribute(code) ?? Self.attributeSlots - 1)
                markTotal[slot] += 1
                if hit { markCorrect[slot] += 1 }
            }
        }
    }

    /// Index of the largest of `row[0 ..< V]` (the first one on ties, as torch.argmax).
    public static func argmax(_ row: UnsafePointer<Float>, _ V: Int) -> Int32 {
        var best: Float = -.infinity
        var at = 0
        var v = 0
        // Vector maximum first, then the first index that reaches it.
        var mv = SIMD8<Float>(repeating: -.infinity)
        while v + 8 <= V {
            let x = UnsafeRawPointer(row + v).loadUnaligned(as: SIMD8<Float>.self)
            mv = pointwiseMax(mv, x)
            v += 8
        }
        best = mv.max()
        while v < V { if row[v] > best { best = row[v] }; v += 1 }
        for i in 0..<V where row[i] == best { at = i; break }
        return Int32(at)
    }

    // MARK: Reduction

    /// Every count as one Int64 array (the loss travels separately as a Double).
    public var packed: [Int64] { [predictions, correct, blocks] + markTotal + markCorrect }

    public init(packed p: [Int64], lossSum: Double) {
        let n = Self.typeSlots * Self.attributeSlots
        precondition(p.count == 3 + 2 * n)
        predictions = p[0]; correct = p[1]; blocks = p[2]
        markTotal = Array(p[3..<(3 + n)])
        markCorrect = Array(p[(3 + n)...])
        self.lossSum = lossSum
    }

    // MARK: Metrics

    /// Positions marked for entity type `type` (1 new, 2 revised), over all attributes.
    public func marked(type: Int) -> (total: Int64, correct: Int64) {
        let r = (type * Self.attributeSlots)..<((type + 1) * Self.attributeSlots)
        return (markTotal[r].reduce(0, +), markCorrect[r].reduce(0, +))
    }

    /// The metrics with Hugging Face's `eval_` names: `eval_loss`, `eval_accuracy`,
    /// `eval_first_token_accuracy_<type>` and `eval_first_token_accuracy_<type>_<attribute>`; a type or
    /// attribute with no marked position is left out (its accuracy is undefined).
    public var metrics: [(String, Double)] {
        var out: [(String, Double)] = []
        if predictions > 0 {
            out.append(("eval_loss", lossSum / Double(predictions)))
            out.append(("eval_accuracy", Double(correct) / Double(predictions)))
        }
        for type in 1...2 {
            let name = FirstTokenMark.typeNames[type]
            let (total, right) = marked(type: type)
            if total > 0 { out.append(("eval_first_token_accuracy_\(name)", Double(right) / Double(total))) }
        }
        for type in 1...2 {
            let name = FirstTokenMark.typeNames[type]
            for (a, attribute) in BiographyAttribute.allCases.enumerated() {
                let slot = type * Self.attributeSlots + a
                if markTotal[slot] > 0 {
                    out.append(("eval_first_token_accuracy_\(name)_\(attribute.rawValue)", Double(markCorrect[slot]) / Double(markTotal[slot])))
                }
            }
        }
        return out
    }
}
