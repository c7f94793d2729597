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

        // The numerical core: no MPI, no CLI parsing.
        .target(name: "Core", dependencies: ["COpenBLAS", "CNetCDF"],
                path: "Sources/Core", swiftSettings: optimise),
        .target(name: "MPIShim", dependencies: ["CMPIShim"], path: "Sources/MPIShim", swiftSettings: optimise),
        .target(name: "DistTrain", dependencies: ["Core", "MPIShim"], path: "Sources/DistTrain", swiftSettings: optimise),
        .target(name: "DistCircuits", dependencies: ["Core", "MPIShim"], path: "Sources/DistCircuits", swiftSettings: optimise),
        .executableTarget(name: "dkc", dependencies: [
            "Core", "MPIShim", "DistTrain", "DistCircuits",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/dkc", swiftSettings: optimise),

        .testTarget(name: "CoreTests", dependencies: ["Core"], path: "Tests/CoreTests"),
        // Launched under mpirun by DistTests.
        .executableTarget(name: "MPISelfTest", dependencies: ["MPIShim"], path: "Tests/MPISelfTest"),
        // DistTrain and DistCircuits on N in-process ranks (LocalCommunicator): no mpirun, seconds.
        .testTarget(name: "DistUnitTests", dependencies: ["Core", "MPIShim", "DistTrain", "DistCircuits"], path: "Tests/DistUnitTests"),
        .testTarget(name: "DistTests", dependencies: ["Core", "MPIShim", "DistCircuits", "dkc", "MPISelfTest"], path: "Tests/DistTests"),
    ]
)
