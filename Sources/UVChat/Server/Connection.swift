import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// What only an HTTP connection needs: the request parser and its buffer, the head and keep-alive deadline, and
/// input held back while the client does not read its answers. Dropped at the upgrade, so a WebSocket carries none
/// of it.
final class HTTPState {
    var parser: HTTPRequestParser
    /// ms (uv_now): the head must be complete by then, or the keep-alive idle ends.
    var deadline: UInt64
    /// Part of a request head has arrived.
    var headInProgress = false
    /// Request body bytes still to skip.
    var discardBody = 0
    /// Unparsed input kept while reading is paused for backpressure.
    var stash: [UInt8] = []

    init(limits: HTTPLimits, deadline: UInt64) {
        parser = HTTPRequestParser(limits: limits)
        self.deadline = deadline
    }
}

/// One accepted TCP socket: its descriptor, the libuv poll handle that watches it, its protocol state and its
/// outgoing bytes.
///
/// The server reads and writes the socket itself (recv and send into the loop's shared read buffer and the
/// connection's output) and asks libuv only for readiness, through a `uv_poll_t`: 160 bytes against 248 for a
/// `uv_tcp_t`, and no stream machinery per connection. The handle is heap-allocated and freed only in the
/// `uv_close` callback, which also closes the descriptor. The handle's `data` holds a retained reference to this
/// object from the accept until that callback, so the object outlives every libuv callback.
final class Connection {
    enum Phase: UInt8 {
        case http
        case chat
        case echo
        /// We sent our close frame (or an HTTP error) and wait for the peer's close frame or EOF, then close.
        case closing
    }

    // Fields are declared widest first (Swift lays a class out in declaration order), so that the object carries
    // almost no padding: an idle paired connection costs this object, its poll handle and its kernel socket.

    // The server outlives every connection (connections live inside its loop), so no reference counting here.
    unowned(unsafe) let server: Server
    let poll: UnsafeMutablePointer<uv_poll_t>
    var handle: UnsafeMutablePointer<uv_handle_t> { uvc_poll_as_handle(poll) }

    /// HTTP parsing and keep-alive state, until the upgrade.
    var http: HTTPState?

    // Chat
    unowned(unsafe) var partner: Connection? = nil
    var interests: [String] = []
    var bucket = TokenBucket(tokens: 0, at: 0)

    // Output: `pending` collects frames during a loop iteration and is written once at its end. Its storage is
    // lent by the server while bytes wait and handed back once they are all written, so an idle connection holds
    // no buffer.
    var pending: [UInt8] = []

    // WebSocket
    var lastSeen: UInt64 = 0                // ms: last complete frame from the peer (a trickled frame is not life)
    var closeDeadline: UInt64 = 0
    var address: ClientAddress = .unknown
    var wsParser: WebSocketParser? = nil
    /// The phase, the poll events asked of libuv and the flags below, in one word (see `Bits`).
    private var bits: UInt16 = 0

    /// The bytes at the front of `pending` already written while the kernel buffer was full.
    private var _sent: UInt32 = 0
    /// While waiting for writable: the end of the bytes already offered to the kernel, always a frame boundary
    /// (every append is whole frames), so the frames after it can be dropped without cutting one in two.
    private var _offered: UInt32 = 0
    let fd: Int32
    let id: PeerID
    var lastOnline: Int32 = -1              // the online count this client was last told

    private enum Bits {
        static let pingOutstanding: UInt16 = 1 << 0
        static let sentClose: UInt16 = 1 << 1
        static let countedAsChat: UInt16 = 1 << 2
        static let isDirty: UInt16 = 1 << 3
        static let readPaused: UInt16 = 1 << 4
        static let waitingWritable: UInt16 = 1 << 5
        static let finishAfterFlush: UInt16 = 1 << 6
        static let isShutdown: UInt16 = 1 << 7
        static let peerEOF: UInt16 = 1 << 8
        static let isClosed: UInt16 = 1 << 9
        static let pollShift: UInt16 = 10       // two bits: UV_READABLE (1), UV_WRITABLE (2)
        static let phaseShift: UInt16 = 12      // two bits: Phase's raw value
    }

    @inline(__always)
    private func flag(_ mask: UInt16) -> Bool { bits & mask != 0 }

    @inline(__always)
    private func setFlag(_ mask: UInt16, _ on: Bool) {
        if on { bits |= mask } else { bits &= ~mask }
    }

    var phase: Phase {
        get { Phase(rawValue: UInt8(truncatingIfNeeded: bits >> Bits.phaseShift) & 3)! }
        set { bits = bits & ~(3 << Bits.phaseShift) | UInt16(newValue.rawValue) << Bits.phaseShift }
    }
    /// The events asked of libuv now (UV_READABLE, UV_WRITABLE), so that a change costs one epoll_ctl and no
    /// change costs nothing.
    private var pollEvents: UInt8 {
        get { UInt8(truncatingIfNeeded: bits >> Bits.pollShift) & 3 }
        set { bits = bits & ~(3 << Bits.pollShift) | UInt16(newValue & 3) << Bits.pollShift }
    }
    var pingOutstanding: Bool {
        get { flag(Bits.pingOutstanding) }
        set { setFlag(Bits.pingOutstanding, newValue) }
    }
    var sentClose: Bool {
        get { flag(Bits.sentClose) }
        set { setFlag(Bits.sentClose, newValue) }
    }
    var countedAsChat: Bool {
        get { flag(Bits.countedAsChat) }
        set { setFlag(Bits.countedAsChat, newValue) }
    }
    var isDirty: Bool {
        get { flag(Bits.isDirty) }
        set { setFlag(Bits.isDirty, newValue) }
    }
    var readPaused: Bool {
        get { flag(Bits.readPaused) }
        set { setFlag(Bits.readPaused, newValue) }
    }
    /// The kernel took only part of `pending`; the rest goes when the socket is writable.
    var waitingWritable: Bool {
        get { flag(Bits.waitingWritable) }
        set { setFlag(Bits.waitingWritable, newValue) }
    }
    /// After everything queued is written, shut down the write side and close.
    var finishAfterFlush: Bool {
        get { flag(Bits.finishAfterFlush) }
        set { setFlag(Bits.finishAfterFlush, newValue) }
    }
    var isShutdown: Bool {
        get { flag(Bits.isShutdown) }
        set { setFlag(Bits.isShutdown, newValue) }
    }
    var peerEOF: Bool {
        get { flag(Bits.peerEOF) }
        set { setFlag(Bits.peerEOF, newValue) }
    }
    var isClosed: Bool {
        get { flag(Bits.isClosed) }
        set { setFlag(Bits.isClosed, newValue) }
    }

    // Output never nears 4 GiB: reading pauses, and slow receivers are closed, long before.
    var sent: Int {
        get { Int(_sent) }
        set { _sent = UInt32(newValue) }
    }
    private var offered: Int {
        get { Int(_offered) }
        set { _offered = UInt32(newValue) }
    }

    init(server: Server, id: PeerID, fd: Int32, http: HTTPState) {
        self.server = server
        self.id = id
        self.fd = fd
        self.http = http
        self.poll = server.pollHandles.allocate()
    }

    /// Bytes accepted for this peer that the kernel has not taken yet.
    var outstandingBytes: Int { pending.count - sent }

    var isOpenWebSocket: Bool { (phase == .chat || phase == .echo) && !sentClose }

    // MARK: - Readiness

    /// Asks libuv for what this connection waits for now: readable unless reading is paused or the peer has
    /// finished sending, writable while output waits for room in the kernel. Returns false if libuv refused.
    @discardableResult
    func updatePoll() -> Bool {
        guard !isClosed else { return true }
        var events: UInt8 = 0
        if !readPaused && !peerEOF { events |= UInt8(UV_READABLE.rawValue) }
        if waitingWritable { events |= UInt8(UV_WRITABLE.rawValue) }
        if events == pollEvents { return true }
        pollEvents = events
        let rc = events == 0 ? uv_poll_stop(poll) : uv_poll_start(poll, Int32(events), Connection.onPoll)
        return rc == 0
    }

    static let onPoll: uv_poll_cb = { handle, status, events in
        let conn = Unmanaged<Connection>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
        if status < 0 {
            conn.server.metrics.readErrors &+= 1
            conn.closeNow()
            return
        }
        if events & Int32(UV_WRITABLE.rawValue) != 0 { conn.writeOut() }
        if events & Int32(UV_READABLE.rawValue) != 0 { conn.readAvailable() }
    }

    // MARK: - Reading

    /// Reads into the loop's one read buffer and handles each read before the next. A read that fills the buffer
    /// is followed by another, up to a bound, so that one fast sender cannot hold the loop.
    func readAvailable() {
        let buffer = server.readBuffer
        var rounds = 0
        while !isClosed && !readPaused && !peerEOF {
            let n = uvc_recv(fd, buffer.baseAddress, buffer.count)
            if n > 0 {
                received(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
                rounds += 1
                if n < buffer.count || rounds == 16 { return }
            } else if n == 0 {
                peerClosed(.eof)
                return
            } else {
                if n != Int(UVError.again.code) { peerClosed(UVError(Int32(n))) }
                return
            }
        }
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
        if !updatePoll() { closeNow() }
    }

    func resumeReading() {
        guard readPaused, !isClosed else { return }
        readPaused = false
        if let http, !http.stash.isEmpty {
            var saved = http.stash
            http.stash = []
            saved.withUnsafeMutableBytes { handleHTTP($0, from: 0) }
            if readPaused || isClosed { return }
        }
        if !updatePoll() { closeNow() }
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
        readPaused = false
        http = nil
        if !updatePoll() {
            closeNow()
            return
        }
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

    /// Borrow an output buffer from the server before the first append of a batch.
    @inline(__always)
    func prepareOutput() {
        if pending.capacity == 0 { server.lendOutputBuffer(&pending) }
    }

    func enqueue(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        prepareOutput()
        pending.append(contentsOf: bytes)
        markDirty()
    }

    func enqueue(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        prepareOutput()
        pending.append(contentsOf: bytes)
        markDirty()
    }

    /// The end of the loop iteration: write what this iteration queued, unless earlier output still waits for
    /// the socket to become writable (then it follows that output).
    func flush() {
        isDirty = false
        guard !isClosed, !waitingWritable else { return }
        if pending.isEmpty {
            allFlushed()
            return
        }
        writeOut()
    }

    /// Hands the kernel as much of `pending` as it takes; the rest waits for the socket to become writable.
    func writeOut() {
        guard !isClosed else { return }
        let total = pending.count
        if sent < total {
            let n = pending.withUnsafeBytes { raw in uvc_send(fd, raw.baseAddress! + sent, total - sent) }
            if n < 0 && n != Int(UVError.again.code) {
                server.metrics.writeErrors &+= 1
                closeNow()
                return
            }
            if n > 0 {
                sent += n
                server.metrics.bytesOut &+= UInt64(n)
            }
        }
        if sent == total {
            sent = 0
            offered = 0
            server.recycleOutputBuffer(&pending)
            if waitingWritable {
                waitingWritable = false
                if !updatePoll() {
                    closeNow()
                    return
                }
            }
            allFlushed()
            return
        }
        offered = total
        // Written bytes at the front are dropped once they are most of a big buffer, so a slow reader that keeps
        // up in the end does not pin them.
        if sent >= 64 * 1024 && sent * 2 >= total {
            pending.removeSubrange(0..<sent)
            offered -= sent
            sent = 0
        }
        if !waitingWritable {
            waitingWritable = true
            if !updatePoll() { closeNow() }
        }
    }

    /// Forget the queued frames that no write has reached yet (a frame the kernel took part of is kept whole).
    func dropUnsentFrames() {
        if pending.count > offered { pending.removeSubrange(offered...) }
    }

    private func allFlushed() {
        if finishAfterFlush {
            if peerEOF { closeNow() } else { shutdownNow() }
        } else if readPaused {
            resumeReading()
        }
    }

    /// Called by the sweep for a quiet connection: reassembly buffers go back to the allocator.
    func releaseIdleBuffers() {
        wsParser?.shrinkIfIdle()
    }

    // MARK: - Closing

    /// Write what is queued, then send FIN and linger (discarding input) until the peer closes or the deadline passes.
    func finish() {
        guard !isClosed else { return }
        if phase != .closing { leavePhase() }
        phase = .closing
        http = nil   // nothing more is parsed; the lingering connection keeps no request buffer
        finishAfterFlush = true
        if closeDeadline == 0 { closeDeadline = server.nowMillis + server.closeTimeoutMillis }
        if !isDirty && !waitingWritable { flush() }
    }

    private func shutdownNow() {
        guard !isShutdown, !isClosed else { return }
        isShutdown = true
        // The read side stays open so that the peer's remaining bytes are drained, not answered with RST; EOF or
        // the close deadline ends the connection.
        if readPaused {
            readPaused = false
            if !updatePoll() {
                closeNow()
                return
            }
        }
        if uvc_shutdown_write(fd) != 0 { closeNow() }
    }

    /// Leave whatever the connection was doing (queue, pair, counts) so nobody else refers to it.
    func leavePhase() {
        if phase == .chat { server.chatLeft(self) }
        if countedAsChat {
            countedAsChat = false
            server.chatConnectionClosed(self)
        }
    }

    /// Close the socket at once. Idempotent; the handle is freed, and the descriptor closed, in the close callback.
    func closeNow() {
        guard !isClosed else { return }
        leavePhase()
        isClosed = true
        phase = .closing
        pending = []
        sent = 0
        offered = 0
        http = nil
        uv_close(handle, Connection.onClose)
    }

    static let onClose: uv_close_cb = { handle in
        let conn = Unmanaged<Connection>.fromOpaque(handle!.pointee.data).takeRetainedValue()
        // Poison the pointer so that a late callback fails loudly instead of using freed memory.
        handle!.pointee.data = UnsafeMutableRawPointer(bitPattern: 0xdead_beef)
        _ = uvc_close_fd(conn.fd)
        conn.server.connectionClosed(conn)
        conn.server.pollHandles.deallocate(conn.poll)
    }
}

@available(*, unavailable)
extension Connection: Sendable {}

@available(*, unavailable)
extension HTTPState: Sendable {}
