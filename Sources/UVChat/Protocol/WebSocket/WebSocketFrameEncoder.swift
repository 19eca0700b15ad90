/// Server frames: never masked, always FIN unless asked otherwise.
enum WebSocketFrameEncoder {
    static func headerSize(payloadLength: Int) -> Int {
        payloadLength < 126 ? 2 : (payloadLength <= 0xFFFF ? 4 : 10)
    }

    @inline(__always)
    static func writeHeader(opcode: WebSocketOpcode, payloadLength: Int, fin: Bool = true, into p: UnsafeMutableRawPointer) -> Int {
        p.storeBytes(of: (fin ? 0x80 : 0) | opcode.rawValue, as: UInt8.self)
        if payloadLength < 126 {
            p.storeBytes(of: UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            return 2
        }
        if payloadLength <= 0xFFFF {
            p.storeBytes(of: 126, toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt8(payloadLength >> 8), toByteOffset: 2, as: UInt8.self)
            p.storeBytes(of: UInt8(payloadLength & 0xFF), toByteOffset: 3, as: UInt8.self)
            return 4
        }
        p.storeBytes(of: 127, toByteOffset: 1, as: UInt8.self)
        let length = UInt64(payloadLength)
        for i in 0..<8 {
            p.storeBytes(of: UInt8(truncatingIfNeeded: length >> (56 - 8 * UInt64(i))), toByteOffset: 2 + i, as: UInt8.self)
        }
        return 10
    }

    static func appendFrame(opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var header: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &header) { h in
            let n = writeHeader(opcode: opcode, payloadLength: payload.count, into: h.baseAddress!)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: h[0..<n]))
        }
        out.append(contentsOf: payload)
    }

    static func appendClose(code: WebSocketCloseCode, reason: StaticString = "", into out: inout [UInt8]) {
        let reasonCount = min(123, reason.utf8CodeUnitCount)
        out.append(0x88)
        out.append(UInt8(2 + reasonCount))
        out.append(UInt8(code.rawValue >> 8))
        out.append(UInt8(code.rawValue & 0xFF))
        out.append(contentsOf: UnsafeRawBufferPointer(start: reason.utf8Start, count: reasonCount))
    }
}
