/// Every limit and setting in one place, each with its default (the CLI shows these in `--help`).
public struct ServerConfiguration: Sendable {
    public var host = "::"
    public var port = 8080
    public var wwwRoot = "www"
    public var echo = false

    // HTTP
    public var maxHeadBytes = 16 * 1024
    public var maxTargetBytes = 8 * 1024
    public var maxHeaderCount = 100
    public var handshakeTimeout = 10.0           // seconds to finish a request head
    public var keepAliveTimeout = 30.0           // seconds an idle keep-alive HTTP connection is kept

    // WebSocket
    public var maxMessageBytes = 16 * 1024       // /ws, after reassembly
    public var echoMaxMessageBytes = 16 * 1024 * 1024
    public var outgoingCap = 1024 * 1024         // per connection, bytes queued but not yet written
    public var pingInterval = 30.0               // seconds; closed 1008 after two unanswered intervals
    public var closeTimeout = 5.0                // seconds to wait for the peer's close frame / FIN

    // Chat
    public var maxTextScalars = 2000
    public var ratePerSecond = 10.0
    public var rateBurst = 20.0
    public var onlineInterval = 10.0             // seconds between `online` updates (only when changed)
    public var interestTimeout = 5.0             // seconds before an interest wait falls back to random

    // Abuse limits
    public var maxConnections = 10_000
    public var maxConnectionsPerAddress = 16
    public var newConnectionsPerMinutePerAddress = 120
    public var addressRatePerSecond = 30.0      // chat messages per second shared by all of one address's sockets
    public var addressRateBurst = 60.0
    public var rateLimitsEnabled = true
    public var allowedOrigins: [String] = []     // empty: any Origin
    public var trustedProxies: [String] = []     // addresses whose X-Forwarded-For is believed

    // Operations
    public var drainTimeout = 10.0
    public var logLevel = "info"
    public var logAddresses = false

    public init() {}
}
