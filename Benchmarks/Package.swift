// swift-tools-version:6.1
import PackageDescription

// Microbenchmarks for uvchat's per-message code paths, with ordo-one/benchmark. A package of its own so that the
// root package's `swift build` neither resolves nor builds anything of it. Run with ./run.sh (see README.md).
//
// The `MallocInterposer` trait is what counts mallocs with Swift 6.3 (no jemalloc); naming the trait turns the
// package's default traits off, RuntimeInterposer included, so its swift-runtime-interposer dependency is never
// fetched (it only exists for ARC counters, which these benchmarks do not use).
let benchmarkTarget: (String) -> Target = { name in
    .executableTarget(
        name: name,
        dependencies: [
            "UVChatBenchSupport",
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "UVChat", package: "uvchat"),
        ],
        path: "Benchmarks/\(name)",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}

let package = Package(
    name: "uvchat-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "uvchat", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(
            name: "UVChatBenchSupport",
            dependencies: [.product(name: "Benchmark", package: "benchmark")],
            path: "Sources/UVChatBenchSupport"
        ),
        benchmarkTarget("FrameCodec"),
        benchmarkTarget("UTF8Validation"),
        benchmarkTarget("CommandDecoding"),
        benchmarkTarget("Matchmaking"),
        benchmarkTarget("Relay"),
    ],
    swiftLanguageModes: [.v6]
)
