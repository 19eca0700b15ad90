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
            if outstandingBytes > HTTPState.pipelineHighWater {
                // The client is not reading its answers: keep the rest of its requests for later.
                http.stash.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset...]))
                pauseReading()
                return
            }
            let rest = UnsafeRawBufferPointer(rebasing: input[offset...])
            switch http.parser.parse(rest) {
            case .needMore:
                http.headInProgress = true
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

    func sendHTTPError(_ status: HTTPStatus, isHead: Bool, extraHeaders: [(String, String)] = []) {
        var out: [UInt8] = []
        HTTPResponseWriter.writeError(status, extraHeaders: extraHeaders, includeBody: !isHead, date: server.clock.date,
                                      into: &out)
        write(out)
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
            let body: StaticString = ok ? "ok" : "draining"
            respond(ok ? .ok : .serviceUnavailable,
                    headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
                    body: UnsafeRawBufferPointer(start: body.utf8Start, count: body.utf8CodeUnitCount),
                    isHead: isHead, keepAlive: keepAlive)
        case .online:
            var bytes: [UInt8] = []
            ChatEventEncoder.online(count: server.chat.memberCount, into: &bytes)
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
        case .staticFile:
            serveFile(head, isHead: isHead, keepAlive: keepAlive)
        }
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
        answer.body.withUnsafeBytes { body in
            respond(status, headers: answer.headers + SecurityHeaders.all, body: body, isHead: isHead, keepAlive: keepAlive)
        }
    }

    private func respond(_ status: HTTPStatus, headers: [(String, String)], body: UnsafeRawBufferPointer, isHead: Bool,
                         keepAlive: Bool) {
        var out: [UInt8] = []
        out.reserveCapacity(256 + (isHead ? 0 : body.count))
        HTTPResponseWriter.writeHead(status: status, headers: headers, bodyLength: body.count, keepAlive: keepAlive,
                                     date: server.clock.date, into: &out)
        if !isHead && status != .notModified { out.append(contentsOf: body) }
        write(out)
        if keepAlive {
            http?.deadline = now + server.keepAliveTimeoutMillis
        } else {
            finish()
        }
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
        address = ForwardedFor.clientAddress(peer: address, header: head.header("x-forwarded-for"),
                                             trustedProxies: server.trustedProxies)
        if endpoint == .chat, let retryAfter = server.chat.admit(address: address, now: now) {
            server.metrics.capacityRejected &+= 1
            sendHTTPError(.serviceUnavailable, isHead: false, extraHeaders: [("Retry-After", String(retryAfter))])
            return
        }
        var out: [UInt8] = []
        WebSocketHandshake.writeSwitchingProtocols(accept: accept, into: &out)
        write(out)
        http = nil
        switch endpoint {
        case .chat:
            session = WebSocketSession(maxMessageBytes: server.config.maxMessageBytes, now: now)
            phase = .chat
            server.metrics.chatUpgrades &+= 1
            server.chat.join(id, address: address, interests: Interests.parse(query: head.query), now: now)
            if server.chat.deadlinesChanged { server.armMatchTimer() }
        case .echo:
            session = WebSocketSession(maxMessageBytes: server.config.echoMaxMessageBytes, now: now)
            phase = .echo
            server.metrics.echoUpgrades &+= 1
        }
    }
}
