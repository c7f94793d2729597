import Foundation
import Support

/// What can go wrong running circuit discovery, evaluation, acquisition or a sweep on real files:
/// a missing or malformed data file, an unknown task or bucket, a filter that leaves no sample, a
/// checkpoint folder that does not fit the grid, a results folder of another configuration.
/// The text names the file (and line), the option or config key, what is wrong and what to do.
public typealias CircuitsError = ItemError

extension ItemError {
    /// A file that should exist and does not.
    package static func missing(_ path: String, what: String, fix: String) -> ItemError {
        ItemError(item: path, problem: "\(what) not found", fix: fix)
    }
}
