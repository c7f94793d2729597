import Numerics

/// The tensor list of a flat parameter buffer: `ParameterLayout` (GPT-2) or `FamilyLayout` (Llama, Phi).
public protocol TensorLayout: Equatable {
    /// Floats in the buffer.
    var count: Int { get }
    /// Every tensor, in buffer order.
    var tensors: [ParameterLayout.Tensor] { get }
    /// The tensor with Hugging Face name `name`, nil when there is none.
    func tensor(named name: String) -> ParameterLayout.Tensor?
}

/// One contiguous buffer of `layout.count` floats, tensor after tensor: a model's parameters, its gradients
/// or an AdamW moment (`ParameterArena`, `FamilyArena`). The buffer is allocated once, zero-filled, and never
/// moves, so pointers into it stay valid for the store's lifetime.
public protocol ParameterStore: AnyObject {
    associatedtype Layout: TensorLayout
    var layout: Layout { get }
    var storage: FloatBuffer { get }
    /// A zero-filled store for `layout`.
    init(layout: Layout)
}

extension ParameterStore {
    public var base: UnsafeMutablePointer<Float> { storage.base }
    public var count: Int { layout.count }
    public var buffer: UnsafeMutableBufferPointer<Float> { storage.buffer }
    /// Start of tensor `t` inside this store.
    public func pointer(_ t: ParameterLayout.Tensor) -> UnsafeMutablePointer<Float> { storage.base + t.offset }
    /// The elements of tensor `t`.
    public func buffer(_ t: ParameterLayout.Tensor) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: storage.base + t.offset, count: t.count)
    }
    /// A copy of tensor `name`; nil when the layout has no such tensor.
    public func values(_ name: String) -> [Float]? { layout.tensor(named: name).map { Array(buffer($0)) } }
    public func zero() { storage.zero() }
}

/// What `GPT2` and `FamilyModel` hold alike: the parameters, their gradients (laid out the same, allocated on
/// first use, accumulated by `backward()`), the workers of the model's own kernels, and what a training forward
/// leaves for its backward (`LossPass`).
public class ModelParameters<Store: ParameterStore>: @unchecked Sendable {
    public let params: Store
    /// Gradients, laid out like `params`; allocated on first use, accumulated by `backward()`.
    public private(set) lazy var grads = Store(layout: params.layout)
    /// Workers for the non-GEMM kernels; OpenBLAS keeps its own setting (`BLAS.setThreads`).
    public var threads: Int
    var pass = LossPass()
    /// The dropout of the last `forwardLoss` (nil: none), for `backward` to regenerate its masks.
    var dropout: DropoutPlan? { pass.dropout }

    init(params: Store, threads: Int) {
        self.params = params
        self.threads = max(1, threads)
    }

    /// Number of labels the last `forwardLoss` averaged over.
    public var lastLabelCount: Int { pass.labelCount }
    /// Sets every gradient to 0.
    public func zeroGradients() { grads.zero() }

    /// Checks a batch before any buffer is touched: B, T ≥ 1; T within the model's `positions` (`positionsKey`:
    /// config.json's name for them); B·T ids, each in 0 ..< `vocabSize`; B lengths, each in 1 ... T.
    func checkBatch(_ ids: [Int], B: Int, T: Int, lengths: [Int]?, positions: Int, positionsKey: String, vocabSize V: Int) throws {
        guard B >= 1, T >= 1 else { throw ModelError("batch size \(B) and sequence length \(T) must be positive") }
        guard T <= positions else { throw ModelError("sequence length \(T) exceeds the model's \(positionsKey) \(positions)") }
        guard ids.count == B * T else { throw ModelError("\(ids.count) token ids for batch \(B) × \(T) = \(B * T)") }
        if let lengths {
            guard lengths.count == B else { throw ModelError("lengths: \(lengths.count) values for batch size \(B)") }
            for (b, L) in lengths.enumerated() where L < 1 || L > T { throw ModelError("lengths[\(b)] = \(L) is outside 1...\(T)") }
        }
        for (n, id) in ids.enumerated() where id < 0 || id >= V {
            throw ModelError("token id \(id) at row \(n / T), position \(n % T) is outside the vocabulary 0..<\(V)")
        }
    }
}

extension ParameterLayout: TensorLayout {}
extension FamilyLayout: TensorLayout {}
