/// The server's events (PROTOCOL.md, "Server to client") as JSON text payloads. Each call appends the payload only;
/// the caller writes the WebSocket frame header in front of it.
public enum ChatEventEncoder {
    static func online(count: Int, into out: inout [UInt8]) {
        append(#"{"type":"online","count":"#, to: &out)
        appendDecimal(count, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func waiting(into out: inout [UInt8]) {
        append(#"{"type":"waiting"}"#, to: &out)
    }

    static func paired(common: [String], random: Bool, into out: inout [UInt8]) {
        append(#"{"type":"paired","common":["#, to: &out)
        appendTags(common, into: &out)
        append(random ? #"],"random":true}"# : #"],"random":false}"#, to: &out)
    }

    private static func appendTags(_ tags: [String], into out: inout [UInt8]) {
        var first = true
        for tag in tags {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendJSONString(tag, into: &out)
        }
    }

    static func partnerLeft(into out: inout [UInt8]) {
        append(#"{"type":"partner_left"}"#, to: &out)
    }

    // MARK: Version 2 (PROTOCOL.md B.1, B.2)

    /// `paired` for a version 2 client: the version 1 fields, then its resume token, the grace and what the
    /// partner accepts.
    static func paired(common: [String], random: Bool, token: ResumeToken, grace: Int, partnerImages: Bool,
                       into out: inout [UInt8]) {
        paired(common: common, random: random, into: &out)
        out.removeLast()   // the closing brace
        appendSession(token: token, grace: grace, partnerImages: partnerImages, into: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func resumed(token: ResumeToken, grace: Int, id: UInt64, common: [String], random: Bool,
                        partnerImages: Bool, into out: inout [UInt8]) {
        append(#"{"type":"resumed","id":"#, to: &out)
        appendDecimal(id, to: &out)
        append(#","common":["#, to: &out)
        appendTags(common, into: &out)
        append(random ? #"],"random":true"# : #"],"random":false"#, to: &out)
        appendSession(token: token, grace: grace, partnerImages: partnerImages, into: &out)
        out.append(UInt8(ascii: "}"))
    }

    private static func appendSession(token: ResumeToken, grace: Int, partnerImages: Bool, into out: inout [UInt8]) {
        append(#","token":""#, to: &out)
        token.appendText(into: &out)
        append(#"","grace":"#, to: &out)
        appendDecimal(grace, to: &out)
        append(partnerImages ? #","partner":{"images":true}"# : #","partner":{"images":false}"#, to: &out)
    }

    static func partnerAway(grace: Int, into out: inout [UInt8]) {
        append(#"{"type":"partner_away","grace":"#, to: &out)
        appendDecimal(grace, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func partnerBack(into out: inout [UInt8]) {
        append(#"{"type":"partner_back"}"#, to: &out)
    }

    static func pong(into out: inout [UInt8]) {
        append(#"{"type":"pong"}"#, to: &out)
    }

    // MARK: Images (B.3)

    /// The offer as the receiver sees it: the sender's fields, re-encoded (never its bytes).
    static func imageOffer(id: UInt32, type: ImageType, bytes: UInt64, into out: inout [UInt8]) {
        append(#"{"type":"image_offer","id":"#, to: &out)
        appendDecimal(UInt64(id), to: &out)
        append(#","mime":""#, to: &out)
        out.append(contentsOf: type.mime.utf8)
        append(#"","bytes":"#, to: &out)
        appendDecimal(bytes, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func imageAnswer(id: UInt32, accept: Bool, into out: inout [UInt8]) {
        append(accept ? #"{"type":"image_accept","id":"# : #"{"type":"image_decline","id":"#, to: &out)
        appendDecimal(UInt64(id), to: &out)
        out.append(UInt8(ascii: "}"))
    }

    @usableFromInline static let sequencedSuffix: StaticString = #"","seq":"#

    /// A version 2 client's copy of a message: the version 1 event with `"seq":N` after the text.
    @inline(__always)
    public static func messageFrame(escapedText: UnsafeRawBufferPointer, seq: UInt64, into out: inout [UInt8]) {
        let digits = decimalDigits(seq)
        let length = messagePrefix.utf8CodeUnitCount + escapedText.count + sequencedSuffix.utf8CodeUnitCount + digits + 1
        WebSocketFrameEncoder.appendHeader(opcode: .text, payloadLength: length, into: &out)
        append(messagePrefix, to: &out)
        out.append(contentsOf: escapedText)
        append(sequencedSuffix, to: &out)
        appendDecimal(seq, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    @inline(__always) @usableFromInline
    static func decimalDigits(_ n: UInt64) -> Int {
        var digits = 1
        var rest = n
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits
    }

    public static func typing(_ active: Bool, into out: inout [UInt8]) {
        append(active ? #"{"type":"typing","active":true}"# : #"{"type":"typing","active":false}"#, to: &out)
    }

    // Calls (B.4).

    static func callRequest(video: Bool, into out: inout [UInt8]) {
        append(video ? #"{"type":"call","action":"request","video":true}"#
                     : #"{"type":"call","action":"request","video":false}"#, to: &out)
    }

    static func callDecline(into out: inout [UInt8]) {
        append(#"{"type":"call","action":"decline"}"#, to: &out)
    }

    static func callEnd(into out: inout [UInt8]) {
        append(#"{"type":"call","action":"end"}"#, to: &out)
    }

    static func reported(into out: inout [UInt8]) {
        append(#"{"type":"reported"}"#, to: &out)
    }

    static func blocked(into out: inout [UInt8]) {
        append(#"{"type":"blocked"}"#, to: &out)
    }

    /// `ice` is the JSON object `ICEServers` wrote for this side.
    static func callStart(initiator: Bool, ice: [UInt8], into out: inout [UInt8]) {
        append(initiator ? #"{"type":"call","action":"start","initiator":true,"ice":"#
                         : #"{"type":"call","action":"start","initiator":false,"ice":"#, to: &out)
        out.append(contentsOf: ice)
        out.append(UInt8(ascii: "}"))
    }

    /// `data` is the object a `signal` carried, grammar-checked by the decoder, copied as it came.
    static func signal(data: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        append(#"{"type":"signal","data":"#, to: &out)
        out.append(contentsOf: data)
        out.append(UInt8(ascii: "}"))
    }

    static func error(_ code: ChatErrorCode, message: StaticString, into out: inout [UInt8]) {
        append(#"{"type":"error","code":""#, to: &out)
        append(code.wireName, to: &out)
        append(#"","message":""#, to: &out)
        appendEscaped(UnsafeRawBufferPointer(start: message.utf8Start, count: message.utf8CodeUnitCount), into: &out)
        append(#""}"#, to: &out)
    }

    @usableFromInline static let messagePrefix: StaticString = #"{"type":"message","text":""#
    private static let messageSuffix: StaticString = #""}"#

    /// `escapedText` is the contents of a string literal that `ChatCommandDecoder` accepted, copied as they are:
    /// the partner gets the text exactly as it was sent, escapes included.
    @inline(__always)
    public static func message(escapedText: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        append(messagePrefix, to: &out)
        out.append(contentsOf: escapedText)
        append(messageSuffix, to: &out)
    }

    /// The whole relayed frame, as the partner receives it: a text frame header, then `message(escapedText:into:)`.
    /// One pass over the sender's bytes, no `String`, and no allocation when `out` has room.
    @inline(__always)
    public static func messageFrame(escapedText: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        WebSocketFrameEncoder.appendHeader(opcode: .text, payloadLength: messagePayloadLength(escapedTextCount: escapedText.count),
                                           into: &out)
        message(escapedText: escapedText, into: &out)
    }

    /// The payload length of `message(escapedText:into:)`, so that the frame header can be written before the payload.
    @inline(__always)
    public static func messagePayloadLength(escapedTextCount: Int) -> Int {
        messagePrefix.utf8CodeUnitCount + escapedTextCount + messageSuffix.utf8CodeUnitCount
    }

    /// A JSON string literal, quotes included: `"` and `\` escaped, control characters as `\u00XX`, the rest as UTF-8.
    static func appendJSONString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0), into: &out) }
        out.append(UInt8(ascii: "\""))
    }

    private static func appendEscaped(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(b)
            case 0..<0x20:
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "u"))
                out.append(UInt8(ascii: "0"))
                out.append(UInt8(ascii: "0"))
                out.append(HexDigit.lowercase(b >> 4))
                out.append(HexDigit.lowercase(b & 0x0F))
            default:
                out.append(b)
            }
        }
    }

    @inline(__always) @usableFromInline
    static func append(_ s: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Decimal digits without a String; the magnitude is taken as UInt so that Int.min works too.
    private static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        if n < 0 { out.append(UInt8(ascii: "-")) }
        appendDecimal(UInt64(n.magnitude), to: &out)
    }

    @usableFromInline
    static func appendDecimal(_ n: UInt64, to out: inout [UInt8]) {
        var magnitude = n
        var divisor: UInt64 = 1
        while magnitude / divisor >= 10 { divisor *= 10 }
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(magnitude / divisor))
            magnitude %= divisor
            divisor /= 10
        }
    }
}
