import Testing
@testable import UVChat

@Suite struct StaticPathTests {
    @Test func mapsRootAndFolderPathsToTheirIndex() {
        #expect(StaticPath.normalize("/") == "/index.html")
        #expect(StaticPath.normalize("//") == "/index.html")
        #expect(StaticPath.normalize("/sub/") == "/sub/index.html")
        #expect(StaticPath.normalize("/a/b//") == "/a/b/index.html")
        // Without the slash it names a file; a folder of that name is not one, so it is a 404 upstream.
        #expect(StaticPath.normalize("/sub") == "/sub")
    }

    @Test func collapsesEmptySegments() {
        #expect(StaticPath.normalize("//a//b.css") == "/a/b.css")
        #expect(StaticPath.normalize("/a///b/c.js") == "/a/b/c.js")
    }

    @Test func decodesPercentEscapesInEitherCase() {
        #expect(StaticPath.normalize("/caf%C3%A9.txt") == "/café.txt")
        #expect(StaticPath.normalize("/caf%c3%a9.txt") == "/café.txt")
        #expect(StaticPath.normalize("/a%20b.txt") == "/a b.txt")
        #expect(StaticPath.normalize("/%61pp.js") == "/app.js")
        #expect(StaticPath.normalize("/a%3Fb") == "/a?b")
    }

    @Test func keepsDotsInsideNames() {
        #expect(StaticPath.normalize("/app.min.js") == "/app.min.js")
        #expect(StaticPath.normalize("/a..b") == "/a..b")
        #expect(StaticPath.normalize("/a/b.") == "/a/b.")
        #expect(StaticPath.normalize("/a/b..") == "/a/b..")
    }

    @Test func rejectsInvalidPercentEscapes() {
        for raw in ["/%", "/%2", "/a%", "/%zz", "/%g0", "/%0g", "/a%2", "/%%41"] {
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
    }

    @Test func rejectsDotSegmentsRawOrEncoded() {
        for raw in ["/../etc/passwd", "/..", "/.", "/./index.html", "/a/./b", "/a/../b", "/a/..", "/%2e%2e/%2e%2e/etc/passwd",
                    "/a/%2E%2E/%2E%2E/x", "/%2e", "/%2E./x", "/.%2e/x", "/a/%2e%2e"] {
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
    }

    @Test func rejectsEncodedSlash() {
        for raw in ["/..%2fetc", "/..%2Fetc", "/a%2fb", "/a%2Fb.html", "/%2F", "/%2f%2fetc%2fpasswd"] {
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
    }

    @Test func rejectsNULAndControlCharacters() {
        for raw in ["/%00", "/a%00.html", "/index.html%00.png", "/%0a", "/%0D%0Aset-cookie", "/%1f", "/%7f", "/%7F",
                    "/a\u{1}b", "/a\u{7F}", "/a\tb"] {
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
    }

    @Test func rejectsBackslashRawOrEncoded() {
        for raw in ["/foo%5c..%5cbar", "/foo%5C..%5Cbar", "/a\\b", "/..\\etc", "/%5c"] {
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
    }

    @Test func rejectsHiddenSegments() {
        for raw in ["/.env", "/%2eenv", "/%2Egit/config", "/a/.git/config", "/.well-known/x", "/.hidden/",
                    "/.\u{336}.tF/"] {   // the last was found by the fuzzer: a dot with a combining mark
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
    }

    @Test func rejectsPathsThatAreNotAbsolute() {
        for raw in ["", "relative", "index.html", "*", "a/b", "%2fetc", " /index.html"] {
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
    }

    @Test func rejectsBytesThatAreNotUTF8OnceDecoded() {
        // Overlong forms of '.' and '/' (the old IIS traversal) and stray bytes.
        for raw in ["/%C0%AE%C0%AE/x", "/%C0%AF", "/%E0%80%AE", "/%FF", "/caf%C3", "/%80"] {
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
    }

    @Test func decodesOnlyOnceSoDoubleEncodingIsALiteralName() {
        #expect(StaticPath.normalize("/%252e%252e/x") == "/%2e%2e/x")
        #expect(StaticPath.normalize("/%252e%252e%252fetc%252fpasswd") == "/%2e%2e%2fetc%2fpasswd")
    }

    /// Every path built from the risky pieces, up to five of them: a key is absolute, with no empty, dot-led,
    /// control or backslash segment, and a rejected path is rejected for one of the stated reasons.
    @Test func normalizedKeysNeverLeaveTheRoot() {
        let pieces = ["/", ".", "%2e", "%2E", "%2f", "a", "%5c", "%00", "%", "%25"]
        var paths = ["/"]
        var frontier = ["/"]
        for _ in 0..<5 {
            frontier = frontier.flatMap { p in pieces.map { p + $0 } }
            paths += frontier
        }
        var accepted = 0
        for raw in paths {
            guard let key = StaticPath.normalize(raw) else { continue }
            accepted += 1
            #expect(key.utf8.first == UInt8(ascii: "/"), "\(raw)")
            for segment in key.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst() {
                #expect(!segment.isEmpty && segment.first != UInt8(ascii: "."), "\(raw) -> \(key)")
                #expect(!segment.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\\") }), "\(raw) -> \(key)")
            }
        }
        #expect(accepted > 1000)   // the rule is not simply "reject everything"
    }
}
