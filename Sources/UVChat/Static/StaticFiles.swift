/// The `www` folder, read whole into memory at start-up and on SIGHUP (a reload builds a new instance and swaps
/// it in), so that no request ever waits on the disk in the single-threaded loop. Requests can only pick from
/// this table, which holds nothing from outside the folder: path tricks cannot reach a file the loader refused.
final class StaticFiles {
    struct Limits {
        /// A chat page is a few small files; anything bigger is likely a mistake that should not pin memory.
        var maxFileBytes = 8 * 1024 * 1024
        var maxTotalBytes = 64 * 1024 * 1024
        var maxFiles = 10_000
        var maxDepth = 32
    }

    /// Everything a response needs, built once at load so that a request only copies references.
    private struct Entry {
        let file: StaticFile
        let okHeaders: [(String, String)]
        let notModifiedHeaders: [(String, String)]
    }

    private let entries: [String: Entry]
    private let notFound: StaticResponse
    /// RFC 850 dates carry two-digit years, resolved against this; a reload refreshes it.
    private let loadedAt: Int
    /// Files left out, for the log: a 404 for a file that is on disk is otherwise a mystery.
    let skipped: [StaticSkippedFile]
    let totalBytes: Int

    var fileCount: Int { entries.count }
    var paths: [String] { Array(entries.keys) }

    static let defaultNotFoundPage: [UInt8] = Array("""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Not found - uvchat</title></head>
        <body><h1>Not found</h1><p>There is nothing here. <a href="/">Back to the chat</a>.</p></body></html>

        """.utf8)

    init(root: String, limits: Limits = Limits()) throws {
        var loader = StaticFilesLoader(limits: limits)
        try loader.load(root: root)
        loadedAt = loader.loadedAt
        skipped = loader.skipped
        totalBytes = loader.totalBytes
        entries = loader.files.mapValues { file in
            let validators = [("ETag", file.etag), ("Last-Modified", file.lastModifiedText),
                              ("Cache-Control", file.cacheControl)]
            return Entry(file: file,
                         okHeaders: [("Content-Type", file.contentType)] + validators
                             + [("X-Content-Type-Options", "nosniff")],
                         notModifiedHeaders: validators)
        }
        // A site may bring its own 404 page; it is served as HTML whatever its name says.
        notFound = StaticResponse(status: 404,
                                  headers: [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache"),
                                            ("X-Content-Type-Options", "nosniff")],
                                  body: loader.files["/404.html"]?.body ?? Self.defaultNotFoundPage)
    }

    func lookup(_ normalizedPath: String) -> StaticFile? { entries[normalizedPath]?.file }

    /// Answers a GET or HEAD for `rawPath` (before '?', not decoded).
    func respond(rawPath: String, ifNoneMatch: String?, ifModifiedSince: String?) -> StaticResponse {
        guard let key = StaticPath.normalize(rawPath), let entry = entries[key] else { return notFound }
        if isNotModified(entry.file, ifNoneMatch: ifNoneMatch, ifModifiedSince: ifModifiedSince) {
            return StaticResponse(status: 304, headers: entry.notModifiedHeaders, body: [])
        }
        return StaticResponse(status: 200, headers: entry.okHeaders, body: entry.file.body)
    }

    /// RFC 9110 section 13.2.2: If-None-Match, when present, decides alone, because an ETag is exact where a
    /// one-second date is not. If-Modified-Since counts only without it, and only when it parses.
    func isNotModified(_ file: StaticFile, ifNoneMatch: String?, ifModifiedSince: String?) -> Bool {
        // An empty field is a list of nothing; some proxies send one, so it is taken as absent.
        if let inm = ifNoneMatch, inm.utf8.contains(where: { $0 != 0x20 && $0 != 0x09 }) {
            return StaticEntityTag.noneMatchList(inm, contains: file.etag)
        }
        if let ims = ifModifiedSince, let since = HTTPDate.parse(ims, now: loadedAt) {
            return file.lastModified <= since
        }
        return false
    }
}
