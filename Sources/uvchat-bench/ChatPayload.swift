/// The bench's chat message: `{"type":"message","text":"..."}` whose text is exactly `textLength` ASCII bytes,
/// `SSSSSSS:QQQQQQQQQQ:TTTTTTTTTTTTTTTT:xxxx…` (sender index, sequence number, send time in ns since the
/// scenario started). Fixed-width fields let the receiver check order and loss and measure latency without
/// any parsing beyond digit runs.
struct ChatPayload {
    static let textLength = 100
    static let senderDigits = 7
    static let seqDigits = 10
    static let stampDigits = 16
    static let seqOffset = senderDigits + 1
    static let stampOffset = seqOffset + seqDigits + 1

    private static let prefix = Array(#"{"type":"message","text":""#.utf8)
    private static let suffix = Array(#""}"#.utf8)
    static let jsonLength = prefix.count + textLength + suffix.count

    /// A prefilled JSON message; each send overwrites only the digit fields.
    private let template: UnsafeMutableRawBufferPointer

    init() {
        template = .allocate(byteCount: Self.jsonLength, alignment: 8)
        var bytes = Self.prefix
        for i in 0..<Self.textLength {
            switch i {
            case Self.seqOffset - 1, Self.stampOffset - 1, Self.stampOffset + Self.stampDigits: bytes.append(UInt8(ascii: ":"))
            default: bytes.append(UInt8(ascii: i < Self.stampOffset + Self.stampDigits ? "0" : "x"))
            }
        }
        bytes += Self.suffix
        template.copyBytes(from: bytes)
    }

    /// The JSON for one message; valid until the next call.
    func json(sender: Int, seq: Int, stamp: UInt64) -> UnsafeRawBufferPointer {
        let text = Self.prefix.count
        Self.writeDigits(UInt64(sender), into: template, at: text, width: Self.senderDigits)
        Self.writeDigits(UInt64(seq), into: template, at: text + Self.seqOffset, width: Self.seqDigits)
        Self.writeDigits(stamp, into: template, at: text + Self.stampOffset, width: Self.stampDigits)
        return UnsafeRawBufferPointer(template)
    }

    struct Fields {
        var sender: Int
        var seq: Int
        var stamp: UInt64
    }

    /// Reads the fields back from a received text; nil when it is not one of ours (or was altered).
    static func fields(of text: UnsafeRawBufferPointer) -> Fields? {
        guard text.count == textLength,
              let sender = readDigits(text, at: 0, width: senderDigits),
              let seq = readDigits(text, at: seqOffset, width: seqDigits),
              let stamp = readDigits(text, at: stampOffset, width: stampDigits) else { return nil }
        return Fields(sender: Int(sender), seq: Int(seq), stamp: stamp)
    }

    private static func writeDigits(_ value: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, width: Int) {
        var v = value
        var i = offset + width - 1
        while i >= offset {
            buffer[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
            i -= 1
        }
    }

    private static func readDigits(_ text: UnsafeRawBufferPointer, at offset: Int, width: Int) -> UInt64? {
        var v: UInt64 = 0
        for i in offset..<(offset + width) {
            let d = text[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            v = v * 10 + UInt64(d)
        }
        return v
    }
}
