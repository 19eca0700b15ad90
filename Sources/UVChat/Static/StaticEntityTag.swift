/// Entity tags for the in-memory files and the If-None-Match comparison (RFC 9110 sections 8.8.3 and 13.1.2).
enum StaticEntityTag {
    /// A strong validator from the bytes alone: the same file gives the same tag after every reload and on every
    /// server behind a balancer, and a changed file gives a new one even within the same mtime second. FNV-1a is
    /// no defence against a forger, but nobody gains by forging a tag for their own cache.
    static func make(for body: [UInt8]) -> String {
        "\"" + String(fnv1a64(body), radix: 16) + "-" + String(body.count, radix: 16) + "\""
    }

    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            hash ^= UInt64(b)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// Whether an If-None-Match value names `etag` (quotes included) by weak comparison, or is "*". Tags are
    /// scanned as quoted strings because a comma may sit inside one. A malformed member matches nothing, so the
    /// worst a broken client gets is a full 200.
    static func noneMatchList(_ fieldValue: String, contains etag: String) -> Bool {
        let v = Array(fieldValue.utf8)
        let tag = etag.utf8
        var i = 0
        while i < v.count {
            let c = v[i]
            if c == 0x20 || c == 0x09 || c == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if c == UInt8(ascii: "*") { return true }
            var start = i
            if c == UInt8(ascii: "W"), i + 1 < v.count, v[i + 1] == UInt8(ascii: "/") { start += 2 }
            if start < v.count, v[start] == UInt8(ascii: "\"") {
                guard let close = v[(start + 1)...].firstIndex(of: UInt8(ascii: "\"")) else { return false }
                if v[start...close].elementsEqual(tag) { return true }
                i = close + 1
            }
            // Whatever follows a tag up to the next comma is junk; skip it with the member.
            while i < v.count, v[i] != UInt8(ascii: ",") { i += 1 }
        }
        return false
    }
}
