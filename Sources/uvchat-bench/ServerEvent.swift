/// The `type` of a server-to-client JSON message (PROTOCOL.md), found without decoding the JSON: the bench
/// only needs to tell events apart and to find the chat text, which it wrote itself and which needs no escapes.
enum ServerEvent {
    case online, waiting, paired, message, typing, partnerLeft, error, unknown

    private static let typeKey: [UInt8] = Array(#""type":""#.utf8)
    private static let textKey: [UInt8] = Array(#""text":""#.utf8)
    /// What this server writes first; checked before searching, so the common case is one comparison.
    private static let messagePrefix: [UInt8] = Array(#"{"type":"message","text":""#.utf8)

    static func classify(_ json: UnsafeRawBufferPointer) -> ServerEvent {
        if hasPrefix(json, messagePrefix) { return .message }
        guard let at = find(typeKey, in: json) else { return .unknown }
        let rest = UnsafeRawBufferPointer(rebasing: json[at...])
        switch true {
        case hasPrefix(rest, Array("message\"".utf8)): return .message
        case hasPrefix(rest, Array("paired\"".utf8)): return .paired
        case hasPrefix(rest, Array("online\"".utf8)): return .online
        case hasPrefix(rest, Array("waiting\"".utf8)): return .waiting
        case hasPrefix(rest, Array("typing\"".utf8)): return .typing
        case hasPrefix(rest, Array("partner_left\"".utf8)): return .partnerLeft
        case hasPrefix(rest, Array("error\"".utf8)): return .error
        default: return .unknown
        }
    }

    /// The raw bytes of the `text` string of a `message` event (up to the closing quote).
    static func text(of json: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let start: Int
        if hasPrefix(json, messagePrefix) {
            start = messagePrefix.count
        } else if let at = find(textKey, in: json) {
            start = at
        } else {
            return nil
        }
        var end = start
        while end < json.count, json[end] != UInt8(ascii: "\"") { end += 1 }
        return UnsafeRawBufferPointer(rebasing: json[start..<end])
    }

    private static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        guard bytes.count >= prefix.count else { return false }
        for i in 0..<prefix.count where bytes[i] != prefix[i] { return false }
        return true
    }

    /// The index just past the first occurrence of `needle`.
    private static func find(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var i = 0
        while i + needle.count <= bytes.count {
            if bytes[i] == needle[0] && hasPrefix(UnsafeRawBufferPointer(rebasing: bytes[i...]), needle) {
                return i + needle.count
            }
            i += 1
        }
        return nil
    }
}
