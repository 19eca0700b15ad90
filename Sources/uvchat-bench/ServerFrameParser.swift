/// Splits the server's byte stream into WebSocket frames. Server frames are never masked (RFC 6455 5.1), so
/// a payload is handed out as a view into the read buffer whenever the whole frame arrived in one read; only
/// a frame split across reads is copied.
struct ServerFrameParser {
    struct Frame {
        var fin: Bool
        var opcode: UInt8
        var payload: UnsafeRawBufferPointer
    }

    enum Failure: Error { case maskedServerFrame, reservedBits, tooLarge }

    static let maxPayload = 1 << 24

    private var pending = ByteQueue()

    /// Calls `onFrame` for every complete frame in `input` (after any bytes held back from earlier reads).
    mutating func feed(_ input: UnsafeRawBufferPointer, _ onFrame: (Frame) -> Void) throws(Failure) {
        if pending.isEmpty {
            let used = try Self.parse(input, onFrame)
            if used < input.count {
                pending.append(UnsafeRawBufferPointer(rebasing: input[used...]))
            }
            return
        }
        pending.append(input)
        let held = UnsafeRawBufferPointer(start: pending.base, count: pending.count)
        let used = try Self.parse(held, onFrame)
        pending.removeFirst(used)
        if pending.isEmpty { pending.free() }
    }

    mutating func reset() { pending.free() }

    /// Returns how many bytes were consumed by complete frames.
    private static func parse(_ bytes: UnsafeRawBufferPointer, _ onFrame: (Frame) -> Void) throws(Failure) -> Int {
        var at = 0
        while bytes.count - at >= 2 {
            let b0 = bytes[at], b1 = bytes[at + 1]
            if b0 & 0x70 != 0 { throw .reservedBits }
            if b1 & 0x80 != 0 { throw .maskedServerFrame }
            var header = 2
            var length = Int(b1 & 0x7F)
            if length == 126 {
                guard bytes.count - at >= 4 else { break }
                length = Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
                header = 4
            } else if length == 127 {
                guard bytes.count - at >= 10 else { break }
                var l: UInt64 = 0
                for i in 0..<8 { l = l << 8 | UInt64(bytes[at + 2 + i]) }
                if l > UInt64(maxPayload) { throw .tooLarge }
                length = Int(l)
                header = 10
            }
            guard bytes.count - at >= header + length else { break }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[(at + header)..<(at + header + length)])
            onFrame(Frame(fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, payload: payload))
            at += header + length
        }
        return at
    }
}
