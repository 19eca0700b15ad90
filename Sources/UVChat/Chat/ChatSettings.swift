/// The limits the chat service enforces (PROTOCOL.md, "Guarantees"), taken from the server's configuration.
public struct ChatSettings: Sendable {
    public var maxTextScalars = 2000
    /// Bytes queued for one receiver before it is closed as a slow consumer.
    public var outgoingCap = 1024 * 1024
    public var ratePerSecond = 10.0
    public var rateBurst = 20.0
    public var maxConnections = 10_000
    public var maxConnectionsPerAddress = 16
    public var newConnectionsPerMinutePerAddress = 120
    public var addressRatePerSecond = 30.0
    public var addressRateBurst = 60.0
    /// Off for benchmarks: no rate or connection-count limit (size limits stay).
    public var rateLimitsEnabled = true

    public init() {}
}
