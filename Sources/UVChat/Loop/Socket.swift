import CLibUV

/// One accepted TCP socket driven through a `uv_poll_t`: the server reads and writes the descriptor itself
/// (`recv` into the loop's one buffer, `send` from the socket's output) and asks libuv only for readiness. That is
/// 160 bytes of handle against 248 for a `uv_tcp_t`, and no stream machinery per connection.
///
/// This is the whole I/O surface the rest of the server sees, in the manner of uSockets: subclasses override
/// `received(_:)`, `peerFinished(_:)`, `outputDrained()`, `willClose()` and `didClose()`, and write by appending to
/// `output` (then `markDirty()`). A subclass rather than a delegate object, so that a connection is one allocation:
/// an idle connection costs this object, its poll handle and its kernel socket.
///
/// The handle comes from the loop's slab and goes back only in its `uv_close` callback, which also closes the
/// descriptor; its `data` holds a retained reference to this object from `register()` until that callback, so the
/// object outlives every libuv callback.
class Socket {
    unowned(unsafe) let loop: EventLoop
    let poll: UnsafeMutablePointer<uv_poll_t>
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
        static let pollShift: UInt16 = 8       // two bits: UV_READABLE (1), UV_WRITABLE (2)
        static let ownerShift: UInt16 = 12     // four bits the subclass may use (`ownerBits`)
    }

    init(loop: EventLoop, fd: Int32) {
        self.loop = loop
        self.fd = fd
        poll = loop.pollHandles.allocate()
    }

    /// Starts watching the descriptor. On failure the handle and the descriptor are given back and the socket is
    /// unusable (nothing retains it).
    final func register() -> Bool {
        let rc = uv_poll_init_socket(loop.raw, poll, fd)
        if rc != 0 {
            loop.pollHandles.deallocate(poll)
            _ = uvc_close_fd(fd)
            setFlag(Bits.isClosed, true)
            return false
        }
        poll.pointee.data = Unmanaged.passRetained(self).toOpaque()
        uvc_nodelay(fd)
        if !updatePoll() { close() }
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
    /// The handle's close callback: the descriptor is closed, the handle is about to go back to the slab.
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

    /// The events asked of libuv now, so that a change costs one epoll_ctl and no change costs nothing.
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

    /// Asks libuv for what this socket waits for now: readable unless reading is paused or the peer has finished
    /// sending, writable while output waits for room in the kernel. Returns false if libuv refused.
    @discardableResult
    private final func updatePoll() -> Bool {
        guard !isClosed else { return true }
        var events: UInt8 = 0
        if !readPaused && !peerEOF { events |= UInt8(UV_READABLE.rawValue) }
        if waitingWritable { events |= UInt8(UV_WRITABLE.rawValue) }
        if events == pollEvents { return true }
        pollEvents = events
        let rc = events == 0 ? uv_poll_stop(poll) : uv_poll_start(poll, Int32(events), Socket.onPoll)
        return rc == 0
    }

    private static let onPoll: uv_poll_cb = { handle, status, events in
        let socket = Unmanaged<Socket>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
        if status < 0 {
            socket.loop.io.readErrors &+= 1
            socket.close()
            return
        }
        if events & Int32(UV_WRITABLE.rawValue) != 0 { socket.writeOut() }
        if events & Int32(UV_READABLE.rawValue) != 0 { socket.readAvailable() }
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
            if peerEOF { close() } else { shutdownNow() }
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

    /// Close the socket at once. Idempotent; the handle is freed, and the descriptor closed, in the close callback.
    final func close() {
        guard !isClosed else { return }
        willClose()
        setFlag(Bits.isClosed, true)
        output = []
        sent = 0
        offered = 0
        uv_close(uvc_poll_as_handle(poll), Socket.onClose)
    }

    private static let onClose: uv_close_cb = { handle in
        let socket = Unmanaged<Socket>.fromOpaque(handle!.pointee.data).takeRetainedValue()
        // Poison the pointer so that a late callback fails loudly instead of using freed memory.
        handle!.pointee.data = UnsafeMutableRawPointer(bitPattern: 0xdead_beef)
        _ = uvc_close_fd(socket.fd)
        socket.didClose()
        socket.loop.pollHandles.deallocate(socket.poll)
    }
}

@available(*, unavailable)
extension Socket: Sendable {}
