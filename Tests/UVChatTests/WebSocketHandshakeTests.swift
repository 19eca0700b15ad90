import Testing
@testable import UVChat

/// The example request of RFC 6455 section 1.3, with Origin and subprotocol fields that must be ignored.
private let exampleFields: [(String, String)] = [
    ("Host", "server.example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Origin", "http://example.com"),
    ("Sec-WebSocket-Protocol", "chat, superchat"), ("Sec-WebSocket-Version", "13"),
]

/// Builds the request through the real parser, so the handshake sees heads exactly as the server does.
private func request(method: String = "GET", version: String = "HTTP/1.1", fields: [(String, String)]) -> HTTPRequestHead? {
    var text = "\(method) /chat \(version)\r\n"
    for (name, value) in fields { text += "\(name): \(value)\r\n" }
    text += "\r\n"
    var parser = HTTPRequestParser()
    let bytes = Array(text.utf8)
    if case .head(let head, _) = bytes.withUnsafeBytes({ parser.parse($0) }) { return head }
    return nil
}

private func replacing(_ name: String, with value: String?) -> [(String, String)] {
    var fields = exampleFields.filter { $0.0 != name }
    if let value { fields.append((name, value)) }
    return fields
}

private let badRequest = HandshakeRejection(status: .badRequest)

@Suite struct WebSocketHandshakeTests {
    @Test func acceptValueMatchesRFC6455Example() {
        #expect(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        // SHA-1 of the GUID alone (an empty key), base64.
        #expect(WebSocketHandshake.acceptValue(forKey: "") == "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=")
    }

    @Test func rejectsAnUpgradeWithABodyWith400() throws {
        // The bytes after the head are frames; a body there would be taken for them.
        let head = try #require(request(fields: exampleFields + [("Content-Length", "5")]))
        #expect(WebSocketHandshake.validate(head) == .failure(badRequest))
        let empty = try #require(request(fields: exampleFields + [("Content-Length", "0")]))
        #expect(WebSocketHandshake.validate(empty) == .success("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
    }

    @Test func acceptsRFC6455ExampleRequest() throws {
        let head = try #require(request(fields: exampleFields))
        #expect(WebSocketHandshake.validate(head) == .success("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
    }

    @Test func acceptsTokensCaseInsensitivelyInsideLists() throws {
        var fields = replacing("Connection", with: "keep-alive, Upgrade")
        fields = fields.filter { $0.0 != "Upgrade" } + [("Upgrade", "WebSocket")]
        let head = try #require(request(fields: fields))
        #expect(WebSocketHandshake.validate(head) == .success("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        let split = try #require(request(fields: replacing("Connection", with: "keep-alive") + [("Connection", "upgrade")]))
        #expect(WebSocketHandshake.validate(split) == .success("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
    }

    @Test func rejectsMethodOtherThanGETWith405AndAllow() throws {
        for method in ["POST", "HEAD", "get"] {
            let head = try #require(request(method: method, fields: exampleFields))
            #expect(WebSocketHandshake.validate(head)
                == .failure(HandshakeRejection(status: .methodNotAllowed, extraHeaders: [("Allow", "GET")])))
        }
    }

    @Test func rejectsHTTP10With400() throws {
        let head = try #require(request(version: "HTTP/1.0", fields: exampleFields))
        #expect(WebSocketHandshake.validate(head) == .failure(badRequest))
    }

    @Test func rejectsMissingHostWith400() {
        // The parser already refuses an HTTP/1.1 head without Host, so build the head by hand.
        var head = request(fields: exampleFields)
        head?.removeHeaders("host")
        if let head { #expect(WebSocketHandshake.validate(head) == .failure(badRequest)) } else { Issue.record("no head") }
    }

    @Test func rejectsMissingOrWrongUpgradeWith400() throws {
        for value in [nil, "h2c", "websocket2", "web socket"] as [String?] {
            let head = try #require(request(fields: replacing("Upgrade", with: value)))
            #expect(WebSocketHandshake.validate(head) == .failure(badRequest), "\(String(describing: value))")
        }
    }

    @Test func rejectsConnectionWithoutUpgradeTokenWith400() throws {
        for value in [nil, "keep-alive", "upgraded", "close"] as [String?] {
            let head = try #require(request(fields: replacing("Connection", with: value)))
            #expect(WebSocketHandshake.validate(head) == .failure(badRequest), "\(String(describing: value))")
        }
    }

    @Test func rejectsMissingOrMalformedKeyWith400() throws {
        // 15 and 17 bytes, unpadded, non-base64, empty.
        for value in [nil, "AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA=", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=!", ""]
            as [String?] {
            let head = try #require(request(fields: replacing("Sec-WebSocket-Key", with: value)))
            #expect(WebSocketHandshake.validate(head) == .failure(badRequest), "\(String(describing: value))")
        }
    }

    @Test func rejectsRepeatedKeyWith400() throws {
        let head = try #require(request(fields: exampleFields + [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]))
        #expect(WebSocketHandshake.validate(head) == .failure(badRequest))
    }

    @Test func rejectsVersionOtherThan13With426AndSupportedVersion() throws {
        let upgradeRequired = HandshakeRejection(status: .upgradeRequired, extraHeaders: [("Sec-WebSocket-Version", "13")])
        for value in [nil, "8", "12", "14", "13, 8", " 013"] as [String?] {
            let head = try #require(request(fields: replacing("Sec-WebSocket-Version", with: value)))
            #expect(WebSocketHandshake.validate(head) == .failure(upgradeRequired), "\(String(describing: value))")
        }
    }

    @Test func switchingProtocolsResponseCarriesTheAcceptValue() {
        var out: [UInt8] = []
        WebSocketHandshake.writeSwitchingProtocols(accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    }

    @Test func rejectionEqualityComparesExtraHeaders() {
        #expect(HandshakeRejection(status: .badRequest) != HandshakeRejection(status: .badRequest, extraHeaders: [("A", "1")]))
        #expect(HandshakeRejection(status: .badRequest, extraHeaders: [("A", "1")])
            != HandshakeRejection(status: .badRequest, extraHeaders: [("A", "2")]))
        #expect(HandshakeRejection(status: .badRequest) != HandshakeRejection(status: .upgradeRequired))
    }

    @Test func uvchat2AnywhereInTheSubprotocolListSelectsVersion2() {
        let cases: [([String], ProtocolVersion)] = [
            ([], .v1), (["chat, superchat"], .v1), (["uvchat.2"], .v2), (["foo , uvchat.2"], .v2),
            (["foo", " uvchat.2 "], .v2), (["uvchat.2x"], .v1), (["UVCHAT.2"], .v1), (["uvchat.1,uvchat"], .v1),
        ]
        for (values, expected) in cases {
            var fields = exampleFields.filter { $0.0 != "Sec-WebSocket-Protocol" }
            for v in values { fields.append(("Sec-WebSocket-Protocol", v)) }
            guard let head = request(fields: fields) else {
                Issue.record("no head for \(values)")
                continue
            }
            #expect(WebSocketHandshake.version(head) == expected, "\(values)")
        }
    }

    @Test func the101EchoesTheSubprotocolOnlyForVersion2() {
        var v1: [UInt8] = [], v2: [UInt8] = []
        WebSocketHandshake.writeSwitchingProtocols(accept: "x", into: &v1)
        WebSocketHandshake.writeSwitchingProtocols(accept: "x", version: .v2, into: &v2)
        #expect(!String(decoding: v1, as: UTF8.self).contains("Sec-WebSocket-Protocol"))
        #expect(String(decoding: v2, as: UTF8.self).hasSuffix("Sec-WebSocket-Accept: x\r\nSec-WebSocket-Protocol: uvchat.2\r\n\r\n"))
    }
}
