import Foundation
import Support

/// Everything that can go wrong in circuit discovery and evaluation: a graph or score file that does not
/// fit the model, an unknown node or edge name, prompts that cannot be batched, a bad option.
/// The text names the file or option, what is wrong and what to do.
public typealias AttributionError = ItemError
