/// The `interests` parameter of `GET /ws?...` (PROTOCOL.md, "Interests"). Parsed once per connection, so plain
/// Strings are fine here.
///
/// Choices the protocol leaves open:
/// - the value is split on `,` before percent-decoding, so a tag may hold an encoded comma (`%2C`); the page encodes
///   each tag with `encodeURIComponent` and joins them with raw commas;
/// - `+` is a space, as in HTML form encoding;
/// - a tag with a bad `%`-escape, invalid UTF-8 once decoded, or a control character is dropped, the others kept;
/// - when `interests=` appears more than once the last one counts (as most query parsers do);
/// - length is counted in Characters (grapheme clusters), after trimming and lower-casing.
enum Interests {
    static let maxTags = 5
    static let maxTagLength = 32

    static func parse(query: String?) -> [String] {
        guard let query else { return [] }
        var value: Substring? = nil
        for pair in query.split(separator: "&") where pair.hasPrefix("interests=") {
            value = pair.dropFirst("interests=".count)
        }
        guard let value else { return [] }
        var tags: [String] = []
        for piece in value.split(separator: ",", omittingEmptySubsequences: true) {
            guard let decoded = percentDecoded(piece) else { continue }
            let tag = trimmed(decoded).lowercased()
            // Control characters have no place in a tag that is shown to the partner.
            guard !tag.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { continue }
            guard (1...maxTagLength).contains(tag.count), !tags.contains(tag) else { continue }
            tags.append(tag)
            if tags.count == maxTags { break }
        }
        return tags
    }

    /// nil for a bad escape or invalid UTF-8.
    static func percentDecoded(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            switch b {
            case UInt8(ascii: "%"):
                guard let h = it.next(), let l = it.next(), let hi = HexDigit.value(h), let lo = HexDigit.value(l) else { return nil }
                bytes.append(hi << 4 | lo)
            case UInt8(ascii: "+"):
                bytes.append(0x20)
            default:
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func trimmed(_ s: String) -> Substring {
        var t = Substring(s)
        while let c = t.first, c.isWhitespace { t.removeFirst() }
        while let c = t.last, c.isWhitespace { t.removeLast() }
        return t
    }
}
