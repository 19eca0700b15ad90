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

    /// The subprotocol that selects PROTOCOL.md version 2.
    static let version2Subprotocol = "uvchat.2"

    /// `Sec-WebSocket-Protocol` is a comma-separated token list (RFC 6455 section 4.2.1 item 10), possibly over
    /// several field lines, which form one list (RFC 9110 section 5.3). Version 2 when `uvchat.2` is offered
    /// anywhere in it; otherwise version 1, whatever else is offered (we speak no other subprotocol).
    static func version(_ head: HTTPRequestHead) -> ProtocolVersion {
        for line in head.headerValues("sec-websocket-protocol") {
            for item in line.utf8.split(separator: UInt8(ascii: ","))
            where ASCII.trimmingSpaces(item).elementsEqual(version2Subprotocol.utf8) {
                return .v2
            }
        }
        return .v1
    }

    /// The 101. Version 2 echoes the subprotocol it selected; version 1 names none, as before.
    /// `setCookie` is a whole `Set-Cookie` field value (the identity cookie, B.5), or nil.
    static func writeSwitchingProtocols(accept: String, version: ProtocolVersion = .v1, setCookie: String? = nil,
                                        into out: inout [UInt8]) {
        out.append(contentsOf: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".utf8)
        out.append(contentsOf: accept.utf8)
        if version == .v2 {
            out.append(contentsOf: "\r\nSec-WebSocket-Protocol: ".utf8)
            out.append(contentsOf: version2Subprotocol.utf8)
        }
        if let setCookie {
            out.append(contentsOf: "\r\nSet-Cookie: ".utf8)
            out.append(contentsOf: setCookie.utf8)
        }
        out.append(contentsOf: "\r\n\r\n".utf8)
    }
}
