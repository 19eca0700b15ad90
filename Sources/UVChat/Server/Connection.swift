/// What only an HTTP connection needs: the request parser and its buffer, the head and keep-alive deadline, and
/// input held back while the client does not read its answers. Dropped at the upgrade, so a WebSocket carries none
/// of it.
final class HTTPState {
    var parser: HTTPRequestParser
    /// ms (loop clock): the head must be complete by then, or the keep-alive idle ends.
    var deadline: UInt64
    /// Part of a request head has arrived.
    var headInProgress = false
    /// Request body bytes still to skip.
    var discardBody = 0
    /// Unparsed input kept while reading is paused for backpressure.
    var stash: [UInt8] = []
    /// A large body being written a chunk at a time as the socket drains: the file's own bytes (shared, not
    /// copied), the next offset, and whether the connection ends after it.
    var streamBody: [UInt8] = []
    var streamOffset = 0
    var closeAfterStream = false

    var isStreaming: Bool { !streamBody.isEmpty }

    init(limits: HTTPLimits, deadline: UInt64) {
        parser = HTTPRequestParser(limits: limits)
        self.deadline = deadline
    }
}

/// The glue from one socket to the cores: bytes go to the HTTP parser until the upgrade, then to the WebSocket
/// session, whose messages go to the chat service (or back, on `/echo`). It decides nothing the cores decide; it
/// performs their answers and keeps the counters.
///
/// Fields are declared widest first (Swift lays a class out in declaration order, after `Socket`'s), so that the
/// object carries almost no padding.
final class Connection: Socket {
    enum Phase: UInt8 {
        case http
        case chat
        case echo
        /// Our close frame or an HTTP error is sent; we wait for the peer's close frame or EOF, then close.
        case closing
    }

    /// HTTP parsing and keep-alive state, until the upgrade.
    var http: HTTPState?
    /// ms: when a closing connection is closed whatever the peer does.
    var closeDeadline: UInt64 = 0
    var address: ClientAddress
    var session: WebSocketSession? = nil
    let id: PeerID

    /// Kept in the socket's flag word rather than a field of its own (two bits).
    var phase: Phase {
        get { Phase(rawValue: ownerBits & 3).unsafelyUnwrapped }
        set { ownerBits = ownerBits & ~3 | newValue.rawValue }
    }

    /// A cluster member whose chat is on another node (`ClusterNode`): its messages go there, not to the chat here.
    var isHostedElsewhere: Bool {
        get { ownerBits & 8 != 0 }
        set { ownerBits = newValue ? ownerBits | 8 : ownerBits & ~8 }
    }

    /// Counted in the server's open HTTP connections of its address (the per-address cap before the upgrade).
    var countedAsHTTP: Bool {
        get { ownerBits & 4 != 0 }
        set { ownerBits = newValue ? ownerBits | 4 : ownerBits & ~4 }
    }

    init(server: Server, id: PeerID, fd: Int32, address: ClientAddress, http: HTTPState) {
        self.id = id
        self.address = address
        self.http = http
        super.init(loop: server.loop, fd: fd)
        phase = .http
    }

    /// The server outlives every connection (connections live inside its loop), so it is reached through the loop
    /// without reference counting or a field of its own.
    @inline(__always)
    var server: Server { Unmanaged<Server>.fromOpaque(loop.owner.unsafelyUnwrapped).takeUnretainedValue() }

    var now: UInt64 { loop.nowMillis }

    // MARK: - Socket events

    override func received(_ input: UnsafeMutableRawBufferPointer) {
        switch phase {
        case .http:
            handleHTTP(input, from: 0)
        case .chat, .echo:
            handleFrames(input, from: 0)
        case .closing:
            // The session reads on only for the peer's close frame; otherwise input is discarded while we linger.
            if session != nil { handleFrames(input, from: 0) }
        }
        if !isClosed && !readPaused && outstandingBytes > readPauseThreshold { pauseReading() }
    }

    /// Past this much unwritten output, reading stops until it drains: the client is not reading its answers.
    private var readPauseThreshold: Int {
        switch phase {
        case .echo: 4 * 1024 * 1024
        case .http: HTTPState.pipelineHighWater
        case .chat, .closing: 256 * 1024
        }
    }

    /// EOF or a read error: the peer is gone (a partner counts as gone from the moment its TCP close is seen).
    override func peerFinished(_ error: UVError) {
        guard error == .eof, outstandingBytes > 0 || http?.isStreaming == true, phase != .closing || !isShutdown else {
            close()
            return
        }
        if let http, http.isStreaming {
            // The rest of the body goes out first; then the connection ends.
            http.closeAfterStream = true
            _ = stopReadingAtPeerEOF()
            return
        }
        // A half-close: the peer will read our answers before it goes, so write them first.
        endHTTP()
        guard finishAfterPeerEOF() else { return }
        if phase != .closing { dropChat() }
        phase = .closing
        if closeDeadline == 0 { closeDeadline = now + server.closeTimeoutMillis }
    }

    /// Output drained while reading was paused: the next chunk of a body being streamed, or read again, starting
    /// with what was held back.
    override func outputDrained() {
        if let http, http.isStreaming {
            guard continueStream(http), !isClosed, phase == .http, !peerEOF else { return }
        }
        resumeReading()
        if let http, !http.stash.isEmpty, !isClosed {
            var saved = http.stash
            http.stash = []
            saved.withUnsafeMutableBytes { handleHTTP($0, from: 0) }
        }
    }

    override func willClose() {
        // However the socket ends, a member that has not left by a close frame (or been taken out) dropped out.
        dropChat()
        phase = .closing
        endHTTP()
    }

    /// Bytes of a closing connection moved: the linger deadline counts from the last progress, so a download ends
    /// however long it takes while it moves, and one that stalls ends a close timeout after it stalled.
    override func finishingProgressed() {
        closeDeadline = now + server.closeTimeoutMillis
    }

    override func didClose() {
        server.connectionClosed(self)
    }

    // MARK: - Deadlines

    /// The sweep's visit: handshake and keep-alive deadlines, the session's ping and idle rules, the linger.
    func tick(now: UInt64) {
        switch phase {
        case .http:
            guard let http, now >= http.deadline else { return }
            if http.headInProgress {
                server.metrics.handshakeTimeouts &+= 1
                sendHTTPError(.requestTimeout, isHead: false)
            } else {
                close()
            }
        case .chat, .echo:
            // A paired version 2 client is pinged sooner, so that a dead connection is noticed (and its chat held)
            // in seconds rather than a minute.
            let interval = phase == .chat && server.chat.wantsQuickPings(id)
                ? min(server.pairedPingIntervalMillis, server.pingIntervalMillis) : server.pingIntervalMillis
            switch session?.tick(now: now, pingInterval: interval) ?? .none {
            case .idleTimeout:
                server.metrics.idleTimeouts &+= 1
                // A peer this quiet will hardly answer our close: do not wait long for it. Not answering is not
                // leaving: a version 2 member in a chat is away.
                closeWebSocket(.policyViolation, waitMillis: min(server.closeTimeoutMillis, interval), chat: .drop)
            case .sendPing:
                sendPrebuilt(WebSocketSession.pingFrame)
            case .none:
                if outstandingBytes == 0 { session?.releaseIdleBuffers() }
            }
        case .closing:
            if closeDeadline != 0 && now >= closeDeadline { close() }
        }
    }

    // MARK: - Closing

    /// Write what is queued, then send FIN and linger (discarding input) until the peer closes or the deadline passes.
    func finish() {
        guard !isClosed else { return }
        if phase != .closing { dropChat() }
        phase = .closing
        endHTTP()   // nothing more is parsed; the lingering connection keeps no request buffer
        if closeDeadline == 0 { closeDeadline = now + server.closeTimeoutMillis }
        finishAfterFlush()
    }

    /// Both close frames have crossed: write what is queued (our close frame last), then close TCP at once, server
    /// first (RFC 6455 7.1.1), without the FIN-and-linger round trip `finish()` waits for.
    func finishClosedSession() {
        guard !isClosed else { return }
        if phase != .closing { dropChat() }
        phase = .closing
        if closeDeadline == 0 { closeDeadline = now + server.closeTimeoutMillis }
        closeAfterFlush()
    }

    /// The HTTP part is over (upgrade, error, close): its state goes, and the connection stops counting against
    /// its address's HTTP cap.
    func endHTTP() {
        http = nil
        if countedAsHTTP {
            countedAsHTTP = false
            server.httpConnectionEnded(address)
        }
    }

    /// Out of the chat, once, whichever way the connection ends (the service ignores a peer that is not in it).
    func leaveChat() {
        if session != nil { server.chat.leave(id, now: now) }
    }

    /// The connection ended without a close frame: the chat decides whether that is leaving or being away (B.2).
    func dropChat() {
        guard session != nil else { return }
        server.chat.drop(id, now: now)
        if server.chat.deadlinesChanged { server.armMatchTimer() }
    }
}

extension HTTPState {
    /// Answers queued for a client that does not read them, before its further requests are held back (then at
    /// most one read's worth of requests waits in the stash).
    static let pipelineHighWater = 64 * 1024
    /// Bodies above this are streamed (`Connection.stream`), this much at a time.
    static let streamChunkBytes = 64 * 1024
}

@available(*, unavailable)
extension HTTPState: Sendable {}
