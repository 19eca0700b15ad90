import CLibUV

extension Connection {
    /// Decode frames from `input[start...]` and act on each event.
    func handleFrames(_ input: UnsafeMutableRawBufferPointer, from start: Int) {
        var offset = start
        while !isClosed, let event = wsParser?.next(input, offset: &offset) {
            lastSeen = server.nowMillis
            if phase == .closing {
                // We sent our close frame: only the peer's close frame matters now.
                if case .close = event { finish() }
                if case .fail = event { finish() }
                continue
            }
            switch event {
            case .text(let payload):
                server.metrics.framesIn &+= 1
                if phase == .chat {
                    server.chatCommand(self, payload)
                } else {
                    sendFrame(.text, payload)
                }
            case .binary(let payload):
                server.metrics.framesIn &+= 1
                if phase == .chat {
                    sendCloseAndFinish(.unsupportedData)
                } else {
                    sendFrame(.binary, payload)
                }
            case .ping(let payload):
                sendFrame(.pong, payload)
            case .pong:
                pingOutstanding = false
            case .close(let code, _):
                server.metrics.closeReceived[code ?? 1005, default: 0] &+= 1
                // Answer with the same code (RFC 6455 5.5.1), then close once it is written.
                let reply = code.map { WebSocketCloseCode(rawValue: $0) } ?? nil
                if phase == .chat { leavePhase() }
                if !sentClose {
                    var out: [UInt8] = []
                    if let reply {
                        server.metrics.closeSent[reply.rawValue, default: 0] &+= 1
                        WebSocketFrameEncoder.appendClose(code: reply, into: &out)
                    } else {
                        WebSocketFrameEncoder.appendFrame(opcode: .close, payload: UnsafeRawBufferPointer(start: nil, count: 0), into: &out)
                    }
                    enqueue(out)
                    sentClose = true
                }
                finish()
            case .fail(let code):
                server.metrics.protocolFailures &+= 1
                sendCloseAndFinish(code)
            }
        }
    }

    @inline(__always)
    func sendFrame(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        prepareOutput()
        WebSocketFrameEncoder.appendFrame(opcode: opcode, payload: payload, into: &pending)
        server.metrics.framesOut &+= 1
        markDirty()
    }

    /// A precomputed frame (header and payload together).
    @inline(__always)
    func sendPrebuilt(_ frame: [UInt8]) {
        guard !isClosed else { return }
        prepareOutput()
        pending.append(contentsOf: frame)
        server.metrics.framesOut &+= 1
        markDirty()
    }

    /// A fatal condition for this WebSocket: send a close frame with `code` and close without waiting long.
    func sendCloseAndFinish(_ code: WebSocketCloseCode) {
        guard !isClosed else { return }
        if !sentClose {
            server.metrics.closeSent[code.rawValue, default: 0] &+= 1
            var out: [UInt8] = []
            WebSocketFrameEncoder.appendClose(code: code, into: &out)
            enqueue(out)
            sentClose = true
        }
        finish()
    }

    /// Start the closing handshake (shutdown, idle timeout, slow consumer): send our close frame and wait for the
    /// peer's, up to the close timeout.
    func startClosingHandshake(_ code: WebSocketCloseCode, dropPending: Bool = false, waitMillis: UInt64? = nil) {
        guard !isClosed, !sentClose else { return }
        if dropPending { dropUnsentFrames() }
        if phase == .chat || countedAsChat { leavePhase() }
        server.metrics.closeSent[code.rawValue, default: 0] &+= 1
        var out: [UInt8] = []
        WebSocketFrameEncoder.appendClose(code: code, into: &out)
        enqueue(out)
        sentClose = true
        phase = .closing
        closeDeadline = server.nowMillis + (waitMillis ?? server.closeTimeoutMillis)
    }
}
