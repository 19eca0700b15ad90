#if canImport(Glibc)
import Glibc
#endif

extension Connection {
    /// Parse request heads from `input[start...]` and answer each in order (pipelining keeps order because every
    /// answer is produced synchronously, here).
    func handleHTTP(_ input: UnsafeMutableRawBufferPointer, from start: Int) {
        guard let http else { return }
        var offset = start
        while offset < input.count && phase == .http && !isClosed {
            if http.discardBody > 0 {
                let skip = min(http.discardBody, input.count - offset)
                http.discardBody -= skip
                offset += skip
                continue
            }
            if outstandingBytes > HTTPState.pipelineHighWater || http.isStreaming {
                // The client is not reading its answers: keep the rest of its requests for later.
                http.stash.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset...]))
                pauseReading()
                return
            }
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            switch http.parser.parse(rest) {
            case .needMore:
                if !http.headInProgress {
                    // A head has begun: it must be whole within the head timeout, whatever the keep-alive left.
                    http.headInProgress = true
                    http.deadline = min(http.deadline, now + server.handshakeTimeoutMillis)
                }
                return
            case .error(let status):
                server.metrics.httpErrors &+= 1
                sendHTTPError(status, isHead: false)
                return
            case .head(let head, let consumed):
                http.headInProgress = false
                offset += consumed
                http.parser.reset()
                http.discardBody = head.contentLength
                handleRequest(head)
                if phase == .chat || phase == .echo {
                    // Bytes after the upgrade head are the first WebSocket frames.
                    if offset < input.count { handleFrames(input, from: offset) }
                    return
                }
            }
        }
    }

    /// 403 for a banned identity: `Retry-After` and one line a person can read.
    private func sendBanned(seconds: UInt64, unixNow: UInt64) {
        var t = time_t(Int(unixNow + seconds))
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let minutes = (seconds + 59) / 60
        let text = "You are banned from this chat until \(two(parts.tm_hour)):\(two(parts.tm_min)) UTC "
            + "(\(minutes) minute\(minutes == 1 ? "" : "s")), after reports from other people.\n"
        let body = Array(text.utf8)
        guard !isClosed else { return }
        prepareOutput()
        HTTPResponseWriter.writeHead(status: .forbidden, headers: [("Content-Type", "text/plain; charset=utf-8"),
                                                                   ("Retry-After", String(seconds)),
                                                                   ("Cache-Control", "no-store")],
                                     bodyLength: body.count, keepAlive: false, date: server.clock.date, into: &output)
        output.append(contentsOf: body)
        markDirty()
        finish()
    }

    func sendHTTPError(_ status: HTTPStatus, isHead: Bool, extraHeaders: [(String, String)] = []) {
        guard !isClosed else { return }
        prepareOutput()
        HTTPResponseWriter.writeError(status, extraHeaders: extraHeaders, includeBody: !isHead, date: server.clock.date,
                                      into: &output)
        markDirty()
        finish()
    }

    private func handleRequest(_ head: HTTPRequestHead) {
        server.metrics.httpRequests &+= 1
        let isHead = head.method == .head
        let keepAlive = head.keepAlive && !server.isDraining
        switch server.routes.route(method: head.method, path: head.path) {
        case .methodNotAllowed(let allow, let withBody):
            if withBody { server.metrics.httpErrors &+= 1 }
            sendHTTPError(.methodNotAllowed, isHead: !withBody, extraHeaders: [("Allow", allow)])
        case .upgrade(let endpoint):
            upgrade(head, to: endpoint)
        case .health:
            let ok = !server.isDraining
            let body = server.healthBody
            respond(ok ? .ok : .serviceUnavailable,
                    headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
                    body: UnsafeRawBufferPointer(start: body.utf8Start, count: body.utf8CodeUnitCount),
                    isHead: isHead, keepAlive: keepAlive)
        case .online:
            var bytes: [UInt8] = []
            ChatEventEncoder.online(count: server.chat.onlineCount, into: &bytes)
            bytes.withUnsafeBytes { body in
                respond(.ok, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                        body: body, isHead: isHead, keepAlive: keepAlive)
            }
        case .metrics:
            let bytes = Array(server.metricsText().utf8)
            bytes.withUnsafeBytes { body in
                respond(.ok, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store")],
                        body: body, isHead: isHead, keepAlive: keepAlive)
            }
        case .status:
            sendStatus(head, isHead: isHead, keepAlive: keepAlive)
        case .staticFile:
            serveFile(head, isHead: isHead, keepAlive: keepAlive)
        }
    }

    /// `GET /status` (B.5): what the page must know before it connects: whether it must log in, the rules and the
    /// age to show on a first visit, and whether this browser is banned, until when. It also gives the browser its
    /// identity cookie, so that the WebSocket upgrade that follows already carries one.
    private func sendStatus(_ head: HTTPRequestHead, isHead: Bool, keepAlive: Bool) {
        let config = server.config
        let unixNow = UInt64(time(nil))
        let client = ForwardedFor.clientAddress(peer: address, fieldLines: head.headerValues("x-forwarded-for"),
                                                trustedProxies: server.trustedProxies)
        let resolution = server.identity.resolve(head, unixNow: unixNow)
        var body: [UInt8] = []
        body.append(contentsOf: #"{"auth":""#.utf8)
        body.append(contentsOf: (config.jwt.isEmpty ? "none" : config.requireAuth ? "required" : "optional").utf8)
        body.append(contentsOf: #"","authenticated":"#.utf8)
        if case .valid = resolution.token { body.append(contentsOf: "true".utf8) } else { body.append(contentsOf: "false".utf8) }
        body.append(contentsOf: #","loginUrl":"#.utf8)
        if let login = config.loginURL { ChatEventEncoder.appendJSONString(login, into: &body) } else { body.append(contentsOf: "null".utf8) }
        body.append(contentsOf: #","termsUrl":"#.utf8)
        ChatEventEncoder.appendJSONString(config.termsURL, into: &body)
        body.append(contentsOf: #","minAge":"#.utf8)
        body.append(contentsOf: String(config.minimumAge).utf8)
        var headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        if let left = server.chat.banRemaining(identity: resolution.identity, address: client, now: now) {
            let seconds = (left + 999) / 1000
            body.append(contentsOf: #","banned":true,"retryAfter":"#.utf8)
            body.append(contentsOf: String(seconds).utf8)
            body.append(contentsOf: #","until":"#.utf8)
            body.append(contentsOf: String(unixNow + seconds).utf8)
        } else {
            body.append(contentsOf: #","banned":false"#.utf8)
            if resolution.wantsCookie, let cookie = newIdentityCookie(resolution, unixNow: unixNow) {
                headers.append(("Set-Cookie", cookie))
            }
        }
        body.append(UInt8(ascii: "}"))
        body.withUnsafeBytes { bytes in
            respond(.ok, headers: headers, body: bytes, isHead: isHead, keepAlive: keepAlive)
        }
    }

    /// Only called when `wantsCookie`, which needs cookies to be on.
    private func newIdentityCookie(_ resolution: IdentityResolver.Resolution, unixNow: UInt64) -> String? {
        guard let cookies = server.identity.cookies, HMAC.isAvailable else { return nil }
        var random = SystemRandomNumberGenerator()
        if resolution.cookie == nil { server.metrics.identitiesIssued &+= 1 }
        return cookies.issue(id: resolution.cookie, now: unixNow, random: &random)
    }

    private func serveFile(_ head: HTTPRequestHead, isHead: Bool, keepAlive: Bool) {
        let ifNoneMatch = head.header("if-none-match"), ifModifiedSince = head.header("if-modified-since")
        if head.method == .get && keepAlive && ifNoneMatch == nil && ifModifiedSince == nil,
           let whole = server.prebuilt.response(for: head.path) {
            write(whole)
            http?.deadline = now + server.keepAliveTimeoutMillis
            return
        }
        let answer = server.staticFiles.respond(rawPath: head.path, ifNoneMatch: ifNoneMatch,
                                                ifModifiedSince: ifModifiedSince)
        if answer.status == 404 { server.metrics.httpNotFound &+= 1 }
        let status: HTTPStatus = answer.status == 200 ? .ok : (answer.status == 304 ? .notModified : .notFound)
        if !isHead && answer.body.count > HTTPState.streamChunkBytes {
            stream(status, headers: answer.headers + SecurityHeaders.all, body: answer.body, keepAlive: keepAlive)
            return
        }
        answer.body.withUnsafeBytes { body in
            respond(status, headers: answer.headers + SecurityHeaders.all, body: body, isHead: isHead, keepAlive: keepAlive)
        }
    }

    /// Head and body go straight into the output, so a body is copied once (a large file is not built into a
    /// response first and then copied again).
    private func respond(_ status: HTTPStatus, headers: [(String, String)], body: UnsafeRawBufferPointer, isHead: Bool,
                         keepAlive: Bool) {
        guard !isClosed else { return }
        prepareOutput()
        HTTPResponseWriter.writeHead(status: status, headers: headers, bodyLength: body.count, keepAlive: keepAlive,
                                     date: server.clock.date, into: &output)
        if !isHead && status != .notModified { output.append(contentsOf: body) }
        markDirty()
        if keepAlive {
            http?.deadline = now + server.keepAliveTimeoutMillis
        } else {
            finish()
        }
    }

    /// A large body is not copied into the output whole: it is written a chunk at a time from the file's own bytes
    /// as the socket drains, with reading paused (pipelined requests wait) until it is out. So one connection holds
    /// at most a chunk of it, however big the file and however slow the reader.
    private func stream(_ status: HTTPStatus, headers: [(String, String)], body: [UInt8], keepAlive: Bool) {
        guard let http, !isClosed else { return }
        prepareOutput()
        HTTPResponseWriter.writeHead(status: status, headers: headers, bodyLength: body.count, keepAlive: keepAlive,
                                     date: server.clock.date, into: &output)
        markDirty()
        http.streamBody = body
        http.streamOffset = 0
        http.closeAfterStream = !keepAlive
        pauseReading()
        _ = continueStream(http)
    }

    /// Appends the next chunk; true when the body is all queued (then the connection finishes if it was to end).
    func continueStream(_ http: HTTPState) -> Bool {
        let end = min(http.streamOffset + HTTPState.streamChunkBytes, http.streamBody.count)
        http.streamBody.withUnsafeBytes { output.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[http.streamOffset..<end])) }
        markDirty()
        // Progress: the keep-alive deadline counts from the last chunk, not from the request.
        http.deadline = now + server.keepAliveTimeoutMillis
        http.streamOffset = end
        guard end == http.streamBody.count else { return false }
        http.streamBody = []
        http.streamOffset = 0
        if http.closeAfterStream { finish() }
        return true
    }

    private func upgrade(_ head: HTTPRequestHead, to endpoint: WebSocketEndpoint) {
        if server.isDraining {
            sendHTTPError(.serviceUnavailable, isHead: false, extraHeaders: [("Retry-After", "5")])
            return
        }
        let accept: String
        switch WebSocketHandshake.validate(head) {
        case .failure(let rejection):
            server.metrics.handshakeRejected &+= 1
            sendHTTPError(rejection.status, isHead: false, extraHeaders: rejection.extraHeaders)
            return
        case .success(let value):
            accept = value
        }
        let origins = server.config.allowedOrigins
        if !origins.isEmpty && !origins.contains(head.header("origin") ?? "") {
            server.metrics.originRejected &+= 1
            sendHTTPError(.forbidden, isHead: false)
            return
        }
        address = ForwardedFor.clientAddress(peer: address, fieldLines: head.headerValues("x-forwarded-for"),
                                             trustedProxies: server.trustedProxies)
        // Only /ws speaks a subprotocol: version 2 when the client offers `uvchat.2`.
        let version = endpoint == .chat ? WebSocketHandshake.version(head) : .v1
        // Tokens and bans (B.5) hold for /ws only: /echo is for conformance suites. A request that shows no token
        // and no cookie to a server without keys is anonymous without a look (the common case of load tools).
        var resolution = IdentityResolver.anonymous
        var unixNow: UInt64 = 0
        if endpoint == .chat {
            let identity = server.identity
            let mayIdentify = identity.mayIdentify(head)
            if mayIdentify || version == .v2 || server.chat.moderation.hasBans { unixNow = UInt64(time(nil)) }
            if mayIdentify {
                resolution = identity.resolve(head, unixNow: unixNow)
                if let (reason, challenge) = resolution.refusal(requireAuth: server.config.requireAuth) {
                    if reason == .missing { server.metrics.authMissing &+= 1 } else { server.metrics.authInvalid &+= 1 }
                    sendHTTPError(.unauthorized, isHead: false, extraHeaders: [("WWW-Authenticate", challenge)])
                    return
                }
            }
            if server.chat.moderation.hasBans,
               let left = server.chat.banRemaining(identity: resolution.identity, address: address, now: now) {
                server.metrics.banRejections &+= 1
                sendBanned(seconds: (left + 999) / 1000, unixNow: unixNow)
                return
            }
        }
        if endpoint == .chat, let retryAfter = server.chat.admit(address: address, now: now) {
            server.metrics.capacityRejected &+= 1
            sendHTTPError(.serviceUnavailable, isHead: false, extraHeaders: [("Retry-After", String(retryAfter))])
            return
        }
        // A version 2 client (the page) is given its identity cookie here if it has none; version 1 clients are not
        // (they are load tools and bots, and the 101 stays as it was).
        var setCookie: String?
        if version == .v2, resolution.wantsCookie {
            setCookie = newIdentityCookie(resolution, unixNow: unixNow)
        }
        prepareOutput()
        WebSocketHandshake.writeSwitchingProtocols(accept: accept, version: version, setCookie: setCookie, into: &output)
        markDirty()
        endHTTP()
        switch endpoint {
        case .chat:
            if version == .v2 {
                // An image (B.3) is the only binary message on /ws: up to the image limit and its 4-byte id, and
                // taken only once an offer is accepted (the chat service moves the allowance).
                session = WebSocketSession(maxMessageBytes: server.config.maxMessageBytes,
                                           maxBinaryBytes: 4 + server.config.maxImageBytes, binaryAllowance: 0, now: now)
            } else {
                session = WebSocketSession(maxMessageBytes: server.config.maxMessageBytes, now: now)
            }
            phase = .chat
            server.metrics.chatUpgrades &+= 1
            if version == .v2 { server.metrics.chatUpgradesV2 &+= 1 }
            server.chat.join(id, address: address, interests: Interests.parse(query: head.query), version: version,
                             identity: resolution.identity, now: now)
            if server.chat.deadlinesChanged { server.armMatchTimer() }
        case .echo:
            session = WebSocketSession(maxMessageBytes: server.config.echoMaxMessageBytes, now: now)
            phase = .echo
            server.metrics.echoUpgrades &+= 1
        }
    }
}
