import Foundation
import Testing
@testable import UVChat

/// A throwaway `www` made with FileManager and removed in deinit.
final class PrebuiltWWW {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "uvchat-prebuilt-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ relative: String, _ bytes: [UInt8]) throws {
        let url = URL(fileURLWithPath: root + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }

    func write(_ relative: String, _ text: String) throws { try write(relative, Array(text.utf8)) }

    func load() throws -> StaticFiles { try StaticFiles(root: root) }
}

private let epochDate = "Thu, 01 Jan 1970 00:00:00 GMT"
private let nextDayDate = "Fri, 02 Jan 1970 00:00:00 GMT"

/// What the general path (`serveFile` without a prebuilt answer) writes for a plain keep-alive GET.
private func generalAnswer(_ files: StaticFiles, _ path: String, date: String) -> [UInt8] {
    let answer = files.respond(rawPath: path, ifNoneMatch: nil, ifModifiedSince: nil)
    var out: [UInt8] = []
    HTTPResponseWriter.writeHead(status: .ok, headers: answer.headers + SecurityHeaders.all, bodyLength: answer.body.count,
                                 keepAlive: true, date: date, into: &out)
    out += answer.body
    return out
}

private func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
    let n = Array(needle.utf8)
    guard n.count <= haystack.count else { return false }
    return (0...(haystack.count - n.count)).contains { haystack[$0..<($0 + n.count)].elementsEqual(n) }
}

@Suite struct PrebuiltResponsesTests {
    let www: PrebuiltWWW
    let files: StaticFiles
    static let indexBody = "<!doctype html><title>chat</title>home"

    init() throws {
        www = try PrebuiltWWW()
        try www.write("index.html", Self.indexBody)
        try www.write("app.js", "console.log(1)")
        try www.write("sub/index.html", "sub home")
        try www.write("empty.txt", "")
        files = try www.load()
    }

    private func build(date: String = epochDate) -> PrebuiltResponses {
        PrebuiltResponses(files, headers: SecurityHeaders.all, date: date)
    }

    @Test func rootAndIndexHTMLShareOneWholeResponse() throws {
        let prebuilt = build()
        let index = try #require(prebuilt.response(for: "/index.html"))
        #expect(prebuilt.response(for: "/") == index)
        #expect(index.starts(with: Array("HTTP/1.1 200 OK\r\nDate: \(epochDate)\r\n".utf8)))
        #expect(index.count > Self.indexBody.utf8.count)
        #expect(index.suffix(Self.indexBody.utf8.count).elementsEqual(Self.indexBody.utf8))
        #expect(contains(index, "\r\nContent-Length: \(Self.indexBody.utf8.count)\r\n"))
        #expect(contains(index, "\r\nContent-Type: text/html; charset=utf-8\r\n"))
        // Keep-alive: no "Connection: close" (RFC 9112 9.3, persistence is the HTTP/1.1 default).
        #expect(!contains(index, "Connection:"))
        // The head ends right before the body.
        #expect(index.dropLast(Self.indexBody.utf8.count).suffix(4).elementsEqual([0x0D, 0x0A, 0x0D, 0x0A]))
    }

    @Test func everySecurityHeaderIsInTheResponse() throws {
        let index = try #require(build().response(for: "/index.html"))
        #expect(!SecurityHeaders.all.isEmpty)
        for (name, value) in SecurityHeaders.all {
            #expect(contains(index, "\r\n\(name): \(value)\r\n"), "\(name)")
        }
    }

    @Test func folderIndexAlsoAnswersItsFolderPath() throws {
        let prebuilt = build()
        let sub = try #require(prebuilt.response(for: "/sub/index.html"))
        #expect(prebuilt.response(for: "/sub/") == sub)
        #expect(sub.suffix(8).elementsEqual("sub home".utf8))
        #expect(prebuilt.response(for: "/sub") == nil)   // a folder without its slash is no file (404)
    }

    @Test func equalsWhatTheGeneralPathWritesForAPlainGet() throws {
        let prebuilt = build()
        for path in files.paths + ["/", "/sub/"] {
            let whole = try #require(prebuilt.response(for: path), "\(path)")
            #expect(whole == generalAnswer(files, path, date: epochDate), "\(path)")
        }
        #expect(files.paths.count == 4)
    }

    @Test func emptyFileGetsAZeroLengthResponse() throws {
        let empty = try #require(build().response(for: "/empty.txt"))
        #expect(contains(empty, "\r\nContent-Length: 0\r\n"))
        #expect(empty.suffix(4).elementsEqual([0x0D, 0x0A, 0x0D, 0x0A]))
    }

    @Test func onlyExactLoadedPathsArePrebuilt() {
        // Anything that needs normalising, or is not there, takes the general path.
        let prebuilt = build()
        for path in ["//index.html", "/%69ndex.html", "/./index.html", "/index.html?x=1", "/nope.html", "", "/sub//",
                     "index.html"] {
            #expect(prebuilt.response(for: path) == nil, "\(path)")
        }
        #expect(PrebuiltResponses().response(for: "/") == nil)
    }

    @Test func fileOverTheBodyLimitTakesTheGeneralPath() throws {
        let www = try PrebuiltWWW()
        try www.write("big.bin", [UInt8](repeating: 0x61, count: PrebuiltResponses.maxBodyBytes + 1))
        try www.write("fits.bin", [UInt8](repeating: 0x62, count: PrebuiltResponses.maxBodyBytes))
        try www.write("large/index.html", [UInt8](repeating: 0x63, count: PrebuiltResponses.maxBodyBytes + 1))
        let files = try www.load()
        #expect(files.lookup("/big.bin") != nil)    // served, just not prebuilt
        let prebuilt = PrebuiltResponses(files, headers: SecurityHeaders.all, date: epochDate)
        #expect(prebuilt.response(for: "/big.bin") == nil)
        #expect(prebuilt.response(for: "/large/index.html") == nil)
        #expect(prebuilt.response(for: "/large/") == nil)
        let fits = try #require(prebuilt.response(for: "/fits.bin"))
        #expect(fits == generalAnswer(files, "/fits.bin", date: epochDate))
    }

    @Test func dateSitsRightAfterTheStatusLine() throws {
        #expect(PrebuiltResponses.dateOffset == 23)
        let index = try #require(build().response(for: "/index.html"))
        let offset = PrebuiltResponses.dateOffset
        #expect(index[offset..<(offset + epochDate.utf8.count)].elementsEqual(epochDate.utf8))
    }

    @Test func rewritingTheDateChangesOnlyTheDateBytes() throws {
        let before = build()
        var after = before
        after.rewriteDate(HTTPDate.format(86_400))
        #expect(HTTPDate.format(86_400) == nextDayDate)
        let range = PrebuiltResponses.dateOffset..<(PrebuiltResponses.dateOffset + nextDayDate.utf8.count)
        for path in files.paths + ["/", "/sub/"] {
            let old = try #require(before.response(for: path), "\(path)")
            let new = try #require(after.response(for: path), "\(path)")
            #expect(new.count == old.count, "\(path)")
            #expect(new[range].elementsEqual(nextDayDate.utf8), "\(path)")
            #expect(old[range].elementsEqual(epochDate.utf8), "\(path)")   // the copy taken before is untouched
            #expect(new[..<range.lowerBound] == old[..<range.lowerBound], "\(path)")
            #expect(new[range.upperBound...] == old[range.upperBound...], "\(path)")
            // And it is what the general path now writes, and what a build with the new date gives.
            #expect(new == generalAnswer(files, path, date: nextDayDate), "\(path)")
            #expect(new == build(date: nextDayDate).response(for: path), "\(path)")
        }
    }
}

@Suite struct HTTPClockTests {
    @Test func startsWithTheFormattedTime() {
        #expect(HTTPClock(now: 0).date == epochDate)
        #expect(HTTPClock(now: 784_111_777).date == "Sun, 06 Nov 1994 08:49:37 GMT")
    }

    @Test func sameSecondIsNoChange() {
        var clock = HTTPClock(now: 0)
        #expect(clock.advance(to: 0) == false)
        #expect(clock.date == epochDate)
    }

    @Test func newSecondChangesTheDate() {
        var clock = HTTPClock(now: 0)
        #expect(clock.advance(to: 1) == true)
        #expect(clock.date == "Thu, 01 Jan 1970 00:00:01 GMT")
        #expect(clock.advance(to: 1) == false)
        #expect(clock.advance(to: 86_400) == true)
        #expect(clock.date == nextDayDate)
    }

    @Test func stepBackIsAlsoAChange() {
        // A wall clock set back by NTP still gives the value of the second it now shows.
        var clock = HTTPClock(now: 86_400)
        #expect(clock.advance(to: 0) == true)
        #expect(clock.date == epochDate)
    }
}
