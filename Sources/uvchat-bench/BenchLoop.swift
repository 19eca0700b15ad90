import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// The generator's one libuv loop and what its clients share: the read buffer every read callback borrows,
/// the upgrade request, the chat message template, and the list of clients with bytes to write, flushed
/// once per loop iteration so that all frames a client queued in one iteration leave in one write.
final class BenchLoop {
    let loop: UnsafeMutablePointer<uv_loop_t>
    let readBuffer: UnsafeMutableRawBufferPointer
    let upgradeRequest: [UInt8]
    let server: sockaddr_in
    /// Where clients connect, by client index round robin: the one server, or a cluster's nodes (`--ports`).
    private(set) var servers: [sockaddr_in] = []
    /// 127.0.0.2, 127.0.0.3, ...: each source address has its own ephemeral port range towards the server.
    private(set) var sources: [sockaddr_in] = []
    let payload = ChatPayload()
    private var dirty: [BenchClient] = []
    private var flushing: [BenchClient] = []
    private let prepare: UnsafeMutablePointer<uv_prepare_t>
    private var maskState: UInt64 = 0x9E37_79B9_7F4A_7C15
    /// After the closing handshake a client waits for the server to close TCP first (RFC 6455 section 7.1.1: the
    /// server holds TIME_WAIT), as outside benchmarks do; false (`--close client`): it closes at the server's answer.
    var serverClosesFirst = true

    /// `version2`: every client offers `uvchat.2` and sends `start` right behind its upgrade request (the server
    /// reads bytes after the head as the first frames), so it is queued as a version 1 client is at connect.
    init(host: String, port: Int, path: String, version2: Bool = false) throws(BenchError) {
        loop = .allocate(capacity: 1)
        guard uv_loop_init(loop) == 0 else { throw BenchError("uv_loop_init failed") }
        readBuffer = .allocate(byteCount: 256 * 1024, alignment: 16)
        var addr = sockaddr_in()
        guard uv_ip4_addr(host, Int32(port), &addr) == 0 else { throw BenchError("bad IPv4 address \(host)") }
        server = addr
        servers = [addr]
        var request = Array(("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            + (version2 ? "Sec-WebSocket-Protocol: uvchat.2\r\n" : "")
            + "Sec-WebSocket-Version: 13\r\nOrigin: http://\(host):\(port)\r\n\r\n").utf8)
        if version2 {
            let start = Array(#"{"type":"start"}"#.utf8)
            let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
            request += [0x81, 0x80 | UInt8(start.count)] + key
            request += start.enumerated().map { $0.element ^ key[$0.offset % 4] }
        }
        upgradeRequest = request
        prepare = .allocate(capacity: 1)
        uv_prepare_init(loop, prepare)
        loop.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_prepare_start(prepare) { handle in
            BenchLoop.from(handle!.pointee.loop).flush()
        }
        // Only clients keep the loop alive; the flush hook must not.
        uv_unref(uvc_prepare_as_handle(prepare))
    }

    /// A cluster's nodes on `host`: client i connects to `ports[i % ports.count]`.
    func useServers(host: String, ports: [Int]) throws(BenchError) {
        var list: [sockaddr_in] = []
        for port in ports {
            var addr = sockaddr_in()
            guard uv_ip4_addr(host, Int32(port), &addr) == 0 else { throw BenchError("bad address \(host):\(port)") }
            list.append(addr)
        }
        if !list.isEmpty { servers = list }
    }

    static func from(_ loop: UnsafeMutablePointer<uv_loop_t>?) -> BenchLoop {
        Unmanaged<BenchLoop>.fromOpaque(loop!.pointee.data).takeUnretainedValue()
    }

    /// Source addresses for `connections` sockets bound before connect, `perAddress` each.
    func useSourceAddresses(for connections: Int, perAddress: Int = 10_000) throws(BenchError) {
        let count = max(1, (connections + perAddress - 1) / perAddress)
        guard count <= 250 else { throw BenchError("too many connections for 127.0.0.2-127.0.0.251") }
        sources = (0..<count).map { i in
            var a = sockaddr_in()
            _ = uv_ip4_addr("127.0.0.\(i + 2)", 0, &a)
            return a
        }
        sourcePerAddress = perAddress
    }
    private(set) var sourcePerAddress = 10_000

    func markDirty(_ client: BenchClient) {
        guard !client.isDirty else { return }
        client.isDirty = true
        dirty.append(client)
    }

    private func flush() {
        guard !dirty.isEmpty else { return }
        swap(&dirty, &flushing)
        for client in flushing {
            client.isDirty = false
            client.flush()
        }
        flushing.removeAll(keepingCapacity: true)
    }

    /// A fresh masking key per frame, as RFC 6455 asks; xorshift is plenty for a load generator.
    func nextMask() -> UInt32 {
        maskState ^= maskState << 13
        maskState ^= maskState >> 7
        maskState ^= maskState << 17
        return UInt32(truncatingIfNeeded: maskState)
    }

    func run() { uv_run(loop, UV_RUN_DEFAULT) }
    func stop() { uv_stop(loop) }
    var now: UInt64 { uv_hrtime() }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
