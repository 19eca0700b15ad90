/// The `interests` query parameter of `GET /ws` (PROTOCOL.md): comma-separated, percent-decoded, each tag trimmed
/// and lower-cased; tags of 1 to 32 characters kept, duplicates dropped, at most 5.
enum Interests {
    static let maxTags = 5
    static let maxLength = 32

    static func parse(query: String?) -> [String] {
        guard let query else { return [] }
        var raw: Substring? = nil
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            if pair.hasPrefix("interests=") { raw = pair.dropFirst("interests=".count) }   // the last one wins
        }
        guard let raw else { return [] }
        var tags: [String] = []
        // Split before decoding: an encoded comma (%2C) stays inside its tag.
        for piece in raw.split(separator: ",", omittingEmptySubsequences: false) {
            guard let decoded = percentDecode(piece) else { continue }
            let tag = decoded.trimmingCharacters().lowercased()
            let length = tag.count
            guard length >= 1 && length <= maxLength, !tags.contains(tag) else { continue }
            tags.append(tag)
            if tags.count == maxTags { break }
        }
        return tags
    }

    /// `%XX` escapes and `+` as a space (HTML form encoding); nil for a bad escape or invalid UTF-8.
    static func percentDecode(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else { return nil }
                bytes.append(hv << 4 | lv)
            } else if b == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else {
                bytes.append(b)
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        // Control characters make no sense in a tag.
        if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return nil }
        return text
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

private extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
