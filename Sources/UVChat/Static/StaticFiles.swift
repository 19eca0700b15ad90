#if canImport(Glibc)
import Glibc
#endif

/// One file of the page, held in memory.
struct StaticFile {
    let body: [UInt8]
    let contentType: String
    let etag: String
    let lastModified: Int
    let lastModifiedText: String
    let cacheControl: String
}

/// What the server sends for a static request (Content-Length is added by the writer).
struct StaticResponse {
    let status: Int
    let headers: [(String, String)]
    let body: [UInt8]
}

struct StaticFilesError: Error, CustomStringConvertible {
    let description: String
}

/// The `www` folder, read into memory at start-up and on SIGHUP, so that no request ever waits on the disk.
/// Only regular files inside the root are loaded; symlinks count only when their target stays inside it;
/// hidden files are skipped.
final class StaticFiles {
    static let maxFileBytes = 8 * 1024 * 1024
    static let maxTotalBytes = 64 * 1024 * 1024

    private var files: [String: StaticFile] = [:]
    private(set) var skipped: [String] = []
    let notFoundPage: [UInt8] = Array("""
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not found - uvchat</title></head>\
        <body><h1>Not found</h1><p>There is nothing here. <a href="/">Back to the chat</a>.</p></body></html>\n
        """.utf8)

    var fileCount: Int { files.count }
    var paths: [String] { Array(files.keys) }

    init(root: String) throws {
        guard let realRoot = StaticFiles.realPath(root) else {
            throw StaticFilesError(description: "cannot open the www folder '\(root)'")
        }
        var total = 0
        try load(directory: realRoot, key: "", root: realRoot, total: &total, depth: 0)
    }

    func lookup(_ normalizedPath: String) -> StaticFile? { files[normalizedPath] }

    func respond(rawPath: String, ifNoneMatch: String?, ifModifiedSince: String?) -> StaticResponse {
        guard let key = StaticPath.normalize(rawPath), let file = files[key] else {
            return StaticResponse(status: 404, headers: [("Content-Type", "text/html; charset=utf-8"),
                                                         ("Cache-Control", "no-cache")], body: notFoundPage)
        }
        let validators = [("ETag", file.etag), ("Last-Modified", file.lastModifiedText), ("Cache-Control", file.cacheControl)]
        if StaticFiles.notModified(file, ifNoneMatch: ifNoneMatch, ifModifiedSince: ifModifiedSince) {
            return StaticResponse(status: 304, headers: validators, body: [])
        }
        return StaticResponse(status: 200,
                              headers: [("Content-Type", file.contentType)] + validators + [("X-Content-Type-Options", "nosniff")],
                              body: file.body)
    }

    /// RFC 9110 section 13.1: If-None-Match wins over If-Modified-Since.
    static func notModified(_ file: StaticFile, ifNoneMatch: String?, ifModifiedSince: String?) -> Bool {
        if let inm = ifNoneMatch {
            let trimmed = inm.trimmingSpaces()
            if trimmed == "*" { return true }
            for candidate in trimmed.split(separator: ",") {
                var tag = Substring(candidate.description.trimmingSpaces())
                if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }   // weak comparison
                if tag == file.etag { return true }
            }
            return false
        }
        if let ims = ifModifiedSince, let date = HTTPResponseWriter.parseHTTPDate(ims) {
            return file.lastModified <= date
        }
        return false
    }

    // MARK: - Loading

    private func load(directory: String, key: String, root: String, total: inout Int, depth: Int) throws {
        guard depth < 16, let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }   // hidden files, "." and ".."
            names.append(name)
        }
        for name in names.sorted() {
            let path = directory + "/" + name
            guard let real = StaticFiles.realPath(path), real == root || real.hasPrefix(root + "/") else {
                skipped.append(key + "/" + name)
                continue
            }
            var st = stat()
            guard stat(real, &st) == 0 else { continue }
            let type = st.st_mode & S_IFMT
            if type == S_IFDIR {
                try load(directory: real, key: key + "/" + name, root: root, total: &total, depth: depth + 1)
            } else if type == S_IFREG {
                let size = Int(st.st_size)
                guard size <= StaticFiles.maxFileBytes, total + size <= StaticFiles.maxTotalBytes,
                      let body = StaticFiles.readFile(real, size: size) else {
                    skipped.append(key + "/" + name)
                    continue
                }
                total += body.count
                let mtime = Int(st.st_mtim.tv_sec)
                let fileKey = key + "/" + name
                files[fileKey] = StaticFile(body: body, contentType: MIMEType.forPath(name),
                                            etag: StaticFiles.etag(body), lastModified: mtime,
                                            lastModifiedText: HTTPResponseWriter.httpDate(mtime),
                                            cacheControl: name.lowercased().hasSuffix(".html") ? "no-cache" : "public, max-age=3600")
            }
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func readFile(_ path: String, size: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: size)
        var off = 0
        while off < size {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, size - off) }
            if n <= 0 { break }
            off += n
        }
        return off == size ? bytes : nil
    }

    /// A strong validator from the content: FNV-1a 64 and the length.
    static func etag(_ body: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in body {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return "\"\(String(h, radix: 16))-\(String(body.count, radix: 16))\""
    }
}

enum MIMEType {
    static func forPath(_ name: String) -> String {
        guard let dot = name.lastIndex(of: ".") else { return "application/octet-stream" }
        switch name[name.index(after: dot)...].lowercased() {
        case "html", "htm": return "text/html; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "json": return "application/json"
        case "webmanifest": return "application/manifest+json"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "gif": return "image/gif"
        case "webp": return "image/webp"
        case "ico": return "image/x-icon"
        case "woff2": return "font/woff2"
        case "woff": return "font/woff"
        case "txt": return "text/plain; charset=utf-8"
        case "wasm": return "application/wasm"
        case "mp3": return "audio/mpeg"
        case "ogg": return "audio/ogg"
        case "wav": return "audio/wav"
        default: return "application/octet-stream"
        }
    }
}

enum StaticPath {
    /// Decodes and normalizes a request path into a key such as "/index.html", or nil when it must be a 404:
    /// bad escapes, NUL or control characters, backslashes, encoded slashes, and "." or ".." segments (decoded
    /// ones included), so no path can name anything outside the root.
    static func normalize(_ rawPath: String) -> String? {
        guard rawPath.utf8.first == UInt8(ascii: "/") else { return nil }
        var segments: [String] = []
        for rawSegment in rawPath.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            var bytes: [UInt8] = []
            var it = rawSegment.makeIterator()
            while let b = it.next() {
                if b == UInt8(ascii: "%") {
                    guard let h = it.next(), let l = it.next(), let hv = hex(h), let lv = hex(l) else { return nil }
                    bytes.append(hv << 4 | lv)
                } else {
                    bytes.append(b)
                }
            }
            if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") }) { return nil }
            guard let segment = String(validating: bytes, as: UTF8.self) else { return nil }
            // Bytes, not Characters: "." followed by a combining mark is one Character but still a dot file.
            if segment.utf8.first == UInt8(ascii: ".") { return nil }
            segments.append(segment)
        }
        let endsWithSlash = rawPath.utf8.last == UInt8(ascii: "/")
        if segments.isEmpty || endsWithSlash { segments.append("index.html") }
        return "/" + segments.joined(separator: "/")
    }

    private static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

private extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
