/// Content types by file extension. Text types carry a charset so that browsers never guess one.
enum MIMEType {
    static let fallback = "application/octet-stream"

    /// Case-insensitive on the last extension only, so "app.min.JS" is JavaScript and "x.tar.gz" is opaque.
    static func forFileName(_ name: String) -> String {
        let bytes = name.utf8
        guard let dot = bytes.lastIndex(of: UInt8(ascii: ".")) else { return fallback }
        let extBytes = bytes[bytes.index(after: dot)...]
        // Longer than any known extension: no need to build the string.
        guard !extBytes.isEmpty, extBytes.count <= 11 else { return fallback }
        let ext = String(decoding: extBytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
        switch ext {
        case "html", "htm": return "text/html; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "txt": return "text/plain; charset=utf-8"
        case "json", "map": return "application/json"
        case "webmanifest": return "application/manifest+json"
        case "wasm": return "application/wasm"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "gif": return "image/gif"
        case "webp": return "image/webp"
        case "avif": return "image/avif"
        case "ico": return "image/x-icon"
        case "woff2": return "font/woff2"
        case "woff": return "font/woff"
        case "mp3": return "audio/mpeg"
        case "ogg", "oga": return "audio/ogg"
        case "wav": return "audio/wav"
        default: return fallback
        }
    }
}
