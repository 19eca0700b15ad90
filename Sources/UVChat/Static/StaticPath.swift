/// Maps a request path to a key of the in-memory file table. The table only ever holds files found inside `www`,
/// so even a wrong key cannot reach another file; the rules here make sure that a key also never *means* a place
/// outside, so that the answer does not depend on how the table was filled.
enum StaticPath {
    /// Returns a key such as "/index.html", or nil (a 404) for: a path not starting with '/', a bad %-escape, an
    /// encoded '/', a NUL or other control character, a backslash (a separator to some tools), a segment starting
    /// with '.' (covers "." and "..", decoded or not, and hidden files), and bytes that are not UTF-8 once decoded
    /// (covers overlong encodings of '.' and '/'). Empty segments collapse; a path ending in '/' means its index.
    static func normalize(_ rawPath: String) -> String? {
        let raw = rawPath.utf8
        guard raw.first == UInt8(ascii: "/") else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count + 11)
        var segmentIsEmpty = true
        var it = raw.makeIterator()
        while let b = it.next() {
            var byte = b
            if b == UInt8(ascii: "/") {
                segmentIsEmpty = true
                continue
            }
            if b == UInt8(ascii: "%") {
                guard let high = it.next().flatMap(HexDigit.value), let low = it.next().flatMap(HexDigit.value) else { return nil }
                byte = high << 4 | low
                // Decoded, a slash would split a segment after the dot checks saw it whole.
                if byte == UInt8(ascii: "/") { return nil }
            }
            if byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\\") { return nil }
            if segmentIsEmpty {
                // Bytes, not Characters: "." followed by a combining mark is one Character but still a dot file.
                if byte == UInt8(ascii: ".") { return nil }
                out.append(UInt8(ascii: "/"))
                segmentIsEmpty = false
            }
            out.append(byte)
        }
        if out.isEmpty || raw.last == UInt8(ascii: "/") {
            out.append(contentsOf: "/index.html".utf8)
        }
        return String(validating: out, as: UTF8.self)
    }
}
