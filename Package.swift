// swift-tools-version:5.10
// dkc — knowledge-circuit pipeline (GPT-2 training, EAP-IG attribution, circuit sweeps) on CPUs over MPI.
import PackageDescription

// Release builds: -O with whole-module optimisation. Swift's overflow, bounds and precondition checks stay on:
// -Ounchecked bought no measurable speed (docs/input-validation.md) and removed them from the readers of
// untrusted files.
let optimise: [SwiftSetting] = [.unsafeFlags(["-wmo"], .when(configuration: .release))]

let package = Package(
    name: "dkc",
    products: [
        .executable(name: "dkc", targets: ["dkc"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System C libraries, found with pkg-config (Debian: libopenmpi-dev, libopenblas-dev, libnetcdf-dev).
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CNetCDF", path: "Sources/CNetCDF", pkgConfig: "netcdf",
                       providers: [.apt(["libnetcdf-dev"])]),
        // The handles mpi.h defines as macros (communicator, datatypes, ops, MPI_IN_PLACE).
        .target(name: "CMPIShim", dependencies: ["CMPI"], path: "Sources/CMPIShim"),
        // Inner loops compiled once per x86-64 level and chosen at load time (docs/performance.md, "Sparse rebuilt inputs
        // and kernels in C").
        .target(name: "CKernels", path: "Sources/CKernels"),

        // The library, one target per concept, lowest first; a target imports only those above it in this list,
        // so a wrong-way import does not compile (docs/architecture.md). None of them knows MPI or the CLI.
        // Files, JSON, SHA-256, the TOML configuration language, errors and paths.
        .target(name: "Support", path: "Sources/Support", swiftSettings: optimise),
        // Float buffers, OpenBLAS, the forward/backward kernels, deterministic random numbers, timing and memory.
        .target(name: "Numerics", dependencies: ["COpenBLAS", "CKernels", "Support"], path: "Sources/Numerics", swiftSettings: optimise),
        // GPT-2 and the Llama/Phi families, their checkpoints, tokenizers and optimizer.
        .target(name: "Models", dependencies: ["Numerics", "Support"], path: "Sources/Models", swiftSettings: optimise),
        // The synthetic biography world: entities, corpora, evaluation sets, circuit data, forget data.
        .target(name: "StudyData", dependencies: ["Models", "Numerics", "Support"], path: "Sources/StudyData",
                swiftSettings: optimise),
        // Knowledge circuits: the attribution graph, EAP/EAP-IG, selection, evaluation, components, acquisition.
        .target(name: "Circuits", dependencies: ["StudyData", "Models", "Numerics", "Support"], path: "Sources/Circuits",
                swiftSettings: optimise),
        // NetCDF and the result tables (scores, circuits, acquisition, components) with their names.
        .target(name: "Results", dependencies: ["CNetCDF", "Circuits", "StudyData", "Models", "Numerics", "Support"],
                path: "Sources/Results", swiftSettings: optimise),
        // The paper's statistics and figures, computed from result files alone.
        .target(name: "StudyAnalysis", dependencies: ["Results", "StudyData", "Numerics", "Support"],
                path: "Sources/StudyAnalysis", swiftSettings: optimise),
        // The umbrella: `import Core` brings all of the above.
        .target(name: "Core", dependencies: ["Support", "Numerics", "Models", "StudyData", "Circuits", "Results",
                                             "StudyAnalysis"], path: "Sources/Core", swiftSettings: optimise),

        .target(name: "MPIShim", dependencies: ["CMPIShim"], path: "Sources/MPIShim", swiftSettings: optimise),
        // Training: its configuration, corpus, checkpoints and the data-parallel loop.
        .target(name: "DistTrain", dependencies: ["Core", "MPIShim"], path: "Sources/DistTrain", swiftSettings: optimise),
        // The checkpoint × task × type × frequency grid: its configuration, one cell's run, the sweep over ranks.
        .target(name: "DistCircuits", dependencies: ["Core", "MPIShim"], path: "Sources/DistCircuits", swiftSettings: optimise),
        // The benchmark harness (`dkc bench`); no library target depends on it.
        .target(name: "Benchmarks", dependencies: ["Core", "MPIShim", "DistTrain", "DistCircuits"], path: "Sources/Benchmarks", swiftSettings: optimise),
        .executableTarget(name: "dkc", dependencies: [
            "Core", "MPIShim", "DistTrain", "DistCircuits", "Benchmarks",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/dkc", swiftSettings: optimise),

        .testTarget(name: "CoreTests", dependencies: ["Core", "DistTrain", "DistCircuits", "Benchmarks"], path: "Tests/CoreTests"),
        // Launched under mpirun by DistTests.
        .executableTarget(name: "MPISelfTest", dependencies: ["MPIShim"], path: "Tests/MPISelfTest"),
        // DistTrain and DistCircuits on N in-process ranks (LocalCommunicator): no mpirun, seconds.
        .testTarget(name: "DistUnitTests", dependencies: ["Core", "MPIShim", "DistTrain", "DistCircuits", "Benchmarks"], path: "Tests/DistUnitTests"),
        .testTarget(name: "DistTests", dependencies: ["Core", "MPIShim", "DistTrain", "DistCircuits", "Benchmarks", "dkc", "MPISelfTest"], path: "Tests/DistTests"),
    ]
)
