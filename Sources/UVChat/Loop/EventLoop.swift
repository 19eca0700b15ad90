import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// The one libuv loop and what every socket on it shares: the receive buffer, the sockets' epoll set, the output
/// pool, the list of sockets with output to write, and the I/O counters. Timers, signals and the stop handle are
/// made here too, so nothing outside `Loop/` touches a libuv handle.
///
/// Connections are not libuv handles. They sit in an epoll set of the loop's own, whose descriptor libuv watches
/// with one poll handle: when it is readable, `dispatchReady()` takes the ready sockets (without waiting) and hands
/// each its events, in the manner of uSockets. A connection so costs one `epoll_ctl` to watch and none to forget
/// (closing the descriptor takes it out of the set), and no 160-byte handle. A closed socket is released (its
/// `didClose()`, then its memory) only after the batch of events it was closed in, or by the idle handle for one
/// closed elsewhere, so that no event of a batch can reach freed memory: the same guarantee `uv_close` callbacks
/// gave.
///
/// Output is written the way Redis does it before it sleeps: code only appends to a socket's buffer and marks it
/// dirty; a check handle (run once per loop iteration, after the callbacks) and the end of every timer callback
/// write all dirty sockets, so a burst of frames to one receiver costs one `send`.
final class EventLoop {
    let raw: UnsafeMutablePointer<uv_loop_t>
    /// Lent to every read callback (reads never nest), so no socket owns a receive buffer.
    let readBuffer: UnsafeMutableRawBufferPointer
    /// The sockets' epoll set.
    let epollFD: Int32
    var outputPool = OutputPool()
    var io = IOCounters()
    private var dirty: [Socket] = []
    /// The object the loop's sockets belong to (the server), unretained: it owns the loop and outlives it. Sockets
    /// reach it through here instead of carrying a pointer of their own.
    var owner: UnsafeMutableRawPointer?
    private var flushCheck: UnsafeMutablePointer<uv_check_t>?
    /// Runs at the start of every flush: a cluster node sends what the iteration gathered for other nodes (one
    /// PUBLISH per node) before the sockets are written. nil on a single node.
    var beforeFlush: (() -> Void)?
    /// libuv's watch on `epollFD`, referenced (keeping the loop alive) while sockets are registered.
    private var epollWatch: UnsafeMutablePointer<uv_poll_t>?
    /// Runs while closed sockets wait for their release (it also keeps libuv from sleeping meanwhile).
    private var releaser: UnsafeMutablePointer<uv_idle_t>?
    private var releaserRunning = false
    /// Closed sockets not yet released, each still holding the reference its registration took.
    private var closed: [Socket] = []
    /// Sockets registered and not yet released.
    private(set) var registeredSockets = 0
    private static let batch = 256
    private let readyOwners = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: EventLoop.batch)
    private let readyEvents = UnsafeMutablePointer<UInt32>.allocate(capacity: EventLoop.batch)

    init() throws {
        let ep = uvc_epoll_create()
        if ep < 0 { throw UVError(ep) }
        epollFD = ep
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        raw = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let rc = uv_loop_init(raw)
        if rc != 0 {
            raw.deallocate()
            readBuffer.deallocate()
            _ = uvc_close_fd(ep)
            throw UVError(rc)
        }
        raw.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let watch = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
        let idle = UnsafeMutablePointer<uv_idle_t>.allocate(capacity: 1)
        guard uv_poll_init(raw, watch, ep) == 0, uv_idle_init(raw, idle) == 0 else {
            // Nothing was started: the loop can be closed with the handles unclosed only because none is open.
            watch.deallocate()
            idle.deallocate()
            _ = uv_loop_close(raw)
            raw.deallocate()
            readBuffer.deallocate()
            _ = uvc_close_fd(ep)
            throw ServerError("cannot watch the sockets' epoll set")
        }
        epollWatch = watch
        releaser = idle
        uv_unref(uvc_poll_as_handle(watch))
        try UVError.check(uv_poll_start(watch, Int32(UV_READABLE.rawValue)) { h, _, _ in
            EventLoop.from(h!.pointee.loop).dispatchReady()
        })
    }

    deinit {
        readyOwners.deallocate()
        readyEvents.deallocate()
        readBuffer.deallocate()
        raw.deallocate()
    }

    // MARK: - The sockets' epoll set

    /// A socket was added to the set (`Socket.register`): the loop stays alive while any is.
    func socketRegistered() {
        registeredSockets += 1
        if registeredSockets == 1, let w = epollWatch { uv_ref(uvc_poll_as_handle(w)) }
    }

    /// A socket was closed (its descriptor too): released after the current batch of events.
    func socketClosed(_ socket: Socket) {
        closed.append(socket)
        if !releaserRunning, let r = releaser {
            releaserRunning = true
            _ = uv_idle_start(r) { h in EventLoop.from(h!.pointee.loop).releaseClosed() }
        }
    }

    /// The ready sockets, up to a batch, each given its events. More than a batch wait for the next iteration (the
    /// set stays readable, so libuv comes straight back), and the output of this batch is written in between.
    private func dispatchReady() {
        let n = Int(uvc_epoll_ready(epollFD, readyOwners, readyEvents, Int32(EventLoop.batch)))
        var i = 0
        while i < n {
            Unmanaged<Socket>.fromOpaque(readyOwners[i].unsafelyUnwrapped).takeUnretainedValue().handleEvents(readyEvents[i])
            i += 1
        }
        releaseClosed()
    }

    /// Each closed socket's `didClose()`, then the reference its registration took (a socket closed by a
    /// `didClose()` goes in the same pass).
    private func releaseClosed() {
        while !closed.isEmpty {
            let done = closed
            closed.removeAll(keepingCapacity: true)
            for socket in done {
                socket.released()
                registeredSockets -= 1
                Unmanaged.passUnretained(socket).release()
            }
        }
        if registeredSockets == 0, let w = epollWatch { uv_unref(uvc_poll_as_handle(w)) }
        if releaserRunning, let r = releaser {
            releaserRunning = false
            _ = uv_idle_stop(r)
        }
    }

    static func from(_ raw: UnsafeMutablePointer<uv_loop_t>?) -> EventLoop {
        Unmanaged<EventLoop>.fromOpaque(raw!.pointee.data).takeUnretainedValue()
    }

    /// The loop's cached clock in milliseconds (updated once per iteration; cheap to read per message).
    var nowMillis: UInt64 { uv_now(raw) }
    /// A monotonic clock in nanoseconds, read fresh.
    static var hrtimeNanos: UInt64 { uv_hrtime() }

    /// A write that fails with SIGPIPE would kill the process; sockets report EPIPE instead.
    static func ignoreSIGPIPE() { uvc_ignore_sigpipe() }

    /// Many connections need many descriptors: lift the soft limit to the hard one (systemd's LimitNOFILE sets both).
    @discardableResult
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return Int.max }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return limit.rlim_cur > UInt(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// Installs the once-per-iteration flush; it does not keep the loop alive by itself.
    func start() throws {
        let h = UnsafeMutablePointer<uv_check_t>.allocate(capacity: 1)
        let rc = uv_check_init(raw, h)
        if rc != 0 {
            h.deallocate()
            throw UVError(rc)
        }
        flushCheck = h
        try UVError.check(uv_check_start(h) { h in EventLoop.from(h!.pointee.loop).flushPending() })
        uv_unref(uvc_check_as_handle(h))
    }

    /// Runs until no handle is left; then closes whatever should not be there and runs once more so its close
    /// callback runs. True when `uv_loop_close` found nothing open (tests use it as a leak check).
    func run() -> Bool {
        _ = uv_run(raw, UV_RUN_DEFAULT)
        releaseClosed()
        if let w = epollWatch { EventLoop.closeAndFree(uvc_poll_as_handle(w)) }
        if let r = releaser { EventLoop.closeAndFree(uvc_idle_as_handle(r)) }
        epollWatch = nil
        releaser = nil
        // A handle still open here is a bug elsewhere. It is closed so the loop can end, and its memory is left
        // alone: this code cannot know how it was allocated.
        uv_walk(raw, { handle, _ in
            if uv_is_closing(handle) == 0 { uv_close(handle, nil) }
        }, nil)
        _ = uv_run(raw, UV_RUN_DEFAULT)
        _ = uvc_close_fd(epollFD)
        return uv_loop_close(raw) == 0
    }

    /// Stops the flush; the last thing the loop does before it may end.
    func stop() {
        if let h = flushCheck { EventLoop.closeAndFree(uvc_check_as_handle(h)) }
        flushCheck = nil
    }

    static func closeAndFree(_ h: UnsafeMutablePointer<uv_handle_t>) {
        uv_close(h) { UnsafeMutableRawPointer($0!).deallocate() }
    }

    // MARK: - Output batching

    @inline(__always)
    func markDirty(_ socket: Socket) { dirty.append(socket) }

    /// Writes every socket that queued output since the last pass.
    /// Sockets waiting for the end of the iteration to write.
    var pendingCount: Int { dirty.count }

    func flushPending() {
        beforeFlush?()
        // A flush can close a socket; closing never adds to `dirty`, but a write error may arrive for another socket,
        // so iterate by index over a list that only grows.
        var i = 0
        while i < dirty.count {
            dirty[i].flush()
            i += 1
        }
        dirty.removeAll(keepingCapacity: true)
    }

    // MARK: - Timers, signals, the stop handle

    /// A timer that runs `action` every `ms` milliseconds (first after `ms`), then writes what the action queued.
    func repeatingTimer(every ms: UInt64, _ action: @escaping () -> Void) throws -> LoopTimer {
        let t = try LoopTimer(loop: self, action)
        try t.start(after: ms, repeat: ms)
        return t
    }

    /// A timer started with `start(after:)` when needed.
    func timer(_ action: @escaping () -> Void) throws -> LoopTimer {
        try LoopTimer(loop: self, action)
    }

    func onSignal(_ signum: Int32, _ action: @escaping (Int32) -> Void) throws -> LoopSignal {
        try LoopSignal(loop: self, signum: signum, action)
    }

    /// A handle another thread may use to run `action` on the loop (libuv's one thread-safe call).
    func stopHandle(_ action: @escaping () -> Void) throws -> LoopAsync {
        try LoopAsync(loop: self, action)
    }
}

@available(*, unavailable)
extension EventLoop: Sendable {}

/// Counters kept by the I/O layer, rendered by the metrics.
struct IOCounters {
    var accepted: UInt64 = 0
    var acceptErrors: UInt64 = 0
    var descriptorLimitHits: UInt64 = 0
    var readErrors: UInt64 = 0
    var writeErrors: UInt64 = 0
    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0
}
