import Testing
@testable import UVChat

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

@Suite struct HTTPResponseWriterTests {
    @Test func headHasStatusLineFieldsContentLengthAndFinalEmptyLine() {
        var out: [UInt8] = []
        HTTPResponseWriter.writeHead(status: .ok, headers: [("Content-Type", "text/html"), ("ETag", "\"x\"")],
                                     bodyLength: 42, keepAlive: true, into: &out)
        #expect(text(out) == "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nETag: \"x\"\r\nContent-Length: 42\r\n\r\n")
    }

    @Test func headAppendsToExistingBytes() {
        var out: [UInt8] = Array("prefix".utf8)
        HTTPResponseWriter.writeHead(status: .notFound, headers: [], bodyLength: 0, keepAlive: true, into: &out)
        #expect(text(out) == "prefixHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func connectionCloseIsSentWhenNotKeepingAlive() {
        var out: [UInt8] = []
        HTTPResponseWriter.writeHead(status: .ok, headers: [], bodyLength: 3, keepAlive: false, into: &out)
        #expect(text(out) == "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n")
    }

    @Test func notModifiedAndSwitchingProtocolsCarryNoContentLength() {
        var notModified: [UInt8] = []
        HTTPResponseWriter.writeHead(status: .notModified, headers: [("ETag", "\"e\"")], bodyLength: 1234,
                                     keepAlive: true, into: &notModified)
        #expect(text(notModified) == "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n")
        var switching: [UInt8] = []
        HTTPResponseWriter.writeHead(status: .switchingProtocols, headers: [], bodyLength: 0, keepAlive: true,
                                     into: &switching)
        #expect(text(switching) == "HTTP/1.1 101 Switching Protocols\r\n\r\n")
    }

    @Test func errorResponseHasPlainTextBodyAndClosesTheConnection() {
        var out: [UInt8] = []
        HTTPResponseWriter.writeError(.methodNotAllowed, extraHeaders: [("Allow", "GET, HEAD")], into: &out)
        #expect(text(out) == "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Allow: GET, HEAD\r\nContent-Length: 23\r\nConnection: close\r\n\r\n405 Method Not Allowed\n")
    }

    @Test func errorResponseToHeadOmitsBodyButKeepsItsLength() {
        var out: [UInt8] = []
        HTTPResponseWriter.writeError(.notFound, includeBody: false, into: &out)
        #expect(text(out) == "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: 14\r\nConnection: close\r\n\r\n")
    }

    @Test func statusesHaveTheirRegisteredCodesAndReasons() {
        let all: [(HTTPStatus, Int, String)] = [
            (.switchingProtocols, 101, "Switching Protocols"), (.ok, 200, "OK"), (.notModified, 304, "Not Modified"),
            (.badRequest, 400, "Bad Request"), (.forbidden, 403, "Forbidden"), (.notFound, 404, "Not Found"),
            (.methodNotAllowed, 405, "Method Not Allowed"), (.uriTooLong, 414, "URI Too Long"),
            (.upgradeRequired, 426, "Upgrade Required"),
            (.requestHeaderFieldsTooLarge, 431, "Request Header Fields Too Large"),
            (.internalServerError, 500, "Internal Server Error"), (.notImplemented, 501, "Not Implemented"),
            (.serviceUnavailable, 503, "Service Unavailable"),
            (.httpVersionNotSupported, 505, "HTTP Version Not Supported"),
        ]
        for (status, code, reason) in all {
            #expect(status.code == code)
            #expect(status.reason == reason)
        }
    }
}
