// The umbrella of the library targets: `import Core` makes the public API of all of them visible, so a command
// or a test need not know which target a type lives in. The targets and their order are in Package.swift and
// docs/architecture.md.
@_exported import Support
@_exported import Numerics
@_exported import Models
@_exported import StudyData
@_exported import Circuits
@_exported import Results
@_exported import StudyAnalysis
