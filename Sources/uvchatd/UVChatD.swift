import UVChat
#if canImport(Glibc)
import Glibc
#endif

/// Flags -> configuration -> run. Every default shown by `--help` is the server's own default.
struct UVChatD {
    static let abstract = "uvchat: a random text chat server (HTTP/1.1, RFC 6455 WebSocket, one libuv loop)."
    static let discussion = """
        Serves the chat page from --www, the chat protocol on /ws, /healthz and /metrics.
        SIGTERM or SIGINT drains (close 1001, exit 0); SIGHUP reloads the static files.
        """
    static let defaults = ServerConfiguration()

    var host = defaults.host
    var port = defaults.port
    var www = defaults.wwwRoot
    var echo = false

    var maxHeadBytes = defaults.maxHeadBytes
    var maxTargetBytes = defaults.maxTargetBytes
    var maxHeaderCount = defaults.maxHeaderCount
    var handshakeTimeout = defaults.handshakeTimeout.flagSeconds
    var keepAliveTimeout = defaults.keepAliveTimeout.flagSeconds

    var maxMessageBytes = defaults.maxMessageBytes
    var echoMaxMessageBytes = defaults.echoMaxMessageBytes
    var outgoingCap = defaults.outgoingCap
    var pingInterval = defaults.pingInterval.flagSeconds
    var closeTimeout = defaults.closeTimeout.flagSeconds
    var pairedPingInterval = defaults.pairedPingInterval.flagSeconds

    var maxTextScalars = defaults.maxTextScalars
    var ratePerSecond = defaults.ratePerSecond
    var rateBurst = defaults.rateBurst
    var onlineInterval = defaults.onlineInterval.flagSeconds
    var interestTimeout = defaults.interestTimeout.flagSeconds
    var resumeGrace = defaults.resumeGraceSeconds
    var maxImageBytes = defaults.maxImageBytes
    var imageOffersPerSecond = defaults.imageOfferRatePerSecond
    var imageOfferBurst = defaults.imageOfferBurst

    var stunUrl: [String] = []
    var turnUrl: [String] = []
    var turnSecretFile: String?
    var turnCredentialSeconds = defaults.ice.credentialSeconds
    var iceTransportPolicy = "all"
    var callRequestsPerSecond = defaults.callRequestRatePerSecond
    var callRequestBurst = defaults.callRequestBurst
    var signalsPerSecond = defaults.signalRatePerSecond
    var signalBurst = defaults.signalBurst

    var jwtSecretFile: [String] = []
    var jwtPublicKeyFile: [String] = []
    var jwtAudience: String?
    var jwtLeewaySeconds = Int(defaults.jwt.leewaySeconds)
    var requireAuth = false
    var loginUrl: String?
    var identitySecretFile: [String] = []
    var identityDays = Int(defaults.identityLifetimeSeconds / 86_400)
    var termsUrl = defaults.termsURL
    var minAge = defaults.minimumAge
    var reportThreshold = defaults.moderation.reportThreshold
    var reportWindowSeconds = Double(defaults.moderation.reportWindowMillis) / 1000
    var banSeconds = Double(defaults.moderation.banMillis) / 1000
    var reportGraceSeconds = defaults.reportGraceSeconds
    var blockSeconds = Double(defaults.moderation.blockMillis) / 1000
    var abuseHalfLifeSeconds = Double(defaults.moderation.abuseHalfLifeMillis) / 1000
    var quarantineScore = defaults.moderation.quarantineScore
    var quarantineSeconds = Double(defaults.moderation.quarantineMillis) / 1000
    var moderationIdentities = defaults.moderation.maxIdentities
    var moderationBlocks = defaults.moderation.maxBlocks

    var redis: String?
    var redisUser: String?
    var redisPasswordFile: String?
    var nodeId: String?
    var reusePort = false
    var clusterHeartbeatSeconds = defaults.clusterHeartbeat.flagSeconds
    var clusterNodeTimeoutSeconds = defaults.clusterNodeTimeout.flagSeconds

    var maxConnections = defaults.maxConnections
    var maxConnectionsPerAddress = defaults.maxConnectionsPerAddress
    var newConnectionsPerMinute = defaults.newConnectionsPerMinutePerAddress
    var typingRatePerSecond = defaults.typingRatePerSecond
    var typingBurst = defaults.typingBurst
    var nextRatePerSecond = defaults.nextRatePerSecond
    var nextBurst = defaults.nextBurst
    var addressRatePerSecond = defaults.addressRatePerSecond
    var addressRateBurst = defaults.addressRateBurst
    var maxHttpConnectionsPerAddress = defaults.maxHTTPConnectionsPerAddress
    var noRateLimits = false
    var allowOrigin: [String] = []

    var trustedProxy: [String] = []
    var logAddresses = false

    var drainTimeout = defaults.drainTimeout.flagSeconds
    var logLevel = defaults.logLevel.name

    /// Every flag, in the order `--help` lists them: declared by the first walk, set by the second (Flags).
    mutating func bind(_ f: inout Flags) throws(FlagError) {

        try f.option(&host, "host", "Address to listen on (IPv4 or IPv6; '::' is both).")
        try f.option(&port, "port", "TCP port (0 picks a free one).")
        try f.option(&www, "www", "Folder with the page's files.")
        try f.flag(&echo, "echo", "Serve /echo for conformance suites.")

        try f.option(&maxHeadBytes, "max-head-bytes", "Largest request head in bytes (431 beyond).")
        try f.option(&maxTargetBytes, "max-target-bytes", "Longest request target in bytes (414 beyond).")
        try f.option(&maxHeaderCount, "max-header-count", "Most request headers (431 beyond).")
        try f.option(&handshakeTimeout, "handshake-timeout", "Seconds to finish a request head (408 after).")
        try f.option(&keepAliveTimeout, "keep-alive-timeout", "Seconds an idle keep-alive HTTP connection stays open.")

        try f.option(&maxMessageBytes, "max-message-bytes", "Largest /ws message in bytes after reassembly (close 1009 beyond).")
        try f.option(&echoMaxMessageBytes, "echo-max-message-bytes", "Largest /echo message in bytes.")
        try f.option(&outgoingCap, "outgoing-cap", "Bytes queued for one slow receiver before it is closed with 1008.")
        try f.option(&pingInterval, "ping-interval", "Seconds of silence before a ping; closed 1008 after two intervals.")
        try f.option(&closeTimeout, "close-timeout", "Seconds to wait for the peer's close frame.")
        try f.option(&pairedPingInterval, "paired-ping-interval", "Seconds of silence before a paired version 2 client is pinged; away after two intervals.")

        try f.option(&maxTextScalars, "max-text-scalars", "Longest chat message in Unicode scalars.")
        try f.option(&ratePerSecond, "rate-per-second", "Messages per second per connection (token bucket rate).")
        try f.option(&rateBurst, "rate-burst", "Token bucket burst.")
        try f.option(&onlineInterval, "online-interval", "Seconds between online-count updates (sent only when changed).")
        try f.option(&interestTimeout, "interest-timeout", "Seconds to wait for a common interest before a random match.")
        try f.option(&resumeGrace, "resume-grace", "Version 2: seconds a dropped client's chat is held for its resume (0: no resume).")
        try f.option(&maxImageBytes, "max-image-bytes", "Version 2: largest image offer in bytes (too_large beyond; at most 64 MiB; 0: no images).")
        try f.option(&imageOffersPerSecond, "image-offers-per-second", "Version 2: image offers per second per connection (token bucket rate).")
        try f.option(&imageOfferBurst, "image-offer-burst", "Burst of the image offer bucket.")

        try f.option(&stunUrl, "stun-url", "Version 2 calls: a STUN server URL for the browsers (stun: or stuns:; repeatable).")
        try f.option(&turnUrl, "turn-url", "Version 2 calls: a TURN server URL (turn: or turns:; repeatable; needs --turn-secret-file).")
        try f.option(&turnSecretFile, "turn-secret-file", "File holding the TURN server's shared secret (coturn static-auth-secret; e.g. a systemd credential).")
        try f.option(&turnCredentialSeconds, "turn-credential-seconds", "Seconds a TURN credential handed to a caller stays valid (60 to 86400).")
        try f.option(&iceTransportPolicy, "ice-transport-policy", "ICE transport policy for calls: all, or relay (media only through TURN; peers never see each other's addresses).")
        try f.option(&callRequestsPerSecond, "call-requests-per-second", "Version 2: call requests per second per connection (token bucket rate).")
        try f.option(&callRequestBurst, "call-request-burst", "Burst of the call request bucket.")
        try f.option(&signalsPerSecond, "signals-per-second", "Version 2: call signals (SDP and ICE candidates) per second per connection (token bucket rate).")
        try f.option(&signalBurst, "signal-burst", "Burst of the signal bucket.")

        try f.option(&jwtSecretFile, "jwt-secret-file", "Operator tokens: a file holding an HS256 secret (at least 32 bytes; repeatable, for rotation).")
        try f.option(&jwtPublicKeyFile, "jwt-public-key-file", "Operator tokens: a PEM file with an Ed25519 public key for EdDSA tokens (repeatable).")
        try f.option(&jwtAudience, "jwt-audience", "Operator tokens: the audience (aud) a token must name; none: aud is not checked.")
        try f.option(&jwtLeewaySeconds, "jwt-leeway-seconds", "Seconds of clock skew allowed on a token's exp and nbf (0 to 300).")
        try f.flag(&requireAuth, "require-auth", "Refuse /ws upgrades without a valid operator token (401); needs a JWT key.")
        try f.option(&loginUrl, "login-url", "Where the page sends a person who must log in (with --require-auth).")
        try f.option(&identitySecretFile, "identity-secret-file", "A file holding a key for the identity cookie (at least 32 bytes; repeatable: the first signs, all verify). None: a random key per start.")
        try f.option(&identityDays, "identity-days", "Days the identity cookie lasts (Max-Age; 1 to 400).")
        try f.option(&termsUrl, "terms-url", "The rules the page shows on a first visit (a URL or a path in --www).")
        try f.option(&minAge, "min-age", "The minimum age the page asks people to confirm (13 to 99).")
        try f.option(&reportThreshold, "report-threshold", "Reports from this many different people ban an identity.")
        try f.option(&reportWindowSeconds, "report-window-seconds", "Seconds within which those reports must come.")
        try f.option(&banSeconds, "ban-seconds", "Seconds a ban lasts.")
        try f.option(&reportGraceSeconds, "report-grace-seconds", "Seconds after a chat ended that its partner may still be reported or blocked.")
        try f.option(&blockSeconds, "block-seconds", "Seconds a block keeps two people apart (at least a day in production).")
        try f.option(&abuseHalfLifeSeconds, "abuse-half-life-seconds", "Seconds in which an identity's abuse score halves.")
        try f.option(&quarantineScore, "quarantine-score", "Abuse score at which an identity is quarantined (paired only with other quarantined ones; 0: never).")
        try f.option(&quarantineSeconds, "quarantine-seconds", "Seconds a quarantine lasts.")
        try f.option(&moderationIdentities, "moderation-identities", "Most identities the moderation memory holds (reports, scores, bans); the least recently used go first.")
        try f.option(&moderationBlocks, "moderation-blocks", "Most blocks the moderation memory holds; the oldest go first.")

        try f.option(&redis, "redis", "Run as one node of a cluster sharing its queue and relay through Redis: redis://HOST:PORT or unix:/path/to/redis.sock (a host name is resolved once, at start).")
        try f.option(&redisUser, "redis-user", "The Redis ACL user (with --redis-password-file).")
        try f.option(&redisPasswordFile, "redis-password-file", "A file holding the Redis password (for example from systemd's LoadCredential=).")
        try f.option(&nodeId, "node-id", "This node's name in the cluster ([A-Za-z0-9_-], at most 32). Default: random at each start.")
        try f.flag(&reusePort, "reuse-port", "Bind the listener with SO_REUSEPORT, so that several processes share one port.")
        try f.option(&clusterHeartbeatSeconds, "cluster-heartbeat-seconds", "Seconds between a cluster node's heartbeats.")
        try f.option(&clusterNodeTimeoutSeconds, "cluster-node-timeout-seconds", "Seconds of silence after which the other nodes reap a node (its clients leave the queue, its partners are told).")

        try f.option(&maxConnections, "max-connections", "Most simultaneous chat connections (503 beyond).")
        try f.option(&maxConnectionsPerAddress, "max-connections-per-address", "Most simultaneous chat connections per client address (503 beyond).")
        try f.option(&newConnectionsPerMinute, "new-connections-per-minute", "New chat connections per minute per client address (503 beyond).")
        try f.option(&typingRatePerSecond, "typing-rate-per-second", "Typing events per second per connection (token bucket rate).")
        try f.option(&typingBurst, "typing-burst", "Burst of the typing bucket.")
        try f.option(&nextRatePerSecond, "next-rate-per-second", "next and stop commands per second per connection (one bucket for both).")
        try f.option(&nextBurst, "next-burst", "Burst of the next/stop bucket.")
        try f.option(&addressRatePerSecond, "address-rate-per-second", "Chat messages per second shared by all connections of one address (0: no such bucket).")
        try f.option(&addressRateBurst, "address-rate-burst", "Burst of the per-address message bucket.")
        try f.option(&maxHttpConnectionsPerAddress, "max-http-connections-per-address", "Open HTTP connections (before the upgrade) per client address; trusted proxies are exempt.")
        try f.flag(&noRateLimits, "no-rate-limits", "Lift the rate and connection-count limits (for benchmarks); size limits stay.")
        try f.option(&allowOrigin, "allow-origin", "Allowed Origin for upgrades (repeatable; none means any).")

        try f.option(&trustedProxy, "trusted-proxy", "Proxy address whose X-Forwarded-For is believed (repeatable).")
        try f.flag(&logAddresses, "log-addresses", "Include client addresses in log lines.")

        try f.option(&drainTimeout, "drain-timeout", "Seconds to drain on SIGTERM/SIGINT before closing the rest.")
        try f.option(&logLevel, "log-level", "debug, info, warn or error.")
    }

    func validate() throws {
        guard (0...65535).contains(port) else { throw FlagError("--port must be 0 to 65535") }
        guard LogLevel(name: logLevel) != nil else { throw FlagError("--log-level must be debug, info, warn or error") }
        for text in trustedProxy where ClientAddress(text: text) == nil {
            throw FlagError("invalid --trusted-proxy address '\(text)'")
        }
        for (name, v) in [("--max-head-bytes", maxHeadBytes), ("--max-target-bytes", maxTargetBytes),
                          ("--max-header-count", maxHeaderCount), ("--max-message-bytes", maxMessageBytes),
                          ("--echo-max-message-bytes", echoMaxMessageBytes), ("--outgoing-cap", outgoingCap),
                          ("--max-text-scalars", maxTextScalars), ("--max-connections", maxConnections),
                          ("--max-connections-per-address", maxConnectionsPerAddress),
                          ("--new-connections-per-minute", newConnectionsPerMinute),
                          ("--max-http-connections-per-address", maxHttpConnectionsPerAddress)] where v <= 0 {
            throw FlagError("\(name) must be positive")
        }
        for (name, v) in [("--handshake-timeout", handshakeTimeout), ("--keep-alive-timeout", keepAliveTimeout),
                          ("--ping-interval", pingInterval), ("--close-timeout", closeTimeout),
                          ("--paired-ping-interval", pairedPingInterval),
                          ("--rate-per-second", ratePerSecond), ("--rate-burst", rateBurst),
                          ("--typing-rate-per-second", typingRatePerSecond), ("--typing-burst", typingBurst),
                          ("--next-rate-per-second", nextRatePerSecond), ("--next-burst", nextBurst),
                          ("--address-rate-burst", addressRateBurst),
                          ("--image-offers-per-second", imageOffersPerSecond), ("--image-offer-burst", imageOfferBurst),
                          ("--call-requests-per-second", callRequestsPerSecond), ("--call-request-burst", callRequestBurst),
                          ("--signals-per-second", signalsPerSecond), ("--signal-burst", signalBurst),
                          ("--online-interval", onlineInterval), ("--drain-timeout", drainTimeout)] where !(v > 0) {
            throw FlagError("\(name) must be positive")
        }
        guard (0...ServerConfiguration.maxImageLimit).contains(maxImageBytes) else {
            throw FlagError("--max-image-bytes must be 0 to \(ServerConfiguration.maxImageLimit)")
        }
        guard ["all", "relay"].contains(iceTransportPolicy) else {
            throw FlagError("--ice-transport-policy must be all or relay")
        }
        // The secret itself is read in run(); here a stand-in says whether there will be one.
        if let problem = iceSettings(secret: Secret(turnSecretFile == nil ? [] : [0])).problem {
            throw FlagError(problem)
        }
        if requireAuth && jwtSecretFile.isEmpty && jwtPublicKeyFile.isEmpty {
            throw FlagError("--require-auth needs --jwt-secret-file or --jwt-public-key-file")
        }
        guard (0...300).contains(jwtLeewaySeconds) else { throw FlagError("--jwt-leeway-seconds must be 0 to 300") }
        guard (1...400).contains(identityDays) else { throw FlagError("--identity-days must be 1 to 400") }
        guard (13...99).contains(minAge) else { throw FlagError("--min-age must be 13 to 99") }
        guard (1...1000).contains(reportThreshold) else { throw FlagError("--report-threshold must be 1 to 1000") }
        guard (0...3600).contains(reportGraceSeconds) else { throw FlagError("--report-grace-seconds must be 0 to 3600") }
        for (name, v) in [("--report-window-seconds", reportWindowSeconds), ("--ban-seconds", banSeconds),
                          ("--block-seconds", blockSeconds), ("--abuse-half-life-seconds", abuseHalfLifeSeconds),
                          ("--quarantine-seconds", quarantineSeconds)] where !(v > 0 && v <= 366 * 86_400) {
            throw FlagError("\(name) must be above 0 and at most a year")
        }
        guard quarantineScore >= 0 else { throw FlagError("--quarantine-score must not be negative") }
        guard moderationIdentities > 0, moderationBlocks > 0 else {
            throw FlagError("--moderation-identities and --moderation-blocks must be positive")
        }
        guard (0...3600).contains(resumeGrace) else { throw FlagError("--resume-grace must be 0 to 3600") }
        guard interestTimeout >= 0 else { throw FlagError("--interest-timeout must not be negative") }
        guard addressRatePerSecond >= 0 else { throw FlagError("--address-rate-per-second must not be negative") }
        for (name, v) in [("--outgoing-cap", outgoingCap), ("--echo-max-message-bytes", echoMaxMessageBytes),
                          ("--max-message-bytes", maxMessageBytes)] where v > ServerConfiguration.maxBufferLimit {
            throw FlagError("\(name) must be at most \(ServerConfiguration.maxBufferLimit)")
        }
    }

    func iceSettings(secret: Secret) -> ICESettings {
        var ice = ICESettings()
        ice.stunURLs = stunUrl
        ice.turnURLs = turnUrl
        ice.turnSecret = secret
        ice.credentialSeconds = turnCredentialSeconds
        ice.relayOnly = iceTransportPolicy == "relay"
        return ice
    }

    func makeConfiguration() throws -> ServerConfiguration {
        var c = ServerConfiguration()
        c.host = host
        c.port = port
        c.wwwRoot = www
        c.echo = echo
        c.maxHeadBytes = maxHeadBytes
        c.maxTargetBytes = maxTargetBytes
        c.maxHeaderCount = maxHeaderCount
        c.handshakeTimeout = .seconds(fromFlag: handshakeTimeout)
        c.keepAliveTimeout = .seconds(fromFlag: keepAliveTimeout)
        c.maxMessageBytes = maxMessageBytes
        c.echoMaxMessageBytes = echoMaxMessageBytes
        c.outgoingCap = outgoingCap
        c.pingInterval = .seconds(fromFlag: pingInterval)
        c.closeTimeout = .seconds(fromFlag: closeTimeout)
        c.pairedPingInterval = .seconds(fromFlag: pairedPingInterval)
        c.maxTextScalars = maxTextScalars
        c.ratePerSecond = ratePerSecond
        c.rateBurst = rateBurst
        c.onlineInterval = .seconds(fromFlag: onlineInterval)
        c.interestTimeout = .seconds(fromFlag: interestTimeout)
        c.resumeGraceSeconds = resumeGrace
        c.maxImageBytes = maxImageBytes
        c.imageOfferRatePerSecond = imageOffersPerSecond
        c.imageOfferBurst = imageOfferBurst
        c.callRequestRatePerSecond = callRequestsPerSecond
        c.callRequestBurst = callRequestBurst
        c.signalRatePerSecond = signalsPerSecond
        c.signalBurst = signalBurst
        c.ice = iceSettings(secret: try turnSecretFile.map { try readSecret(path: $0, flag: "--turn-secret-file") } ?? Secret())
        c.jwt = try jwtKeys()
        c.requireAuth = requireAuth
        c.loginURL = loginUrl
        c.identitySecrets = try identitySecretFile.map { path in
            let secret = try readSecret(path: path, flag: "--identity-secret-file")
            guard secret.count >= 32 else {
                throw SecretFileError(description: "--identity-secret-file \(path) holds under 32 bytes")
            }
            return secret
        }
        c.identityLifetimeSeconds = UInt64(identityDays) * 86_400
        c.termsURL = termsUrl
        c.minimumAge = minAge
        c.moderation.reportThreshold = reportThreshold
        c.moderation.reportWindowMillis = millis(reportWindowSeconds)
        c.moderation.banMillis = millis(banSeconds)
        c.moderation.blockMillis = millis(blockSeconds)
        c.moderation.abuseHalfLifeMillis = millis(abuseHalfLifeSeconds)
        c.moderation.quarantineScore = quarantineScore
        c.moderation.quarantineMillis = millis(quarantineSeconds)
        c.moderation.maxIdentities = moderationIdentities
        c.moderation.maxBlocks = moderationBlocks
        c.reportGraceSeconds = reportGraceSeconds
        if let redis {
            guard let endpoint = RedisEndpoint(url: redis) else {
                throw SecretFileError(description: "--redis must be redis://HOST:PORT or unix:/path (a user or password goes in --redis-user and --redis-password-file)")
            }
            c.redis = try resolved(endpoint)
        }
        c.redisUser = redisUser
        c.redisPassword = try redisPasswordFile.map { try readSecret(path: $0, flag: "--redis-password-file") }
        if let nodeId {
            let allowed = nodeId.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x2d || b == 0x5f
            }
            guard allowed, (1...32).contains(nodeId.utf8.count) else {
                throw SecretFileError(description: "--node-id must be 1 to 32 of A-Z, a-z, 0-9, - and _")
            }
            c.nodeID = nodeId
        }
        c.reusePort = reusePort
        guard clusterHeartbeatSeconds >= 0.1, clusterHeartbeatSeconds <= 60,
              clusterNodeTimeoutSeconds >= 2 * clusterHeartbeatSeconds, clusterNodeTimeoutSeconds <= 600 else {
            throw SecretFileError(description: "--cluster-heartbeat-seconds must be 0.1 to 60 and --cluster-node-timeout-seconds at least twice it (at most 600)")
        }
        c.clusterHeartbeat = .seconds(fromFlag: clusterHeartbeatSeconds)
        c.clusterNodeTimeout = .seconds(fromFlag: clusterNodeTimeoutSeconds)
        c.maxConnections = maxConnections
        c.maxConnectionsPerAddress = maxConnectionsPerAddress
        c.newConnectionsPerMinutePerAddress = newConnectionsPerMinute
        c.typingRatePerSecond = typingRatePerSecond
        c.typingBurst = typingBurst
        c.nextRatePerSecond = nextRatePerSecond
        c.nextBurst = nextBurst
        c.maxHTTPConnectionsPerAddress = maxHttpConnectionsPerAddress
        c.addressRatePerSecond = addressRatePerSecond
        c.addressRateBurst = addressRateBurst
        c.rateLimitsEnabled = !noRateLimits
        c.allowedOrigins = allowOrigin
        c.trustedProxies = trustedProxy.compactMap(ClientAddress.init(text:))
        c.logAddresses = logAddresses
        c.drainTimeout = .seconds(fromFlag: drainTimeout)
        c.logLevel = LogLevel(name: logLevel) ?? .info
        return c
    }

    private func millis(_ seconds: Double) -> UInt64 { UInt64((seconds * 1000).rounded()) }

    /// The token keys, read from their files (errors name the file, never its contents).
    func jwtKeys() throws -> JWTKeys {
        var keys = JWTKeys()
        for path in jwtSecretFile {
            let secret = try readSecret(path: path, flag: "--jwt-secret-file")
            // RFC 7518 section 3.2: an HS256 key is at least as long as the hash.
            guard secret.count >= 32 else { throw SecretFileError(description: "--jwt-secret-file \(path) holds under 32 bytes") }
            keys.hmacSecrets.append(secret)
        }
        for path in jwtPublicKeyFile {
            let pem = try readSecret(path: path, flag: "--jwt-public-key-file")
            guard let key = JWTKeys.ed25519PublicKey(pem: pem.bytesForParsing) else {
                throw SecretFileError(description: "--jwt-public-key-file \(path) is not a PEM Ed25519 public key (BEGIN PUBLIC KEY)")
            }
            keys.ed25519PublicKeys.append(key)
        }
        keys.leewaySeconds = Int64(jwtLeewaySeconds)
        keys.audience = jwtAudience
        return keys
    }

    func run() -> Never {
        let server: Server
        do {
            server = try Server(configuration: makeConfiguration())
            try server.start()
        } catch {
            fail("\(error)")
        }
        Glibc.exit(server.run())
    }
}

struct SecretFileError: Error, CustomStringConvertible {
    let description: String
}

/// The whole file, less trailing whitespace (a newline an editor added is not part of the secret). Errors name the
/// path and the reason, never the contents.
func readSecret(path: String, flag: String) throws -> Secret {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SecretFileError(description: "cannot open \(flag) \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw SecretFileError(description: "cannot read \(flag) \(path): \(String(cString: strerror(errno)))") }
        if n == 0 { break }
        bytes += chunk[0..<n]
        guard bytes.count <= 65536 else { throw SecretFileError(description: "\(flag) \(path) is over 64 KiB") }
    }
    while let last = bytes.last, last == 0x20 || last == 0x09 || last == 0x0A || last == 0x0D { bytes.removeLast() }
    guard !bytes.isEmpty else { throw SecretFileError(description: "\(flag) \(path) is empty") }
    return Secret(bytes)
}

/// A Redis host name becomes a numeric address once, before the loop runs: hiredis's connect would look it up with
/// a blocking call on the loop.
func resolved(_ endpoint: RedisEndpoint) throws -> RedisEndpoint {
    guard case .tcp(let host, let port) = endpoint else { return endpoint }
    var v4 = in_addr(), v6 = in6_addr()
    if inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 { return endpoint }
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else {
        throw SecretFileError(description: "--redis: cannot resolve \(host)")
    }
    defer { freeaddrinfo(result) }
    var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    let family = first.pointee.ai_family
    let ok: Bool = first.pointee.ai_addr.withMemoryRebound(to: UInt8.self, capacity: 1) { _ in
        if family == AF_INET {
            return first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                var a = sin.pointee.sin_addr
                return inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count)) != nil
            }
        }
        return first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
            var a = sin6.pointee.sin6_addr
            return inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count)) != nil
        }
    }
    guard ok else { throw SecretFileError(description: "--redis: cannot resolve \(host)") }
    return .tcp(host: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), port: port)
}

func fail(_ line: String) -> Never {
    var text = "uvchatd: \(line)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(1)
}
