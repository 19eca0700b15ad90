import Testing
@testable import UVChat

private typealias W = WSTestSupport

private func encoded(_ opcode: WebSocketOpcode, _ payload: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    payload.withUnsafeBytes { WebSocketFrameEncoder.appendFrame(opcode: opcode, payload: $0, into: &out) }
    return out
}

private func header(_ opcode: WebSocketOpcode, length: Int, fin: Bool = true) -> [UInt8] {
    var bytes = [UInt8](repeating: 0xEE, count: 16)
    let n = bytes.withUnsafeMutableBytes {
        WebSocketFrameEncoder.writeHeader(opcode: opcode, payloadLength: length, fin: fin, into: $0.baseAddress!)
    }
    #expect(n == WebSocketFrameEncoder.headerSize(payloadLength: length))
    #expect(bytes[n...].allSatisfy { $0 == 0xEE }, "wrote past the header")
    return Array(bytes[..<n])
}

@Suite struct WebSocketFrameEncoderTests {
    @Test func headerSizeUsesTheShortestLengthForm() {
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 0) == 2)
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 125) == 2)
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 126) == 4)
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 65535) == 4)
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 65536) == 10)
        #expect(WebSocketFrameEncoder.headerSize(payloadLength: 1 << 40) == 10)
    }

    @Test func writesRFCExampleFrames() {
        // RFC 6455 5.7: unmasked "Hello", unmasked ping "Hello", 256 bytes and 64 KiB binary headers.
        #expect(encoded(.text, Array("Hello".utf8)) == [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(encoded(.ping, Array("Hello".utf8)) == [0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        #expect(header(.binary, length: 256) == [0x82, 0x7E, 0x01, 0x00])
        #expect(header(.binary, length: 65536) == [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0])
        #expect(header(.text, length: 3, fin: false) == [0x01, 0x03])
        #expect(header(.continuation, length: 2) == [0x80, 0x02])
    }

    @Test func writesLengthBoundaries() {
        #expect(header(.text, length: 125) == [0x81, 125])
        #expect(header(.text, length: 126) == [0x81, 126, 0, 126])
        #expect(header(.text, length: 65535) == [0x81, 126, 0xFF, 0xFF])
        #expect(header(.binary, length: 0x0102_0304_0506) == [0x82, 127, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06])
    }

    @Test func serverFramesAreNeverMasked() {
        for length in [0, 1, 125, 126, 65535, 65536] {
            #expect(header(.binary, length: length)[1] & 0x80 == 0)
        }
        // Which is why the parser, on the server side, refuses them.
        #expect(W.feed([encoded(.text, Array("hi".utf8))]) == [.fail(1002)])
    }

    @Test func appendsCloseWithCodeAndReason() {
        var out: [UInt8] = [0xAA]
        WebSocketFrameEncoder.appendClose(code: .normal, into: &out)
        #expect(out == [0xAA, 0x88, 0x02, 0x03, 0xE8])
        out = []
        WebSocketFrameEncoder.appendClose(code: .messageTooBig, reason: "too big", into: &out)
        #expect(out == [0x88, 0x09, 0x03, 0xF1] + Array("too big".utf8))
    }

    @Test func roundTripsThroughTheParser() {
        for length in [0, 1, 7, 8, 125, 126, 127, 1000, 65535, 65536, 70_000] {
            let payload = (0..<length).map { UInt8(0x20 + $0 % 90) }
            for opcode in [WebSocketOpcode.text, .binary] {
                let frame = W.masking(encoded(opcode, payload))
                let expected: [W.Seen] = [opcode == .text ? .text(payload) : .binary(payload)]
                if length <= 1000 {
                    #expect(W.feedEverySplit(frame) == expected, "\(opcode) \(length)")
                } else {
                    #expect(W.feed([frame]) == expected, "\(opcode) \(length)")
                    #expect(W.feed([Array(frame[..<(length / 2)]), Array(frame[(length / 2)...])]) == expected)
                }
            }
        }
        let control = (0..<125).map { UInt8($0) }
        #expect(W.feedEverySplit(W.masking(encoded(.ping, control))) == [.ping(control)])
        #expect(W.feedEverySplit(W.masking(encoded(.pong, []))) == [.pong([])])
        var close: [UInt8] = []
        WebSocketFrameEncoder.appendClose(code: .goingAway, reason: "shutting down", into: &close)
        #expect(W.feedEverySplit(W.masking(close)) == [.close(1001, Array("shutting down".utf8))])
    }

    @Test func roundTripsAFragmentedMessage() {
        var out: [UInt8] = []
        let parts = ["Grü", "ße ", "🌍"].map { Array($0.utf8) }
        for (i, part) in parts.enumerated() {
            var h = [UInt8](repeating: 0, count: 10)
            let opcode: WebSocketOpcode = i == 0 ? .text : .continuation
            let n = h.withUnsafeMutableBytes {
                WebSocketFrameEncoder.writeHeader(opcode: opcode, payloadLength: part.count, fin: i == parts.count - 1,
                                                  into: $0.baseAddress!)
            }
            out += W.masking(Array(h[..<n]) + part, key: [UInt8(i), 0xA5, 0x5A, 0xFF])
        }
        #expect(W.feedEverySplit(out) == [.text(Array("Grüße 🌍".utf8))])
    }
}
