import Core
import DistTrain
import DistCircuits

extension ConfigSchema {
    /// The schemas of every configuration kind dkc knows: each is defined in the target that reads it (data
    /// generation, training, the sweep), and this executable is the one place that sees all three.
    static var all: [ConfigSchema] { [.data, .train, .sweep] }
}
