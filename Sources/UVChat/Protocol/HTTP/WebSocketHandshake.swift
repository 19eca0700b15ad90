/// The server side of the RFC 6455 opening handshake (section 4.2).
enum WebSocketHandshake {
    private static let guid: StaticString = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    static func validate(_ head: HTTPRequestHead) -> Result<String, HandshakeRejection> {
        guard head.method == .get else {
            return .failure(HandshakeRejection(status: .methodNotAllowed, extraHeaders: [("Allow", "GET")]))
        }
        let bad = HandshakeRejection(status: .badRequest)
        guard head.versionMinor >= 1, head.headerCount("host") == 1 else { return .failure(bad) }
        // Bytes after the head are WebSocket frames; a body there would be read as frames (PROTOCOL.md, Endpoints).
        guard head.contentLength == 0 else { return .failure(bad) }
        guard head.headerContainsToken("upgrade", "websocket"), head.headerContainsToken("connection", "upgrade") else {
            return .failure(bad)
        }
        // The version is checked before the key so that a client speaking another draft learns which one we speak.
        guard let version = head.onlyHeaderBytes("sec-websocket-version"), version.elementsEqual("13".utf8) else {
            return .failure(HandshakeRejection(status: .upgradeRequired, extraHeaders: [("Sec-WebSocket-Version", "13")]))
        }
        guard let key = head.onlyHeaderBytes("sec-websocket-key"), let nonce = Base64.decode(key), nonce.count == 16 else {
            return .failure(bad)
        }
        return .success(acceptValue(forKey: key))
    }

    static func acceptValue(forKey key: String) -> String {
        acceptValue(forKey: Array(key.utf8)[...])
    }

    /// Base64 of the SHA-1 of the key and the GUID, with the hash's input and digest on the stack.
    static func acceptValue(forKey key: ArraySlice<UInt8>) -> String {
        let count = key.count + guid.utf8CodeUnitCount
        return withUnsafeTemporaryAllocation(byteCount: count + 20, alignment: 8) { buffer in
            key.withUnsafeBytes { if let from = $0.baseAddress { buffer.baseAddress.unsafelyUnwrapped.copyMemory(from: from, byteCount: $0.count) } }
            (buffer.baseAddress.unsafelyUnwrapped + key.count).copyMemory(from: guid.utf8Start, byteCount: guid.utf8CodeUnitCount)
            let digest = UnsafeMutableRawBufferPointer(rebasing: buffer[count...])
            SHA1.hash(UnsafeRawBufferPointer(rebasing: buffer[..<count]), into: digest)
            return Base64.encode(UnsafeRawBufferPointer(digest))
        }
    }

    /// The subprotocol that selects PROTOCOL.md version 2.
    static let version2Subprotocol: StaticString = "uvchat.2"

    /// `Sec-WebSocket-Protocol` is a comma-separated token list (RFC 6455 section 4.2.1 item 10), possibly over
    /// several field lines, which form one list (RFC 9110 section 5.3). Version 2 when `uvchat.2` is offered
    /// anywhere in it; otherwise version 1, whatever else is offered (we speak no other subprotocol).
    static func version(_ head: HTTPRequestHead) -> ProtocolVersion {
        head.headerContainsToken("sec-websocket-protocol", version2Subprotocol, ignoringCase: false) ? .v2 : .v1
    }

    /// The 101. Version 2 echoes the subprotocol it selected; version 1 names none, as before.
    /// `setCookie` is a whole `Set-Cookie` field value (the identity cookie, B.5), or nil.
    static func writeSwitchingProtocols(accept: String, version: ProtocolVersion = .v1, setCookie: String? = nil,
                                        into out: inout [UInt8]) {
        out.append(contentsOf: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".utf8)
        out.append(contentsOf: accept.utf8)
        if version == .v2 {
            out.append(contentsOf: "\r\nSec-WebSocket-Protocol: ".utf8)
            version2Subprotocol.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        if let setCookie {
            out.append(contentsOf: "\r\nSet-Cookie: ".utf8)
            out.append(contentsOf: setCookie.utf8)
        }
        out.append(contentsOf: "\r\n\r\n".utf8)
    }
}
