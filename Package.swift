// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "uvchat",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "uvchatd", targets: ["uvchatd"]),
        .executable(name: "uvchat-bench", targets: ["uvchat-bench"]),
        .library(name: "UVChat", targets: ["UVChat"]),
    ],
    targets: [
        .systemLibrary(
            name: "CLibUV",
            path: "Sources/CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // The cluster's Redis client (--redis): hiredis's asynchronous API on our libuv loop. Imported only by
        // Sources/UVChat/Loop, like libuv.
        .systemLibrary(
            name: "CHiredis",
            path: "Sources/CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "UVChat",
            dependencies: ["CLibUV", "CHiredis"],
            path: "Sources/UVChat",
            // Release keeps -O's overflow, bounds and precondition traps (a latent bug stops the process instead of
            // corrupting memory). Only the dynamic exclusivity checks are left to debug builds, which every test
            // runs: on one thread they find logic errors, not races, and in release they cost 40% of a relayed
            // message (README, Performance).
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "uvchatd",
            dependencies: ["UVChat"],
            path: "Sources/uvchatd",
            // Release links the Swift runtime and libraries statically: the loader maps one file instead of eleven
            // shared libraries and their relocations, which takes the process from 14.6 to 11.3 MB before its first
            // connection (README, Performance).
            linkerSettings: [
                .unsafeFlags(["-static-stdlib"], .when(platforms: [.linux], configuration: .release)),
            ]
        ),
        .executableTarget(
            name: "uvchat-bench",
            dependencies: ["CLibUV"],
            path: "Sources/uvchat-bench"
        ),
        .testTarget(
            name: "UVChatTests",
            dependencies: ["UVChat"],
            path: "Tests/UVChatTests",
            // Image fixtures are read through #filePath (ImageCleanerTests), not bundled as resources.
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
