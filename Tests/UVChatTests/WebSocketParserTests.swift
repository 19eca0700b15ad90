import Testing
@testable import UVChat

/// Events copied out of the parser (its pointers are only valid until the next call).
enum Seen: Equatable {
    case text([UInt8]), binary([UInt8]), ping([UInt8]), pong([UInt8]), close(UInt16?, [UInt8]), fail(UInt16)
}

func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true, rsv: UInt8 = 0,
           lengthForm: Int? = nil) -> [UInt8] {
    var f: [UInt8] = [(fin ? 0x80 : 0) | rsv << 4 | opcode]
    let n = payload.count
    let form = lengthForm ?? (n < 126 ? 0 : (n <= 0xFFFF ? 2 : 8))
    let maskBit: UInt8 = masked ? 0x80 : 0
    switch form {
    case 0: f.append(maskBit | UInt8(n))
    case 2: f.append(maskBit | 126); f += [UInt8(n >> 8), UInt8(n & 0xFF)]
    default: f.append(maskBit | 127); for i in (0..<8).reversed() { f.append(UInt8(truncatingIfNeeded: n >> (8 * i))) }
    }
    guard masked else { return f + payload }
    let key: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
    f += key
    for (i, b) in payload.enumerated() { f.append(b ^ key[i % 4]) }
    return f
}

/// Feeds `chunks` one after another and collects every event.
func parse(_ chunks: [[UInt8]], max: Int = 1 << 20) -> [Seen] {
    var parser = WebSocketParser(maxMessageBytes: max)
    var seen: [Seen] = []
    for chunk in chunks {
        var bytes = chunk
        bytes.withUnsafeMutableBytes { buf in
            var offset = 0
            while let e = parser.next(buf, offset: &offset) {
                switch e {
                case .text(let p): seen.append(.text(Array(p)))
                case .binary(let p): seen.append(.binary(Array(p)))
                case .ping(let p): seen.append(.ping(Array(p)))
                case .pong(let p): seen.append(.pong(Array(p)))
                case .close(let c, let r): seen.append(.close(c, Array(r)))
                case .fail(let c): seen.append(.fail(c.rawValue))
                }
            }
        }
    }
    return seen
}

/// The same events whatever the chunking: whole, split at every boundary, and one byte at a time.
func parseEverySplit(_ bytes: [UInt8], max: Int = 1 << 20) -> [Seen] {
    let whole = parse([bytes], max: max)
    for cut in 0...bytes.count {
        #expect(parse([Array(bytes[..<cut]), Array(bytes[cut...])], max: max) == whole, "split at \(cut)")
    }
    #expect(parse(bytes.map { [$0] }, max: max) == whole, "byte by byte")
    return whole
}

@Suite struct WebSocketParserTests {
    let hello = Array("Hello".utf8)

    @Test func parsesRFC6455SingleFrameMaskedText() {
        // RFC 6455 section 5.7: a single-frame masked text message "Hello".
        let bytes: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        #expect(parseEverySplit(bytes) == [.text(hello)])
    }

    @Test func reassemblesFragmentedTextWithPingBetween() {
        let bytes = frame(1, Array("Hel".utf8), fin: false) + frame(9, [1]) + frame(0, Array("lo".utf8))
        #expect(parseEverySplit(bytes) == [.ping([1]), .text(hello)])
    }

    @Test func parses16And64BitLengths() {
        let medium = [UInt8](repeating: 0x61, count: 256)
        let large = [UInt8](repeating: 0x62, count: 65536)
        #expect(parse([frame(2, medium)]) == [.binary(medium)])
        #expect(parse([frame(2, large)]) == [.binary(large)])
    }

    @Test func rejectsUnmaskedClientFrame() {
        #expect(parse([frame(1, hello, masked: false)]) == [.fail(1002)])
    }

    @Test func rejectsNonZeroRSVBits() {
        for rsv: UInt8 in [1, 2, 4] { #expect(parse([frame(1, hello, rsv: rsv)]) == [.fail(1002)]) }
    }

    @Test func rejectsReservedOpcodes() {
        for op: UInt8 in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] { #expect(parse([frame(op, [])]) == [.fail(1002)]) }
    }

    @Test func rejectsNonMinimalLengths() {
        #expect(parse([frame(2, [1, 2, 3], lengthForm: 2)]) == [.fail(1002)])
        #expect(parse([frame(2, [UInt8](repeating: 0, count: 200), lengthForm: 8)]) == [.fail(1002)])
    }

    @Test func rejects64BitLengthWithTopBitSet() {
        let bytes: [UInt8] = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]
        #expect(parse([bytes]) == [.fail(1002)])
    }

    @Test func rejectsControlFrameOver125Bytes() {
        #expect(parse([frame(9, [UInt8](repeating: 0, count: 126))]) == [.fail(1002)])
    }

    @Test func rejectsFragmentedControlFrame() {
        #expect(parse([frame(9, [1], fin: false)]) == [.fail(1002)])
    }

    @Test func rejectsContinuationWithoutMessage() {
        #expect(parse([frame(0, hello)]) == [.fail(1002)])
    }

    @Test func rejectsNewDataFrameInsideFragmentedMessage() {
        #expect(parse([frame(1, hello, fin: false) + frame(1, hello)]) == [.fail(1002)])
    }

    @Test func refusesMessageOverCapFromTheHeaderAlone() {
        // Only the header arrives: the size is refused before any payload.
        let header = Array(frame(2, [UInt8](repeating: 0, count: 2000)).prefix(8))
        #expect(parse([header], max: 1000) == [.fail(1009)])
    }

    @Test func refusesReassembledMessageOverCap() {
        let bytes = frame(2, [UInt8](repeating: 0, count: 600), fin: false) + frame(0, [UInt8](repeating: 0, count: 600))
        #expect(parse([bytes], max: 1000) == [.fail(1009)])
    }

    @Test func failsInvalidUTF8AsSoonAsItArrivesInAPartialFrame() {
        // The frame announces 100 bytes; the invalid byte is among the first five, and the rest never comes.
        let full = frame(1, [0x61, 0x62, 0xC0, 0x80] + [UInt8](repeating: 0x61, count: 96))
        #expect(parse([Array(full.prefix(6 + 4))]) == [.fail(1007)])
    }

    @Test func failsInvalidUTF8AcrossFragments() {
        let bytes = frame(1, [0xF0, 0x9F], fin: false) + frame(0, [0x41])
        #expect(parse([bytes]) == [.fail(1007)])
    }

    @Test func acceptsUTF8SplitAcrossFragments() {
        let smile: [UInt8] = [0xF0, 0x9F, 0x98, 0x80]
        let bytes = frame(1, Array(smile[..<2]), fin: false) + frame(0, Array(smile[2...]))
        #expect(parseEverySplit(bytes) == [.text(smile)])
    }

    @Test func failsTruncatedUTF8AtEndOfMessage() {
        #expect(parse([frame(1, [0xE2, 0x82])]) == [.fail(1007)])
    }

    @Test func validatesCloseFrames() {
        #expect(parse([frame(8, [])]) == [.close(nil, [])])
        #expect(parse([frame(8, [0x03, 0xE8] + Array("bye".utf8))]) == [.close(1000, Array("bye".utf8))])
        #expect(parse([frame(8, [0x03])]) == [.fail(1002)])                 // length 1
        #expect(parse([frame(8, [0x03, 0xED])]) == [.fail(1002)])           // 1005 may not be sent
        #expect(parse([frame(8, [0x03, 0xE8, 0xC0])]) == [.fail(1007)])     // reason not UTF-8
        #expect(parse([frame(8, [0x0B, 0xB8])]) == [.close(3000, [])])
    }

    @Test func ignoresInputAfterClose() {
        #expect(parse([frame(8, [0x03, 0xE8]) + frame(1, hello)]) == [.close(1000, [])])
    }

    @Test func answersEmptyAndZeroLengthFrames() {
        #expect(parse([frame(1, [])]) == [.text([])])
        #expect(parse([frame(1, hello, fin: false) + frame(0, [])]) == [.text(hello)])
    }

    @Test func singleFrameIsReturnedWithoutACopy() {
        var bytes = frame(1, hello)
        var parser = WebSocketParser(maxMessageBytes: 100)
        bytes.withUnsafeMutableBytes { buf in
            var offset = 0
            guard case .text(let p) = parser.next(buf, offset: &offset) else { Issue.record("no text"); return }
            #expect(p.baseAddress == UnsafeRawPointer(buf.baseAddress! + 6))
            #expect(Array(p) == hello)
        }
    }

    @Test func closeCodeRegistry() {
        for ok: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999] {
            #expect(WebSocketCloseCode.isValidReceived(ok))
        }
        for bad: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            #expect(!WebSocketCloseCode.isValidReceived(bad))
        }
    }

    @Test func encoderRoundTripsThroughTheLengthForms() {
        for n in [0, 125, 126, 65535, 65536] {
            let payload = [UInt8](repeating: 0x5A, count: n)
            var out: [UInt8] = []
            payload.withUnsafeBytes { WebSocketFrameEncoder.appendFrame(opcode: .binary, payload: $0, into: &out) }
            #expect(out.count == WebSocketFrameEncoder.headerSize(payloadLength: n) + n)
            #expect(out[0] == 0x82)
            // The server never masks; re-mask it as a client would to feed our own parser.
            let header = WebSocketFrameEncoder.headerSize(payloadLength: n)
            #expect(out[1] & 0x80 == 0)
            #expect(parse([frame(2, Array(out[header...]))]) == [.binary(payload)])
        }
        var close: [UInt8] = []
        WebSocketFrameEncoder.appendClose(code: .goingAway, reason: "bye", into: &close)
        #expect(close == [0x88, 5, 0x03, 0xE9] + Array("bye".utf8))
    }
}

@Suite struct UTF8ValidatorTests {
    func valid(_ bytes: [UInt8]) -> Bool {
        var v = UTF8Validator()
        return bytes.withUnsafeBytes { v.validate($0) } && v.isComplete
    }

    @Test func acceptsBoundaryScalars() {
        for scalar: UInt32 in [0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF] {
            let s = String(Unicode.Scalar(scalar)!)
            #expect(valid(Array(s.utf8)), "U+\(String(scalar, radix: 16))")
        }
    }

    @Test func rejectsSurrogatesOverlongsAndOutOfRange() {
        let bad: [[UInt8]] = [
            [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],      // surrogates
            [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xF0, 0x80, 0x80, 0x80],   // overlong
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF],                  // past U+10FFFF
            [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFC, 0x84, 0x80, 0x80, 0x80, 0x80],         // 5 and 6 byte forms
            [0x80], [0x41, 0xBF],                                                         // lone continuation
            [0xE2, 0x82],                                                                 // truncated
        ]
        for b in bad { #expect(!valid(b), "\(b)") }
    }

    @Test func failsAtTheFirstImpossibleByteAcrossChunks() {
        var v = UTF8Validator()
        #expect([UInt8(0xE0)].withUnsafeBytes { v.validate($0) })
        #expect(![UInt8(0x9F)].withUnsafeBytes { v.validate($0) })   // E0 needs A0...BF next
    }

    @Test func longASCIIUsesTheFastPathAndStaysValid() {
        #expect(valid([UInt8](repeating: 0x41, count: 1001)))
        #expect(!valid([UInt8](repeating: 0x41, count: 1000) + [0xFF]))
    }
}
