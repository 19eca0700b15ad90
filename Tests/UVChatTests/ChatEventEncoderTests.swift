import Testing
@testable import UVChat

/// A tiny strict JSON reader, for tests only, written independently of the production decoder so that each can
/// check the other: the encoder's output must read back, and accepted text must unescape to what was counted.
enum TestJSONReader: Equatable {
    case object([String: TestJSONReader])
    case array([TestJSONReader])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    static func parse(_ bytes: [UInt8]) -> TestJSONReader? {
        var i = 0
        guard let v = value(bytes, &i) else { return nil }
        space(bytes, &i)
        return i == bytes.count ? v : nil
    }

    private static func space(_ b: [UInt8], _ i: inout Int) {
        while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 }
    }

    private static func value(_ b: [UInt8], _ i: inout Int) -> TestJSONReader? {
        space(b, &i)
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [String: TestJSONReader] = [:]
            space(b, &i)
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                space(b, &i)
                guard let key = string(b, &i) else { return nil }
                space(b, &i)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                guard let v = value(b, &i) else { return nil }
                members[key] = v
                space(b, &i)
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                return nil
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [TestJSONReader] = []
            space(b, &i)
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                guard let v = value(b, &i) else { return nil }
                items.append(v)
                space(b, &i)
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                return nil
            }
        case UInt8(ascii: "\""):
            return string(b, &i).map { .string($0) }
        default:
            for (word, v) in [("true", TestJSONReader.bool(true)), ("false", .bool(false)), ("null", .null)]
            where b[i...].starts(with: word.utf8) {
                i += word.utf8.count
                return v
            }
            let start = i
            while i < b.count, "-+.eE0123456789".utf8.contains(b[i]) { i += 1 }
            return Double(String(decoding: b[start..<i], as: UTF8.self)).map { .number($0) }
        }
    }

    private static func string(_ b: [UInt8], _ i: inout Int) -> String? {
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
        i += 1
        var units: [UInt16] = []
        var raw: [UInt8] = []
        func flushRaw() {
            units.append(contentsOf: String(decoding: raw, as: UTF8.self).utf16)
            raw.removeAll()
        }
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                flushRaw()
                return String(decodingUTF16: units)
            }
            guard c >= 0x20 else { return nil }
            if c != UInt8(ascii: "\\") { raw.append(c); i += 1; continue }
            flushRaw()
            guard i + 1 < b.count else { return nil }
            let e = b[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): units.append(0x22)
            case UInt8(ascii: "\\"): units.append(0x5C)
            case UInt8(ascii: "/"): units.append(0x2F)
            case UInt8(ascii: "b"): units.append(0x08)
            case UInt8(ascii: "f"): units.append(0x0C)
            case UInt8(ascii: "n"): units.append(0x0A)
            case UInt8(ascii: "r"): units.append(0x0D)
            case UInt8(ascii: "t"): units.append(0x09)
            case UInt8(ascii: "u"):
                guard i + 4 <= b.count, let u = UInt16(String(decoding: b[i..<(i + 4)], as: UTF8.self), radix: 16) else { return nil }
                units.append(u)
                i += 4
            default: return nil
            }
        }
        return nil
    }
}

/// Foundation-free UTF-16 to String for the reader; lone surrogates become U+FFFD.
private extension String {
    init(decodingUTF16 units: [UInt16]) {
        var s = ""
        var it = units.makeIterator()
        var decoder = UTF16()
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let v): s.unicodeScalars.append(v)
            case .emptyInput: break loop
            case .error: s.unicodeScalars.append("\u{FFFD}")
            }
        }
        self = s
    }
}

private func encoded(_ build: (inout [UInt8]) -> Void) -> [UInt8] {
    var out: [UInt8] = []
    build(&out)
    return out
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

@Suite struct ChatEventEncoderTests {
    @Test func onlineCarriesTheCount() {
        for n in [0, 1, 9, 10, 42, 1_000_000, Int.max] {
            let out = encoded { ChatEventEncoder.online(count: n, into: &$0) }
            #expect(text(out) == #"{"type":"online","count":\#(n)}"#)
            #expect(TestJSONReader.parse(out) == .object(["type": .string("online"), "count": .number(Double(n))]))
        }
        #expect(text(encoded { ChatEventEncoder.online(count: Int.min, into: &$0) }) == #"{"type":"online","count":\#(Int.min)}"#)
    }

    @Test func fixedEventsAreExact() {
        #expect(text(encoded { ChatEventEncoder.waiting(into: &$0) }) == #"{"type":"waiting"}"#)
        #expect(text(encoded { ChatEventEncoder.partnerLeft(into: &$0) }) == #"{"type":"partner_left"}"#)
        #expect(text(encoded { ChatEventEncoder.typing(true, into: &$0) }) == #"{"type":"typing","active":true}"#)
        #expect(text(encoded { ChatEventEncoder.typing(false, into: &$0) }) == #"{"type":"typing","active":false}"#)
        #expect(TestJSONReader.parse(encoded { ChatEventEncoder.typing(true, into: &$0) })
                == .object(["type": .string("typing"), "active": .bool(true)]))
    }

    @Test func pairedListsCommonInterestsEscaped() {
        #expect(text(encoded { ChatEventEncoder.paired(common: ["music"], random: false, into: &$0) })
                == #"{"type":"paired","common":["music"],"random":false}"#)
        #expect(text(encoded { ChatEventEncoder.paired(common: [], random: true, into: &$0) })
                == #"{"type":"paired","common":[],"random":true}"#)
        let tags = ["a\"b", "c\\d", "é 日本", "x\u{1}\ny", "😀"]
        let out = encoded { ChatEventEncoder.paired(common: tags, random: false, into: &$0) }
        #expect(TestJSONReader.parse(out)
                == .object(["type": .string("paired"), "common": .array(tags.map { .string($0) }), "random": .bool(false)]))
    }

    @Test func errorCarriesWireCodeAndReadableMessage() {
        let codes: [(ChatErrorCode, String)] = [(.badRequest, "bad_request"), (.notPaired, "not_paired"),
                                                (.tooLong, "too_long"), (.rateLimited, "rate_limited")]
        for (code, wire) in codes {
            #expect(code.wireName.description == wire)
            let out = encoded { ChatEventEncoder.error(code, message: code.defaultMessage, into: &$0) }
            #expect(TestJSONReader.parse(out)
                    == .object(["type": .string("error"), "code": .string(wire), "message": .string(code.defaultMessage.description)]))
            #expect(code.defaultMessage.utf8CodeUnitCount > 0)
        }
        #expect(text(encoded { ChatEventEncoder.error(.rateLimited, message: "slow \"down\"", into: &$0) })
                == #"{"type":"error","code":"rate_limited","message":"slow \"down\""}"#)
    }

    @Test func jsonStringsEscapeQuotesBackslashesAndControlCharacters() {
        #expect(text(encoded { ChatEventEncoder.appendJSONString("a\"b\\c/é", into: &$0) }) == #""a\"b\\c/é""#)
        #expect(text(encoded { ChatEventEncoder.appendJSONString("\n\u{0}\u{1F}\u{7F}", into: &$0) }) == "\"\\u000a\\u0000\\u001f\u{7F}\"")
        var all = ""
        for c in 0..<0x20 { all.unicodeScalars.append(Unicode.Scalar(UInt8(c))) }
        all += "\"\\/ok😀"
        let out = encoded { ChatEventEncoder.appendJSONString(all, into: &$0) }
        #expect(!out.contains { $0 < 0x20 })
        #expect(TestJSONReader.parse(out) == .string(all))
    }

    @Test func messageCopiesTheValidatedLiteralVerbatim() {
        let literal = Array(#"h\u00e9llo \ud83d\ude00 \"x\" 😀"#.utf8)
        let out = encoded { out in literal.withUnsafeBytes { ChatEventEncoder.message(escapedText: $0, into: &out) } }
        #expect(text(out) == #"{"type":"message","text":"h\u00e9llo \ud83d\ude00 \"x\" 😀"}"#)
        #expect(out.count == ChatEventEncoder.messagePayloadLength(escapedTextCount: literal.count))
        #expect(TestJSONReader.parse(out) == .object(["type": .string("message"), "text": .string("héllo 😀 \"x\" 😀")]))
        #expect(ChatEventEncoder.messagePayloadLength(escapedTextCount: 0) == #"{"type":"message","text":""}"#.utf8.count)
    }

    @Test func relayedMessageDecodesBackToTheSameText() {
        let command = Array(#"{"text":"a\/b\ud83d\ude00\n","type":"message"}"#.utf8)
        let result = command.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: 2000) }
        guard case .success(.message(let range, let scalars, _)) = result else {
            Issue.record("refused")
            return
        }
        let event = encoded { out in
            command.withUnsafeBytes { ChatEventEncoder.message(escapedText: UnsafeRawBufferPointer(rebasing: $0[range]), into: &out) }
        }
        let back = event.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: 2000) }
        #expect(back == .success(.message(text: 26..<(26 + range.count), scalars: scalars, id: nil)))
        #expect(TestJSONReader.parse(event) == .object(["type": .string("message"), "text": .string("a/b😀\n")]))
    }

    @Test func eventsAppendWithoutTouchingWhatIsAlreadyThere() {
        var out: [UInt8] = [1, 2, 3]
        ChatEventEncoder.waiting(into: &out)
        ChatEventEncoder.online(count: 7, into: &out)
        #expect(Array(out[..<3]) == [1, 2, 3])
        #expect(text(Array(out[3...])) == #"{"type":"waiting"}{"type":"online","count":7}"#)
    }

    @Test func messageFrameIsAHeaderThenTheEventWithTheLiteralVerbatim() {
        for count in [0, 1, 97, 98, 200, 70_000] {
            let literal = Array(String(repeating: #"\u00e9x"#, count: count / 7 + 1).utf8.prefix(count))
            var out: [UInt8] = [0xAA]   // appended after what is there
            literal.withUnsafeBytes { ChatEventEncoder.messageFrame(escapedText: $0, into: &out) }
            let payload = Array(#"{"type":"message","text":""#.utf8) + literal + Array(#""}"#.utf8)
            var header: [UInt8] = [0xAA, 0x81]
            if payload.count < 126 {
                header.append(UInt8(payload.count))
            } else if payload.count <= 0xFFFF {
                header += [126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
            } else {
                header.append(127)
                for shift in stride(from: 56, through: 0, by: -8) { header.append(UInt8((payload.count >> shift) & 0xFF)) }
            }
            #expect(out == header + payload, "text of \(count) bytes")
        }
    }
}
