extension Connection {
    /// Feeds `input[start...]` to the session and performs each of its actions.
    func handleFrames(_ input: UnsafeMutableRawBufferPointer, from start: Int) {
        var offset = start
        let now = self.now
        while !isClosed, let action = session?.next(input, offset: &offset, now: now) {
            switch action {
            case .text(let payload):
                server.metrics.framesIn &+= 1
                if phase == .chat {
                    if isHostedElsewhere {
                        server.cluster?.forward(id, text: payload)
                    } else {
                        server.chat.receive(payload, from: id, now: now)
                        if server.chat.deadlinesChanged { server.armMatchTimer() }
                    }
                } else {
                    sendFrame(.text, payload)
                }
            case .binary(let payload):
                server.metrics.framesIn &+= 1
                if phase != .chat {
                    sendFrame(.binary, UnsafeRawBufferPointer(payload))
                } else if isHostedElsewhere {
                    forwardToHome(.binary(Array(payload)))
                } else if server.chat.isV2(id) {
                    // Version 2: an image for an accepted offer (B.3), or a `bad_request`.
                    server.chat.receiveBinary(payload, from: id, now: now)
                } else {
                    // Binary data has no meaning on version 1's /ws (PROTOCOL.md, "Frames").
                    leaveChat()
                    if let code = session?.refuse(.unsupportedData) { writeClose(code) }
                    finish()
                }
            case .skippedBinary:
                // Only a version 2 chat session has an allowance below its limit: a binary message it did not expect.
                server.metrics.framesIn &+= 1
                if phase == .chat {
                    if isHostedElsewhere { forwardToHome(.skippedBinary) } else { server.chat.refuseBinary(from: id, now: now) }
                }
            case .sendPong(let payload):
                sendFrame(.pong, payload)
            case .closeReceived(let received, let reply):
                server.metrics.countCloseReceived(received ?? WebSocketCloseCode.noStatus.rawValue)
                leaveChat()
                writeClose(reply)
                finishClosedSession()
            case .failed(let code):
                server.metrics.protocolFailures &+= 1
                // A client that breaks the protocol has left its chat (it is not "away").
                leaveChat()
                writeClose(code)
                finish()
            case .closeAnswered:
                finishClosedSession()
            case .finish:
                finish()
            }
        }
    }

    /// A message of a member whose chat is on another node: to that node, as it came (the rules run there).
    private func forwardToHome(_ record: ClusterRecord) {
        server.cluster?.forward(id, record)
    }

    @inline(__always)
    func sendFrame(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        prepareOutput()
        WebSocketFrameEncoder.appendFrame(opcode: opcode, payload: payload, into: &output)
        server.metrics.framesOut &+= 1
        markDirty()
    }

    /// A precomputed frame (header and payload together).
    @inline(__always)
    func sendPrebuilt(_ frame: [UInt8]) {
        frame.withUnsafeBytes { sendPrebuilt($0) }
    }

    /// Whole frames from where they lie (a precomputed event, or what a cluster node that is this chat's home built).
    @inline(__always)
    func sendPrebuilt(_ frames: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        prepareOutput()
        output.append(contentsOf: frames)
        server.metrics.framesOut &+= 1
        markDirty()
    }

    /// The one place a close frame is encoded and counted; the session has decided that it is due. nil: a close
    /// frame without a code (the answer to one without a code).
    private func writeClose(_ code: WebSocketCloseCode?, reason: StaticString = "") {
        guard !isClosed else { return }
        prepareOutput()
        if let code {
            server.metrics.countCloseSent(code.rawValue)
            WebSocketFrameEncoder.appendClose(code: code, reason: reason, into: &output)
        } else {
            WebSocketFrameEncoder.appendFrame(opcode: .close, payload: UnsafeRawBufferPointer(start: nil, count: 0), into: &output)
        }
        markDirty()
    }

    /// How a close the server starts ends the peer's part in the chat.
    enum ChatExit {
        /// It leaves (the partner hears `partner_left`).
        case leave
        /// It dropped out (a version 2 member in a chat is held for its resume).
        case drop
        /// The chat service asked for the close and has already taken the peer out (it is not re-entered).
        case alreadyOut
    }

    /// The server ends the session (shutdown, idle timeout, slow consumer, resumed elsewhere): our close frame, then
    /// the peer's is awaited up to the close timeout (or `waitMillis`).
    func closeWebSocket(_ code: WebSocketCloseCode, reason: StaticString = "", dropPending: Bool = false,
                        waitMillis: UInt64? = nil, chat exit: ChatExit = .leave) {
        guard !isClosed, let code = session?.close(code) else { return }
        if dropPending { dropUnsentFrames() }
        switch exit {
        case .leave: leaveChat()
        case .drop: dropChat()
        case .alreadyOut: break
        }
        writeClose(code, reason: reason)
        phase = .closing
        closeDeadline = now + (waitMillis ?? server.closeTimeoutMillis)
    }
}
