import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// The whole server: one libuv loop, its listeners, timers and signals, the connections, and the chat glue that
/// runs the sans-IO cores' results against sockets. Everything runs on the loop's thread.
public final class Server {
    let config: ServerConfiguration
    let loop: UnsafeMutablePointer<uv_loop_t>
    var logger: Logger
    var staticFiles: StaticFiles
    /// Whole `200` keep-alive responses for plain `GET`s of each file, built when the files are loaded, so that the
    /// common request costs one lookup and one append. Their `Date` field is rewritten in place once a second.
    private(set) var staticFast: [String: [UInt8]] = [:]
    /// The `Date` field's value for responses: the wall clock, read once a second, not per request.
    private(set) var httpDate: String
    private var httpDateSecond = 0
    /// Where the `Date` value sits in every prebuilt response: right after the status line and "Date: ".
    static let staticFastDateOffset = "HTTP/1.1 200 OK\r\nDate: ".utf8.count
    let matchmaker: Matchmaker
    var metrics = Metrics()

    /// One receive buffer for the whole loop, lent to every read callback (reads never nest).
    let readBuffer: UnsafeMutableRawBufferPointer
    /// Connections with queued output, flushed once per loop iteration by the check handle.
    var dirty: [Connection] = []
    /// Connection slots; a slot's index is the connection's PeerID.
    private var slots: [Connection?] = []
    private var freeSlots: [UInt32] = []
    private(set) var openConnections = 0

    /// The connections' poll handles, carved from large blocks.
    let pollHandles = HandleSlab<uv_poll_t>()
    /// Listening sockets, each watched by a poll handle; the server accepts from them itself.
    private var listeners: [UnsafeMutablePointer<uv_poll_t>] = []
    /// Output buffers lent to connections while they have bytes to write (see `lendOutputBuffer`).
    private var outputPool: [[UInt8]] = []
    private var outputPoolBytes = 0
    static let outputPoolMaxBytes = 2 * 1024 * 1024
    static let outputBufferMaxCapacity = 64 * 1024
    /// A descriptor kept open so that, when the process has none left, one can be freed to accept and drop a
    /// waiting connection rather than leave the listener readable forever (which would spin the loop).
    private var reserveFD: Int32 = -1
    /// Accepting paused (no reserve descriptor could be had, or accept failed otherwise); the sweep tries again.
    private var acceptPaused = false
    private var flushCheck: UnsafeMutablePointer<uv_check_t>?
    private var lagTimer: UnsafeMutablePointer<uv_timer_t>?
    private var lastLagProbe: UInt64 = 0
    private var sweepTimer: UnsafeMutablePointer<uv_timer_t>?
    private var onlineTimer: UnsafeMutablePointer<uv_timer_t>?
    private var matchTimer: UnsafeMutablePointer<uv_timer_t>?
    private var drainTimer: UnsafeMutablePointer<uv_timer_t>?
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []
    private var watchdogTimer: UnsafeMutablePointer<uv_timer_t>?
    private var stopAsync: UnsafeMutablePointer<uv_async_t>?
    var notifier = SystemdNotifier()
    private var matchTimerDue: UInt64 = .max

    private(set) var isDraining = false
    private var lastDescriptorWarning: UInt64 = 0
    private var exitCode: Int32 = 0

    // Chat state
    private(set) var chatCount = 0
    private var perAddress: [ClientAddress: AddressState] = [:]
    private var lastAddressPrune: UInt64 = 0
    let frames: PrebuiltFrames
    private var scratch: [UInt8] = []

    /// Bound addresses, known after `start()` (port 0 picks a free port).
    public private(set) var boundPorts: [Int] = []

    static let httpPipelineHighWater = 256 * 1024
    static let drainHTTPGraceMillis: UInt64 = 1000
    static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]

    var nowMillis: UInt64 { uv_now(loop) }
    var nowNanos: UInt64 { uv_now(loop) &* 1_000_000 }
    let closeTimeoutMillis: UInt64
    let trustedProxies: Set<ClientAddress>
    let keepAliveTimeoutMillis: UInt64
    let handshakeTimeoutMillis: UInt64
    let pingIntervalMillis: UInt64
    let httpLimits: HTTPLimits

    public init(configuration: ServerConfiguration) throws {
        config = configuration
        logger = Logger(level: LogLevel(name: configuration.logLevel) ?? .info)
        staticFiles = try StaticFiles(root: configuration.wwwRoot)
        matchmaker = Matchmaker(interestTimeoutNanos: UInt64(max(0, configuration.interestTimeout) * 1e9))
        frames = PrebuiltFrames()
        closeTimeoutMillis = Server.millis(configuration.closeTimeout)
        var proxies = Set<ClientAddress>()
        for text in configuration.trustedProxies {
            guard let a = ClientAddress(text: text) else { throw ServerError("invalid --trusted-proxy address '\(text)'") }
            proxies.insert(a)
        }
        trustedProxies = proxies
        keepAliveTimeoutMillis = Server.millis(configuration.keepAliveTimeout)
        handshakeTimeoutMillis = Server.millis(configuration.handshakeTimeout)
        pingIntervalMillis = Server.millis(configuration.pingInterval)
        httpLimits = HTTPLimits(maxHeadBytes: configuration.maxHeadBytes, maxTargetBytes: configuration.maxTargetBytes,
                                maxHeaderCount: configuration.maxHeaderCount)
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        httpDateSecond = time(nil)
        httpDate = HTTPDate.format(httpDateSecond)
        staticFast = Server.prebuildStaticResponses(staticFiles, date: httpDate)
        loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let rc = uv_loop_init(loop)
        if rc != 0 {
            loop.deallocate()
            readBuffer.deallocate()
            throw UVError(rc)
        }
    }

    deinit {
        readBuffer.deallocate()
        loop.deallocate()
    }

    /// Many connections need many descriptors: lift the soft limit to the hard one (systemd's LimitNOFILE sets both).
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return Int.max }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return limit.rlim_cur > UInt(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// A file on disk that answers 404 is a mystery unless the log says why it was left out.
    private func logSkippedFiles() {
        for file in staticFiles.skipped { logger.log(.warn, "static file not served", ["file": file.description]) }
    }

    static let staticFastMaxBytes = 256 * 1024

    static func prebuildStaticResponses(_ files: StaticFiles, date: String) -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for path in files.paths {
            let answer = files.respond(rawPath: path, ifNoneMatch: nil, ifModifiedSince: nil)
            guard answer.status == 200, answer.body.count <= staticFastMaxBytes else { continue }
            var bytes: [UInt8] = []
            HTTPResponseWriter.writeHead(status: .ok, headers: answer.headers + securityHeaders,
                                         bodyLength: answer.body.count, keepAlive: true, date: date, into: &bytes)
            bytes.append(contentsOf: answer.body)
            out[path] = bytes
            if path.hasSuffix("/index.html") { out[String(path.dropLast("index.html".count))] = bytes }
        }
        return out
    }

    static func millis(_ seconds: Double) -> UInt64 { UInt64(max(1, (seconds * 1000).rounded())) }

    // MARK: - Start and run

    /// Binds the listeners and installs the timers and signal handlers. Throws one clear error on failure
    /// (for example the port in use).
    public func start() throws {
        loop.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uvc_ignore_sigpipe()
        _ = Server.raiseDescriptorLimit()
        reserveFD = uvc_reserve_fd()
        logSkippedFiles()
        let inherited = SocketActivation.inheritedDescriptors()
        if inherited.isEmpty {
            try listen(host: config.host, port: config.port)
        } else {
            for fd in inherited { try adopt(fd) }
        }

        flushCheck = makeHandle(uv_check_t.self) { uv_check_init(loop, $0) }
        if let h = flushCheck {
            try UVError.check(uv_check_start(h) { h in Server.from(h!.pointee.loop).flushDirty() })
            uv_unref(uvc_check_as_handle(h))
        }
        lagTimer = try startTimer(every: Server.lagProbeMillis) { $0.measureLag() }
        let sweepEvery = max(10, min(1000, min(handshakeTimeoutMillis, pingIntervalMillis, closeTimeoutMillis) / 4))
        sweepTimer = try startTimer(every: sweepEvery) { $0.sweep() }
        onlineTimer = try startTimer(every: Server.millis(config.onlineInterval)) { $0.broadcastOnline() }
        matchTimer = makeHandle(uv_timer_t.self) { uv_timer_init(loop, $0) }

        stopAsync = makeHandle(uv_async_t.self) { h in
            uv_async_init(loop, h) { h in Server.from(h!.pointee.loop).beginDrain(signal: "request") }
        }
        if let h = stopAsync { uv_unref(uvc_async_as_handle(h)) }
        if let ms = notifier.watchdogIntervalMillis {
            watchdogTimer = try startTimer(every: ms) { $0.notifier.notify("WATCHDOG=1") }
        }
        for signum in [SIGINT, SIGTERM, SIGHUP] {
            guard let h = makeHandle(uv_signal_t.self, { uv_signal_init(loop, $0) }) else { continue }
            signals.append(h)
            try UVError.check(uv_signal_start(h, { h, signum in
                Server.from(h!.pointee.loop).handleSignal(signum)
            }, signum))
        }
    }

    /// Runs the loop until the server has drained; returns the process exit code.
    public func run() -> Int32 {
        notifier.notify("READY=1\n" + statusLine())
        _ = uv_run(loop, UV_RUN_DEFAULT)
        // Anything still open (should be nothing) is closed and given a chance to finish.
        uv_walk(loop, { handle, _ in
            if uv_is_closing(handle) == 0 { uv_close(handle, { UnsafeMutableRawPointer($0!).deallocate() }) }
        }, nil)
        _ = uv_run(loop, UV_RUN_DEFAULT)
        let rc = uv_loop_close(loop)
        if rc != 0 {
            logger.log(.error, "loop did not close cleanly", ["error": UVError(rc).description])
            return 1
        }
        return exitCode
    }

    /// A thread-safe way to ask the loop to drain and stop (for embedding and tests; the daemon uses signals).
    public var stopHandle: StopHandle { StopHandle(async: stopAsync) }

    static func from(_ loop: UnsafeMutablePointer<uv_loop_t>?) -> Server {
        Unmanaged<Server>.fromOpaque(loop!.pointee.data).takeUnretainedValue()
    }

    private func makeHandle<H>(_ type: H.Type, _ initialize: (UnsafeMutablePointer<H>) -> Int32) -> UnsafeMutablePointer<H>? {
        let h = UnsafeMutablePointer<H>.allocate(capacity: 1)
        let rc = initialize(h)
        if rc != 0 {
            h.deallocate()
            logger.log(.error, "handle init failed", ["error": UVError(rc).description])
            return nil
        }
        return h
    }

    private func startTimer(every ms: UInt64, _ action: @escaping (Server) -> Void) throws -> UnsafeMutablePointer<uv_timer_t>? {
        guard let t = makeHandle(uv_timer_t.self, { uv_timer_init(loop, $0) }) else { return nil }
        // The action is stored in a box reachable from handle.data; the box is released in the close callback.
        t.pointee.data = Unmanaged.passRetained(TimerBox(action)).toOpaque()
        try UVError.check(uv_timer_start(t, { t in
            let box = Unmanaged<TimerBox>.fromOpaque(t!.pointee.data).takeUnretainedValue()
            let server = Server.from(t!.pointee.loop)
            box.action(server)
            server.flushDirty()
        }, ms, ms))
        return t
    }

    private func closeTimer(_ t: UnsafeMutablePointer<uv_timer_t>?) {
        guard let t else { return }
        uv_close(uvc_timer_as_handle(t)) { h in
            if let data = h!.pointee.data { Unmanaged<TimerBox>.fromOpaque(data).release() }
            UnsafeMutableRawPointer(h!).deallocate()
        }
    }

    private func closeHandle(_ h: UnsafeMutablePointer<uv_handle_t>) {
        uv_close(h) { UnsafeMutableRawPointer($0!).deallocate() }
    }

    // MARK: - Listening and accepting

    static let listenBacklog: Int32 = 4096

    private func listen(host: String, port: Int) throws {
        var storage = sockaddr_storage()
        let isV6 = host.contains(":")
        let rc: Int32 = withUnsafeMutablePointer(to: &storage) { p in
            isV6 ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(host, Int32(port), $0) }
                 : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(host, Int32(port), $0) }
        }
        if rc != 0 { throw ServerError("invalid --host address '\(host)' (\(UVError(rc).message))") }
        let fd = withUnsafePointer(to: &storage) { uvc_listen_socket(uvc_sockaddr_storage($0), Server.listenBacklog) }
        if fd < 0 {
            let e = UVError(fd)
            if e == .addressInUse {
                throw ServerError("cannot listen on \(host) port \(port): address already in use")
            }
            throw ServerError("cannot listen on \(host) port \(port): \(e.message)")
        }
        try watchListener(fd, host: host)
    }

    /// A listening socket inherited from systemd socket activation.
    private func adopt(_ fd: Int32) throws {
        let rc = uvc_adopt_listen_socket(fd, Server.listenBacklog)
        if rc != 0 { throw ServerError("cannot use inherited socket \(fd): \(UVError(rc).message)") }
        try watchListener(fd, host: "inherited fd \(fd)")
    }

    private func watchListener(_ fd: Int32, host: String) throws {
        let poll = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
        let rc = uv_poll_init_socket(loop, poll, fd)
        if rc != 0 {
            poll.deallocate()
            _ = uvc_close_fd(fd)
            throw ServerError("cannot watch the listening socket: \(UVError(rc).message)")
        }
        poll.pointee.data = UnsafeMutableRawPointer(bitPattern: Int(fd) + 1)
        listeners.append(poll)
        try UVError.check(startAccepting(poll))
        let actualPort = Int(uvc_local_port(fd))
        boundPorts.append(actualPort)
        logger.log(.info, "listening", ["host": host, "port": String(actualPort), "www": config.wwwRoot,
                                         "files": String(staticFiles.fileCount), "echo": String(config.echo)])
    }

    private func startAccepting(_ listener: UnsafeMutablePointer<uv_poll_t>) -> Int32 {
        uv_poll_start(listener, Int32(UV_READABLE.rawValue)) { listener, status, _ in
            Server.from(listener!.pointee.loop).acceptAll(listener!, status: status)
        }
    }

    /// The descriptor a listener watches (kept in its `data`, offset by one so that it is never null).
    private static func listenerFD(_ listener: UnsafeMutablePointer<uv_poll_t>) -> Int32 {
        Int32(Int(bitPattern: listener.pointee.data) - 1)
    }

    private func closeListeners() {
        for l in listeners {
            let fd = Server.listenerFD(l)
            // uv_close stops the poll at once, so the descriptor can be closed right after it.
            closeHandle(uvc_poll_as_handle(l))
            _ = uvc_close_fd(fd)
        }
        listeners.removeAll()
    }

    /// Accepts what is waiting, up to a bound per wake-up so that a flood of connects cannot starve the clients
    /// already connected (the listener stays readable; the loop comes back to it).
    private func acceptAll(_ listener: UnsafeMutablePointer<uv_poll_t>, status: Int32) {
        if status < 0 {
            metrics.acceptErrors &+= 1
            logger.log(.warn, "accept failed", ["error": UVError(status).description])
            return
        }
        let fd = Server.listenerFD(listener)
        var peer = sockaddr_storage()
        for _ in 0..<128 {
            let rc = uvc_accept(fd, &peer)
            if rc >= 0 {
                startConnection(rc, peer: &peer)
                continue
            }
            let e = UVError(rc)
            if e == .again { return }
            if e == .connectionAborted { continue }
            if e == .tooManyOpenFiles || e == .tooManyOpenFilesSystem {
                shedWaitingConnections(fd)
                return
            }
            // Anything else (ENOMEM, ENOBUFS, ...) would leave the listener readable and the loop spinning on it:
            // stop accepting until the next sweep.
            metrics.acceptErrors &+= 1
            logger.log(.warn, "accept failed; accepting again in a moment", ["error": e.description])
            pauseAccepting()
            return
        }
    }

    private func pauseAccepting() {
        guard !acceptPaused else { return }
        acceptPaused = true
        for l in listeners { _ = uv_poll_stop(l) }
    }

    /// Out of descriptors: free the reserve one, accept and close each waiting connection with it (the client sees
    /// a reset instead of hanging), and take the reserve back. Without a reserve, stop accepting until the sweep.
    private func shedWaitingConnections(_ listenFD: Int32) {
        if reserveFD >= 0 {
            _ = uvc_close_fd(reserveFD)
            var peer = sockaddr_storage()
            while true {
                let rc = uvc_accept(listenFD, &peer)
                guard rc >= 0 else { break }
                _ = uvc_close_fd(rc)
                metrics.descriptorLimitHits &+= 1
            }
            reserveFD = uvc_reserve_fd()
        } else {
            metrics.descriptorLimitHits &+= 1
        }
        if reserveFD < 0 { pauseAccepting() }
        if nowMillis &- lastDescriptorWarning >= 10_000 || lastDescriptorWarning == 0 {
            lastDescriptorWarning = nowMillis
            logger.log(.warn, "out of file descriptors; new connections are dropped",
                       ["open": String(openConnections)])
        }
    }

    private func resumeAccepting() {
        if reserveFD < 0 { reserveFD = uvc_reserve_fd() }
        guard reserveFD >= 0 else { return }
        acceptPaused = false
        for l in listeners where startAccepting(l) != 0 {
            pauseAccepting()
            return
        }
    }

    private func startConnection(_ fd: Int32, peer: inout sockaddr_storage) {
        if isDraining {
            _ = uvc_close_fd(fd)
            return
        }
        let id = allocateSlot()
        let conn = Connection(server: self, id: id, fd: fd,
                              http: HTTPState(limits: httpLimits, deadline: nowMillis + handshakeTimeoutMillis))
        let rc = uv_poll_init_socket(loop, conn.poll, fd)
        if rc != 0 {
            pollHandles.deallocate(conn.poll)
            _ = uvc_close_fd(fd)
            freeSlots.append(id.rawValue)
            metrics.acceptErrors &+= 1
            return
        }
        slots[Int(id.rawValue)] = conn
        openConnections += 1
        conn.poll.pointee.data = Unmanaged.passRetained(conn).toOpaque()
        metrics.accepted &+= 1
        uvc_nodelay(fd)
        conn.address = withUnsafePointer(to: &peer) { ClientAddress($0) }
        if !conn.updatePoll() { conn.closeNow() }
    }

    private func allocateSlot() -> PeerID {
        if let free = freeSlots.popLast() { return PeerID(rawValue: free) }
        slots.append(nil)
        return PeerID(rawValue: UInt32(slots.count - 1))
    }

    /// Called from the connection's close callback: the handle is gone, the slot can be reused.
    func connectionClosed(_ conn: Connection) {
        slots[Int(conn.id.rawValue)] = nil
        freeSlots.append(conn.id.rawValue)
        openConnections -= 1
        if isDraining && openConnections == 0 { stopEverything() }
    }

    // MARK: - Output batching

    func flushDirty() {
        // A flush can close a connection; closing never adds to `dirty`, but a write error may arrive for another
        // connection, so iterate by index over a list that only grows.
        var i = 0
        while i < dirty.count {
            dirty[i].flush()
            i += 1
        }
        dirty.removeAll(keepingCapacity: true)
    }

    /// Gives `buffer` (empty, no storage) a buffer from the pool, or room for a typical batch.
    func lendOutputBuffer(_ buffer: inout [UInt8]) {
        if let lent = outputPool.popLast() {
            outputPoolBytes -= lent.capacity
            buffer = lent
        } else {
            buffer.reserveCapacity(2048)
        }
    }

    /// Takes a written-out buffer back. The pool is bounded in bytes and keeps no very large buffer, so it holds
    /// what a busy loop iteration needs and never grows without bound.
    func recycleOutputBuffer(_ buffer: inout [UInt8]) {
        buffer.removeAll(keepingCapacity: true)
        let capacity = buffer.capacity
        if capacity <= Server.outputBufferMaxCapacity && outputPoolBytes + capacity <= Server.outputPoolMaxBytes {
            outputPoolBytes += capacity
            outputPool.append(buffer)
        }
        buffer = []
    }

    func readPauseThreshold(_ conn: Connection) -> Int {
        conn.phase == .echo ? 4 * 1024 * 1024 : Server.httpPipelineHighWater
    }

    static let lagProbeMillis: UInt64 = 250

    /// Loop lag: how much later than asked a periodic timer fires. A busy or stuck loop shows up here.
    /// Called from the lag timer (four times a second): a new second gives a new `Date` value, written into the
    /// prebuilt responses where they lie.
    private func tickClock() {
        let now = time(nil)
        guard now != httpDateSecond else { return }
        httpDateSecond = now
        httpDate = HTTPDate.format(now)
        let offset = Server.staticFastDateOffset
        var date = httpDate
        date.withUTF8 { value in
            for key in Array(staticFast.keys) {
                staticFast[key]!.withUnsafeMutableBytes { bytes in
                    guard bytes.count >= offset + value.count else { return }
                    UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<(offset + value.count)])
                        .copyMemory(from: UnsafeRawBufferPointer(value))
                }
            }
        }
    }

    private func measureLag() {
        tickClock()
        let now = uv_hrtime()
        if lastLagProbe != 0 {
            let elapsed = Double(now &- lastLagProbe) / 1e9
            metrics.observeLag(seconds: max(0, elapsed - Double(Server.lagProbeMillis) / 1000))
        }
        lastLagProbe = now
    }

    // MARK: - Timers

    /// Handshake, keep-alive, idle-ping and closing deadlines, checked for every connection by one timer rather
    /// than one timer per connection.
    private func sweep() {
        let now = nowMillis
        if acceptPaused && !isDraining { resumeAccepting() }
        for case let conn? in slots where !conn.isClosed {
            switch conn.phase {
            case .http:
                if let http = conn.http, now >= http.deadline {
                    if http.headInProgress {
                        metrics.handshakeTimeouts &+= 1
                        conn.sendHTTPError(.requestTimeout, isHead: false)
                    } else {
                        conn.closeNow()
                    }
                }
            case .chat, .echo:
                let quiet = now &- conn.lastSeen
                if quiet >= 2 * pingIntervalMillis {
                    metrics.idleTimeouts &+= 1
                    // A peer this quiet will hardly answer our close: do not wait long for it.
                    conn.startClosingHandshake(.policyViolation, waitMillis: min(closeTimeoutMillis, pingIntervalMillis))
                } else if quiet >= pingIntervalMillis && !conn.pingOutstanding {
                    conn.pingOutstanding = true
                    conn.sendPrebuilt(frames.ping)
                } else if conn.outstandingBytes == 0 {
                    conn.releaseIdleBuffers()
                }
            case .closing:
                if conn.closeDeadline != 0 && now >= conn.closeDeadline { conn.closeNow() }
            }
        }
    }

    func statusLine() -> String {
        "STATUS=\(isDraining ? "draining" : "serving"): \(openConnections) connections, \(chatCount) chatting, \(matchmaker.count) waiting, \(metrics.pairsMade) pairs made"
    }

    /// Every chat connection hears the count when it differs from the last count it was told: at most once per
    /// interval, and never a repeat.
    private func broadcastOnline() {
        notifier.notify(statusLine())
        var frame: [UInt8] = []
        let count = Int32(clamping: chatCount)
        for case let conn? in slots where conn.phase == .chat && !conn.sentClose && conn.lastOnline != count {
            if frame.isEmpty { frame = frames.online(chatCount) }
            conn.lastOnline = count
            conn.sendPrebuilt(frame)
        }
    }

    private func armMatchTimer() {
        guard let t = matchTimer, let deadline = matchmaker.nextDeadline else { return }
        if deadline >= matchTimerDue && uv_is_active(uvc_timer_as_handle(t)) != 0 { return }
        matchTimerDue = deadline
        let now = nowNanos
        let delayMs = deadline > now ? (deadline - now + 999_999) / 1_000_000 : 0
        _ = uv_timer_start(t, { t in
            let server = Server.from(t!.pointee.loop)
            server.matchTimerDue = .max
            for pairing in server.matchmaker.expire(now: server.nowNanos) { server.announce(pairing) }
            server.armMatchTimer()
            server.flushDirty()
        }, delayMs, 0)
    }

    // MARK: - Signals, drain and exit

    private func handleSignal(_ signum: Int32) {
        if signum == SIGHUP {
            reload()
            return
        }
        beginDrain(signal: signum == SIGINT ? "SIGINT" : "SIGTERM")
    }

    private func reload() {
        do {
            staticFiles = try StaticFiles(root: config.wwwRoot)
            staticFast = Server.prebuildStaticResponses(staticFiles, date: httpDate)
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
        notifier.notify("STOPPING=1\n" + statusLine())
        logger.log(.info, "draining", ["signal": signal, "connections": String(openConnections)])
        closeListeners()
        for case let conn? in slots where !conn.isClosed {
            switch conn.phase {
            case .http:
                // An idle keep-alive connection may still ask /healthz (and hear 503) for a moment.
                if let http = conn.http, !http.headInProgress {
                    http.deadline = min(http.deadline, nowMillis + Server.drainHTTPGraceMillis)
                }
            case .chat, .echo:
                conn.startClosingHandshake(.goingAway)
            case .closing:
                break
            }
        }
        flushDirty()
        if openConnections == 0 {
            stopEverything()
        } else if let t = makeHandle(uv_timer_t.self, { uv_timer_init(loop, $0) }) {
            drainTimer = t
            _ = uv_timer_start(t, { t in
                let server = Server.from(t!.pointee.loop)
                server.logger.log(.warn, "drain timeout; closing the rest", ["connections": String(server.openConnections)])
                for case let conn? in server.slots { conn.closeNow() }
                server.stopEverything()
            }, Server.millis(config.drainTimeout), 0)
        }
    }

    private var stopped = false
    private func stopEverything() {
        guard !stopped else { return }
        stopped = true
        closeTimer(sweepTimer)
        closeTimer(onlineTimer)
        closeTimer(watchdogTimer)
        notifier.close()
        if let t = matchTimer { closeHandle(uvc_timer_as_handle(t)) }
        if let t = drainTimer { closeHandle(uvc_timer_as_handle(t)) }
        if let h = flushCheck { closeHandle(uvc_check_as_handle(h)) }
        if let h = stopAsync { closeHandle(uvc_async_as_handle(h)) }
        closeTimer(lagTimer)
        for s in signals { closeHandle(uvc_signal_as_handle(s)) }
        signals.removeAll()
        closeListeners()
        if reserveFD >= 0 {
            _ = uvc_close_fd(reserveFD)
            reserveFD = -1
        }
        logger.log(.info, "stopped", ["pairs": String(metrics.pairsMade), "relayed": String(metrics.messagesRelayed)])
    }

    // MARK: - Chat

    /// Global and per-address caps for new chat connections; returns a Retry-After value when refused.
    func admitChat(_ conn: Connection) -> String? {
        guard config.rateLimitsEnabled else { return nil }
        if chatCount >= config.maxConnections { return "10" }
        let now = nowMillis
        var state = perAddress[conn.address] ?? AddressState(now: now, config: config)
        defer { perAddress[conn.address] = state }
        if state.openChats >= config.maxConnectionsPerAddress { return "30" }
        let perMinute = Double(config.newConnectionsPerMinutePerAddress)
        if !state.connections.take(now: now, rate: perMinute / 60, burst: perMinute) { return "60" }
        return nil
    }

    func chatOpened(_ conn: Connection, interests: [String]) {
        metrics.chatUpgrades &+= 1
        chatCount += 1
        conn.countedAsChat = true
        perAddress[conn.address, default: AddressState(now: nowMillis, config: config)].openChats += 1
        conn.interests = interests
        conn.bucket = TokenBucket(tokens: config.rateBurst, at: nowMillis)
        conn.lastOnline = Int32(clamping: chatCount)
        conn.sendPrebuilt(frames.online(chatCount))
        queue(conn)
    }

    func chatConnectionClosed(_ conn: Connection) {
        chatCount -= 1
        perAddress[conn.address]?.openChats -= 1
        pruneAddresses()
    }

    /// Forget addresses with no open chat whose buckets have refilled, so the table never grows without bound.
    private func pruneAddresses() {
        let now = nowMillis
        guard now &- lastAddressPrune >= 10_000 else { return }
        lastAddressPrune = now
        perAddress = perAddress.filter { $0.value.openChats > 0 || now &- $0.value.connections.at < 60_000 }
    }

    /// Leave the partner (who is told) or the queue. Idempotent.
    func chatLeft(_ conn: Connection) {
        if let partner = conn.partner {
            conn.partner = nil
            partner.partner = nil
            // While draining the partner is being closed with 1001 too: the stranger did not leave, the server is
            // going away, and the close code says so.
            if !isDraining { partner.sendPrebuilt(frames.partnerLeft) }
        }
        matchmaker.remove(conn.id)
    }

    private func queue(_ conn: Connection) {
        if let pairing = matchmaker.enqueue(conn.id, interests: conn.interests, now: nowNanos) {
            announce(pairing)
        } else {
            conn.sendPrebuilt(frames.waiting)
            armMatchTimer()
        }
    }

    private func announce(_ pairing: Pairing) {
        guard let a = slots[Int(pairing.a.rawValue)], let b = slots[Int(pairing.b.rawValue)] else { return }
        a.partner = b
        b.partner = a
        metrics.pairsMade &+= 1
        scratch.removeAll(keepingCapacity: true)
        ChatEventEncoder.paired(common: pairing.common, random: pairing.random, into: &scratch)
        scratch.withUnsafeBytes { payload in
            a.sendFrame(.text, payload)
            b.sendFrame(.text, payload)
        }
    }

    func chatCommand(_ conn: Connection, _ payload: UnsafeRawBufferPointer) {
        switch ChatCommandDecoder.decode(payload, maxScalars: config.maxTextScalars) {
        case .failure(let code):
            refuse(conn, code)
        case .success(.message(let range, _)):
            guard let partner = conn.partner else {
                refuse(conn, .notPaired)
                return
            }
            if config.rateLimitsEnabled && !takeToken(conn) {
                metrics.rateLimitHits &+= 1
                refuse(conn, .rateLimited)
                return
            }
            if config.rateLimitsEnabled,
               perAddress[conn.address]?.messages.take(now: nowMillis, rate: config.addressRatePerSecond,
                                                       burst: config.addressRateBurst) == false {
                metrics.rateLimitHits &+= 1
                refuse(conn, .rateLimited)
                return
            }
            relay(UnsafeRawBufferPointer(rebasing: payload[range]), to: partner)
        case .success(.typing(let active)):
            conn.partner?.sendPrebuilt(active ? frames.typingOn : frames.typingOff)
        case .success(.next):
            chatLeft(conn)
            queue(conn)
        case .success(.stop):
            chatLeft(conn)
        }
    }

    /// One write into the partner's output: the frame header, then the event with the sender's already-validated
    /// JSON string literal copied verbatim.
    private func relay(_ escapedText: UnsafeRawBufferPointer, to partner: Connection) {
        partner.prepareOutput()
        ChatEventEncoder.messageFrame(escapedText: escapedText, into: &partner.pending)
        metrics.messagesRelayed &+= 1
        metrics.framesOut &+= 1
        partner.markDirty()
        if partner.outstandingBytes > config.outgoingCap {
            // A receiver that falls this far behind is closed; its partner is told it left.
            metrics.slowConsumerCloses &+= 1
            var fields = [("outstanding", String(partner.outstandingBytes))]
            if config.logAddresses { fields.append(("addr", partner.address.description)) }
            logger.log(.info, "slow consumer closed", fields: fields)
            partner.startClosingHandshake(.policyViolation, dropPending: true)
        }
    }

    private func takeToken(_ conn: Connection) -> Bool {
        conn.bucket.take(now: nowMillis, rate: config.ratePerSecond, burst: config.rateBurst)
    }

    private func refuse(_ conn: Connection, _ code: ChatErrorCode) {
        switch code {
        case .badRequest: metrics.refused[0] &+= 1
        case .notPaired: metrics.refused[1] &+= 1
        case .tooLong: metrics.refused[2] &+= 1
        case .rateLimited: metrics.refused[3] &+= 1
        }
        conn.sendPrebuilt(frames.error(code))
    }

    // MARK: - Metrics

    func metricsText() -> String {
        var queued = 0, paired = 0, http = 0, closing = 0, idle = 0
        for case let c? in slots {
            switch c.phase {
            case .http: http += 1
            case .chat:
                if c.partner != nil { paired += 1 } else if matchmaker.isQueued(c.id) { queued += 1 } else { idle += 1 }
            case .echo: idle += 1
            case .closing: closing += 1
            }
        }
        return MetricsText.render(metrics, states: [("http", http), ("queued", queued), ("paired", paired),
                                                    ("idle", idle), ("closing", closing)],
                                  draining: isDraining)
    }
}

@available(*, unavailable)
extension Server: Sendable {}

/// A readable start-up failure (one line for the operator).
public struct ServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ text: String) { description = text }
}

/// Wakes the loop from another thread and starts the drain, through libuv's one thread-safe call.
public struct StopHandle: @unchecked Sendable {
    let async: UnsafeMutablePointer<uv_async_t>?
    public func stop() { if let async { _ = uv_async_send(async) } }
}

/// Per client address: open chat connections and two token buckets (new connections, messages).
struct AddressState {
    var openChats = 0
    var connections: TokenBucket
    var messages: TokenBucket

    init(now: UInt64, config: ServerConfiguration) {
        connections = TokenBucket(tokens: Double(config.newConnectionsPerMinutePerAddress), at: now)
        messages = TokenBucket(tokens: config.addressRateBurst, at: now)
    }
}

struct TokenBucket {
    var tokens: Double
    var at: UInt64   // ms

    mutating func take(now: UInt64, rate: Double, burst: Double) -> Bool {
        tokens = min(burst, tokens + Double(now &- at) / 1000 * rate)
        at = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

final class TimerBox {
    let action: (Server) -> Void
    init(_ action: @escaping (Server) -> Void) { self.action = action }
}
