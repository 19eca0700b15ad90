/// Server-to-client frames (RFC 6455 5.2). A server never masks (5.1), so a frame is a header followed by the
/// payload as is, and callers that already hold the payload can write the header in front of it and skip a copy.
public enum WebSocketFrameEncoder {
    /// The header length the encoder picks: lengths always take the shortest form, as 5.2 requires.
    @inline(__always)
    static func headerSize(payloadLength: Int) -> Int {
        payloadLength < 126 ? 2 : (payloadLength <= 0xFFFF ? 4 : 10)
    }

    /// Writes a frame header (FIN unless told otherwise, no RSV bits, unmasked) at `into`, which must have room for
    /// `headerSize(payloadLength:)` bytes, and returns the bytes written.
    @inline(__always)
    public static func writeHeader(opcode: WebSocketOpcode, payloadLength: Int, fin: Bool = true,
                            into p: UnsafeMutableRawPointer) -> Int {
        precondition(payloadLength >= 0)
        p.storeBytes(of: (fin ? 0x80 : 0) | opcode.rawValue, as: UInt8.self)
        if payloadLength < 126 {
            p.storeBytes(of: UInt8(truncatingIfNeeded: payloadLength), toByteOffset: 1, as: UInt8.self)
            return 2
        }
        if payloadLength <= 0xFFFF {
            p.storeBytes(of: 126, toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt16(truncatingIfNeeded: payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            return 4
        }
        p.storeBytes(of: 127, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: UInt64(payloadLength).bigEndian, toByteOffset: 2, as: UInt64.self)
        return 10
    }

    /// Appends a frame header; the caller appends exactly `payloadLength` bytes of payload after it.
    @inline(__always)
    public static func appendHeader(opcode: WebSocketOpcode, payloadLength: Int, into out: inout [UInt8]) {
        // Two words on the stack hold the longest header (10 bytes) without touching the heap.
        var header: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &header) { h in
            let n = writeHeader(opcode: opcode, payloadLength: payloadLength, into: h.baseAddress!)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: h[0..<n]))
        }
    }

    @inline(__always)
    public static func appendFrame(opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        appendHeader(opcode: opcode, payloadLength: payload.count, into: &out)
        out.append(contentsOf: payload)
    }

    /// A close frame with a status code and a reason. The reason must be valid UTF-8 (7.1.6) and at most 123 bytes,
    /// because a control frame carries at most 125 (5.5) and the code takes two.
    static func appendClose(code: WebSocketCloseCode, reason: StaticString = "", into out: inout [UInt8]) {
        precondition(code != .noStatus, "1005 must never be sent (RFC 6455 7.4.1)")
        reason.withUTF8Buffer { text in
            precondition(text.count <= 123, "a close reason is at most 123 bytes")
            out.append(0x80 | WebSocketOpcode.close.rawValue)
            out.append(UInt8(2 + text.count))
            out.append(UInt8(truncatingIfNeeded: code.rawValue >> 8))
            out.append(UInt8(truncatingIfNeeded: code.rawValue))
            out.append(contentsOf: text)
        }
    }
}
