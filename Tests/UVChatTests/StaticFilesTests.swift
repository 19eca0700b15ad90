import Glibc
import Testing
@testable import UVChat

/// A throwaway `www` made with mkdtemp and removed in deinit, built with the same system calls the loader uses.
final class TempWWW {
    let root: String

    init() throws {
        var template = Array("/tmp/uvchat-static-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TempError(what: "mkdtemp")
        }
        root = String(cString: made)
    }

    deinit { Self.remove(root) }

    func write(_ relative: String, _ text: String, mtime: Int? = nil) throws {
        let path = root + "/" + relative
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TempError(what: "open \(path)") }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard n == bytes.count else { throw TempError(what: "write \(path)") }
        if let mtime { try setMtime(relative, mtime) }
    }

    func setMtime(_ relative: String, _ seconds: Int) throws {
        var times = [timeval(tv_sec: seconds, tv_usec: 0), timeval(tv_sec: seconds, tv_usec: 0)]
        guard utimes(root + "/" + relative, &times) == 0 else { throw TempError(what: "utimes \(relative)") }
    }

    func mkdir(_ relative: String) throws {
        guard Glibc.mkdir(root + "/" + relative, 0o755) == 0 else { throw TempError(what: "mkdir \(relative)") }
    }

    func symlink(_ relative: String, to target: String) throws {
        guard Glibc.symlink(target, root + "/" + relative) == 0 else { throw TempError(what: "symlink \(relative)") }
    }

    func load(_ limits: StaticFiles.Limits = StaticFiles.Limits()) throws -> StaticFiles {
        try StaticFiles(root: root, limits: limits)
    }

    private static func remove(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            if let dir = opendir(path) {
                var names: [String] = []
                while let entry = readdir(dir) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(dir)
                for name in names { remove(path + "/" + name) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    struct TempError: Error { let what: String }
}

private func header(_ response: StaticResponse, _ name: String) -> String? {
    response.headers.first { $0.0.lowercased() == name.lowercased() }?.1
}

private func get(_ files: StaticFiles, _ path: String, ifNoneMatch: String? = nil, ifModifiedSince: String? = nil)
    -> StaticResponse {
    files.respond(rawPath: path, ifNoneMatch: ifNoneMatch, ifModifiedSince: ifModifiedSince)
}

@Suite struct StaticFilesTests {
    @Test func servesIndexForRootAndForFolderPaths() throws {
        let www = try TempWWW()
        try www.write("index.html", "<!doctype html>home")
        try www.mkdir("sub")
        try www.write("sub/index.html", "sub home")
        let files = try www.load()
        #expect(get(files, "/").status == 200)
        #expect(get(files, "/").body == Array("<!doctype html>home".utf8))
        #expect(get(files, "/index.html").body == Array("<!doctype html>home".utf8))
        #expect(get(files, "/sub/").body == Array("sub home".utf8))
        #expect(get(files, "//sub//").body == Array("sub home".utf8))
        #expect(get(files, "/sub").status == 404)   // a folder is not a file
        #expect(files.fileCount == 2)
        #expect(files.lookup("/sub/index.html")?.body == Array("sub home".utf8))
        #expect(files.lookup("/sub") == nil)
    }

    @Test func okCarriesTypeValidatorsCachingAndNosniff() throws {
        let www = try TempWWW()
        try www.write("index.html", "<p>hi</p>", mtime: 784_111_777)
        try www.write("app.JS", "let a = 1", mtime: 784_111_777)
        let files = try www.load()
        let page = get(files, "/index.html")
        #expect(page.headers.map(\.0) == ["Content-Type", "ETag", "Last-Modified", "Cache-Control", "X-Content-Type-Options"])
        #expect(header(page, "Content-Type") == "text/html; charset=utf-8")
        #expect(header(page, "ETag") == StaticEntityTag.make(for: Array("<p>hi</p>".utf8)))
        #expect(header(page, "Last-Modified") == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(header(page, "Cache-Control") == "no-cache")
        #expect(header(page, "X-Content-Type-Options") == "nosniff")
        let script = get(files, "/app.JS")
        #expect(header(script, "Content-Type") == "text/javascript; charset=utf-8")
        #expect(header(script, "Cache-Control") == "public, max-age=3600")
        #expect(files.lookup("/app.JS")?.lastModified == 784_111_777)
    }

    @Test func lastModifiedInTheFutureIsCappedAtLoadTime() throws {
        let www = try TempWWW()
        try www.write("late.css", "x", mtime: 4_000_000_000)
        let before = Int(time(nil))
        let file = try #require(try www.load().lookup("/late.css"))
        #expect(file.lastModified >= before && file.lastModified <= Int(time(nil)))
    }

    @Test func traversalAttemptsNeverReachAFileOutside() throws {
        // A secret next to www, which a traversal from www would name as "../secret.txt".
        let outer = try TempWWW()
        try outer.write("secret.txt", "top secret")
        try outer.mkdir("www")
        try outer.write("www/index.html", "home")
        try outer.mkdir("www/a")
        try outer.write("www/a/x", "inside")
        let files = try StaticFiles(root: outer.root + "/www")
        for raw in ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/a/../../secret.txt",
                    "/a/%2E%2E/%2E%2E/secret.txt", "/a/%2e%2e/x", "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                    "/..%2fetc", "/a/%2E%2E/%2E%2E/x", "/%00", "/index.html%00", "/foo%5c..%5cbar", "/..%5csecret.txt",
                    "/%252e%252e/secret.txt", "/%252e%252e", "/%C0%AE%C0%AE/secret.txt", "/etc/passwd", "relative"] {
            let r = get(files, raw)
            #expect(r.status == 404, "\(raw)")
            #expect(r.body == StaticFiles.defaultNotFoundPage, "\(raw)")
        }
        #expect(get(files, "/a/x").body == Array("inside".utf8))
    }

    @Test func doesNotFollowSymlinksThatLeaveTheRoot() throws {
        let www = try TempWWW()
        try www.write("index.html", "home")
        try www.symlink("passwd", to: "/etc/passwd")
        try www.symlink("etc", to: "/etc")
        try www.symlink("up", to: "..")
        let files = try www.load()
        #expect(get(files, "/passwd").status == 404)
        #expect(get(files, "/etc/passwd").status == 404)
        #expect(get(files, "/etc/hostname").status == 404)
        #expect(files.fileCount == 1)
        #expect(files.skipped.contains { $0.path == "/passwd" && $0.reason == .outsideRoot })
        #expect(files.skipped.contains { $0.path == "/etc" && $0.reason == .outsideRoot })
        #expect(files.skipped.contains { $0.path == "/up" && $0.reason == .outsideRoot })
    }

    @Test func followsSymlinksThatStayInside() throws {
        let www = try TempWWW()
        try www.write("index.html", "home")
        try www.mkdir("v3")
        try www.write("v3/app.js", "v3")
        try www.symlink("alias.html", to: "index.html")
        try www.symlink("absolute.html", to: www.root + "/index.html")
        try www.symlink("current", to: "v3")
        try www.symlink("dangling.css", to: "missing.css")
        let files = try www.load()
        #expect(get(files, "/alias.html").body == Array("home".utf8))
        #expect(get(files, "/absolute.html").body == Array("home".utf8))
        #expect(get(files, "/current/app.js").body == Array("v3".utf8))
        #expect(get(files, "/v3/app.js").body == Array("v3".utf8))
        #expect(files.skipped.contains { $0.path == "/dangling.css" && $0.reason == .brokenLink })
    }

    @Test func symlinkLoopsEndTheWalk() throws {
        let www = try TempWWW()
        try www.mkdir("a")
        try www.write("a/f.txt", "f")
        try www.symlink("a/again", to: "..")
        try www.symlink("self", to: ".")
        let files = try www.load()
        #expect(get(files, "/a/f.txt").status == 200)
        #expect(get(files, "/a/again/a/f.txt").status == 404)
        #expect(get(files, "/self/a/f.txt").status == 404)
        #expect(files.skipped.contains { $0.path == "/a/again" && $0.reason == .symlinkLoop })
        #expect(files.skipped.contains { $0.path == "/self" && $0.reason == .symlinkLoop })
        #expect(files.fileCount == 1)
    }

    @Test func skipsHiddenFilesAndFolders() throws {
        let www = try TempWWW()
        try www.write("index.html", "home")
        try www.write(".env", "SECRET=1")
        try www.mkdir(".git")
        try www.write(".git/config", "[core]")
        try www.mkdir("sub")
        try www.write("sub/.htpasswd", "x:y")
        try www.symlink("visible-env", to: ".env")
        try www.symlink("git", to: ".git")
        try www.symlink("git-config", to: www.root + "/.git/config")
        let files = try www.load()
        #expect(files.lookup("/.env") == nil)
        #expect(files.lookup("/.git/config") == nil)
        #expect(files.lookup("/sub/.htpasswd") == nil)
        #expect(get(files, "/.env").status == 404)
        #expect(get(files, "/%2eenv").status == 404)
        #expect(get(files, "/.git/config").status == 404)
        // Nor under another name.
        #expect(get(files, "/visible-env").status == 404)
        #expect(get(files, "/git/config").status == 404)
        #expect(get(files, "/git-config").status == 404)
        #expect(files.skipped.filter { $0.reason == .linksToHidden }.map(\.path) == ["/git", "/git-config", "/visible-env"])
        #expect(files.fileCount == 1)
    }

    @Test func skipsAndReportsFilesOverTheLimits() throws {
        let www = try TempWWW()
        try www.write("a.txt", "12345")
        try www.write("b.txt", String(repeating: "x", count: 11))
        try www.write("c.txt", "123456")
        try www.write("d.txt", "1")
        var limits = StaticFiles.Limits()
        limits.maxFileBytes = 10
        limits.maxTotalBytes = 10
        let files = try www.load(limits)
        #expect(files.lookup("/a.txt") != nil)
        #expect(files.lookup("/b.txt") == nil)
        #expect(files.lookup("/c.txt") == nil)
        #expect(files.lookup("/d.txt") != nil)
        #expect(files.totalBytes == 6)
        #expect(files.skipped.map(\.path) == ["/b.txt", "/c.txt"])
        #expect(files.skipped.first?.reason == .tooLarge(bytes: 11))
        #expect(files.skipped.last?.reason == .overTotalLimit)
        #expect(files.skipped.first?.description.contains("11 bytes") == true)

        limits = StaticFiles.Limits()
        limits.maxFiles = 2
        #expect(try www.load(limits).fileCount == 2)
    }

    @Test func skipsFIFOsWithoutBlocking() throws {
        let www = try TempWWW()
        try www.write("index.html", "home")
        #expect(mkfifo(www.root + "/pipe", 0o644) == 0)
        let files = try www.load()
        #expect(files.lookup("/pipe") == nil)
        #expect(files.skipped.contains { $0.path == "/pipe" && $0.reason == .notRegular })
    }

    @Test func missingOrNonFolderRootIsAClearError() throws {
        #expect(throws: StaticFilesError.self) { try StaticFiles(root: "/nonexistent/uvchat-www") }
        let www = try TempWWW()
        try www.write("file", "x")
        do {
            _ = try StaticFiles(root: www.root + "/file")
            Issue.record("a file as root must throw")
        } catch let error as StaticFilesError {
            guard case .rootNotADirectory = error else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(error.description.contains("not a directory"))
        }
    }

    @Test func emptyFilesAreServed() throws {
        let www = try TempWWW()
        try www.write("empty.txt", "")
        let r = get(try www.load(), "/empty.txt")
        #expect(r.status == 200 && r.body.isEmpty)
        #expect(header(r, "ETag") == "\"cbf29ce484222325-0\"")
    }

    @Test func notFoundIsASmallHTMLPage() throws {
        let www = try TempWWW()
        try www.write("index.html", "home")
        let r = get(try www.load(), "/nope.html")
        #expect(r.status == 404)
        #expect(header(r, "Content-Type") == "text/html; charset=utf-8")
        #expect(header(r, "ETag") == nil)
        #expect(String(decoding: r.body, as: UTF8.self).contains("<h1>Not found</h1>"))
    }

    @Test func aSiteMayBringItsOwn404Page() throws {
        let www = try TempWWW()
        try www.write("404.html", "<h1>Lost?</h1>")
        let r = get(try www.load(), "/nope")
        #expect(r.status == 404 && r.body == Array("<h1>Lost?</h1>".utf8))
    }

    @Test func reloadSeesChangedContentWithANewETag() throws {
        let www = try TempWWW()
        try www.write("app.js", "one", mtime: 1_000_000_000)
        let first = try #require(try www.load().lookup("/app.js"))
        #expect(try www.load().lookup("/app.js")?.etag == first.etag)   // stable across loads
        try www.write("app.js", "two", mtime: 1_000_000_000)          // same size, same second
        let second = try #require(try www.load().lookup("/app.js"))
        #expect(second.etag != first.etag)
        #expect(second.body == Array("two".utf8))
    }
}

@Suite struct ConditionalGetTests {
    let www: TempWWW
    let files: StaticFiles
    let etag: String
    static let modified = 1_700_000_000
    static let modifiedText = "Tue, 14 Nov 2023 22:13:20 GMT"

    init() throws {
        www = try TempWWW()
        try www.write("index.html", "<!doctype html>hi", mtime: Self.modified)
        files = try www.load()
        etag = try #require(header(get(files, "/index.html"), "ETag"))
    }

    @Test func matchingETagGives304WithValidatorsAndNoBody() {
        let r = get(files, "/index.html", ifNoneMatch: etag)
        #expect(r.status == 304)
        #expect(r.body.isEmpty)
        #expect(r.headers.map(\.0) == ["ETag", "Last-Modified", "Cache-Control"])
        #expect(header(r, "ETag") == etag)
        #expect(header(r, "Last-Modified") == Self.modifiedText)
        #expect(header(r, "Cache-Control") == "no-cache")
        #expect(get(files, "/", ifNoneMatch: etag).status == 304)
    }

    @Test func ifNoneMatchUsesWeakComparisonOverAList() {
        for value in ["W/\(etag)", "\"x\", \(etag)", "\"x\",\(etag)", " \(etag) ", "\"a,b\", W/\(etag)", "*",
                      "junk, \(etag)", "\"x\"junk, \(etag)"] {
            #expect(get(files, "/index.html", ifNoneMatch: value).status == 304, "\(value)")
        }
        let inner = String(etag.dropFirst().dropLast())
        for value in ["\"x\"", inner, "W/\(inner)", "\"\(inner)", "\"a,\(etag.dropFirst())", "W/", ",", "\"\""] {
            #expect(get(files, "/index.html", ifNoneMatch: value).status == 200, "\(value)")
        }
    }

    @Test func ifModifiedSinceGives304WhenNotNewer() {
        #expect(get(files, "/index.html", ifModifiedSince: Self.modifiedText).status == 304)
        #expect(get(files, "/index.html", ifModifiedSince: "Wed, 15 Nov 2023 00:00:00 GMT").status == 304)
        #expect(get(files, "/index.html", ifModifiedSince: "Wednesday, 15-Nov-23 00:00:00 GMT").status == 304)
        #expect(get(files, "/index.html", ifModifiedSince: "Wed Nov 15 00:00:00 2023").status == 304)
        #expect(get(files, "/index.html", ifModifiedSince: "Tue, 14 Nov 2023 22:13:19 GMT").status == 200)
        #expect(get(files, "/index.html", ifModifiedSince: "Thu, 01 Jan 1970 00:00:00 GMT").status == 200)
    }

    @Test func malformedIfModifiedSinceIsIgnored() {
        for value in ["", "yesterday", "Tue, 14 Nov 2099 22:13:20 UTC", "tue, 14 Nov 2099 22:13:20 GMT",
                      "Tue, 31 Nov 2099 22:13:20 GMT", "Tue, 14 Nov 2099 22:13:20 GMT, Tue, 14 Nov 2099 22:13:20 GMT",
                      "4102444800"] {
            #expect(get(files, "/index.html", ifModifiedSince: value).status == 200, "\(value)")
        }
    }

    @Test func ifNoneMatchMismatchWinsOverALaterDate() {
        let later = "Fri, 01 Jan 2100 00:00:00 GMT"
        #expect(get(files, "/index.html", ifModifiedSince: later).status == 304)
        #expect(get(files, "/index.html", ifNoneMatch: "\"other\"", ifModifiedSince: later).status == 200)
        #expect(get(files, "/index.html", ifNoneMatch: etag, ifModifiedSince: "Thu, 01 Jan 1970 00:00:00 GMT").status == 304)
        // An empty If-None-Match is taken as absent, so the date decides.
        #expect(get(files, "/index.html", ifNoneMatch: " ", ifModifiedSince: later).status == 304)
    }

    @Test func missingFileIs404WhateverTheValidators() {
        #expect(get(files, "/gone.html", ifNoneMatch: "*").status == 404)
        #expect(get(files, "/gone.html", ifModifiedSince: "Fri, 01 Jan 2100 00:00:00 GMT").status == 404)
    }
}

@Suite struct HTTPDateTests {
    @Test func formatsIMFFixdate() {
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.format(1_700_000_000) == "Tue, 14 Nov 2023 22:13:20 GMT")
        #expect(HTTPDate.format(253_402_300_799) == "Fri, 31 Dec 9999 23:59:59 GMT")
        #expect(HTTPDate.format(-1) == "Thu, 01 Jan 1970 00:00:00 GMT")
    }

    @Test func parsesTheThreeFormatsOfRFC9110() {
        // The example of section 5.6.7, in each form.
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT", now: 1_700_000_000) == 784_111_777)
        #expect(HTTPDate.parse("Sun Nov  6 08:49:37 1994") == 784_111_777)
        #expect(HTTPDate.parse("  Sun, 06 Nov 1994 08:49:37 GMT\t") == 784_111_777)
    }

    @Test func twoDigitYearMoreThan50YearsAheadIsInThePast() {
        let now2023 = 1_700_000_000
        #expect(HTTPDate.parse("Tuesday, 01-Jan-80 00:00:00 GMT", now: now2023) == 315_532_800)     // 1980
        #expect(HTTPDate.parse("Sunday, 01-Jan-73 00:00:00 GMT", now: now2023) == 3_250_454_400)    // 2073: not more than 50
        #expect(HTTPDate.parse("Tuesday, 01-Jan-30 00:00:00 GMT", now: now2023) == 1_893_456_000)   // 2030
        #expect(HTTPDate.parse("Tuesday, 01-Jan-74 00:00:00 GMT", now: now2023) == 126_230_400)     // 1974
    }

    @Test func roundTripsEveryDayFrom1970To2200() {
        var t = 0
        var day = 0
        while t < 7_258_118_400 {
            let s = HTTPDate.format(t)
            if HTTPDate.parse(s) != t { Issue.record("\(t) -> \(s)"); return }
            day += 1
            t = day * 86_400 + (day * 7919) % 86_400
        }
    }

    @Test func rejectsMalformedDates() {
        for s in ["", "Sun, 06 Nov 1994 08:49:37 UTC", "sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 nov 1994 08:49:37 GMT",
                  "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 31 Nov 1994 08:49:37 GMT",
                  "Sun, 00 Nov 1994 08:49:37 GMT", "Thu, 29 Feb 1900 00:00:00 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                  "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:61 GMT", "Sun, 06 Nov 1994 08-49-37 GMT",
                  "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun,  06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMTX",
                  "Sun, 0x Nov 1994 08:49:37 GMT", "Sonntag, 06-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT",
                  "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94  ", "Sun Nov 36 08:49:37 1994"] {
            #expect(HTTPDate.parse(s, now: 1_700_000_000) == nil, "\(s)")
        }
    }

    @Test func rejectsEveryTruncationOfAValidDate() {
        for full in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            let bytes = Array(full.utf8)
            for cut in 0..<bytes.count {
                let head = String(decoding: bytes[..<cut], as: UTF8.self)
                let tail = String(decoding: bytes[cut...], as: UTF8.self)
                // Trimming makes a cut at a space harmless only at the ends, which is still not a whole date.
                #expect(HTTPDate.parse(head) == nil, "\(head)")
                #expect(cut == 0 || HTTPDate.parse(tail) == nil, "\(tail)")
            }
        }
    }
}

@Suite struct StaticEntityTagTests {
    @Test func hashesWithFNV1a64() {
        #expect(StaticEntityTag.fnv1a64([]) == 0xcbf2_9ce4_8422_2325)
        #expect(StaticEntityTag.fnv1a64(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        #expect(StaticEntityTag.fnv1a64(Array("foobar".utf8)) == 0x8594_4171_f739_67e8)
    }

    @Test func isAStrongQuotedTagOfHashAndLength() {
        #expect(StaticEntityTag.make(for: Array("a".utf8)) == "\"af63dc4c8601ec8c-1\"")
        #expect(StaticEntityTag.make(for: Array(repeating: 0, count: 255)).hasSuffix("-ff\""))
    }

    @Test func isStableAndFollowsTheContent() {
        #expect(StaticEntityTag.make(for: Array("abc".utf8)) == StaticEntityTag.make(for: Array("abc".utf8)))
        #expect(StaticEntityTag.make(for: Array("abc".utf8)) != StaticEntityTag.make(for: Array("abd".utf8)))
        #expect(StaticEntityTag.make(for: Array("abc".utf8)) != StaticEntityTag.make(for: Array("abcd".utf8)))
    }
}

@Suite struct MIMETypeTests {
    @Test func typesByExtension() {
        let expected: [(String, String)] = [
            ("index.html", "text/html; charset=utf-8"), ("old.htm", "text/html; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"), ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"), ("data.json", "application/json"),
            ("favicon.svg", "image/svg+xml"), ("logo.png", "image/png"), ("favicon.ico", "image/x-icon"),
            ("pic.webp", "image/webp"), ("pic.jpg", "image/jpeg"), ("pic.jpeg", "image/jpeg"),
            ("font.woff2", "font/woff2"), ("robots.txt", "text/plain; charset=utf-8"),
            ("site.webmanifest", "application/manifest+json"), ("app.wasm", "application/wasm"),
            ("ding.mp3", "audio/mpeg"),
        ]
        for (name, type) in expected { #expect(MIMEType.forFileName(name) == type, "\(name)") }
    }

    @Test func extensionIsCaseInsensitive() {
        #expect(MIMEType.forFileName("INDEX.HTML") == "text/html; charset=utf-8")
        #expect(MIMEType.forFileName("App.Js") == "text/javascript; charset=utf-8")
        #expect(MIMEType.forFileName("F.WOFF2") == "font/woff2")
        #expect(MIMEType.forFileName("Site.WebManifest") == "application/manifest+json")
    }

    @Test func unknownOrMissingExtensionIsOpaque() {
        for name in ["Makefile", "archive.tar.gz", "file.", "x.exe", "a.htmlx", "a.html.bak", "a.verylongextension"] {
            #expect(MIMEType.forFileName(name) == "application/octet-stream", "\(name)")
        }
        #expect(MIMEType.forFileName("app.min.js") == "text/javascript; charset=utf-8")
    }
}
