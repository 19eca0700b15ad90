/// The `interests` parameter of `GET /ws?...` (PROTOCOL.md, "Interests"), and the same tag rules for version 2's
/// `start` (`normalize`). Parsed once per connection or per `start`, so plain Strings are fine here.
///
/// Choices the protocol leaves open:
/// - the value is split on `,` before percent-decoding, so a tag may hold an encoded comma (`%2C`); the page encodes
///   each tag with `encodeURIComponent` and joins them with raw commas;
/// - `+` is a space, as in HTML form encoding;
/// - a tag with a bad `%`-escape, invalid UTF-8 once decoded, or a control character is dropped, the others kept;
/// - when `interests=` appears more than once the last one counts (as most query parsers do);
/// - length is counted in Characters (grapheme clusters), after trimming and lower-casing;
/// - a `start` array is read the same way, its elements in place of the decoded pieces (only its first 64 elements,
///   ChatCommandDecoder.maxInterestElements).
enum Interests {
    static let maxTags = 5
    static let maxTagLength = 32

    static func parse(query: String?) -> [String] {
        guard let value = Query.lastValue(named: "interests", in: query) else { return [] }
        // Lazily: pieces after the fifth kept tag are never decoded.
        return normalize(value.split(separator: ",", omittingEmptySubsequences: true).lazy.compactMap(percentDecoded))
    }

    /// The tag rules, in one place for the query parameter and version 2's `start` so that the two cannot disagree:
    /// each raw tag (already decoded: percent-escapes or JSON escapes) is trimmed and lower-cased; a tag holding a
    /// control character, or not 1 to 32 characters long, is dropped; so are duplicates; the first five kept count.
    /// Stops reading `raw` once five are kept.
    static func normalize(_ raw: some Sequence<String>) -> [String] {
        var tags: [String] = []
        for piece in raw {
            let tag = trimmed(piece).lowercased()
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
