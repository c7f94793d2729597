import Support

/// Everything that can be wrong with a checkpoint on disk: a safetensors file, a `config.json`, or a
/// Hugging Face model folder. The text names the file, the tensor or field, what is wrong and what to do.
public typealias CheckpointError = FileError
