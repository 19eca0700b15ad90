import CLibUV

/// One accepted TCP socket in the loop's epoll set (`EventLoop`): the server reads and writes the descriptor
/// itself (`recv` into the loop's one buffer, `send` from the socket's output). No libuv handle per connection
/// (a `uv_tcp_t` is 248 bytes, a `uv_poll_t` 160) and no stream machinery: this object and its kernel socket.
///
/// This is the whole I/O surface the rest of the server sees, in the manner of uSockets: subclasses override
/// `received(_:)`, `peerFinished(_:)`, `outputDrained()`, `willClose()` and `didClose()`, and write by appending to
/// `output` (then `markDirty()`). A subclass rather than a delegate object, so that a connection is one allocation:
/// an idle connection costs this object and its kernel socket.
///
/// From `register()` the epoll set holds a retained reference to this object (its events' data); `close()` closes
/// the descriptor at once, and the loop lets that reference go, after `didClose()`, only once the batch of events
/// being dispatched is over, so the object outlives every event that names it.
class Socket {
    unowned(unsafe) let loop: EventLoop
    /// Frames collected during a loop iteration and written once at its end. Its storage is lent by the loop's
    /// pool while bytes wait and handed back once they are all written.
    final var output: [UInt8] = []
    /// The bytes at the front of `output` already written while the kernel buffer was full.
    private var _sent: UInt32 = 0
    /// While waiting for writable: the end of the bytes already offered to the kernel, always a frame boundary
    /// (every append is whole frames), so the frames after it can be dropped without cutting one in two.
    private var _offered: UInt32 = 0
    let fd: Int32
    /// The I/O flags and the poll events asked of libuv, in one word.
    private var bits: UInt16 = 0

    private enum Bits {
        static let isDirty: UInt16 = 1 << 0
        static let readPaused: UInt16 = 1 << 1
        static let waitingWritable: UInt16 = 1 << 2
        static let finishAfterFlush: UInt16 = 1 << 3
        static let isShutdown: UInt16 = 1 << 4
        static let peerEOF: UInt16 = 1 << 5
        static let isClosed: UInt16 = 1 << 6
        static let closeWhenFlushed: UInt16 = 1 << 7
        static let pollShift: UInt16 = 8       // two bits: readable (1), writable (2)
        static let ownerShift: UInt16 = 12     // four bits the subclass may use (`ownerBits`)
    }

    init(loop: EventLoop, fd: Int32) {
        self.loop = loop
        self.fd = fd
    }

    /// Starts watching the descriptor (for readable). On failure the descriptor is closed and the socket is
    /// unusable (nothing retains it). Nagle is off already: an accepted socket inherits TCP_NODELAY from the
    /// listener (Linux), which saves a setsockopt per connection; and accept4 made it non-blocking.
    final func register() -> Bool {
        let me = Unmanaged.passRetained(self)
        if uvc_epoll_set(loop.epollFD, Int32(UVC_EPOLL_ADD), fd, UInt32(UVC_EPOLLIN), me.toOpaque()) != 0 {
            me.release()
            _ = uvc_close_fd(fd)
            setFlag(Bits.isClosed, true)
            return false
        }
        pollEvents = Socket.readable
        loop.socketRegistered()
        return true
    }

    // MARK: - What a subclass is told

    /// Bytes arrived; they may be modified in place and are valid only during the call.
    func received(_ bytes: UnsafeMutableRawBufferPointer) {}
    /// The peer sent FIN (`.eof`) or the read failed. The default closes.
    func peerFinished(_ error: UVError) { close() }
    /// Everything queued was written while reading was paused (a place to resume reading).
    func outputDrained() { resumeReading() }
    /// `close()` was called; the handle is still open.
    func willClose() {}
    /// While finishing (`finishAfterFlush`): some queued bytes were written, or the last of them and FIN.
    func finishingProgressed() {}
    /// After `close()`, once the batch of events it happened in is over: the descriptor is closed, and the socket
    /// is released right after this returns.
    func didClose() {}

    // MARK: - Flags

    @inline(__always) private final func flag(_ mask: UInt16) -> Bool { bits & mask != 0 }
    @inline(__always) private final func setFlag(_ mask: UInt16, _ on: Bool) {
        if on { bits |= mask } else { bits &= ~mask }
    }

    /// Four bits of the flag word that the subclass keeps its own state in, so that it needs no field for it.
    final var ownerBits: UInt8 {
        get { UInt8(truncatingIfNeeded: bits >> Bits.ownerShift) }
        set { bits = bits & ~(0xF << Bits.ownerShift) | UInt16(newValue & 0xF) << Bits.ownerShift }
    }

    final var isClosed: Bool { flag(Bits.isClosed) }
    final var readPaused: Bool { flag(Bits.readPaused) }
    final var isShutdown: Bool { flag(Bits.isShutdown) }
    final var peerEOF: Bool { flag(Bits.peerEOF) }
    /// The kernel took only part of `output`; the rest goes when the socket is writable.
    final var waitingWritable: Bool { flag(Bits.waitingWritable) }

    private static let readable: UInt8 = 1
    private static let writable: UInt8 = 2

    /// The events asked of the epoll set now, so that a change costs one epoll_ctl and no change costs nothing.
    private final var pollEvents: UInt8 {
        get { UInt8(truncatingIfNeeded: bits >> Bits.pollShift) & 3 }
        set { bits = bits & ~(3 << Bits.pollShift) | UInt16(newValue & 3) << Bits.pollShift }
    }

    // Output never nears 4 GiB: reading pauses, and slow receivers are closed, long before (every cap that bounds
    // it is at most 1 GiB). The conversions below trap rather than wrap if that ever failed.
    private final var sent: Int {
        get { Int(_sent) }
        set { _sent = UInt32(newValue) }
    }
    private final var offered: Int {
        get { Int(_offered) }
        set { _offered = UInt32(newValue) }
    }

    /// Bytes accepted for this peer that the kernel has not taken yet.
    @inline(__always) final var outstandingBytes: Int { output.count - sent }

    // MARK: - Readiness

    /// Asks the epoll set for what this socket waits for now: readable unless reading is paused or the peer has
    /// finished sending, writable while output waits for room in the kernel. Returns false if the kernel refused.
    @discardableResult
    private final func updatePoll() -> Bool {
        guard !isClosed else { return true }
        var events: UInt8 = 0
        if !readPaused && !peerEOF { events |= Socket.readable }
        if waitingWritable { events |= Socket.writable }
        if events == pollEvents { return true }
        pollEvents = events
        let mask = (events & Socket.readable != 0 ? UInt32(UVC_EPOLLIN) : 0)
            | (events & Socket.writable != 0 ? UInt32(UVC_EPOLLOUT) : 0)
        return uvc_epoll_set(loop.epollFD, Int32(UVC_EPOLL_MOD), fd, mask,
                             Unmanaged.passUnretained(self).toOpaque()) == 0
    }

    /// The loop's dispatch: what epoll reported for this socket (possibly after it was closed in the same batch).
    /// An error on the socket closes it (as a failed read would). A hang-up is reported whatever was asked for: it
    /// is read (EOF or the error) when reading is on, and closes the socket when nothing here can learn of it.
    final func handleEvents(_ events: UInt32) {
        guard !isClosed else { return }
        if events & UInt32(UVC_EPOLLERR) != 0 {
            loop.io.readErrors &+= 1
            close()
            return
        }
        let wanted = pollEvents
        if events & UInt32(UVC_EPOLLOUT) != 0 && wanted & Socket.writable != 0 { writeOut() }
        if events & UInt32(UVC_EPOLLIN | UVC_EPOLLHUP) != 0 && wanted & Socket.readable != 0 {
            readAvailable()
        }
        if events & UInt32(UVC_EPOLLHUP) != 0 && !isClosed {
            // Both directions are shut: a pending write fails (and closes), and with nothing asked for, no other
            // event comes (a level-triggered hang-up would repeat).
            if waitingWritable { writeOut() }
            if !isClosed && pollEvents & Socket.readable == 0 { close() }
        }
    }

    // MARK: - Reading

    /// Reads into the loop's one read buffer and hands over each read before the next. A read that fills the buffer
    /// is followed by another, up to a bound, so that one fast sender cannot hold the loop.
    private final func readAvailable() {
        let buffer = loop.readBuffer
        var rounds = 0
        while !isClosed && !readPaused && !peerEOF {
            let n = uvc_recv(fd, buffer.baseAddress, buffer.count)
            if n > 0 {
                loop.io.bytesIn &+= UInt64(n)
                received(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
                rounds += 1
                if n < buffer.count || rounds == 16 { return }
            } else if n == 0 {
                peerFinished(.eof)
                return
            } else {
                if n != Int(UVError.again.code) {
                    loop.io.readErrors &+= 1
                    peerFinished(UVError(Int32(n)))
                }
                return
            }
        }
    }

    /// Reads what the kernel holds for this socket now, as a readable event would: a draining server takes in what
    /// its clients sent before the signal, so that nothing they sent while their chat was open is lost.
    final func readPending() {
        readAvailable()
    }

    final func pauseReading() {
        guard !readPaused, !isClosed else { return }
        setFlag(Bits.readPaused, true)
        if !updatePoll() { close() }
    }

    final func resumeReading() {
        guard readPaused, !isClosed else { return }
        setFlag(Bits.readPaused, false)
        if !updatePoll() { close() }
    }

    // MARK: - Writing

    /// Queue bytes; they are written at the end of this loop iteration (one write per socket per iteration).
    @inline(__always)
    final func markDirty() {
        if !flag(Bits.isDirty) {
            setFlag(Bits.isDirty, true)
            loop.markDirty(self)
        }
    }

    /// Borrow an output buffer from the loop before the first append of a batch.
    @inline(__always)
    final func prepareOutput() {
        if output.capacity == 0 { loop.outputPool.lend(&output) }
    }

    final func write(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        prepareOutput()
        output.append(contentsOf: bytes)
        markDirty()
    }

    final func write(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        prepareOutput()
        output.append(contentsOf: bytes)
        markDirty()
    }

    /// The end of the loop iteration: write what this iteration queued, unless earlier output still waits for
    /// the socket to become writable (then it follows that output).
    final func flush() {
        setFlag(Bits.isDirty, false)
        guard !isClosed, !waitingWritable else { return }
        if output.isEmpty {
            allFlushed()
            return
        }
        writeOut()
    }

    /// Hands the kernel as much of `output` as it takes; the rest waits for the socket to become writable.
    private final func writeOut() {
        guard !isClosed else { return }
        let total = output.count
        if sent < total {
            let n = output.withUnsafeBytes { raw in uvc_send(fd, raw.baseAddress! + sent, total - sent) }
            if n < 0 && n != Int(UVError.again.code) {
                loop.io.writeErrors &+= 1
                close()
                return
            }
            if n > 0 {
                sent += n
                loop.io.bytesOut &+= UInt64(n)
                if flag(Bits.finishAfterFlush) { finishingProgressed() }
            }
        }
        if sent == total {
            sent = 0
            offered = 0
            loop.outputPool.recycle(&output)
            if waitingWritable {
                setFlag(Bits.waitingWritable, false)
                if !updatePoll() {
                    close()
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
            output.removeSubrange(0..<sent)
            offered -= sent
            sent = 0
        }
        if !waitingWritable {
            setFlag(Bits.waitingWritable, true)
            if !updatePoll() { close() }
        }
    }

    /// Forget the queued frames that no write has reached yet (a frame the kernel took part of is kept whole).
    final func dropUnsentFrames() {
        if output.count > offered { output.removeSubrange(offered...) }
    }

    private final func allFlushed() {
        if flag(Bits.finishAfterFlush) {
            if peerEOF || flag(Bits.closeWhenFlushed) { close() } else { shutdownNow() }
        } else if readPaused {
            outputDrained()
        }
    }

    // MARK: - Closing

    /// Write what is queued, then send FIN and keep reading (and discarding) until the peer closes; the owner
    /// closes at its deadline if the peer never does.
    final func finishAfterFlush() {
        guard !isClosed else { return }
        setFlag(Bits.finishAfterFlush, true)
        if !flag(Bits.isDirty) && !waitingWritable { flush() }
    }

    /// Write what is queued, then close the socket at once: for a WebSocket whose closing handshake is complete,
    /// which the server ends first (RFC 6455 sections 5.5.1 and 7.1.1). No FIN-and-linger round trip: the peer has
    /// said it sends nothing more, so nothing unread can turn the close into a reset of what it still reads.
    final func closeAfterFlush() {
        guard !isClosed else { return }
        setFlag(Bits.closeWhenFlushed, true)
        finishAfterFlush()
    }

    /// The peer sent FIN: read no more. The owner goes on writing and decides when to finish.
    final func stopReadingAtPeerEOF() -> Bool {
        setFlag(Bits.peerEOF, true)
        if !updatePoll() {
            close()
            return false
        }
        return true
    }

    /// The peer sent FIN while answers are still queued: write them, then close (a half-close means it will read
    /// what we send before it goes). False if the socket could not be set up for that and was closed.
    final func finishAfterPeerEOF() -> Bool {
        setFlag(Bits.peerEOF, true)
        setFlag(Bits.readPaused, false)
        if !updatePoll() {
            close()
            return false
        }
        setFlag(Bits.finishAfterFlush, true)
        return true
    }

    private final func shutdownNow() {
        guard !isShutdown, !isClosed else { return }
        setFlag(Bits.isShutdown, true)
        // The read side stays open so that the peer's remaining bytes are drained, not answered with RST; EOF or
        // the close deadline ends the connection.
        if readPaused {
            setFlag(Bits.readPaused, false)
            if !updatePoll() {
                close()
                return
            }
        }
        if uvc_shutdown_write(fd) != 0 {
            close()
            return
        }
        finishingProgressed()
    }

    /// Close the socket at once. Idempotent. The descriptor is closed here (which also takes it out of the epoll
    /// set); `didClose()` and the release of this object follow after the current batch of events.
    final func close() {
        guard !isClosed else { return }
        willClose()
        setFlag(Bits.isClosed, true)
        output = []
        sent = 0
        offered = 0
        _ = uvc_close_fd(fd)
        loop.socketClosed(self)
    }

    /// From the loop, after the batch this socket was closed in.
    final func released() {
        didClose()
    }
}

@available(*, unavailable)
extension Socket: Sendable {}
