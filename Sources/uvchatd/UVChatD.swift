import ArgumentParser
import UVChat
#if canImport(Glibc)
import Glibc
#endif

/// Flags -> configuration -> run. Every default shown by `--help` is the server's own default.
struct UVChatD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uvchatd",
        abstract: "uvchat: a random text chat server (HTTP/1.1, RFC 6455 WebSocket, one libuv loop).",
        discussion: """
        Serves the chat page from --www, the chat protocol on /ws, /healthz and /metrics.
        SIGTERM or SIGINT drains (close 1001, exit 0); SIGHUP reloads the static files.
        """,
        version: BuildInfo.version
    )
    static let defaults = ServerConfiguration()

    @Option(help: "Address to listen on (IPv4 or IPv6; '::' is both).")
    var host = defaults.host
    @Option(help: "TCP port (0 picks a free one).")
    var port = defaults.port
    @Option(help: "Folder with the page's files.")
    var www = defaults.wwwRoot
    @Flag(help: "Serve /echo for conformance suites.")
    var echo = false

    @Option(help: "Largest request head in bytes (431 beyond).")
    var maxHeadBytes = defaults.maxHeadBytes
    @Option(help: "Longest request target in bytes (414 beyond).")
    var maxTargetBytes = defaults.maxTargetBytes
    @Option(help: "Most request headers (431 beyond).")
    var maxHeaderCount = defaults.maxHeaderCount
    @Option(help: "Seconds to finish a request head (408 after).")
    var handshakeTimeout = defaults.handshakeTimeout.flagSeconds
    @Option(help: "Seconds an idle keep-alive HTTP connection stays open.")
    var keepAliveTimeout = defaults.keepAliveTimeout.flagSeconds

    @Option(help: "Largest /ws message in bytes after reassembly (close 1009 beyond).")
    var maxMessageBytes = defaults.maxMessageBytes
    @Option(help: "Largest /echo message in bytes.")
    var echoMaxMessageBytes = defaults.echoMaxMessageBytes
    @Option(help: "Bytes queued for one slow receiver before it is closed with 1008.")
    var outgoingCap = defaults.outgoingCap
    @Option(help: "Seconds of silence before a ping; closed 1008 after two intervals.")
    var pingInterval = defaults.pingInterval.flagSeconds
    @Option(help: "Seconds to wait for the peer's close frame.")
    var closeTimeout = defaults.closeTimeout.flagSeconds
    @Option(help: "Seconds of silence before a paired version 2 client is pinged; away after two intervals.")
    var pairedPingInterval = defaults.pairedPingInterval.flagSeconds

    @Option(help: "Longest chat message in Unicode scalars.")
    var maxTextScalars = defaults.maxTextScalars
    @Option(help: "Messages per second per connection (token bucket rate).")
    var ratePerSecond = defaults.ratePerSecond
    @Option(help: "Token bucket burst.")
    var rateBurst = defaults.rateBurst
    @Option(help: "Seconds between online-count updates (sent only when changed).")
    var onlineInterval = defaults.onlineInterval.flagSeconds
    @Option(help: "Seconds to wait for a common interest before a random match.")
    var interestTimeout = defaults.interestTimeout.flagSeconds
    @Option(help: "Version 2: seconds a dropped client's chat is held for its resume (0: no resume).")
    var resumeGrace = defaults.resumeGraceSeconds
    @Option(help: "Version 2: largest image offer in bytes (too_large beyond; at most 64 MiB; 0: no images).")
    var maxImageBytes = defaults.maxImageBytes
    @Option(help: "Version 2: image offers per second per connection (token bucket rate).")
    var imageOffersPerSecond = defaults.imageOfferRatePerSecond
    @Option(help: "Burst of the image offer bucket.")
    var imageOfferBurst = defaults.imageOfferBurst

    @Option(help: "Version 2 calls: a STUN server URL for the browsers (stun: or stuns:; repeatable).")
    var stunUrl: [String] = []
    @Option(help: "Version 2 calls: a TURN server URL (turn: or turns:; repeatable; needs --turn-secret-file).")
    var turnUrl: [String] = []
    @Option(help: "File holding the TURN server's shared secret (coturn static-auth-secret; e.g. a systemd credential).")
    var turnSecretFile: String?
    @Option(help: "Seconds a TURN credential handed to a caller stays valid (60 to 86400).")
    var turnCredentialSeconds = defaults.ice.credentialSeconds
    @Option(help: "ICE transport policy for calls: all, or relay (media only through TURN; peers never see each other's addresses).")
    var iceTransportPolicy = "all"
    @Option(help: "Version 2: call requests per second per connection (token bucket rate).")
    var callRequestsPerSecond = defaults.callRequestRatePerSecond
    @Option(help: "Burst of the call request bucket.")
    var callRequestBurst = defaults.callRequestBurst
    @Option(help: "Version 2: call signals (SDP and ICE candidates) per second per connection (token bucket rate).")
    var signalsPerSecond = defaults.signalRatePerSecond
    @Option(help: "Burst of the signal bucket.")
    var signalBurst = defaults.signalBurst

    @Option(help: "Most simultaneous chat connections (503 beyond).")
    var maxConnections = defaults.maxConnections
    @Option(help: "Most simultaneous chat connections per client address (503 beyond).")
    var maxConnectionsPerAddress = defaults.maxConnectionsPerAddress
    @Option(help: "New chat connections per minute per client address (503 beyond).")
    var newConnectionsPerMinute = defaults.newConnectionsPerMinutePerAddress
    @Option(help: "Typing events per second per connection (token bucket rate).")
    var typingRatePerSecond = defaults.typingRatePerSecond
    @Option(help: "Burst of the typing bucket.")
    var typingBurst = defaults.typingBurst
    @Option(help: "next and stop commands per second per connection (one bucket for both).")
    var nextRatePerSecond = defaults.nextRatePerSecond
    @Option(help: "Burst of the next/stop bucket.")
    var nextBurst = defaults.nextBurst
    @Option(help: "Chat messages per second shared by all connections of one address (0: no such bucket).")
    var addressRatePerSecond = defaults.addressRatePerSecond
    @Option(help: "Burst of the per-address message bucket.")
    var addressRateBurst = defaults.addressRateBurst
    @Option(help: "Open HTTP connections (before the upgrade) per client address; trusted proxies are exempt.")
    var maxHttpConnectionsPerAddress = defaults.maxHTTPConnectionsPerAddress
    @Flag(help: "Lift the rate and connection-count limits (for benchmarks); size limits stay.")
    var noRateLimits = false
    @Option(help: "Allowed Origin for upgrades (repeatable; none means any).")
    var allowOrigin: [String] = []

    @Option(help: "Proxy address whose X-Forwarded-For is believed (repeatable).")
    var trustedProxy: [String] = []
    @Flag(help: "Include client addresses in log lines.")
    var logAddresses = false

    @Option(help: "Seconds to drain on SIGTERM/SIGINT before closing the rest.")
    var drainTimeout = defaults.drainTimeout.flagSeconds
    @Option(help: "debug, info, warn or error.")
    var logLevel = defaults.logLevel.name

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard LogLevel(name: logLevel) != nil else { throw ValidationError("--log-level must be debug, info, warn or error") }
        for text in trustedProxy where ClientAddress(text: text) == nil {
            throw ValidationError("invalid --trusted-proxy address '\(text)'")
        }
        for (name, v) in [("--max-head-bytes", maxHeadBytes), ("--max-target-bytes", maxTargetBytes),
                          ("--max-header-count", maxHeaderCount), ("--max-message-bytes", maxMessageBytes),
                          ("--echo-max-message-bytes", echoMaxMessageBytes), ("--outgoing-cap", outgoingCap),
                          ("--max-text-scalars", maxTextScalars), ("--max-connections", maxConnections),
                          ("--max-connections-per-address", maxConnectionsPerAddress),
                          ("--new-connections-per-minute", newConnectionsPerMinute),
                          ("--max-http-connections-per-address", maxHttpConnectionsPerAddress)] where v <= 0 {
            throw ValidationError("\(name) must be positive")
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
            throw ValidationError("\(name) must be positive")
        }
        guard (0...ServerConfiguration.maxImageLimit).contains(maxImageBytes) else {
            throw ValidationError("--max-image-bytes must be 0 to \(ServerConfiguration.maxImageLimit)")
        }
        guard ["all", "relay"].contains(iceTransportPolicy) else {
            throw ValidationError("--ice-transport-policy must be all or relay")
        }
        // The secret itself is read in run(); here a stand-in says whether there will be one.
        if let problem = iceSettings(secret: Secret(turnSecretFile == nil ? [] : [0])).problem {
            throw ValidationError(problem)
        }
        guard (0...3600).contains(resumeGrace) else { throw ValidationError("--resume-grace must be 0 to 3600") }
        guard interestTimeout >= 0 else { throw ValidationError("--interest-timeout must not be negative") }
        guard addressRatePerSecond >= 0 else { throw ValidationError("--address-rate-per-second must not be negative") }
        for (name, v) in [("--outgoing-cap", outgoingCap), ("--echo-max-message-bytes", echoMaxMessageBytes),
                          ("--max-message-bytes", maxMessageBytes)] where v > ServerConfiguration.maxBufferLimit {
            throw ValidationError("\(name) must be at most \(ServerConfiguration.maxBufferLimit)")
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
        c.ice = iceSettings(secret: try turnSecretFile.map(readSecret) ?? Secret())
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

    func run() throws {
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
func readSecret(path: String) throws -> Secret {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SecretFileError(description: "cannot open --turn-secret-file \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw SecretFileError(description: "cannot read --turn-secret-file \(path): \(String(cString: strerror(errno)))") }
        if n == 0 { break }
        bytes += chunk[0..<n]
        guard bytes.count <= 65536 else { throw SecretFileError(description: "--turn-secret-file \(path) is over 64 KiB") }
    }
    while let last = bytes.last, last == 0x20 || last == 0x09 || last == 0x0A || last == 0x0D { bytes.removeLast() }
    guard !bytes.isEmpty else { throw SecretFileError(description: "--turn-secret-file \(path) is empty") }
    return Secret(bytes)
}

func fail(_ line: String) -> Never {
    var text = "uvchatd: \(line)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(1)
}
