import Testing
@testable import UVChat

/// Feeds `chunks` to one parser in order, as successive reads.
private func feed(_ chunks: [[UInt8]], limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
    var parser = HTTPRequestParser(limits: limits)
    var result = HTTPParseResult.needMore
    for chunk in chunks {
        result = chunk.withUnsafeBytes { parser.parse($0) }
        if case .needMore = result { continue }
        return result
    }
    return result
}

private func parse(_ text: String, limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
    feed([Array(text.utf8)], limits: limits)
}

/// The result of `text` fed whole, then split at every byte boundary, then one byte at a time; all must agree on
/// the status (for errors) or be heads (returned for inspection).
private func parseEverySplit(_ text: String, limits: HTTPLimits = HTTPLimits()) -> [HTTPParseResult] {
    let bytes = Array(text.utf8)
    var results = [feed([bytes], limits: limits)]
    for cut in 0...bytes.count {
        results.append(feed([Array(bytes[..<cut]), Array(bytes[cut...])], limits: limits))
    }
    results.append(feed(bytes.map { [$0] }, limits: limits))
    return results
}

private func status(_ result: HTTPParseResult) -> Int? {
    if case .error(let s) = result { return s.code }
    return nil
}

private func head(_ result: HTTPParseResult) -> HTTPRequestHead? {
    if case .head(let h, _) = result { return h }
    return nil
}

/// Every split of `text` is refused with `code`.
private func expectRejected(_ text: String, _ code: Int, limits: HTTPLimits = HTTPLimits(),
                            sourceLocation: SourceLocation = #_sourceLocation) {
    for result in parseEverySplit(text, limits: limits) {
        #expect(status(result) == code, "\(text.debugDescription)", sourceLocation: sourceLocation)
    }
}

private let upgradeRequest = "GET /ws?interests=music,movies HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

@Suite struct HTTPRequestParserTests {
    @Test func parsesRequestLineAndFields() throws {
        let h = try #require(head(parse("GET /a/b%20c?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Thing:   spaced \t \r\nx-thing: second\r\n\r\n")))
        #expect(h.method == .get)
        #expect(h.methodName == "GET")
        #expect(h.target == "/a/b%20c?x=1&y=2")
        #expect(h.path == "/a/b%20c")
        #expect(h.query == "x=1&y=2")
        #expect(h.versionMinor == 1)
        #expect(h.headers.map(\.name) == ["host", "x-thing", "x-thing"])
        #expect(h.header("x-thing") == "spaced")
        #expect(h.headerValues("x-thing") == ["spaced", "second"])
        #expect(h.header("missing") == nil)
        #expect(h.contentLength == 0)
    }

    @Test func fieldsAreFoundByNameInAnyCaseWhereTheyLie() throws {
        let h = try #require(head(parse("GET / HTTP/1.1\r\nHOST: h\r\nX-List: a,, B ,c\r\nx-list:d\r\nX-Lisp: e\r\n"
                                        + "X-One: only\r\nX-Empty:\r\n\r\n")))
        #expect(h.fieldCount == 6)
        #expect(h.headerCount("host") == 1 && h.headerCount("x-list") == 2 && h.headerCount("x-lis") == 0)
        #expect(h.header("x-lisp") == "e" && h.header("x-empty") == "")
        // The only line of its name, as bytes; nil when the name repeats or is absent.
        #expect(h.onlyHeaderBytes("x-one").map { Array($0) } == Array("only".utf8))
        #expect(h.onlyHeaderBytes("x-list") == nil && h.onlyHeaderBytes("x-none") == nil)
        // Tokens over every line of the name, trimmed, empty elements skipped, case folded unless asked not to.
        for token in ["a", "b", "c", "d"] as [StaticString] { #expect(h.headerContainsToken("x-list", token), "\(token)") }
        #expect(!h.headerContainsToken("x-list", "e") && !h.headerContainsToken("x-list", ""))
        #expect(h.headerContainsToken("x-list", "B", ignoringCase: false))
        #expect(!h.headerContainsToken("x-list", "b", ignoringCase: false))
        #expect(!h.headerContainsToken("x-empty", "x"))
        var removed = h
        removed.removeHeaders("x-list")
        #expect(removed.headers.map(\.name) == ["host", "x-lisp", "x-one", "x-empty"] && h.headerCount("x-list") == 2)
    }

    @Test func tokenBytesAreExactlyRFC9110Tchar() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        for byte in 0...255 {
            #expect(HTTPRequestParser.isTokenByte(UInt8(byte)) == tchar.contains(UInt8(byte)), "\(byte)")
        }
    }

    @Test func queryIsNilWithoutQuestionMarkAndExcludesFragment() throws {
        let plain = try #require(head(parse("GET /p HTTP/1.1\r\nHost: h\r\n\r\n")))
        #expect(plain.query == nil)
        let empty = try #require(head(parse("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n")))
        #expect(empty.query == "")
        let fragment = try #require(head(parse("GET /p?q=1#frag HTTP/1.1\r\nHost: h\r\n\r\n")))
        #expect(fragment.path == "/p")
        #expect(fragment.query == "q=1")
    }

    @Test func reducesAbsoluteFormToPath() throws {
        let h = try #require(head(parse("GET http://example.com:8080/ws?a=b HTTP/1.1\r\nHost: example.com\r\n\r\n")))
        #expect(h.path == "/ws")
        #expect(h.query == "a=b")
        #expect(h.target == "http://example.com:8080/ws?a=b")
        let root = try #require(head(parse("GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n")))
        #expect(root.path == "/")
    }

    @Test func rejectsTargetThatIsNeitherOriginNorAbsoluteForm() {
        expectRejected("GET ws HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        expectRejected("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        expectRejected("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        expectRejected("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400)
    }

    @Test func acceptsAsteriskFormForOptions() throws {
        let h = try #require(head(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")))
        #expect(h.method == .other)
        #expect(h.path == "*")
    }

    @Test func everyByteSplitGivesTheSameHeadAndConsumedCountsTheLastCall() throws {
        let frames: [UInt8] = [0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        let bytes = Array(upgradeRequest.utf8) + frames
        let headLength = upgradeRequest.utf8.count
        for cut in 0...bytes.count {
            var parser = HTTPRequestParser()
            let first = Array(bytes[..<cut])
            let second = Array(bytes[cut...])
            var result = first.withUnsafeBytes { parser.parse($0) }
            var expectedConsumed = headLength
            if cut < headLength {
                guard case .needMore = result else { Issue.record("cut \(cut): \(result)"); continue }
                result = second.withUnsafeBytes { parser.parse($0) }
                expectedConsumed = headLength - cut
            }
            guard case .head(let h, let consumed) = result else { Issue.record("cut \(cut): \(result)"); continue }
            #expect(consumed == expectedConsumed, "cut \(cut)")
            #expect(h.path == "/ws" && h.query == "interests=music,movies")
            #expect(h.headers.count == 5)
            #expect(h.header("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ==")
        }
        // One byte at a time: every call before the last is consumed whole, the last call consumes its one byte.
        var parser = HTTPRequestParser()
        for (index, byte) in bytes.prefix(headLength).enumerated() {
            let result = [byte].withUnsafeBytes { parser.parse($0) }
            if index < headLength - 1 {
                guard case .needMore = result else { Issue.record("byte \(index): \(result)"); break }
            } else {
                guard case .head(let h, let consumed) = result else { Issue.record("last byte: \(result)"); break }
                #expect(consumed == 1)
                #expect(h.header("upgrade") == "websocket")
            }
        }
    }

    @Test func bytesAfterAnUpgradeHeadAreNotConsumed() {
        let frames: [UInt8] = [0x81, 0x80, 0xAA, 0xBB, 0xCC, 0xDD]
        let result = feed([Array(upgradeRequest.utf8) + frames])
        guard case .head(_, let consumed) = result else { Issue.record("\(result)"); return }
        #expect(consumed == upgradeRequest.utf8.count)
    }

    @Test func pipelinedRequestsParseOneAfterAnotherAfterReset() {
        let first = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
        let second = "HEAD /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        let bytes = Array((first + second).utf8)
        var parser = HTTPRequestParser()
        bytes.withUnsafeBytes { raw in
            guard case .head(let h1, let c1) = parser.parse(raw) else { Issue.record("first"); return }
            #expect(h1.path == "/one")
            #expect(c1 == first.utf8.count)
            parser.reset()
            guard case .head(let h2, let c2) = parser.parse(UnsafeRawBufferPointer(rebasing: raw[c1...])) else {
                Issue.record("second"); return
            }
            #expect(h2.path == "/two")
            #expect(h2.method == .head)
            #expect(h2.keepAlive)
            #expect(c2 == second.utf8.count)
            #expect(h2.header("connection") == "keep-alive")
            // The first request's fields must not leak into the second.
            #expect(h2.header("host") == nil)
        }
    }

    @Test func resetClearsAPartialHead() throws {
        var parser = HTTPRequestParser()
        let partial = Array("GET /stale HTTP/1.1\r\nX-Old: 1\r\n".utf8)
        _ = partial.withUnsafeBytes { parser.parse($0) }
        parser.reset()
        let fresh = Array("GET /fresh HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        let h = try #require(head(fresh.withUnsafeBytes { parser.parse($0) }))
        #expect(h.path == "/fresh")
        #expect(h.header("x-old") == nil)
    }

    @Test func toleratesLeadingEmptyLinesBeforeTheRequestLine() throws {
        for result in parseEverySplit("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n") {
            let h = try #require(head(result))
            #expect(h.path == "/")
        }
        guard case .head(_, let consumed) = parse("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\nNEXT") else {
            Issue.record("no head"); return
        }
        #expect(consumed == "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8.count)
    }

    @Test func headMethodIsRecognised() throws {
        let h = try #require(head(parse("HEAD /index.html HTTP/1.1\r\nHost: h\r\n\r\n")))
        #expect(h.method == .head)
    }

    @Test func methodsAreCaseSensitiveAndOthersParseAsOther() throws {
        let lower = try #require(head(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n")))
        #expect(lower.method == .other)
        #expect(lower.methodName == "get")
        let post = try #require(head(parse("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")))
        #expect(post.method == .other)
        #expect(post.methodName == "POST")
        #expect(post.contentLength == 3)
    }

    @Test func http11IsKeepAliveUnlessConnectionClose() throws {
        #expect(try #require(head(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n"))).keepAlive)
        #expect(try !#require(head(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))).keepAlive)
        #expect(try !#require(head(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n"))).keepAlive)
        #expect(try !#require(head(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo\r\nConnection: close\r\n\r\n"))).keepAlive)
        #expect(try #require(head(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"))).keepAlive)
    }

    @Test func http10IsKeepAliveOnlyWithKeepAliveToken() throws {
        let plain = try #require(head(parse("GET / HTTP/1.0\r\n\r\n")))
        #expect(plain.versionMinor == 0)
        #expect(!plain.keepAlive)
        #expect(try #require(head(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))).keepAlive)
        #expect(try !#require(head(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"))).keepAlive)
    }

    @Test func rejectsBareLFLineEndingsWith400() {
        expectRejected("GET / HTTP/1.1\nHost: h\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: h\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\n\n", 400)
        expectRejected("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
    }

    @Test func rejectsBareCRWith400() {
        expectRejected("GET / HTTP/1.1\rHost: h\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400)
    }

    @Test func rejectsMalformedRequestLineWith400() {
        expectRejected("GET /\r\n\r\n", 400)
        expectRejected("GET\r\n\r\n", 400)
        expectRejected("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400)
        expectRejected(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        expectRejected("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        expectRejected("GET /caf\u{E9} HTTP/1.1\r\nHost: h\r\n\r\n", 400)
        expectRejected("GET /a\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n", 400)
    }

    @Test func rejectsBadVersionWith400() {
        for version in ["HTTP/1", "http/1.1", "HTTP/1.1x", "HTTP/11.1", "HTTP/1.", "HTTQ/1.1", "HTTP/a.1"] {
            expectRejected("GET / \(version)\r\nHost: h\r\n\r\n", 400)
        }
    }

    @Test func rejectsUnsupportedMajorVersionWith505() {
        expectRejected("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505)
        expectRejected("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505)
        expectRejected("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505)
    }

    @Test func acceptsLaterMinorVersionAsHTTP11() throws {
        let h = try #require(head(parse("GET / HTTP/1.2\r\nHost: h\r\n\r\n")))
        #expect(h.versionMinor == 2)
        #expect(h.keepAlive)
    }

    @Test func rejectsFieldLineWithoutColonWith400() {
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400)
    }

    @Test func rejectsWhitespaceBeforeColonWith400() {
        expectRejected("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400)
    }

    @Test func rejectsObsFoldWith400() {
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400)
    }

    @Test func rejectsInvalidTokenCharactersInFieldNameWith400() {
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX\u{E9}: 1\r\n\r\n", 400)
    }

    @Test func rejectsControlCharactersInFieldValueWith400() {
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{7F}\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX: a\u{1B}\r\n\r\n", 400)
    }

    @Test func acceptsTabAndObsTextInFieldValue() throws {
        let h = try #require(head(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\tb caf\u{E9}\r\n\r\n")))
        #expect(h.header("x") == "a\tb caf\u{E9}")
    }

    @Test func rejectsHeadOverMaxHeadBytesWith431() {
        let limits = HTTPLimits(maxHeadBytes: 64, maxTargetBytes: 32, maxHeaderCount: 10)
        let padding = String(repeating: "v", count: 60)
        // Refused while still incomplete: no end of head will ever fit.
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX: \(padding)", 431, limits: limits)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nX: \(padding)\r\n\r\n", 431, limits: limits)
        expectRejected(String(repeating: "\r\n", count: 40), 431, limits: limits)
    }

    @Test func acceptsHeadOfExactlyMaxHeadBytes() throws {
        let start = "GET / HTTP/1.1\r\nHost: h\r\nX: "
        let value = String(repeating: "v", count: 64 - start.utf8.count - 4)
        let text = start + value + "\r\n\r\n"
        #expect(text.utf8.count == 64)
        let limits = HTTPLimits(maxHeadBytes: 64, maxTargetBytes: 32, maxHeaderCount: 10)
        for result in parseEverySplit(text, limits: limits) { #expect(head(result) != nil) }
        expectRejected(start + value + "v\r\n\r\n", 431, limits: limits)
    }

    @Test func rejectsTargetOverMaxTargetBytesWith414EvenBeforeTheHeadIsComplete() {
        let limits = HTTPLimits(maxHeadBytes: 1024, maxTargetBytes: 16, maxHeaderCount: 10)
        let long = "/" + String(repeating: "a", count: 16)
        expectRejected("GET \(long)", 414, limits: limits)
        expectRejected("GET \(long) HTTP/1.1\r\nHost: h\r\n\r\n", 414, limits: limits)
        // With the default limits, a target far beyond the head limit is still reported as 414.
        expectRejected("GET /" + String(repeating: "a", count: 40_000), 414)
    }

    @Test func acceptsTargetOfExactlyMaxTargetBytes() throws {
        let limits = HTTPLimits(maxHeadBytes: 1024, maxTargetBytes: 16, maxHeaderCount: 10)
        let target = "/" + String(repeating: "a", count: 15)
        for result in parseEverySplit("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits) {
            #expect(head(result)?.path == target)
        }
    }

    @Test func rejectsMoreThanMaxHeaderCountFieldsWith431() {
        let limits = HTTPLimits(maxHeadBytes: 4096, maxTargetBytes: 64, maxHeaderCount: 3)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n", 431, limits: limits)
        for result in parseEverySplit("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", limits: limits) {
            #expect(head(result)?.headers.count == 3)
        }
    }

    @Test func rejectsTransferEncodingWith501() {
        expectRejected("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 501)
        expectRejected("GET / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: identity\r\n\r\n", 501)
    }

    @Test func rejectsInvalidContentLengthWith400() {
        for value in ["abc", "-1", "+1", "1.0", "", "1 2", "99999999999999999999999"] {
            expectRejected("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(value)\r\n\r\n", 400)
        }
    }

    @Test func rejectsConflictingContentLengthsWith400() {
        expectRejected("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400)
        expectRejected("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", 400)
    }

    @Test func acceptsRepeatedIdenticalContentLength() throws {
        let h = try #require(head(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n")))
        #expect(h.contentLength == 5)
    }

    @Test func rejectsHTTP11RequestWithoutHostOrWithTwoWith400() throws {
        expectRejected("GET / HTTP/1.1\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
        expectRejected("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400)
        #expect(head(parse("GET / HTTP/1.0\r\n\r\n")) != nil)
    }

    @Test func errorIsStickyUntilReset() throws {
        var parser = HTTPRequestParser()
        let bad = Array("GET / HTTP/1.1\nHost: h\r\n\r\n".utf8)
        #expect(status(bad.withUnsafeBytes { parser.parse($0) }) == 400)
        let good = Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        #expect(status(good.withUnsafeBytes { parser.parse($0) }) == 400)
        parser.reset()
        #expect(head(good.withUnsafeBytes { parser.parse($0) }) != nil)
    }

    @Test func emptyInputNeedsMore() {
        var parser = HTTPRequestParser()
        let result = [UInt8]().withUnsafeBytes { parser.parse($0) }
        guard case .needMore = result else { Issue.record("\(result)"); return }
    }
}
