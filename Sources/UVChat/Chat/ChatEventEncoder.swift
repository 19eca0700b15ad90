/// The server's events as JSON text payloads (the caller adds the WebSocket frame header).
enum ChatEventEncoder {
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
        for (i, tag) in common.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            appendJSONString(tag, into: &out)
        }
        append(random ? #"],"random":true}"# : #"],"random":false}"#, to: &out)
    }

    static func partnerLeft(into out: inout [UInt8]) {
        append(#"{"type":"partner_left"}"#, to: &out)
    }

    static func typing(_ active: Bool, into out: inout [UInt8]) {
        append(active ? #"{"type":"typing","active":true}"# : #"{"type":"typing","active":false}"#, to: &out)
    }

    static func error(_ code: ChatErrorCode, message: StaticString, into out: inout [UInt8]) {
        append(#"{"type":"error","code":""#, to: &out)
        append(code.wireName, to: &out)
        append(#"","message":"#, to: &out)
        appendJSONString(message.description, into: &out)
        out.append(UInt8(ascii: "}"))
    }

    private static let messagePrefix: StaticString = #"{"type":"message","text":""#
    private static let messageSuffix: StaticString = #""}"#

    /// `escapedText` is a validated JSON string literal's contents, copied as they are.
    @inline(__always)
    static func message(escapedText: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        append(messagePrefix, to: &out)
        out.append(contentsOf: escapedText)
        append(messageSuffix, to: &out)
    }

    @inline(__always)
    static func messagePayloadLength(escapedTextCount: Int) -> Int {
        messagePrefix.utf8CodeUnitCount + escapedTextCount + messageSuffix.utf8CodeUnitCount
    }

    static func appendJSONString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    private static func append(_ s: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    private static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        if n < 0 {
            out.append(UInt8(ascii: "-"))
            appendDecimal(-n, to: &out)
            return
        }
        if n >= 10 { appendDecimal(n / 10, to: &out) }
        out.append(UInt8(ascii: "0") + UInt8(n % 10))
    }
}
