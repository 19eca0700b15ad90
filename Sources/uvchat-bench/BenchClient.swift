import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// One WebSocket client: connect, HTTP upgrade, masked frames out, server frames in. It answers pings and
/// close frames itself and hands chat messages to its scenario. The counters at the bottom belong to the
/// scenarios; keeping them here saves a side table lookup per message.
final class BenchClient {
    enum State { case idle, connecting, upgrading, open, closing, closed }

    let index: Int
    unowned let bench: BenchLoop
    unowned let scenario: BenchScenario
    private let tcp: UnsafeMutablePointer<uv_tcp_t>
    private let connectRequest: UnsafeMutablePointer<uv_connect_t>
    private(set) var state = State.idle
    private var head = ByteQueue()
    private var parser = ServerFrameParser()
    private var fragments: [UInt8] = []
    private var out = ByteQueue()
    private var writeInFlight = false
    var isDirty = false
    /// Whether the close was asked for (by the scenario or by a server close frame) rather than a failure.
    private(set) var closedOnPurpose = false

    // Scenario state.
    var paired = false
    var partner = -1
    var sent = 0
    var received = 0
    var unacknowledged = 0
    var quota = Int.max
    var sessionDone = false
    var wasOpened = false

    init(index: Int, bench: BenchLoop, scenario: BenchScenario) {
        self.index = index
        self.bench = bench
        self.scenario = scenario
        tcp = .allocate(capacity: 1)
        connectRequest = .allocate(capacity: 1)
    }

    deinit {
        tcp.deallocate()
        connectRequest.deallocate()
        out.free()
        head.free()
        parser.reset()
    }

    private var stream: UnsafeMutablePointer<uv_stream_t> { uvc_tcp_as_stream(tcp) }

    /// Starts connecting, from `source` when given (an address with its own ephemeral port range).
    func connect(from source: sockaddr_in?) {
        precondition(state == .idle)
        // With a source address the socket must exist before bind, to set IP_BIND_ADDRESS_NO_PORT on it.
        uv_tcp_init_ex(bench.loop, tcp, UInt32(source == nil ? AF_UNSPEC : AF_INET))
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
        state = .connecting
        if var source {
            // Without it, bind() picks the port alone and walks an ever fuller port table (quadratic in the
            // number of sockets); with it, connect() picks the port knowing the whole 4-tuple.
            var fd: uv_os_fd_t = -1
            var on: Int32 = 1
            if uv_fileno(uvc_tcp_as_handle(tcp), &fd) == 0 {
                _ = setsockopt(fd, Int32(IPPROTO_IP), Self.ipBindAddressNoPort, &on, socklen_t(MemoryLayout<Int32>.size))
            }
            let rc = withUnsafePointer(to: &source) { uv_tcp_bind(tcp, uvc_sockaddr_in($0), 0) }
            if rc != 0 { return fail("bind: \(String(cString: uv_strerror(rc)))") }
        }
        uv_tcp_nodelay(tcp, 1)
        connectRequest.pointee.data = tcp.pointee.data
        var server = bench.servers[index % bench.servers.count]
        let rc = withUnsafePointer(to: &server) { addr in
            uv_tcp_connect(connectRequest, tcp, uvc_sockaddr_in(addr)) { req, status in
                let client = Unmanaged<BenchClient>.fromOpaque(req!.pointee.data).takeUnretainedValue()
                client.connected(status)
            }
        }
        if rc != 0 { fail("connect: \(String(cString: uv_strerror(rc)))") }
    }

    private func connected(_ status: Int32) {
        guard state == .connecting else { return }
        if status != 0 { return fail("connect: \(String(cString: uv_strerror(status)))") }
        state = .upgrading
        let rc = uv_read_start(stream, { handle, _, buf in
            let rb = BenchLoop.from(handle!.pointee.loop).readBuffer
            buf!.pointee = uv_buf_init(rb.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(rb.count))
        }, { stream, nread, buf in
            let client = Unmanaged<BenchClient>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
            if nread > 0 {
                client.received(UnsafeRawBufferPointer(start: buf!.pointee.base, count: nread))
            } else if nread < 0 {
                client.peerClosed(Int32(nread))
            }
        })
        if rc != 0 { return fail("read: \(String(cString: uv_strerror(rc)))") }
        bench.upgradeRequest.withUnsafeBytes { out.append($0) }
        bench.markDirty(self)
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        switch state {
        case .upgrading:
            head.append(bytes)
            let view = UnsafeRawBufferPointer(start: head.base, count: head.count)
            guard let end = Self.headEnd(view) else {
                if head.count > 16384 { fail("response head too long") }
                return
            }
            guard Self.isSwitchingProtocols(UnsafeRawBufferPointer(rebasing: view[..<end])) else {
                let line = String(decoding: view[..<min(end, view.firstIndex(of: 13) ?? end)], as: UTF8.self)
                return fail("upgrade refused: \(line)")
            }
            state = .open
            var rest = ByteQueue()
            rest.append(UnsafeRawBufferPointer(rebasing: view[end...]))
            head.free()
            scenario.clientDidOpen(self)
            if !rest.isEmpty, state == .open {
                frames(UnsafeRawBufferPointer(start: rest.base, count: rest.count))
            }
            rest.free()
        case .open, .closing:
            frames(bytes)
        case .idle, .connecting, .closed:
            break
        }
    }

    private func frames(_ bytes: UnsafeRawBufferPointer) {
        do {
            try parser.feed(bytes) { frame in
                guard state == .open || state == .closing else { return }
                handle(frame)
            }
        } catch {
            fail("bad server frame: \(error)")
        }
    }

    private func handle(_ frame: ServerFrameParser.Frame) {
        switch frame.opcode {
        case 0x1 where frame.fin && fragments.isEmpty:
            guard state == .open else { return }
            scenario.client(self, didReceive: ServerEvent.classify(frame.payload), json: frame.payload)
        case 0x1, 0x0:
            fragments += frame.payload
            if frame.fin {
                let whole = fragments
                fragments = []
                guard state == .open else { return }
                whole.withUnsafeBytes { scenario.client(self, didReceive: ServerEvent.classify($0), json: $0) }
            }
        case 0x9:
            if state == .open { sendFrame(opcode: 0xA, payload: frame.payload) }
        case 0x8:
            if state == .open {
                sendFrame(opcode: 0x8, payload: UnsafeRawBufferPointer(rebasing: frame.payload.prefix(2)))
                let code = frame.payload.count >= 2 ? Int(frame.payload[0]) << 8 | Int(frame.payload[1]) : 1005
                closedOnPurpose = false
                state = .closing
                flush()
                return fail("server closed with \(code)")
            }
            // The answer to our close: the handshake is complete. The server closes TCP first (its FIN ends the
            // read with EOF, which closes the handle), unless this run closes client first.
            if !bench.serverClosesFirst { closeHandle() }
        case 0xA:
            break
        default:
            fail("unexpected opcode \(frame.opcode)")
        }
    }

    /// Sends one chat message with the bench's fixed-width text.
    func sendMessage(seq: Int, stamp: UInt64) {
        sendFrame(opcode: 0x1, payload: bench.payload.json(sender: index, seq: seq, stamp: stamp))
    }

    /// Starts the closing handshake (code 1000); the handle closes when the server answers or hangs up.
    func close() {
        switch state {
        case .open:
            closedOnPurpose = true
            var code: (UInt8, UInt8) = (0x03, 0xE8)
            withUnsafeBytes(of: &code) { sendFrame(opcode: 0x8, payload: $0) }
            state = .closing
        case .idle, .connecting, .upgrading:
            closedOnPurpose = true
            closeHandle()
        case .closing, .closed:
            break
        }
    }

    private func sendFrame(opcode: UInt8, payload: UnsafeRawBufferPointer) {
        let n = payload.count
        let header = n < 126 ? 2 : (n < 65536 ? 4 : 10)
        let dst = out.reserve(header + 4 + n)
        dst.storeBytes(of: 0x80 | opcode, as: UInt8.self)
        switch header {
        case 2:
            dst.storeBytes(of: 0x80 | UInt8(n), toByteOffset: 1, as: UInt8.self)
        case 4:
            dst.storeBytes(of: 0x80 | 126, toByteOffset: 1, as: UInt8.self)
            dst.storeBytes(of: UInt16(n).bigEndian, toByteOffset: 2, as: UInt16.self)
        default:
            dst.storeBytes(of: 0x80 | 127, toByteOffset: 1, as: UInt8.self)
            dst.storeBytes(of: UInt64(n).bigEndian, toByteOffset: 2, as: UInt64.self)
        }
        let mask = bench.nextMask()
        dst.storeBytes(of: mask, toByteOffset: header, as: UInt32.self)
        let body = dst + header + 4
        let key = withUnsafeBytes(of: mask) { (k: UnsafeRawBufferPointer) in (k[0], k[1], k[2], k[3]) }
        var i = 0
        while i < n {
            let k: UInt8
            switch i & 3 {
            case 0: k = key.0
            case 1: k = key.1
            case 2: k = key.2
            default: k = key.3
            }
            body.storeBytes(of: payload[i] ^ k, toByteOffset: i, as: UInt8.self)
            i += 1
        }
        out.commit(header + 4 + n)
        bench.markDirty(self)
    }

    /// Writes what is queued: `uv_try_write` first, the rest in one `uv_write` with its own copy.
    func flush() {
        guard !writeInFlight, !out.isEmpty, state != .closed, state != .idle, state != .connecting else { return }
        var buf = uv_buf_init(out.base!.assumingMemoryBound(to: CChar.self), UInt32(out.count))
        let written = uv_try_write(stream, &buf, 1)
        if written == Int32(out.count) {
            out.count = 0
            return
        }
        if written < 0 && written != Int32(UV_EAGAIN.rawValue) {
            return fail("write: \(String(cString: uv_strerror(written)))")
        }
        let done = max(0, Int(written))
        let rest = out.count - done
        let stride = MemoryLayout<uv_write_t>.stride
        let block = UnsafeMutableRawPointer.allocate(byteCount: stride + rest, alignment: 16)
        (block + stride).copyMemory(from: out.base! + done, byteCount: rest)
        out.count = 0
        let req = block.bindMemory(to: uv_write_t.self, capacity: 1)
        req.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        var restBuf = uv_buf_init((block + stride).assumingMemoryBound(to: CChar.self), UInt32(rest))
        writeInFlight = true
        let rc = uv_write(req, stream, &restBuf, 1) { req, status in
            let client = Unmanaged<BenchClient>.fromOpaque(req!.pointee.data).takeUnretainedValue()
            UnsafeMutableRawPointer(req!).deallocate()
            client.writeInFlight = false
            if status == 0, !client.out.isEmpty { client.bench.markDirty(client) }
        }
        if rc != 0 {
            writeInFlight = false
            block.deallocate()
            fail("write: \(String(cString: uv_strerror(rc)))")
        }
    }

    private func peerClosed(_ status: Int32) {
        if state == .closing && closedOnPurpose {
            return closeHandle()
        }
        fail(status == Int32(UV_EOF.rawValue) ? "server hung up" : "read: \(String(cString: uv_strerror(status)))")
    }

    private func fail(_ reason: String) {
        guard state != .closed else { return }
        closedOnPurpose = false
        closeHandle()
        scenario.clientDidFail(self, reason: reason)
    }

    private func closeHandle() {
        guard state != .closed else { return }
        let wasInitialised = state != .idle
        state = .closed
        guard wasInitialised else { return }
        uv_read_stop(stream)
        uv_close(uvc_tcp_as_handle(tcp)) { handle in
            let client = Unmanaged<BenchClient>.fromOpaque(handle!.pointee.data).takeRetainedValue()
            client.scenario.clientDidClose(client)
        }
    }

    /// IP_BIND_ADDRESS_NO_PORT from <linux/in.h> (Linux 4.2), which Glibc's headers may not carry.
    private static let ipBindAddressNoPort: Int32 = 24

    private static let acceptLine = Array("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".utf8)

    private static func headEnd(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 3..<bytes.count where bytes[i] == 10 && bytes[i - 1] == 13 && bytes[i - 2] == 10 && bytes[i - 3] == 13 {
            return i + 1
        }
        return nil
    }

    /// 101 and the accept key for the fixed request key (RFC 6455's own example pair).
    private static func isSwitchingProtocols(_ head: UnsafeRawBufferPointer) -> Bool {
        let prefix = Array("HTTP/1.1 101".utf8)
        guard head.count >= prefix.count, zip(head, prefix).allSatisfy({ $0 == $1 }) else { return false }
        let lower = head.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        let needle = acceptLine.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        guard lower.count >= needle.count else { return false }
        for i in 0...(lower.count - needle.count) where lower[i] == needle[0] {
            if Array(lower[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }
}
