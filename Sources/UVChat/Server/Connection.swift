import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// One accepted TCP socket: its libuv handle, its protocol state and its outgoing bytes.
///
/// The handle is heap-allocated and freed only in the `uv_close` callback. The handle's `data` holds a retained
/// reference to this object from `start()` until that callback, so the object outlives every libuv callback.
final class Connection {
    enum Phase: Equatable {
        case http
        case chat
        case echo
        /// We sent our close frame (or an HTTP error) and wait for the peer's close frame or EOF, then close.
        case closing
    }

    // The server outlives every connection (connections live inside its loop), so no reference counting here.
    unowned(unsafe) let server: Server
    let id: PeerID
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    var stream: UnsafeMutablePointer<uv_stream_t> { uvc_tcp_as_stream(tcp) }
    var handle: UnsafeMutablePointer<uv_handle_t> { uvc_tcp_as_handle(tcp) }

    var phase: Phase = .http
    var address: ClientAddress = .unknown

    // HTTP
    var httpParser: HTTPRequestParser
    var httpDeadline: UInt64 = 0            // ms (uv_now): the head must be complete, or the keep-alive idle ends
    var headInProgress = false              // part of a request head has arrived
    var discardBody = 0                     // request body bytes still to skip
    var stash: [UInt8] = []                 // unparsed input kept while paused for backpressure

    // WebSocket
    var wsParser: WebSocketParser? = nil
    var lastSeen: UInt64 = 0                // ms: last complete frame from the peer (a trickled frame is not life)
    var pingOutstanding = false
    var sentClose = false
    var closeDeadline: UInt64 = 0
    var countedAsChat = false

    // Chat
    unowned(unsafe) var partner: Connection? = nil
    var interests: [String] = []
    var lastOnline: Int32 = -1              // the online count this client was last told
    var bucket = TokenBucket(tokens: 0, at: 0)

    // Output: `pending` collects frames during a loop iteration; one write at a time is in flight.
    var pending: [UInt8] = []
    var inFlightBytes = 0
    var isDirty = false
    var readPaused = false
    /// After everything queued is written, shut down the write side and close.
    var finishAfterFlush = false
    var isShutdown = false
    var peerEOF = false
    var isClosed = false

    init(server: Server, id: PeerID, limits: HTTPLimits) {
        self.server = server
        self.id = id
        self.tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        self.httpParser = HTTPRequestParser(limits: limits)
    }

    /// Bytes accepted for this peer that the kernel has not taken yet.
    var outstandingBytes: Int { pending.count + inFlightBytes }

    var isOpenWebSocket: Bool { (phase == .chat || phase == .echo) && !sentClose }

    // MARK: - Reading

    func startReading() -> Bool {
        let rc = uv_read_start(stream, Connection.onAlloc, Connection.onRead)
        return rc == 0
    }

    static let onAlloc: uv_alloc_cb = { handle, _, buf in
        let conn = Unmanaged<Connection>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
        let rb = conn.server.readBuffer
        buf!.pointee = uv_buf_init(rb.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(rb.count))
    }

    static let onRead: uv_read_cb = { stream, nread, _ in
        let conn = Unmanaged<Connection>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
        if nread > 0 {
            let input = UnsafeMutableRawBufferPointer(rebasing: conn.server.readBuffer[0..<Int(nread)])
            conn.received(input)
        } else if nread < 0 {
            conn.peerClosed(UVError(Int32(nread)))
        }
        // nread == 0 is EAGAIN, not EOF: nothing to do.
    }

    func received(_ input: UnsafeMutableRawBufferPointer) {
        server.metrics.bytesIn &+= UInt64(input.count)
        switch phase {
        case .http:
            handleHTTP(input, from: 0)
        case .chat, .echo:
            handleFrames(input, from: 0)
        case .closing:
            if sentClose && wsParser != nil && !isShutdown {
                handleFrames(input, from: 0)   // waiting for the peer's close frame
            }
            // Otherwise the input is discarded while we linger.
        }
        if !isClosed && !readPaused && outstandingBytes > server.readPauseThreshold(self) {
            pauseReading()
        }
    }

    func pauseReading() {
        guard !readPaused, !isClosed else { return }
        readPaused = true
        _ = uv_read_stop(stream)
    }

    func resumeReading() {
        guard readPaused, !isClosed else { return }
        readPaused = false
        if !stash.isEmpty {
            var saved = stash
            stash = []
            saved.withUnsafeMutableBytes { handleHTTP($0, from: 0) }
            if readPaused || isClosed { return }
        }
        if uv_read_start(stream, Connection.onAlloc, Connection.onRead) != 0 { closeNow() }
    }

    /// EOF or a read error: the peer is gone (a partner counts as gone from the moment its TCP close is seen).
    func peerClosed(_ error: UVError) {
        guard error == .eof, outstandingBytes > 0, phase != .closing || !isShutdown else {
            if error != .eof { server.metrics.readErrors &+= 1 }
            closeNow()
            return
        }
        // A half-close: the peer will read no more requests from us only after our answers, so write them first.
        peerEOF = true
        _ = uv_read_stop(stream)
        readPaused = false
        stash = []
        if phase != .closing { leavePhase() }
        phase = .closing
        finishAfterFlush = true
        if closeDeadline == 0 { closeDeadline = server.nowMillis + server.closeTimeoutMillis }
    }

    // MARK: - Writing

    /// Queue bytes; they are written at the end of this loop iteration (one write per connection per iteration).
    @inline(__always)
    func markDirty() {
        if !isDirty {
            isDirty = true
            server.dirty.append(self)
        }
    }

    func enqueue(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        pending.append(contentsOf: bytes)
        markDirty()
    }

    func enqueue(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        pending.append(contentsOf: bytes)
        markDirty()
    }

    /// Try to hand `pending` to the kernel at once; queue the rest as the single write in flight.
    func flush() {
        isDirty = false
        guard !isClosed, inFlightBytes == 0 else { return }
        if pending.isEmpty {
            allFlushed()
            return
        }
        let total = pending.count
        let written: Int32 = pending.withUnsafeMutableBytes { raw in
            var buf = uv_buf_init(raw.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(raw.count))
            return uv_try_write(stream, &buf, 1)
        }
        var done = 0
        if written >= 0 {
            done = Int(written)
        } else if written != UVError.again.code {
            server.metrics.writeErrors &+= 1
            closeNow()
            return
        }
        server.metrics.bytesOut &+= UInt64(done)
        if done == total {
            releasePendingIfLarge()
            pending.removeAll(keepingCapacity: true)
            allFlushed()
            return
        }
        // The kernel buffer is full: copy the rest into a block that lives until the write callback.
        let rest = total - done
        let block = UnsafeMutableRawPointer.allocate(byteCount: rest, alignment: 1)
        pending.withUnsafeBytes { raw in block.copyMemory(from: raw.baseAddress! + done, byteCount: rest) }
        pending.removeAll(keepingCapacity: true)
        let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        req.pointee.data = block
        var buf = uv_buf_init(block.assumingMemoryBound(to: CChar.self), UInt32(rest))
        let rc = uv_write(req, stream, &buf, 1, Connection.onWrite)
        if rc != 0 {
            block.deallocate()
            req.deallocate()
            server.metrics.writeErrors &+= 1
            closeNow()
            return
        }
        inFlightBytes = rest
    }

    private func allFlushed() {
        if finishAfterFlush {
            if peerEOF { closeNow() } else { shutdownNow() }
        } else if readPaused {
            resumeReading()
        }
    }

    static let onWrite: uv_write_cb = { req, status in
        let block = req!.pointee.data!
        let stream = req!.pointee.handle!
        block.deallocate()
        req!.deallocate()
        let conn = Unmanaged<Connection>.fromOpaque(stream.pointee.data).takeUnretainedValue()
        conn.server.metrics.bytesOut &+= UInt64(conn.inFlightBytes)
        conn.inFlightBytes = 0
        if conn.isClosed { return }   // UV_ECANCELED after uv_close
        if status < 0 {
            conn.server.metrics.writeErrors &+= 1
            conn.closeNow()
            return
        }
        conn.flush()
    }

    /// An idle connection should hold no large buffer.
    @inline(__always)
    func releasePendingIfLarge() {
        if pending.capacity > 64 * 1024 { pending = [] }
    }

    func releaseIdleBuffers() {
        if pending.isEmpty && inFlightBytes == 0 && pending.capacity > 0 { pending = [] }
        wsParser?.shrinkIfIdle()
        if phase != .http && stash.capacity > 0 && stash.isEmpty { stash = [] }
    }

    // MARK: - Closing

    /// Write what is queued, then send FIN and linger (discarding input) until the peer closes or the deadline passes.
    func finish() {
        guard !isClosed else { return }
        if phase != .closing { leavePhase() }
        phase = .closing
        finishAfterFlush = true
        if closeDeadline == 0 { closeDeadline = server.nowMillis + server.closeTimeoutMillis }
        if !isDirty && inFlightBytes == 0 { flush() }
    }

    private func shutdownNow() {
        guard !isShutdown, !isClosed else { return }
        isShutdown = true
        if readPaused {
            readPaused = false
            _ = uv_read_start(stream, Connection.onAlloc, Connection.onRead)
        }
        let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        let rc = uv_shutdown(req, stream) { req, _ in
            req!.deallocate()
            // The read side stays open so that the peer's remaining bytes are drained, not answered with RST;
            // EOF or the close deadline ends the connection.
        }
        if rc != 0 {
            req.deallocate()
            closeNow()
        }
    }

    /// Leave whatever the connection was doing (queue, pair, counts) so nobody else refers to it.
    func leavePhase() {
        if phase == .chat { server.chatLeft(self) }
        if countedAsChat {
            countedAsChat = false
            server.chatConnectionClosed(self)
        }
    }

    /// Close the socket at once. Idempotent; the handle is freed in the close callback.
    func closeNow() {
        guard !isClosed else { return }
        leavePhase()
        isClosed = true
        phase = .closing
        pending = []
        stash = []
        uv_close(handle, Connection.onClose)
    }

    static let onClose: uv_close_cb = { handle in
        let conn = Unmanaged<Connection>.fromOpaque(handle!.pointee.data).takeRetainedValue()
        // Poison the pointer so that a late callback fails loudly instead of using freed memory.
        handle!.pointee.data = UnsafeMutableRawPointer(bitPattern: 0xdead_beef)
        conn.server.connectionClosed(conn)
        conn.tcp.deallocate()
    }
}

@available(*, unavailable)
extension Connection: Sendable {}
