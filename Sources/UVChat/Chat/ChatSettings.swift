/// The limits the chat service enforces (PROTOCOL.md, "Guarantees"), taken from the server's configuration.
public struct ChatSettings: Sendable {
    public var maxTextScalars = 2000
    /// Bytes queued for one receiver before it is closed as a slow consumer.
    public var outgoingCap = 1024 * 1024
    public var ratePerSecond = 10.0
    public var rateBurst = 20.0
    /// `typing` events (the page sends one when typing starts and one when it stops).
    public var typingRatePerSecond = 5.0
    public var typingBurst = 20.0
    /// `next` and `stop` together: a person clicks New now and then; a bot that sends everyone away meets this.
    public var nextRatePerSecond = 0.5
    public var nextBurst = 10.0
    public var maxConnections = 10_000
    public var maxConnectionsPerAddress = 16
    public var newConnectionsPerMinutePerAddress = 120
    /// A message bucket shared by all of one address's connections: 0 (the default) means none, so that people
    /// behind one NAT are never refused for each other's messages (PROTOCOL.md, client addresses).
    public var addressRatePerSecond = 0.0
    public var addressRateBurst = 60.0
    /// Version 2: how long a dropped client's chat is held for its resume (B.2); 0: no resume, a drop is a leave.
    public var resumeGraceSeconds = 30
    /// Version 2 images (B.3): the largest image offer, and the offer bucket (one every 5 s, burst 3).
    public var maxImageBytes = 1024 * 1024
    public var imageOfferRatePerSecond = 0.2
    public var imageOfferBurst = 3.0
    /// Version 2 calls (B.4): `request`s (one every 5 s, burst 3) and `signal`s (an offer or answer and its ICE
    /// candidates come in a burst of a few dozen at the start of a call).
    public var callRequestRatePerSecond = 0.2
    public var callRequestBurst = 3.0
    public var signalRatePerSecond = 20.0
    public var signalBurst = 100.0
    /// The STUN and TURN servers a call's `start` names.
    public var ice = ICESettings()
    /// Reports, blocks, bans and the abuse score (B.5).
    public var moderation = ModerationSettings()
    /// How long after a chat ended its partner may still be reported or blocked (B.5: 60 s).
    public var reportGraceMillis: UInt64 = 60_000
    /// Off for benchmarks: no rate or connection-count limit (size limits stay).
    public var rateLimitsEnabled = true

    public init() {}
}
