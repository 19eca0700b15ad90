import Foundation
import Testing
@testable import UVChat

@Suite struct StaticPathTests {
    @Test func mapsDirectoriesToIndex() {
        #expect(StaticPath.normalize("/") == "/index.html")
        #expect(StaticPath.normalize("/sub/") == "/sub/index.html")
        #expect(StaticPath.normalize("//a//b.css") == "/a/b.css")
        #expect(StaticPath.normalize("/caf%C3%A9.txt") == "/café.txt")
    }

    @Test func refusesEveryWayOut() {
        for raw in ["/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc", "/a/%2E%2E/%2E%2E/x", "/%00", "/a%00.html",
                    "/foo%5c..%5cbar", "/a/./b", "/.hidden", "/%2ehidden", "relative", "", "/%zz", "/%C0%AE%C0%AE/x",
                    "/.\u{336}.tF/"] {   // the last one was found by the fuzzer: a dot with a combining mark
            #expect(StaticPath.normalize(raw) == nil, "\(raw)")
        }
        // Double encoding is just an odd file name, which then does not exist.
        #expect(StaticPath.normalize("/%252e%252e/x") == "/%2e%2e/x")
    }
}

@Suite struct StaticFilesTests {
    /// A temporary www with an index, a subfolder, a hidden file and two symlinks (one leaving the folder).
    final class TempWWW {
        let root: URL
        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("uvchat-static-\(UUID().uuidString)")
            let fm = FileManager.default
            try fm.createDirectory(at: root.appendingPathComponent("sub"), withIntermediateDirectories: true)
            try "<!doctype html>hi".write(to: root.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
            try "body{}".write(to: root.appendingPathComponent("style.CSS"), atomically: true, encoding: .utf8)
            try "sub".write(to: root.appendingPathComponent("sub/index.html"), atomically: true, encoding: .utf8)
            try "secret".write(to: root.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
            try fm.createSymbolicLink(atPath: root.appendingPathComponent("passwd").path, withDestinationPath: "/etc/passwd")
            try fm.createSymbolicLink(atPath: root.appendingPathComponent("alias.html").path,
                                      withDestinationPath: root.appendingPathComponent("index.html").path)
        }
        deinit { try? FileManager.default.removeItem(at: root) }
    }

    @Test func servesFilesWithTypesAndValidators() throws {
        let www = try TempWWW()
        let files = try StaticFiles(root: www.root.path)
        let index = files.respond(rawPath: "/", ifNoneMatch: nil, ifModifiedSince: nil)
        #expect(index.status == 200)
        #expect(index.body == Array("<!doctype html>hi".utf8))
        let headers = Dictionary(index.headers, uniquingKeysWith: { a, _ in a })
        #expect(headers["Content-Type"] == "text/html; charset=utf-8")
        #expect(headers["Cache-Control"] == "no-cache")
        #expect(headers["ETag"]?.hasPrefix("\"") == true)
        #expect(headers["Last-Modified"]?.hasSuffix(" GMT") == true)
        let css = files.respond(rawPath: "/style.CSS", ifNoneMatch: nil, ifModifiedSince: nil)
        #expect(Dictionary(css.headers, uniquingKeysWith: { a, _ in a })["Content-Type"] == "text/css; charset=utf-8")
        #expect(files.respond(rawPath: "/sub/", ifNoneMatch: nil, ifModifiedSince: nil).body == Array("sub".utf8))
    }

    @Test func neverServesOutsideHiddenOrMissing() throws {
        let www = try TempWWW()
        let files = try StaticFiles(root: www.root.path)
        #expect(files.respond(rawPath: "/passwd", ifNoneMatch: nil, ifModifiedSince: nil).status == 404)
        #expect(files.respond(rawPath: "/.env", ifNoneMatch: nil, ifModifiedSince: nil).status == 404)
        #expect(files.respond(rawPath: "/nope", ifNoneMatch: nil, ifModifiedSince: nil).status == 404)
        #expect(files.respond(rawPath: "/alias.html", ifNoneMatch: nil, ifModifiedSince: nil).status == 200)
        let missing = files.respond(rawPath: "/nope", ifNoneMatch: nil, ifModifiedSince: nil)
        #expect(String(decoding: missing.body, as: UTF8.self).contains("Not found"))
    }

    @Test func conditionalRequestsGive304() throws {
        let www = try TempWWW()
        let files = try StaticFiles(root: www.root.path)
        let first = files.respond(rawPath: "/index.html", ifNoneMatch: nil, ifModifiedSince: nil)
        let h = Dictionary(first.headers, uniquingKeysWith: { a, _ in a })
        let etag = try #require(h["ETag"])
        let lastModified = try #require(h["Last-Modified"])
        #expect(files.respond(rawPath: "/index.html", ifNoneMatch: etag, ifModifiedSince: nil).status == 304)
        #expect(files.respond(rawPath: "/index.html", ifNoneMatch: "W/\(etag)", ifModifiedSince: nil).status == 304)
        #expect(files.respond(rawPath: "/index.html", ifNoneMatch: "\"x\", \(etag)", ifModifiedSince: nil).status == 304)
        #expect(files.respond(rawPath: "/index.html", ifNoneMatch: "*", ifModifiedSince: nil).status == 304)
        #expect(files.respond(rawPath: "/index.html", ifNoneMatch: nil, ifModifiedSince: lastModified).status == 304)
        // If-None-Match wins: a mismatch is a 200 even with a later date.
        #expect(files.respond(rawPath: "/index.html", ifNoneMatch: "\"other\"", ifModifiedSince: "Fri, 01 Jan 2100 00:00:00 GMT").status == 200)
        #expect(files.respond(rawPath: "/index.html", ifNoneMatch: nil, ifModifiedSince: "Thu, 01 Jan 1970 00:00:00 GMT").status == 200)
        #expect(files.respond(rawPath: "/index.html", ifNoneMatch: etag, ifModifiedSince: nil).body.isEmpty)
    }

    @Test func etagFollowsContent() {
        #expect(StaticFiles.etag(Array("a".utf8)) == StaticFiles.etag(Array("a".utf8)))
        #expect(StaticFiles.etag(Array("a".utf8)) != StaticFiles.etag(Array("b".utf8)))
    }

    @Test func missingRootIsAClearError() {
        #expect(throws: StaticFilesError.self) { try StaticFiles(root: "/nonexistent/uvchat-www") }
    }
}
