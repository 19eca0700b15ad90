import CLibUV

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
            if outstandingBytes > Server.httpPipelineHighWater {
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
        HTTPResponseWriter.writeError(status, extraHeaders: extraHeaders, includeBody: !isHead, date: server.httpDate,
                                      into: &out)
        enqueue(out)
        finish()
    }

    func handleRequest(_ head: HTTPRequestHead) {
        server.metrics.httpRequests &+= 1
        let isHead = head.method == .head
        guard head.method == .get || isHead else {
            server.metrics.httpErrors &+= 1
            sendHTTPError(.methodNotAllowed, isHead: false, extraHeaders: [("Allow", "GET, HEAD")])
            return
        }
        let keepAlive = head.keepAlive && !server.isDraining
        switch head.path {
        case "/ws":
            if isHead { sendHTTPError(.methodNotAllowed, isHead: true, extraHeaders: [("Allow", "GET")]); return }
            upgrade(head, to: .chat)
        case "/echo" where server.config.echo:
            if isHead { sendHTTPError(.methodNotAllowed, isHead: true, extraHeaders: [("Allow", "GET")]); return }
            upgrade(head, to: .echo)
        case "/healthz":
            let ok = !server.isDraining
            let body: StaticString = ok ? "ok" : "draining"
            respond(ok ? .ok : .serviceUnavailable,
                    headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
                    body: UnsafeRawBufferPointer(start: body.utf8Start, count: body.utf8CodeUnitCount),
                    isHead: isHead, keepAlive: keepAlive)
        case "/online":
            // The start page shows the count before the person joins (joining /ws would queue them at once).
            var bytes: [UInt8] = []
            ChatEventEncoder.online(count: server.chatCount, into: &bytes)
            bytes.withUnsafeBytes { body in
                respond(.ok, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                        body: body, isHead: isHead, keepAlive: keepAlive)
            }
        case "/metrics":
            let text = server.metricsText()
            var bytes = Array(text.utf8)
            bytes.withUnsafeMutableBytes { raw in
                respond(.ok, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store")],
                        body: UnsafeRawBufferPointer(raw), isHead: isHead, keepAlive: keepAlive)
            }
        default:
            if head.method == .get && keepAlive, let whole = server.staticFast[head.path],
               head.header("if-none-match") == nil && head.header("if-modified-since") == nil {
                enqueue(whole)
                http?.deadline = server.nowMillis + server.keepAliveTimeoutMillis
                return
            }
            let answer = server.staticFiles.respond(rawPath: head.path,
                                                    ifNoneMatch: head.header("if-none-match"),
                                                    ifModifiedSince: head.header("if-modified-since"))
            var headers = answer.headers
            headers.append(contentsOf: Server.securityHeaders)
            if answer.status == 404 { server.metrics.httpNotFound &+= 1 }
            let status: HTTPStatus = answer.status == 200 ? .ok : (answer.status == 304 ? .notModified : .notFound)
            answer.body.withUnsafeBytes { body in
                respond(status, headers: headers, body: body, isHead: isHead, keepAlive: keepAlive)
            }
        }
    }

    func respond(_ status: HTTPStatus, headers: [(String, String)], body: UnsafeRawBufferPointer, isHead: Bool, keepAlive: Bool) {
        var out: [UInt8] = []
        out.reserveCapacity(256 + (isHead ? 0 : body.count))
        HTTPResponseWriter.writeHead(status: status, headers: headers, bodyLength: body.count, keepAlive: keepAlive,
                                     date: server.httpDate, into: &out)
        if !isHead && status != .notModified { out.append(contentsOf: body) }
        enqueue(out)
        if keepAlive {
            http?.deadline = server.nowMillis + server.keepAliveTimeoutMillis
        } else {
            finish()
        }
    }

    private func upgrade(_ head: HTTPRequestHead, to target: Phase) {
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
        if !server.config.allowedOrigins.isEmpty {
            let origin = head.header("origin") ?? ""
            if !server.config.allowedOrigins.contains(origin) {
                server.metrics.originRejected &+= 1
                sendHTTPError(.forbidden, isHead: false)
                return
            }
        }
        if server.trustedProxies.contains(address), let forwarded = head.header("x-forwarded-for") {
            // The proxy appends the address it saw; that rightmost entry is the one a trusted proxy vouches for.
            let last = forwarded.split(separator: ",").last.map { String($0).trimmingASCIISpaces() } ?? ""
            if let client = ClientAddress(text: last) { address = client }
        }
        if target == .chat, let refusal = server.admitChat(self) {
            server.metrics.capacityRejected &+= 1
            sendHTTPError(.serviceUnavailable, isHead: false, extraHeaders: [("Retry-After", refusal)])
            return
        }
        var out: [UInt8] = []
        WebSocketHandshake.writeSwitchingProtocols(accept: accept, into: &out)
        enqueue(out)
        http = nil
        lastSeen = server.nowMillis
        let cap = target == .chat ? server.config.maxMessageBytes : server.config.echoMaxMessageBytes
        wsParser = WebSocketParser(maxMessageBytes: cap)
        phase = target
        if target == .chat {
            server.chatOpened(self, interests: Interests.parse(query: head.query))
        } else {
            server.metrics.echoUpgrades &+= 1
        }
    }
}

extension String {
    func trimmingASCIISpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
