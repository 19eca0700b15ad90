import Testing
@testable import UVChat
#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Loopback tests: a real server on its own loop (on a thread of the test process) and port 0, and plain blocking
/// sockets as clients. `run()` returning 0 means `uv_loop_close` found no handle left open.
@Suite(.serialized)
struct ServerIntegrationTests {
    final class Running: @unchecked Sendable {
        var port = 0
        var exitCode: Int32 = -1
        var stop: StopHandle? = nil
        let started = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
    }

    static func withServer(_ configure: (inout ServerConfiguration) -> Void = { _ in },
                           _ body: (Int) throws -> Void) throws -> Int32 {
        let www = FileManager.default.temporaryDirectory.appendingPathComponent("uvchat-www-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
        try "<!doctype html><title>t</title>".write(to: www.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: www) }
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.wwwRoot = www.path
        config.echo = true
        config.logLevel = .error
        configure(&config)
        let running = Running()
        let frozen = config
        let thread = Thread {
            do {
                let server = try Server(configuration: frozen)
                try server.start()
                running.port = server.boundPorts.first ?? 0
                running.stop = server.stopHandle
                running.started.signal()
                running.exitCode = server.run()
            } catch {
                running.started.signal()
            }
            running.finished.signal()
        }
        thread.start()
        running.started.wait()
        #expect(running.port > 0)
        var failure: Error? = nil
        do { try body(running.port) } catch { failure = error }
        running.stop?.stop()
        running.finished.wait()
        if let failure { throw failure }
        return running.exitCode
    }

    // MARK: - A tiny blocking client

    struct Client {
        let fd: Int32

        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc != 0 { throw ClientError.connect }
        }

        func send(_ bytes: [UInt8]) {
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                off += n
            }
        }

        func send(_ text: String) { send(Array(text.utf8)) }

        /// Reads exactly `count` bytes, or fewer if the peer closed or the read timed out.
        func read(atLeast count: Int) -> [UInt8] {
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while out.count < count {
                let n = recv(fd, &buf, min(buf.count, count - out.count), 0)
                if n <= 0 { break }
                out.append(contentsOf: buf[0..<n])
            }
            return out
        }

        /// Reads an HTTP response head (and whatever body bytes came with it).
        func readHead() -> String {
            var out: [UInt8] = []
            var byte: UInt8 = 0
            while !out.suffix(4).elementsEqual([13, 10, 13, 10]) {
                if recv(fd, &byte, 1, 0) != 1 { break }
                out.append(byte)
            }
            return String(decoding: out, as: UTF8.self)
        }

        /// True when the server closed the connection (EOF) within the receive timeout.
        func sawEOF() -> Bool {
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buf, buf.count, 0)
                if n == 0 { return true }
                if n < 0 { return false }
            }
        }

        func close() { _ = Glibc.close(fd) }

        /// Reads one unfragmented server frame and returns (opcode, payload).
        func readFrame() -> (UInt8, [UInt8]) {
            let head = read(atLeast: 2)
            guard head.count == 2 else { return (0xff, []) }
            var length = Int(head[1] & 0x7f)
            if length == 126 {
                let ext = read(atLeast: 2)
                length = Int(ext[0]) << 8 | Int(ext[1])
            }
            return (head[0] & 0x0f, length == 0 ? [] : read(atLeast: length))
        }

        func readText() -> String { String(decoding: readFrame().1, as: UTF8.self) }

        func upgrade(path: String = "/echo") -> String {
            send("GET \(path) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            return readHead()
        }

        static func maskedFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
            var f: [UInt8] = [(fin ? 0x80 : 0) | opcode]
            if payload.count < 126 {
                f.append(0x80 | UInt8(payload.count))
            } else {
                f.append(0x80 | 126)
                f.append(UInt8(payload.count >> 8))
                f.append(UInt8(payload.count & 0xff))
            }
            let mask: [UInt8] = [0x11, 0x22, 0x33, 0x44]
            f += mask
            for (i, b) in payload.enumerated() { f.append(b ^ mask[i % 4]) }
            return f
        }
    }

    enum ClientError: Error { case connect }

    // MARK: - Tests

    @Test func servesHealthzAndShutsDownCleanly() throws {
        let code = try Self.withServer { port in
            let c = try Client(port: port)
            defer { c.close() }
            c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let text = c.readHead() + String(decoding: c.read(atLeast: 2), as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(text.hasSuffix("\r\n\r\nok"))
        }
        #expect(code == 0)
    }

    @Test func echoesTextThroughTheUpgradeAndKeepsBytesAfterTheHead() throws {
        let code = try Self.withServer { port in
            let c = try Client(port: port)
            defer { c.close() }
            // The first frame travels in the same packet as the request head: it must not be lost.
            let frame = Client.maskedFrame(opcode: 1, Array("hello".utf8))
            c.send("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            c.send(frame)
            let head = c.readHead()
            #expect(head.hasPrefix("HTTP/1.1 101"))
            #expect(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
            let reply = c.read(atLeast: 7)
            #expect(reply == [0x81, 5] + Array("hello".utf8))
        }
        #expect(code == 0)
    }

    @Test func answersPingWithPongAndCloseWithClose() throws {
        _ = try Self.withServer { port in
            let c = try Client(port: port)
            defer { c.close() }
            #expect(c.upgrade().hasPrefix("HTTP/1.1 101"))
            c.send(Client.maskedFrame(opcode: 9, [1, 2, 3]))
            #expect(c.read(atLeast: 5) == [0x8A, 3, 1, 2, 3])
            c.send(Client.maskedFrame(opcode: 8, [0x03, 0xE8]))
            #expect(c.read(atLeast: 4) == [0x88, 2, 0x03, 0xE8])
            #expect(c.sawEOF())
        }
    }

    @Test func rejectsUnmaskedClientFrameWith1002() throws {
        _ = try Self.withServer { port in
            let c = try Client(port: port)
            defer { c.close() }
            #expect(c.upgrade().hasPrefix("HTTP/1.1 101"))
            c.send([0x81, 0x02, 0x68, 0x69])
            #expect(c.read(atLeast: 4) == [0x88, 2, 0x03, 0xEA])
            #expect(c.sawEOF())
        }
    }

    @Test func answersMalformedRequestWith400AndCloses() throws {
        _ = try Self.withServer { port in
            let c = try Client(port: port)
            defer { c.close() }
            c.send("BROKEN\r\n\r\n")
            #expect(c.readHead().hasPrefix("HTTP/1.1 400"))
            #expect(c.sawEOF())
        }
    }

    @Test func pairsTwoChatClientsAndRelaysAMessage() throws {
        _ = try Self.withServer { port in
            let a = try Client(port: port)
            let b = try Client(port: port)
            defer { a.close(); b.close() }
            #expect(a.upgrade(path: "/ws").hasPrefix("HTTP/1.1 101"))
            #expect(a.readText() == #"{"type":"online","count":1}"#)
            #expect(a.readText() == #"{"type":"waiting"}"#)
            #expect(b.upgrade(path: "/ws").hasPrefix("HTTP/1.1 101"))
            #expect(b.readText() == #"{"type":"online","count":2}"#)
            let paired = #"{"type":"paired","common":[],"random":true}"#
            #expect(b.readText() == paired)
            #expect(a.readText() == paired)
            b.send(Client.maskedFrame(opcode: 1, Array(#"{"type":"message","text":"hi \u00e9"}"#.utf8)))
            #expect(a.readText() == #"{"type":"message","text":"hi \u00e9"}"#)
            // Leaving tells the partner at once.
            b.send(Client.maskedFrame(opcode: 1, Array(#"{"type":"stop"}"#.utf8)))
            #expect(a.readText() == #"{"type":"partner_left"}"#)
        }
    }

    @Test func portInUseIsOneClearError() throws {
        _ = try Self.withServer { port in
            let empty = FileManager.default.temporaryDirectory.appendingPathComponent("uvchat-empty-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: empty) }
            var config = ServerConfiguration()
            config.host = "127.0.0.1"
            config.port = port
            config.wwwRoot = empty.path
            do {
                let second = try Server(configuration: config)
                try second.start()
                Issue.record("a second server bound the same port")
            } catch {
                #expect("\(error)" == "cannot listen on 127.0.0.1 port \(port): address already in use")
            }
        }
    }
}
