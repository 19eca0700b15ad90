import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// The listening sockets, each watched by a poll handle; the listener accepts from them itself and hands each new
/// descriptor, non-blocking and with Nagle off, to `onAccept`.
///
/// Out of descriptors, the listener gives up a reserve descriptor for a moment to accept and drop what waits (the
/// client sees a reset instead of hanging, and the listener does not stay readable and spin the loop). When that is
/// not possible, or accept fails otherwise, or a poll handle reports an error, accepting pauses until
/// `resumeIfPaused()` (the server's sweep).
final class Listener {
    enum Event {
        /// A poll handle reported an error (libuv has stopped that handle); accepting pauses.
        case pollFailed(UVError)
        /// accept failed for another reason than a full descriptor table; accepting pauses.
        case acceptFailed(UVError)
        case outOfDescriptors
    }

    static let backlog: Int32 = 4096
    /// Accepts per wake-up: a flood of connects cannot starve the clients already connected (the listener stays
    /// readable; the loop comes back to it).
    static let acceptsPerWakeup = 128

    unowned let loop: EventLoop
    private var polls: [UnsafeMutablePointer<uv_poll_t>] = []
    private var reserveFD: Int32 = -1
    private var paused = false
    private(set) var boundPorts: [Int] = []
    private let onAccept: (Int32, ClientAddress) -> Void
    private let onEvent: (Event) -> Void

    init(loop: EventLoop, onAccept: @escaping (Int32, ClientAddress) -> Void, onEvent: @escaping (Event) -> Void) {
        self.loop = loop
        self.onAccept = onAccept
        self.onEvent = onEvent
        reserveFD = uvc_reserve_fd()
    }

    deinit {
        if reserveFD >= 0 { _ = uvc_close_fd(reserveFD) }
    }

    /// Binds `host` (IPv4 or IPv6 text) and `port`; returns the port bound (port 0 picks a free one).
    @discardableResult
    func listen(host: String, port: Int, reusePort: Bool = false) throws -> Int {
        var storage = sockaddr_storage()
        let isV6 = host.contains(":")
        let rc: Int32 = withUnsafeMutablePointer(to: &storage) { p in
            isV6 ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(host, Int32(port), $0) }
                 : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(host, Int32(port), $0) }
        }
        if rc != 0 { throw ServerError("invalid --host address '\(host)' (\(UVError(rc).message))") }
        let fd = withUnsafePointer(to: &storage) { uvc_listen_socket(uvc_sockaddr_storage($0), Listener.backlog, reusePort ? 1 : 0) }
        if fd < 0 {
            let e = UVError(fd)
            if e == .addressInUse { throw ServerError("cannot listen on \(host) port \(port): address already in use") }
            throw ServerError("cannot listen on \(host) port \(port): \(e.message)")
        }
        return try watch(fd)
    }

    /// A listening socket inherited from systemd socket activation.
    @discardableResult
    func adopt(_ fd: Int32) throws -> Int {
        let rc = uvc_adopt_listen_socket(fd, Listener.backlog)
        if rc != 0 { throw ServerError("cannot use inherited socket \(fd): \(UVError(rc).message)") }
        return try watch(fd)
    }

    private func watch(_ fd: Int32) throws -> Int {
        let poll = UnsafeMutablePointer<uv_poll_t>.allocate(capacity: 1)
        let rc = uv_poll_init_socket(loop.raw, poll, fd)
        if rc != 0 {
            poll.deallocate()
            _ = uvc_close_fd(fd)
            throw ServerError("cannot watch the listening socket: \(UVError(rc).message)")
        }
        // The listener outlives its poll handles: `close()` closes them, and their close callback frees only memory.
        poll.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        polls.append(poll)
        try UVError.check(start(poll))
        let port = Int(uvc_local_port(fd))
        boundPorts.append(port)
        return port
    }

    private func start(_ poll: UnsafeMutablePointer<uv_poll_t>) -> Int32 {
        uv_poll_start(poll, Int32(UV_READABLE.rawValue)) { poll, status, _ in
            Unmanaged<Listener>.fromOpaque(poll!.pointee.data).takeUnretainedValue().acceptAll(poll!, status: status)
        }
    }

    private static func descriptor(_ poll: UnsafeMutablePointer<uv_poll_t>) -> Int32 {
        var fd: uv_os_fd_t = -1
        _ = uv_fileno(uvc_poll_as_handle(poll), &fd)
        return fd
    }

    /// Stops listening and closes the descriptors (also the reserve). Idempotent.
    func close() {
        for poll in polls {
            let fd = Listener.descriptor(poll)
            // uv_close stops the poll at once, so the descriptor can be closed right after it.
            EventLoop.closeAndFree(uvc_poll_as_handle(poll))
            _ = uvc_close_fd(fd)
        }
        polls.removeAll()
        if reserveFD >= 0 {
            _ = uvc_close_fd(reserveFD)
            reserveFD = -1
        }
    }

    private func acceptAll(_ poll: UnsafeMutablePointer<uv_poll_t>, status: Int32) {
        if status < 0 {
            // libuv stops a poll handle before it reports an error on it, so returning here would leave the
            // listener deaf for good. Pause instead (which stops the other handles too): the sweep starts them all
            // again, and an error that persists costs one callback per sweep, not a spinning loop.
            loop.io.acceptErrors &+= 1
            onEvent(.pollFailed(UVError(status)))
            _ = uv_poll_stop(poll)
            pause()
            return
        }
        let fd = Listener.descriptor(poll)
        var peer = sockaddr_storage()
        for _ in 0..<Listener.acceptsPerWakeup {
            let rc = uvc_accept(fd, &peer)
            if rc >= 0 {
                onAccept(rc, withUnsafePointer(to: &peer) { ClientAddress($0) })
                continue
            }
            let e = UVError(rc)
            if e == .again { return }
            if e == .connectionAborted { continue }
            if e == .tooManyOpenFiles || e == .tooManyOpenFilesSystem {
                shedWaitingConnections(fd)
                return
            }
            // Anything else (ENOMEM, ENOBUFS, ...) would leave the listener readable and the loop spinning on it:
            // stop accepting until the next sweep.
            loop.io.acceptErrors &+= 1
            onEvent(.acceptFailed(e))
            pause()
            return
        }
    }

    private func pause() {
        guard !paused else { return }
        paused = true
        for poll in polls { _ = uv_poll_stop(poll) }
    }

    private func shedWaitingConnections(_ listenFD: Int32) {
        if reserveFD >= 0 {
            _ = uvc_close_fd(reserveFD)
            var peer = sockaddr_storage()
            while true {
                let rc = uvc_accept(listenFD, &peer)
                guard rc >= 0 else { break }
                _ = uvc_close_fd(rc)
                loop.io.descriptorLimitHits &+= 1
            }
            reserveFD = uvc_reserve_fd()
        } else {
            loop.io.descriptorLimitHits &+= 1
        }
        if reserveFD < 0 { pause() }
        onEvent(.outOfDescriptors)
    }

    /// Accepting again after a pause, once a reserve descriptor can be had.
    func resumeIfPaused() {
        guard paused else { return }
        if reserveFD < 0 { reserveFD = uvc_reserve_fd() }
        guard reserveFD >= 0 else { return }
        paused = false
        for poll in polls where start(poll) != 0 {
            pause()
            return
        }
    }
}

@available(*, unavailable)
extension Listener: Sendable {}

extension Listener {
    /// For a descriptor the server will not serve (accepted while draining).
    static func closeDescriptor(_ fd: Int32) { _ = uvc_close_fd(fd) }
}
