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

    @Test func formatsIMFFixdate() {
        #expect(HTTPResponseWriter.httpDate(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPResponseWriter.httpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPResponseWriter.httpDate(951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPResponseWriter.httpDate(4_102_444_799) == "Thu, 31 Dec 2099 23:59:59 GMT")
        #expect(HTTPResponseWriter.httpDate(-1) == "Wed, 31 Dec 1969 23:59:59 GMT")
    }

    @Test func parsesIMFFixdate() {
        #expect(HTTPResponseWriter.parseHTTPDate("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPResponseWriter.parseHTTPDate("Tue, 29 Feb 2000 00:00:00 GMT") == 951_782_400)
    }

    @Test func dateFormattingAndParsingRoundTrip() {
        // Every day across leap years and century boundaries, at a varying time of day.
        var t = -86_400 * 365
        while t < 4_200_000_000 {
            let s = HTTPResponseWriter.httpDate(t)
            #expect(HTTPResponseWriter.parseHTTPDate(s) == t, "\(s)")
            t += 86_400 * 3 + 3_607
        }
        for days in [-719_468, -1, 0, 10_956, 11_016, 47_541] {
            let (y, m, d) = HTTPResponseWriter.civil(fromDays: days)
            #expect(HTTPResponseWriter.days(fromYear: y, month: m, day: d) == days)
        }
    }

    @Test func rejectsMalformedHTTPDates() {
        for bad in ["", "Sun, 06 Nov 1994 08:49:37 UTC", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
                    "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 29 Feb 1900 08:49:37 GMT",
                    "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:61 GMT",
                    "Sun, 06 Xyz 1994 08:49:37 GMT", "Fun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT "] {
            #expect(HTTPResponseWriter.parseHTTPDate(bad) == nil, "\(bad)")
        }
        #expect(HTTPResponseWriter.parseHTTPDate("Thu, 29 Feb 1996 00:00:00 GMT") != nil)
    }
}
