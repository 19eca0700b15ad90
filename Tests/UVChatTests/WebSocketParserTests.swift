import Testing
@testable import UVChat

/// Frame builders and a recording driver shared by the WebSocket test files.
enum WSTestSupport {
    /// An event copied out of the parser, whose pointers only live until its next call.
    enum Seen: Equatable, CustomStringConvertible {
        case text([UInt8]), binary([UInt8]), ping([UInt8]), pong([UInt8]), close(UInt16?, [UInt8]), fail(UInt16)
        case skippedBinary

        init(_ event: WebSocketEvent) {
            switch event {
            case .text(let p): self = .text(Array(p))
            case .binary(let p): self = .binary(Array(p))
            case .ping(let p): self = .ping(Array(p))
            case .pong(let p): self = .pong(Array(p))
            case .close(let code, let reason): self = .close(code, Array(reason))
            case .fail(let code): self = .fail(code.rawValue)
            case .skippedBinary: self = .skippedBinary
            }
        }

        var description: String {
            switch self {
            case .text(let b): return "text(\(b.count) bytes)"
            case .binary(let b): return "binary(\(b.count) bytes)"
            case .ping(let b): return "ping(\(b))"
            case .pong(let b): return "pong(\(b))"
            case .close(let c, let r): return "close(\(String(describing: c)), \(r))"
            case .fail(let c): return "fail(\(c))"
            case .skippedBinary: return "skippedBinary"
            }
        }
    }

    static let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    /// A client frame. `lengthForm` forces the 0 (7-bit), 2 or 8 byte length encoding; `declaredLength` lies about
    /// the payload length, for header-only tests.
    static func frame(_ opcode: UInt8, _ payload: [UInt8] = [], fin: Bool = true, masked: Bool = true, rsv: UInt8 = 0,
                      key: [UInt8] = key, lengthForm: Int? = nil, declaredLength: UInt64? = nil) -> [UInt8] {
        var f: [UInt8] = [(fin ? 0x80 : 0) | rsv << 4 | opcode]
        let n = declaredLength ?? UInt64(payload.count)
        let form = lengthForm ?? (n < 126 ? 0 : (n <= 0xFFFF ? 2 : 8))
        let maskBit: UInt8 = masked ? 0x80 : 0
        switch form {
        case 0: f.append(maskBit | UInt8(n))
        case 2: f += [maskBit | 126, UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
        default:
            f.append(maskBit | 127)
            for i in (0..<8).reversed() { f.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        }
        guard masked else { return f + payload }
        f += key
        for (i, b) in payload.enumerated() { f.append(b ^ key[i % 4]) }
        return f
    }

    static func text(_ s: String, fin: Bool = true) -> [UInt8] { frame(1, Array(s.utf8), fin: fin) }
    static func close(_ code: UInt16, _ reason: [UInt8] = []) -> [UInt8] {
        frame(8, [UInt8(code >> 8), UInt8(code & 0xFF)] + reason)
    }

    /// Masks a (server, unmasked) frame as a client would send it.
    static func masking(_ serverFrame: [UInt8], key: [UInt8] = key) -> [UInt8] {
        precondition(serverFrame[1] & 0x80 == 0)
        let field = serverFrame[1] & 0x7F == 126 ? 2 : (serverFrame[1] & 0x7F == 127 ? 8 : 0)
        let headerEnd = 2 + field
        var out = Array(serverFrame[..<headerEnd])
        out[1] |= 0x80
        out += key
        for (i, b) in serverFrame[headerEnd...].enumerated() { out.append(b ^ key[i % 4]) }
        return out
    }

    /// Feeds the chunks in order to one parser and records every event; also checks that the parser accounts for
    /// every byte (nil only when the chunk is used up).
    static func feed(_ chunks: [[UInt8]], max: Int = 1 << 20, maxFrame: Int? = nil, maxBinary: Int? = nil,
                     allowance: Int? = nil) -> [Seen] {
        var parser = WebSocketParser(maxMessageBytes: max, maxFrameBytes: maxFrame, maxBinaryBytes: maxBinary)
        if let allowance { parser.binaryAllowance = allowance }
        var seen: [Seen] = []
        for chunk in chunks {
            var bytes = chunk
            bytes.withUnsafeMutableBytes { buffer in
                var offset = 0
                while let event = parser.next(buffer, offset: &offset) {
                    seen.append(Seen(event))
                }
                #expect(offset == buffer.count)
            }
        }
        return seen
    }

    /// The events for `bytes` whole, checking that every two-piece split and byte-by-byte feeding give the same.
    @discardableResult
    static func feedEverySplit(_ bytes: [UInt8], max: Int = 1 << 20, maxFrame: Int? = nil, maxBinary: Int? = nil,
                               allowance: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> [Seen] {
        let whole = feed([bytes], max: max, maxFrame: maxFrame, maxBinary: maxBinary, allowance: allowance)
        for cut in 0...bytes.count {
            let split = feed([Array(bytes[..<cut]), Array(bytes[cut...])], max: max, maxFrame: maxFrame,
                             maxBinary: maxBinary, allowance: allowance)
            #expect(split == whole, "split at \(cut)", sourceLocation: sourceLocation)
        }
        #expect(feed(bytes.map { [$0] }, max: max, maxFrame: maxFrame, maxBinary: maxBinary, allowance: allowance) == whole,
                "byte by byte",
                sourceLocation: sourceLocation)
        return whole
    }

    /// How many leading bytes, fed one at a time, it takes for the parser to fail; nil if it never does.
    static func bytesUntilFailure(_ bytes: [UInt8], max: Int = 1 << 20, maxFrame: Int? = nil,
                                  maxBinary: Int? = nil) -> Int? {
        var parser = WebSocketParser(maxMessageBytes: max, maxFrameBytes: maxFrame, maxBinaryBytes: maxBinary)
        for (i, b) in bytes.enumerated() {
            var one = [b]
            let failed = one.withUnsafeMutableBytes { buffer -> Bool in
                var offset = 0
                while let event = parser.next(buffer, offset: &offset) {
                    if case .fail = event { return true }
                }
                return false
            }
            if failed { return i + 1 }
        }
        return nil
    }
}

private typealias W = WSTestSupport

@Suite struct WebSocketParserTests {
    // MARK: RFC 6455 section 5.7 examples

    @Test func decodesRFCSingleFrameMaskedText() {
        let bytes: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        #expect(W.feedEverySplit(bytes) == [.text(Array("Hello".utf8))])
    }

    @Test func rejectsRFCUnmaskedExamplesFromAClient() {
        // The RFC's unmasked examples are server frames; from a client they break 5.1.
        #expect(W.feedEverySplit([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]) == [.fail(1002)])
        #expect(W.feedEverySplit([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]) == [.fail(1002)])
    }

    @Test func decodesRFCFragmentedText() {
        // "Hel" then "lo", as in 5.7, masked because a client sent them.
        let bytes = W.masking([0x01, 0x03, 0x48, 0x65, 0x6C]) + W.masking([0x80, 0x02, 0x6C, 0x6F])
        #expect(W.feedEverySplit(bytes) == [.text(Array("Hello".utf8))])
    }

    @Test func decodesRFCPingAndMaskedPong() {
        let ping = W.masking([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        let pong: [UInt8] = [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        #expect(W.feedEverySplit(ping + pong) == [.ping(Array("Hello".utf8)), .pong(Array("Hello".utf8))])
    }

    @Test func decodesRFC256ByteBinaryWith16BitLength() {
        let payload = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let bytes = W.masking([0x82, 0x7E, 0x01, 0x00] + payload)
        #expect(Array(bytes[0..<4]) == [0x82, 0xFE, 0x01, 0x00])
        #expect(W.feedEverySplit(bytes) == [.binary(payload)])
    }

    @Test func decodesRFC64KiBBinaryWith64BitLength() {
        let payload = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 8) }
        let bytes = W.masking([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] + payload)
        let expected: [W.Seen] = [.binary(payload)]
        #expect(W.feed([bytes]) == expected)
        // Too big to split everywhere; cut in the header, at each key phase, and in many small reads.
        for cut in [1, 5, 9, 10, 13, 14, 15, 16, 17, 1000, 32_771, bytes.count - 1] {
            #expect(W.feed([Array(bytes[..<cut]), Array(bytes[cut...])]) == expected, "split at \(cut)")
        }
        let reads = stride(from: 0, to: bytes.count, by: 1_499).map { Array(bytes[$0..<min($0 + 1_499, bytes.count)]) }
        #expect(W.feed(reads) == expected)
    }

    // MARK: Framing rules

    @Test func rejectsUnmaskedClientFrame() {
        #expect(W.feedEverySplit(W.frame(1, Array("hi".utf8), masked: false)) == [.fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(2, [1, 2, 3], masked: false)) == 2)
    }

    @Test(arguments: [1, 2, 4, 7] as [UInt8])
    func rejectsNonZeroRSVBits(rsv: UInt8) {
        #expect(W.feedEverySplit(W.frame(1, Array("hi".utf8), rsv: rsv)) == [.fail(1002)])
        #expect(W.feedEverySplit(W.frame(9, [], rsv: rsv)) == [.fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(2, [1], rsv: rsv)) == 1)
    }

    @Test(arguments: [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] as [UInt8])
    func rejectsReservedOpcodes(opcode: UInt8) {
        #expect(W.feedEverySplit(W.frame(opcode, [1, 2])) == [.fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(opcode, [1, 2])) == 1)
    }

    @Test func rejectsNonMinimal16BitLength() {
        #expect(W.feedEverySplit(W.frame(2, [UInt8](repeating: 1, count: 125), lengthForm: 2)) == [.fail(1002)])
        #expect(W.feedEverySplit(W.frame(2, [], lengthForm: 2)) == [.fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(2, [UInt8](repeating: 1, count: 125), lengthForm: 2)) == 4)
        // 126 is the first length that needs 16 bits.
        #expect(W.feed([W.frame(2, [UInt8](repeating: 1, count: 126), lengthForm: 2)]) == [.binary([UInt8](repeating: 1, count: 126))])
    }

    @Test func rejectsNonMinimal64BitLength() {
        #expect(W.feedEverySplit(W.frame(2, [UInt8](repeating: 2, count: 300), lengthForm: 8)) == [.fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(2, [], lengthForm: 8, declaredLength: 0xFFFF)) == 10)
        let smallest = [UInt8](repeating: 3, count: 0x10000)
        #expect(W.feed([W.frame(2, smallest, lengthForm: 8)]) == [.binary(smallest)])
    }

    @Test func rejects64BitLengthWithTopBitSet() {
        // Without this rule the length would be refused as too big (1009); it is malformed (1002).
        let header = W.frame(2, [], lengthForm: 8, declaredLength: 0x8000_0000_0000_0000)
        #expect(W.feedEverySplit(header) == [.fail(1002)])
        #expect(W.bytesUntilFailure(header) == 3)
        #expect(W.feedEverySplit(W.frame(2, [], lengthForm: 8, declaredLength: UInt64.max)) == [.fail(1002)])
    }

    @Test func rejectsControlFrameOver125Bytes() {
        #expect(W.feedEverySplit(W.frame(9, [UInt8](repeating: 0x61, count: 126))) == [.fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(10, [UInt8](repeating: 0x61, count: 126))) == 2)
        let most = [UInt8](repeating: 0x61, count: 125)
        #expect(W.feedEverySplit(W.frame(9, most)) == [.ping(most)])
    }

    @Test func rejectsFragmentedControlFrame() {
        #expect(W.feedEverySplit(W.frame(9, Array("a".utf8), fin: false)) == [.fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(8, [3, 232], fin: false)) == 1)
    }

    @Test func acceptsControlFramesBetweenFragments() {
        let bytes = W.text("fr", fin: false) + W.frame(9, Array("p1".utf8)) + W.frame(0, Array("ag".utf8), fin: false)
            + W.frame(10, []) + W.frame(9, [UInt8](repeating: 7, count: 125)) + W.frame(0, Array("ment".utf8))
        #expect(W.feedEverySplit(bytes) == [
            .ping(Array("p1".utf8)), .pong([]), .ping([UInt8](repeating: 7, count: 125)), .text(Array("fragment".utf8)),
        ])
    }

    @Test func acceptsEmptyFragments() {
        let bytes = W.frame(2, [], fin: false) + W.frame(0, [], fin: false) + W.frame(0, [9]) + W.text("")
        #expect(W.feedEverySplit(bytes) == [.binary([9]), .text([])])
    }

    @Test func rejectsContinuationWithoutMessage() {
        #expect(W.feedEverySplit(W.frame(0, Array("x".utf8))) == [.fail(1002)])
        #expect(W.feedEverySplit(W.text("done") + W.frame(0, Array("x".utf8), fin: false))
                == [.text(Array("done".utf8)), .fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(0, [1, 2, 3])) == 1)
    }

    @Test func rejectsNewDataFrameDuringFragmentedMessage() {
        #expect(W.feedEverySplit(W.text("a", fin: false) + W.text("b")) == [.fail(1002)])
        #expect(W.feedEverySplit(W.frame(2, [1], fin: false) + W.frame(1, [0x62], fin: false)) == [.fail(1002)])
        let first = W.text("a", fin: false)
        #expect(W.bytesUntilFailure(first + W.frame(2, [1])) == first.count + 1)
    }

    @Test func rejectsMessageOverLimitFromHeader() {
        // Refused from the length alone: the header is enough, no payload is waited for.
        #expect(W.feedEverySplit(W.frame(1, [], declaredLength: 101), max: 100) == [.fail(1009)])
        #expect(W.bytesUntilFailure(W.frame(1, [], declaredLength: 101), max: 100) == 2)
        #expect(W.bytesUntilFailure(W.frame(2, [], declaredLength: 300), max: 200) == 4)
        #expect(W.bytesUntilFailure(W.frame(2, [], declaredLength: 1 << 40), max: 200) == 10)
        let exactly = [UInt8](repeating: 0x61, count: 100)
        #expect(W.feedEverySplit(W.frame(1, exactly), max: 100) == [.text(exactly)])
    }

    @Test func rejectsReassembledMessageOverLimit() {
        let over = W.frame(2, [1, 2, 3, 4, 5, 6], fin: false) + W.frame(0, [7, 8, 9, 10, 11])
        #expect(W.feedEverySplit(over, max: 10) == [.fail(1009)])
        let first = W.frame(2, [1, 2, 3, 4, 5, 6], fin: false)
        #expect(W.bytesUntilFailure(first + W.frame(0, [], declaredLength: 5), max: 10) == first.count + 2)
        let fits = W.frame(2, [1, 2, 3, 4, 5, 6], fin: false) + W.frame(0, [7, 8, 9, 10])
        #expect(W.feedEverySplit(fits, max: 10) == [.binary([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])])
        // A control frame in between does not count towards the message.
        let withPing = W.frame(2, [1, 2, 3, 4, 5, 6], fin: false) + W.frame(9, [1, 2, 3, 4, 5]) + W.frame(0, [7, 8, 9, 10])
        #expect(W.feedEverySplit(withPing, max: 10) == [.ping([1, 2, 3, 4, 5]), .binary([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])])
    }

    @Test func rejectsFrameOverMaxFrameBytes() {
        let big = W.frame(2, [UInt8](repeating: 1, count: 11), fin: false) + W.frame(0, [1])
        #expect(W.feedEverySplit(big, max: 100, maxFrame: 10) == [.fail(1009)])
        #expect(W.bytesUntilFailure(big, max: 100, maxFrame: 10) == 2)
        let fits = W.frame(2, [UInt8](repeating: 1, count: 10), fin: false) + W.frame(0, [UInt8](repeating: 2, count: 10))
        #expect(W.feedEverySplit(fits, max: 100, maxFrame: 10)
                == [.binary([UInt8](repeating: 1, count: 10) + [UInt8](repeating: 2, count: 10))])
    }

    // MARK: Text and UTF-8

    @Test func rejectsInvalidUTF8InTextMessage() {
        #expect(W.feedEverySplit(W.frame(1, [0x61, 0xC0, 0xAF])) == [.fail(1007)])
        #expect(W.feedEverySplit(W.frame(1, Array("κόσμε".utf8) + [0xED, 0xA0, 0x80, 0x61])) == [.fail(1007)])
        // Binary messages are not text: the same bytes pass.
        #expect(W.feedEverySplit(W.frame(2, [0x61, 0xC0, 0xAF])) == [.binary([0x61, 0xC0, 0xAF])])
    }

    @Test func validatesUTF8AcrossFragments() {
        // € is E2 82 AC; 𝄞 is F0 9D 84 9E. Cut inside both.
        let good = W.frame(1, [0x61, 0xE2], fin: false) + W.frame(0, [0x82], fin: false) + W.frame(9, [])
            + W.frame(0, [0xAC, 0xF0, 0x9D], fin: false) + W.frame(0, [0x84, 0x9E])
        #expect(W.feedEverySplit(good) == [.ping([]), .text(Array("a€𝄞".utf8))])
        // E0 80 is an overlong start, refused at the 80 in the second fragment.
        let bad = W.frame(1, [0x61, 0xE0], fin: false) + W.frame(0, [0x80, 0x80])
        #expect(W.feedEverySplit(bad) == [.fail(1007)])
    }

    @Test func failsFastOnInvalidUTF8InsidePartialFrame() {
        // The frame announces 1000 bytes; the bad byte is the third. It fails there, not 997 bytes later.
        var payload = [UInt8](repeating: 0x61, count: 1000)
        payload[2] = 0xFF
        let bytes = W.frame(1, payload)
        #expect(W.bytesUntilFailure(bytes) == 8 + 3)
        #expect(W.feed([Array(bytes[..<11])]) == [.fail(1007)])
        // And in an unfinished fragmented message: fails in the first fragment, with no final fragment in sight.
        let first = W.frame(1, Array("κόσμε".utf8) + [0xF4, 0x90, 0x80, 0x80], fin: false)
        #expect(W.feedEverySplit(first) == [.fail(1007)])
        #expect(W.bytesUntilFailure(first) == 6 + Array("κόσμε".utf8).count + 2)
    }

    @Test func rejectsIncompleteUTF8AtEndOfMessage() {
        #expect(W.feedEverySplit(W.frame(1, [0x61, 0xE2, 0x82])) == [.fail(1007)])
        #expect(W.feedEverySplit(W.frame(1, [0xE2], fin: false) + W.frame(0, [0x82])) == [.fail(1007)])
        #expect(W.feedEverySplit(W.frame(1, [0xF0, 0x9F, 0x98], fin: false) + W.frame(0, [])) == [.fail(1007)])
        // The unfinished character does not leak into the next message either.
        #expect(W.feedEverySplit(W.frame(1, [0xE2, 0x82, 0xAC]) + W.text("ok")) == [.text([0xE2, 0x82, 0xAC]), .text(Array("ok".utf8))])
    }

    // MARK: Close frames

    @Test func rejectsCloseWithOneBytePayload() {
        #expect(W.feedEverySplit(W.frame(8, [0x03])) == [.fail(1002)])
        #expect(W.bytesUntilFailure(W.frame(8, [0x03])) == 2)
    }

    @Test(arguments: [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] as [UInt16])
    func rejectsCloseWithInvalidCode(code: UInt16) {
        #expect(W.feedEverySplit(W.close(code)) == [.fail(1002)])
    }

    @Test(arguments: [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] as [UInt16])
    func acceptsCloseWithValidCode(code: UInt16) {
        #expect(W.feedEverySplit(W.close(code, Array("bye".utf8))) == [.close(code, Array("bye".utf8))])
    }

    @Test func closeCodeValidityTable() {
        let valid = (0...UInt16.max).filter { WebSocketCloseCode.isValidReceived($0) }
        #expect(valid == Array(1000...1003) + Array(1007...1014) + Array(3000...4999))
    }

    @Test func rejectsCloseWithInvalidUTF8Reason() {
        #expect(W.feedEverySplit(W.close(1000, [0x61, 0xCE, 0xBA, 0xED, 0xA0, 0x80])) == [.fail(1007)])
        #expect(W.feedEverySplit(W.close(1000, [0x61, 0xCE])) == [.fail(1007)])
        let longest = [UInt8](repeating: 0x7A, count: 123)
        #expect(W.feedEverySplit(W.close(4000, longest)) == [.close(4000, longest)])
    }

    @Test func acceptsCloseWithoutPayload() {
        #expect(W.feedEverySplit(W.frame(8, [])) == [.close(nil, [])])
    }

    @Test func ignoresInputAfterClose() {
        let bytes = W.close(1000) + W.text("late") + [0xFF, 0xFF]
        #expect(W.feedEverySplit(bytes) == [.close(1000, [])])
    }

    @Test func staysFailedAfterFailure() {
        var parser = WebSocketParser(maxMessageBytes: 100)
        var bad = W.frame(1, [0xFF]) + W.text("never")
        bad.withUnsafeMutableBytes { buffer in
            var offset = 0
            guard case .fail(let code)? = parser.next(buffer, offset: &offset) else {
                Issue.record("expected a failure"); return
            }
            #expect(code == .invalidPayload)
            #expect(offset == buffer.count)
            #expect(parser.next(buffer, offset: &offset) == nil)
        }
        #expect(parser.isFailed)
        var good = W.text("hello")
        good.withUnsafeMutableBytes { buffer in
            var offset = 0
            #expect(parser.next(buffer, offset: &offset) == nil)
            #expect(offset == buffer.count)
        }
    }

    // MARK: Chunking, zero copy, buffers

    @Test func everySplitGivesTheSameEvents() {
        let long = [UInt8]((0..<300).map { UInt8(0x20 + $0 % 90) })
        let bytes = W.text("hello") + W.frame(2, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
            + W.frame(1, Array("Grüße, ".utf8), fin: false) + W.frame(9, Array("ping".utf8))
            + W.frame(0, Array("мир ".utf8), fin: false) + W.frame(0, Array("🌍".utf8))
            + W.frame(1, long) + W.frame(10, [1, 2, 3]) + W.frame(2, [], fin: true) + W.close(1001, Array("gone".utf8))
        #expect(W.feedEverySplit(bytes) == [
            .text(Array("hello".utf8)), .binary([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), .ping(Array("ping".utf8)),
            .text(Array("Grüße, мир 🌍".utf8)), .text(long), .pong([1, 2, 3]), .binary([]), .close(1001, Array("gone".utf8)),
        ])
    }

    @Test func unmasksEveryLengthAtEveryKeyPhase() {
        let key: [UInt8] = [0x01, 0x80, 0xFE, 0x55]
        for length in 0...70 {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
            let bytes = W.frame(2, payload, key: key)
            #expect(W.feedEverySplit(bytes) == [.binary(payload)], "length \(length)")
        }
    }

    @Test func returnsOneEventPerCallAndAdvancesOffset() {
        let first = W.text("one")
        var bytes = first + W.text("two")
        var parser = WebSocketParser(maxMessageBytes: 100)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            guard case .text(let one)? = parser.next(buffer, offset: &offset) else { Issue.record("no text"); return }
            #expect(Array(one) == Array("one".utf8))
            #expect(offset == first.count)
            guard case .text(let two)? = parser.next(buffer, offset: &offset) else { Issue.record("no text"); return }
            #expect(Array(two) == Array("two".utf8))
            #expect(offset == buffer.count)
            #expect(parser.next(buffer, offset: &offset) == nil)
        }
    }

    @Test func zeroCopyFramePointsIntoInput() {
        var bytes = W.text("hello") + W.frame(9, [1, 2])
        var parser = WebSocketParser(maxMessageBytes: 100)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            guard case .text(let text)? = parser.next(buffer, offset: &offset) else { Issue.record("no text"); return }
            #expect(text.baseAddress == UnsafeRawPointer(buffer.baseAddress! + 6))
            #expect(Array(buffer[6..<11]) == Array("hello".utf8))   // unmasked in place
            guard case .ping(let ping)? = parser.next(buffer, offset: &offset) else { Issue.record("no ping"); return }
            #expect(ping.baseAddress == UnsafeRawPointer(buffer.baseAddress! + 11 + 6))
        }
    }

    @Test func splitFrameIsAssembledOutsideInput() {
        let bytes = W.text("hello")
        var parser = WebSocketParser(maxMessageBytes: 100)
        var head = Array(bytes[..<8]), tail = Array(bytes[8...])
        head.withUnsafeMutableBytes { buffer in
            var offset = 0
            #expect(parser.next(buffer, offset: &offset) == nil)
        }
        tail.withUnsafeMutableBytes { buffer in
            var offset = 0
            guard case .text(let text)? = parser.next(buffer, offset: &offset) else { Issue.record("no text"); return }
            #expect(Array(text) == Array("hello".utf8))
            let inInput = text.baseAddress! >= UnsafeRawPointer(buffer.baseAddress!)
                && text.baseAddress! < UnsafeRawPointer(buffer.baseAddress! + buffer.count)
            #expect(!inInput)
        }
    }

    @Test func shrinkIfIdleKeepsAMessageInProgress() {
        var parser = WebSocketParser(maxMessageBytes: 1000)
        let payload = [UInt8]((0..<200).map { UInt8(0x30 + $0 % 10) })
        let bytes = W.frame(1, Array(payload[..<50]), fin: false) + W.frame(9, [1]) + W.frame(0, Array(payload[50...]))
        var seen: [W.Seen] = []
        // Shrink between every read, as an idle-looking connection would.
        for chunk in stride(from: 0, to: bytes.count, by: 7).map({ Array(bytes[$0..<min($0 + 7, bytes.count)]) }) {
            var c = chunk
            c.withUnsafeMutableBytes { buffer in
                var offset = 0
                while let event = parser.next(buffer, offset: &offset) { seen.append(W.Seen(event)) }
            }
            parser.shrinkIfIdle()
        }
        #expect(seen == [.ping([1]), .text(payload)])
    }

    // MARK: Binary limit and allowance

    @Test func binaryMessagesHaveTheirOwnLimit() {
        let big = [UInt8](repeating: 7, count: 300)
        // Text stays at 100; binary may be 400.
        #expect(W.feedEverySplit(W.frame(2, big), max: 100, maxBinary: 400) == [.binary(big)])
        #expect(W.feedEverySplit(W.frame(1, [], declaredLength: 101), max: 100, maxBinary: 400) == [.fail(1009)])
        #expect(W.bytesUntilFailure(W.frame(2, [], declaredLength: 401), max: 100, maxBinary: 400) == 4)
        // Fragments count toward the binary limit, continuations included.
        let over = W.frame(2, Array(big[..<200]), fin: false) + W.frame(0, [], declaredLength: 201)
        #expect(W.bytesUntilFailure(over, max: 100, maxBinary: 400) == 200 + 8 + 4)
    }

    @Test func binaryOverTheAllowanceIsSkippedUnbuffered() {
        let image = [UInt8](repeating: 9, count: 300)
        // Over the allowance: read and dropped, and what follows is parsed as usual.
        let seen = W.feedEverySplit(W.frame(2, image) + W.text("hi"), max: 100, maxBinary: 400, allowance: 200)
        #expect(seen == [.skippedBinary, .text(Array("hi".utf8))])
        // Within it: delivered.
        #expect(W.feedEverySplit(W.frame(2, image), max: 100, maxBinary: 400, allowance: 300) == [.binary(image)])
        // A fragmented message that passes it on a later frame is skipped whole, with a ping between fragments
        // still answered; the protocol limit holds while skipping.
        let fragmented = W.frame(2, Array(image[..<150]), fin: false) + W.frame(9, [1]) + W.frame(0, Array(image[150...]))
        #expect(W.feedEverySplit(fragmented, max: 100, maxBinary: 400, allowance: 200) == [.ping([1]), .skippedBinary])
        let tooBig = W.frame(2, Array(image[..<250]), fin: false) + W.frame(0, [], declaredLength: 151)
        #expect(W.feed([tooBig], max: 100, maxBinary: 400, allowance: 200) == [.fail(1009)])
        // Allowance 0: every binary message is skipped, even an empty one is not (it takes nothing).
        #expect(W.feedEverySplit(W.frame(2, [1]), max: 100, maxBinary: 400, allowance: 0) == [.skippedBinary])
        #expect(W.feedEverySplit(W.frame(2, []), max: 100, maxBinary: 400, allowance: 0) == [.binary([])])
    }

    @Test func skippedBinaryKeepsNoMemory() {
        // A skipped message split across reads allocates no message buffer (a kept one would).
        var parser = WebSocketParser(maxMessageBytes: 100, maxBinaryBytes: 1 << 20)
        parser.binaryAllowance = 0
        let frame = W.frame(2, [UInt8](repeating: 1, count: 5000))
        var seen: [W.Seen] = []
        for chunk in [Array(frame[..<1000]), Array(frame[1000...])] {
            var bytes = chunk
            bytes.withUnsafeMutableBytes { buffer in
                var offset = 0
                while let event = parser.next(buffer, offset: &offset) { seen.append(W.Seen(event)) }
            }
        }
        #expect(seen == [.skippedBinary])
        #expect(!parser.holdsBuffers)
        #expect(parser.binaryAllowance == 0)
        parser.binaryAllowance = 1 << 30
        #expect(parser.binaryAllowance == 1 << 20, "clamped to the binary limit")
    }
}

@Suite struct WebSocketParserLayoutTests {
    @Test func theParserStaysSmall() {
        // Every open WebSocket carries one; the binary limit and allowance fit in what the fields' padding left.
        #expect(MemoryLayout<WebSocketParser>.stride <= 64)
    }
}
