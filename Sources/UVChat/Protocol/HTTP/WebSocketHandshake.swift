/// The server side of the RFC 6455 opening handshake (section 4.2).
enum WebSocketHandshake {
    private static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    static func validate(_ head: HTTPRequestHead) -> Result<String, HandshakeRejection> {
        guard head.method == .get else {
            return .failure(HandshakeRejection(status: .methodNotAllowed, extraHeaders: [("Allow", "GET")]))
        }
        let bad = HandshakeRejection(status: .badRequest)
        guard head.versionMinor >= 1, head.headerValues("host").count == 1 else { return .failure(bad) }
        // Bytes after the head are WebSocket frames; a body there would be read as frames (PROTOCOL.md, Endpoints).
        guard head.contentLength == 0 else { return .failure(bad) }
        guard head.headerContainsToken("upgrade", "websocket"), head.headerContainsToken("connection", "upgrade") else {
            return .failure(bad)
        }
        // The version is checked before the key so that a client speaking another draft learns which one we speak.
        guard head.headerValues("sec-websocket-version") == ["13"] else {
            return .failure(HandshakeRejection(status: .upgradeRequired, extraHeaders: [("Sec-WebSocket-Version", "13")]))
        }
        let keys = head.headerValues("sec-websocket-key")
        guard keys.count == 1, let nonce = Base64.decode(keys[0]), nonce.count == 16 else { return .failure(bad) }
        return .success(acceptValue(forKey: keys[0]))
    }

    static func acceptValue(forKey key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + guid).utf8)))
    }

    static func writeSwitchingProtocols(accept: String, into out: inout [UInt8]) {
        out.append(contentsOf: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".utf8)
        out.append(contentsOf: accept.utf8)
        out.append(contentsOf: "\r\n\r\n".utf8)
    }
}
