#if canImport(Glibc)
import Glibc
#endif

/// The composition root: builds the loop's pieces (listener, timers, signals) and the services (chat, static
/// files, metrics), accepts connections into the table, and runs the periodic work: the sweep of deadlines, the
/// online broadcast, the interest timer, the clock, the drain. Everything runs on the loop's thread.
/// A configuration the server cannot run with, found at start-up.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
}

public final class Server {
    typealias Chat = ChatService<ConnectionOutbox, ClusterRouting>

    let config: ServerConfiguration
    let loop: EventLoop
    var logger: Logger
    let connections = ConnectionTable()
    var chat: Chat
    var metrics = Metrics()
    var metricsCache = MetricsCache()
    let routes: HTTPRoutes
    var staticFiles: StaticFiles
    var prebuilt: PrebuiltResponses
    var clock: HTTPClock
    var notifier = SystemdNotifier()
    /// Tokens and identity cookies, checked at each upgrade and status request.
    let identity: IdentityResolver
    private var listener: Listener!
    /// With `--redis`: this process as one node of a cluster.
    private(set) var cluster: ClusterNode?

    // Settings the connections read often, in loop units.
    let closeTimeoutMillis: UInt64
    let keepAliveTimeoutMillis: UInt64
    let handshakeTimeoutMillis: UInt64
    let pingIntervalMillis: UInt64
    let pairedPingIntervalMillis: UInt64
    let trustedProxies: Set<ClientAddress>
    private let httpLimits: HTTPLimits

    /// Open connections before the upgrade, by `perAddressKey` (trusted proxies are not counted): a key goes when
    /// its count does, so the table is bounded by the open connections.
    private var httpConnections: [ClientAddress: Int] = [:]
    private var timers: [LoopTimer] = []
    private var matchTimer: LoopTimer?
    private var matchTimerDue: UInt64 = .max
    private var drainTimer: LoopTimer?
    private var signals: [LoopSignal] = []
    private var stopAsync: LoopAsync?
    private var lastLagProbe: UInt64 = 0
    private var lastDescriptorWarning: UInt64 = 0
    private(set) var isDraining = false
    private var stopped = false

    /// Bound ports, known after `start()` (port 0 picks a free port).
    public var boundPorts: [Int] { listener?.boundPorts ?? [] }

    static let lagProbeMillis: UInt64 = 250
    static let drainHTTPGraceMillis: UInt64 = 1000

    public init(configuration: ServerConfiguration) throws {
        config = configuration
        logger = Logger(level: configuration.logLevel)
        staticFiles = try StaticFiles(root: configuration.wwwRoot)
        routes = HTTPRoutes(echo: configuration.echo)
        clock = HTTPClock(now: time(nil))
        prebuilt = PrebuiltResponses(staticFiles, headers: SecurityHeaders.all, date: clock.date)
        chat = Chat(settings: configuration.chatSettings, outbox: ConnectionOutbox(connections: connections),
                    routing: ClusterRouting(interestTimeoutNanos: configuration.interestTimeout.nanoseconds,
                                            enabled: configuration.redis != nil),
                    unixTime: { UInt64(time(nil)) })
        var cookieKeys = configuration.identitySecrets
        if cookieKeys.isEmpty {
            // No key configured: one drawn now, so cookies last as long as this process's memory of them does.
            var random = SystemRandomNumberGenerator()
            cookieKeys = [Secret((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })]
        }
        // Tokens need libcrypto (a start-up error without it, loaded now); the identity cookie loads it at its
        // first use, and where it is missing every client is known by its address.
        if !configuration.jwt.isEmpty && !HMAC.isAvailable {
            throw ConfigurationError(description: "operator tokens need OpenSSL's libcrypto (libcrypto.so.3, Debian's libssl3)")
        }
        identity = IdentityResolver(verifier: configuration.jwt.isEmpty ? nil : JWTVerifier(keys: configuration.jwt),
                                    cookies: IdentityCookies(keys: cookieKeys,
                                                             lifetimeSeconds: configuration.identityLifetimeSeconds))
        closeTimeoutMillis = configuration.closeTimeout.loopMillis
        keepAliveTimeoutMillis = configuration.keepAliveTimeout.loopMillis
        handshakeTimeoutMillis = configuration.handshakeTimeout.loopMillis
        pingIntervalMillis = configuration.pingInterval.loopMillis
        pairedPingIntervalMillis = configuration.pairedPingInterval.loopMillis
        trustedProxies = Set(configuration.trustedProxies)
        httpLimits = HTTPLimits(maxHeadBytes: configuration.maxHeadBytes, maxTargetBytes: configuration.maxTargetBytes,
                                maxHeaderCount: configuration.maxHeaderCount)
        loop = try EventLoop()
        loop.owner = Unmanaged.passUnretained(self).toOpaque()
    }

    // MARK: - Start and run

    /// Binds the listeners and installs the timers and signal handlers. Throws one clear error on failure
    /// (for example the port in use).
    public func start() throws {
        EventLoop.ignoreSIGPIPE()
        EventLoop.raiseDescriptorLimit()
        logSkippedFiles()
        listener = Listener(loop: loop, onAccept: { [unowned self] fd, address in accept(fd, address) },
                            onEvent: { [unowned self] event in listenerEvent(event) })
        let inherited = SocketActivation.inheritedDescriptors()
        if inherited.isEmpty {
            logListening(host: config.host, port: try listener.listen(host: config.host, port: config.port,
                                                                          reusePort: config.reusePort))
        } else {
            for fd in inherited { logListening(host: "inherited fd \(fd)", port: try listener.adopt(fd)) }
        }
        try loop.start()
        if let endpoint = config.redis {
            var random = SystemRandomNumberGenerator()
            let name = config.nodeID ?? String(random.next() as UInt64, radix: 16)
            let node = ClusterNode(server: self, endpoint: endpoint, name: name)
            cluster = node
            connections.cluster = node
            chat.seedSerials(UInt32.random(in: 1...UInt32.max, using: &random))
            loop.beforeFlush = { [unowned node] in node.pump() }
            try node.start()
            logger.log(.info, "cluster node", ["node": name, "redis": endpoint.description])
        }
        timers.append(try loop.repeatingTimer(every: Server.lagProbeMillis) { [unowned self] in tick() })
        let sweepEvery = max(10, min(1000, min(handshakeTimeoutMillis, pingIntervalMillis, pairedPingIntervalMillis,
                                               closeTimeoutMillis) / 4))
        timers.append(try loop.repeatingTimer(every: sweepEvery) { [unowned self] in sweep() })
        timers.append(try loop.repeatingTimer(every: config.onlineInterval.loopMillis) { [unowned self] in
            notifier.notify(statusLine())
            chat.broadcastOnline(now: loop.nowMillis)
        })
        if let ms = notifier.watchdogIntervalMillis {
            timers.append(try loop.repeatingTimer(every: ms) { [unowned self] in notifier.notify("WATCHDOG=1") })
        }
        matchTimer = try loop.timer { [unowned self] in
            matchTimerDue = .max
            chat.expire(now: loop.nowMillis)
            armMatchTimer()
        }
        stopAsync = try loop.stopHandle { [unowned self] in beginDrain(signal: "request") }
        for signum in [SIGINT, SIGTERM, SIGHUP] {
            signals.append(try loop.onSignal(signum) { [unowned self] signum in
                if signum == SIGHUP { reload() } else { beginDrain(signal: signum == SIGINT ? "SIGINT" : "SIGTERM") }
            })
        }
    }

    /// Runs the loop until the server has drained; returns the process exit code.
    public func run() -> Int32 {
        notifier.notify("READY=1\n" + statusLine())
        if loop.run() { return 0 }
        logger.log(.error, "loop did not close cleanly")
        return 1
    }

    /// A thread-safe way to ask the loop to drain and stop (for embedding and tests; the daemon uses signals).
    public var stopHandle: StopHandle { stopAsync?.stopHandle ?? StopHandle(state: nil) }

    private func logListening(host: String, port: Int) {
        logger.log(.info, "listening", ["host": host, "port": String(port), "www": config.wwwRoot,
                                         "files": String(staticFiles.fileCount), "echo": String(config.echo)])
    }

    /// A file on disk that answers 404 is a mystery unless the log says why it was left out.
    private func logSkippedFiles() {
        for file in staticFiles.skipped { logger.log(.warn, "static file not served", ["file": file.description]) }
    }

    // MARK: - Connections

    private func accept(_ fd: Int32, _ address: ClientAddress) {
        if isDraining {
            Listener.closeDescriptor(fd)
            return
        }
        let id = connections.reserve()
        let conn = Connection(server: self, id: id, fd: fd, address: address,
                              http: HTTPState(limits: httpLimits, deadline: loop.nowMillis + handshakeTimeoutMillis))
        guard conn.register() else {
            connections.release(id)
            loop.io.acceptErrors &+= 1
            return
        }
        connections.insert(conn)
        loop.io.accepted &+= 1
        guard config.rateLimitsEnabled, !trustedProxies.contains(address) else { return readRequestNow(conn) }
        let key = address.perAddressKey
        let open = httpConnections[key, default: 0]
        if open >= config.maxHTTPConnectionsPerAddress {
            // One address holding this many unfinished connections is not a person: a clear answer, then FIN.
            metrics.capacityRejected &+= 1
            conn.sendHTTPError(.serviceUnavailable, isHead: false, extraHeaders: [("Retry-After", "10")])
            return
        }
        httpConnections[key] = open + 1
        conn.countedAsHTTP = true
        readRequestNow(conn)
    }

    /// The listener defers accepting until a connection's first bytes arrive (TCP_DEFER_ACCEPT), so its request is
    /// read at once, in the wake-up that accepted it, rather than one epoll round later.
    @inline(__always)
    private func readRequestNow(_ conn: Connection) {
        if !conn.isClosed { conn.readPending() }
    }

    func httpConnectionEnded(_ address: ClientAddress) {
        let key = address.perAddressKey
        guard let open = httpConnections[key] else { return }
        httpConnections[key] = open > 1 ? open - 1 : nil
    }

    private func listenerEvent(_ event: Listener.Event) {
        switch event {
        case .pollFailed(let error):
            logger.log(.warn, "listener failed; accepting again in a moment", ["error": error.description])
        case .acceptFailed(let error):
            logger.log(.warn, "accept failed; accepting again in a moment", ["error": error.description])
        case .outOfDescriptors:
            let now = loop.nowMillis
            if now &- lastDescriptorWarning >= 10_000 || lastDescriptorWarning == 0 {
                lastDescriptorWarning = now
                logger.log(.warn, "out of file descriptors; new connections are dropped",
                           ["open": String(connections.count)])
            }
        }
    }

    /// From the connection's release (after the batch of events it was closed in): the slot can be reused.
    func connectionClosed(_ conn: Connection) {
        // An away side's slot stays taken until its chat is resumed or over (B.2).
        connections.remove(conn, held: conn.session != nil && chat.isHeld(conn.id))
        if isDraining && connections.count == 0 { stopEverything() }
    }

    // MARK: - Periodic work

    /// Handshake, keep-alive, idle-ping and closing deadlines, checked for every connection by one timer rather
    /// than one timer per connection; a paused listener tries again.
    private func sweep() {
        if !isDraining { listener.resumeIfPaused() }
        let now = loop.nowMillis
        chat.pruneModeration(now: now)
        connections.forEach { conn in
            if !conn.isClosed { conn.tick(now: now) }
            // Pings to thousands of quiet connections would each borrow an output buffer until the end of the
            // iteration (tens of MB at once, which the allocator keeps); written in batches, a few buffers go round.
            if loop.pendingCount >= 64 { loop.flushPending() }
        }
    }

    /// Four times a second: the loop lag (how much later than asked the timer fired: a busy or stuck loop shows up
    /// here), and a new second gives the `Date` value, written into the prebuilt responses where they lie.
    private func tick() {
        if clock.advance(to: time(nil)) { prebuilt.rewriteDate(clock.date) }
        let now = EventLoop.hrtimeNanos
        if lastLagProbe != 0 {
            let elapsed = Double(now &- lastLagProbe) / 1e9
            metrics.observeLag(seconds: max(0, elapsed - Double(Server.lagProbeMillis) / 1000))
        }
        lastLagProbe = now
    }

    /// One timer for every interest wait: armed for the earliest deadline the chat has. Called after the chat
    /// queued someone (`chat.deadlinesChanged`) and after the timer fired.
    func armMatchTimer() {
        guard let deadline = chat.takeNextDeadline(), let t = matchTimer else { return }
        if deadline >= matchTimerDue && t.isActive { return }
        matchTimerDue = deadline
        let now = loop.nowMillis
        try? t.start(after: deadline > now ? deadline - now : 0)
    }

    func statusLine() -> String {
        "STATUS=\(isDraining ? "draining" : "serving"): \(connections.count) connections, \(chat.memberCount) chatting, \(chat.routing.waitingCount) waiting, \(chat.counters.pairsMade) pairs made"
    }

    // MARK: - Reload, drain and exit

    private func reload() {
        do {
            staticFiles = try StaticFiles(root: config.wwwRoot)
            prebuilt = PrebuiltResponses(staticFiles, headers: SecurityHeaders.all, date: clock.date)
            logSkippedFiles()
            logger.log(.info, "reloaded static files", ["files": String(staticFiles.fileCount)])
        } catch {
            logger.log(.error, "reload failed; keeping the old files", ["error": "\(error)"])
        }
    }

    /// Stop accepting, answer health checks with 503, flush every client's pending messages and close WebSockets
    /// with 1001; exit when every connection is gone or the drain timeout passes.
    public func beginDrain(signal: String) {
        guard !isDraining else { return }
        isDraining = true
        chat.beginDrain()
        notifier.notify("STOPPING=1\n" + statusLine())
        logger.log(.info, "draining", ["signal": signal, "connections": String(connections.count)])
        listener.close()
        // Messages already in the kernel's buffers were sent while their chats were open: they are read and relayed
        // before any chat connection is closed (the signal may have been seen first in this loop iteration).
        connections.forEach { conn in
            if !conn.isClosed, case .chat = conn.phase { conn.readPending() }
        }
        chat.pruneModeration(now: loop.nowMillis)
        guard let cluster else { return closeForDrain() }
        // A cluster node first leaves its chats in Redis for their resumes elsewhere; meanwhile nothing more is read
        // from the chat connections (what came is in the chats' rings, and a client sends again what the server
        // did not accept, B.2).
        connections.forEach { conn in
            if !conn.isClosed, case .chat = conn.phase { conn.pauseReading() }
        }
        cluster.beginDrain { [unowned self] in closeForDrain() }
    }

    /// The drain's closes: every WebSocket (1012 for a version 2 client of a cluster, else 1001), idle HTTP
    /// connections shortly; the exit when all are gone or the drain timeout passes.
    private func closeForDrain() {
        let now = loop.nowMillis
        connections.forEach { conn in
            guard !conn.isClosed else { return }
            if case .chat = conn.phase, conn.readPaused { conn.resumeReading() }
            switch conn.phase {
            case .http:
                // An idle keep-alive connection may still ask /healthz (and hear 503) for a moment.
                if let http = conn.http, !http.headInProgress {
                    http.deadline = min(http.deadline, now + Server.drainHTTPGraceMillis)
                }
            case .chat:
                // In a cluster whose Redis took this node's chats, a version 2 client reconnects (through the load
                // balancer, to another node) and resumes: 1012. A node serving alone (degraded) says 1001.
                let restart = cluster?.exportsChats == true && chat.isMember(conn.id) && chat.isV2(conn.id)
                // (Dropped, not left: a chat on another node holds its side for the resume.)
                conn.closeWebSocket(restart ? .serviceRestart : .goingAway, chat: restart ? .drop : .leave)
            case .echo:
                conn.closeWebSocket(.goingAway)
            case .closing:
                break
            }
        }
        loop.flushPending()
        if connections.count == 0 {
            stopEverything()
        } else {
            drainTimer = try? loop.timer { [unowned self] in
                logger.log(.warn, "drain timeout; closing the rest", ["connections": String(connections.count)])
                connections.forEach { $0.close() }
                stopEverything()
            }
            try? drainTimer?.start(after: config.drainTimeout.loopMillis)
        }
    }

    private func stopEverything() {
        guard !stopped else { return }
        stopped = true
        for t in timers { t.close() }
        timers.removeAll()
        matchTimer?.close()
        drainTimer?.close()
        stopAsync?.close()
        for s in signals { s.close() }
        signals.removeAll()
        notifier.close()
        listener.close()
        cluster?.close()
        loop.beforeFlush = nil
        loop.stop()
        logger.log(.info, "stopped", ["pairs": String(chat.counters.pairsMade),
                                      "relayed": String(chat.counters.messagesRelayed)])
    }

    // MARK: - Metrics

    /// The `/metrics` text, rendered at most once per `MetricsCache.lifetimeMillis`: values may be up to that old.
    func metricsText() -> String {
        let now = loop.nowMillis
        if let cached = metricsCache.text(at: now) { return cached }
        var queued = 0, paired = 0, http = 0, closing = 0, idle = 0
        connections.forEach { c in
            switch c.phase {
            case .http: http += 1
            case .chat:
                switch chat.status(of: c.id) {
                case .paired: paired += 1
                case .queued: queued += 1
                case .idle, .absent: idle += 1
                }
            case .echo: idle += 1
            case .closing: closing += 1
            }
        }
        let text = MetricsText.render(metrics, io: loop.io, chat: chat.counters,
                                      states: [("http", http), ("queued", queued), ("paired", paired), ("idle", idle),
                                               ("closing", closing)],
                                      away: chat.awayCount,
                                      moderation: .init(identities: chat.moderation.identityCount,
                                                        blocks: chat.moderation.blockCount,
                                                        activeBans: chat.moderation.activeBans,
                                                        bansTotal: chat.moderation.bansTotal,
                                                        quarantinesTotal: chat.moderation.quarantinesTotal),
                                      draining: isDraining)
        let all = cluster.map { text + $0.metricsText() } ?? text
        metricsCache.store(all, at: now)
        return all
    }

    /// `/healthz`: still 200 while the cluster is out of reach (this node serves alone), but it says so.
    var healthBody: StaticString {
        if isDraining { return "draining" }
        if let cluster, !cluster.isJoined { return "degraded" }
        return "ok"
    }
}

@available(*, unavailable)
extension Server: Sendable {}
