/// Every limit and setting in one place, each with its default (the CLI shows these in `--help`). Typed values,
/// parsed once by the daemon: a bad flag fails at start-up, never inside the loop.
public struct ServerConfiguration: Sendable {
    public var host = "::"
    public var port = 8080
    public var wwwRoot = "www"
    public var echo = false

    // HTTP
    public var maxHeadBytes = 16 * 1024
    public var maxTargetBytes = 8 * 1024
    public var maxHeaderCount = 100
    public var handshakeTimeout: Duration = .seconds(10)     // to finish a request head
    public var keepAliveTimeout: Duration = .seconds(30)     // an idle keep-alive HTTP connection is kept

    // WebSocket
    public var maxMessageBytes = 16 * 1024       // /ws, after reassembly
    public var echoMaxMessageBytes = 16 * 1024 * 1024   // at most 1 GiB
    public var outgoingCap = 1024 * 1024         // per connection, bytes queued but not yet written (at most 1 GiB)
    public var pingInterval: Duration = .seconds(30)         // closed 1008 after two unanswered intervals
    public var closeTimeout: Duration = .seconds(5)          // to wait for the peer's close frame / FIN
    public var pairedPingInterval: Duration = .seconds(5)    // a paired version 2 client: away after two intervals

    // Chat
    public var maxTextScalars = 2000
    public var ratePerSecond = 10.0
    public var rateBurst = 20.0
    public var typingRatePerSecond = 5.0
    public var typingBurst = 20.0
    public var nextRatePerSecond = 0.5          // `next` and `stop` together
    public var nextBurst = 10.0
    public var onlineInterval: Duration = .seconds(10)       // between `online` updates (only when changed)
    public var interestTimeout: Duration = .seconds(5)       // before an interest wait falls back to random
    public var resumeGraceSeconds = 30          // version 2: a dropped client's chat is held this long; 0: no resume
    public var maxImageBytes = 1024 * 1024      // version 2: the largest image offer (B.3), at most 64 MiB; 0: none
    public var imageOfferRatePerSecond = 0.2    // image offers per connection: one every 5 s,
    public var imageOfferBurst = 3.0            // burst 3
    public var callRequestRatePerSecond = 0.2   // version 2 call requests per connection: one every 5 s,
    public var callRequestBurst = 3.0           // burst 3
    public var signalRatePerSecond = 20.0       // call signals (SDP, ICE candidates) per connection
    public var signalBurst = 100.0
    public var ice = ICESettings()              // STUN and TURN servers for calls (B.4)

    // Identity and moderation (B.5)
    public var jwt = JWTKeys()                  // operator tokens; empty: tokens are ignored
    public var requireAuth = false              // a /ws upgrade without a valid token gets 401
    public var loginURL: String? = nil          // where the page sends someone who must log in
    public var identitySecrets: [Secret] = []   // identity cookie keys, the first signs; none: a random one per start
    public var identityLifetimeSeconds: UInt64 = 30 * 86_400   // the cookie's Max-Age
    public var termsURL = "/terms.html"         // the rules the page's first-visit step links to
    public var minimumAge = 13
    public var moderation = ModerationSettings()
    public var reportGraceSeconds = 60          // a chat's last partner may be reported this long after it ended

    // Abuse limits
    public var maxConnections = 10_000
    public var maxConnectionsPerAddress = 16
    public var newConnectionsPerMinutePerAddress = 120
    public var addressRatePerSecond = 0.0       // chat messages per second shared by one address's sockets; 0: none
    public var addressRateBurst = 60.0
    public var maxHTTPConnectionsPerAddress = 64   // open connections before the upgrade, per address (not proxies)
    public var rateLimitsEnabled = true
    public var allowedOrigins: [String] = []     // empty: any Origin
    public var trustedProxies: [ClientAddress] = []   // peers whose X-Forwarded-For is believed

    // Cluster (README, "Running a cluster")
    public var redis: RedisEndpoint? = nil      // the shared queue and relay; nil: a single process, no Redis code runs
    public var redisUser: String? = nil         // an ACL user (Redis 6 and later)
    public var redisPassword: Secret? = nil    // read from a file (--redis-password-file), never from the command line
    public var nodeID: String? = nil            // this node's name in Redis; nil: random at each start
    public var reusePort = false                // SO_REUSEPORT: several processes share the port
    public var clusterHeartbeat: Duration = .seconds(1)
    public var clusterNodeTimeout: Duration = .seconds(4)   // a node silent this long is reaped by the others

    // Operations
    public var drainTimeout: Duration = .seconds(10)
    public var logLevel = LogLevel.info
    public var logAddresses = false

    public init() {}

    /// Output kept for one connection stays far below 4 GiB (the socket's 32-bit write counters): every cap that
    /// bounds it is at most this.
    public static let maxBufferLimit = 1 << 30
    /// The largest `--max-image-bytes`: an image is held whole in memory, twice (the sender's receive buffer and the
    /// receiver's output), so it stays modest.
    public static let maxImageLimit = 64 << 20

    var chatSettings: ChatSettings {
        var s = ChatSettings()
        s.maxTextScalars = maxTextScalars
        s.outgoingCap = outgoingCap
        s.ratePerSecond = ratePerSecond
        s.rateBurst = rateBurst
        s.typingRatePerSecond = typingRatePerSecond
        s.typingBurst = typingBurst
        s.nextRatePerSecond = nextRatePerSecond
        s.nextBurst = nextBurst
        s.maxConnections = maxConnections
        s.maxConnectionsPerAddress = maxConnectionsPerAddress
        s.newConnectionsPerMinutePerAddress = newConnectionsPerMinutePerAddress
        s.addressRatePerSecond = addressRatePerSecond
        s.addressRateBurst = addressRateBurst
        s.rateLimitsEnabled = rateLimitsEnabled
        s.resumeGraceSeconds = resumeGraceSeconds
        s.maxImageBytes = maxImageBytes
        s.imageOfferRatePerSecond = imageOfferRatePerSecond
        s.imageOfferBurst = imageOfferBurst
        s.callRequestRatePerSecond = callRequestRatePerSecond
        s.callRequestBurst = callRequestBurst
        s.signalRatePerSecond = signalRatePerSecond
        s.signalBurst = signalBurst
        s.ice = ice
        s.moderation = moderation
        s.reportGraceMillis = UInt64(reportGraceSeconds) * 1000
        return s
    }
}

extension Duration {
    /// Whole milliseconds for the loop's timers and deadlines: rounded, and at least 1 (a zero timeout would fire
    /// at once, every time).
    var loopMillis: UInt64 {
        let (seconds, attoseconds) = components
        let ms = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return UInt64(max(1, ms.rounded()))
    }

    /// Nanoseconds, never negative (the interest timeout may be 0).
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        let ns = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
        return UInt64(max(0, ns))
    }

    /// The value as a count of seconds, as the command line shows and takes it.
    public var flagSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// From a count of seconds as the command line gives it.
    public static func seconds(fromFlag value: Double) -> Duration {
        .nanoseconds(Int64((value * 1e9).rounded()))
    }
}
