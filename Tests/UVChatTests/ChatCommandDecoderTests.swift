import Testing
@testable import UVChat

private func decodeCommand(_ json: String, max: Int = 2000) -> Result<ChatCommand, ChatErrorCode> {
    decodeBytes(Array(json.utf8), max: max)
}

private func decodeBytes(_ bytes: [UInt8], max: Int = 2000) -> Result<ChatCommand, ChatErrorCode> {
    bytes.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: max) }
}

/// The literal bytes a message command would relay, and its scalar count; nil when it is refused.
private func relayedText(_ json: String, max: Int = 2000) -> (text: String, scalars: Int)? {
    let bytes = Array(json.utf8)
    guard case .success(.message(let range, let scalars, _)) = decodeBytes(bytes, max: max) else { return nil }
    return (String(decoding: bytes[range], as: UTF8.self), scalars)
}

private func message(_ literalContents: String) -> String { #"{"type":"message","text":""# + literalContents + #""}"# }

@Suite struct ChatCommandDecoderTests {
    @Test func decodesEveryCommand() {
        #expect(decodeCommand(#"{"type":"next"}"#) == .success(.next))
        #expect(decodeCommand(#"{"type":"stop"}"#) == .success(.stop))
        #expect(decodeCommand(#"{"type":"typing","active":true}"#) == .success(.typing(true)))
        #expect(decodeCommand(#"{"active":false,"type":"typing"}"#) == .success(.typing(false)))
        #expect(decodeCommand(message("hi")) == .success(.message(text: 26..<28, scalars: 2, id: nil)))
    }

    @Test func messageRangeIsTheLiteralContentsWhereverTheFieldSits() {
        let json = #" {"text" : "héllo" , "x":[1], "type":"message"} "#
        let bytes = Array(json.utf8)
        guard case .success(.message(let range, let scalars, _)) = decodeBytes(bytes) else {
            Issue.record("refused")
            return
        }
        #expect(String(decoding: bytes[range], as: UTF8.self) == "héllo")
        #expect(scalars == 5)
    }

    @Test func allowsJSONWhitespaceAroundEveryToken() {
        #expect(decodeCommand(" \t\r\n{ \t\r\n\"type\" \t\r\n: \t\r\n\"typing\" \t\r\n, \"active\"\n:\ntrue\n}\r\n ")
                == .success(.typing(true)))
        #expect(decodeCommand("\u{0B}{\"type\":\"next\"}") == .failure(.badRequest))   // vertical tab is not JSON space
        #expect(decodeCommand("{\"type\":\"next\"}\u{A0}") == .failure(.badRequest))   // nor is a no-break space
    }

    @Test func topLevelMustBeOneObject() {
        for s in ["", " ", "[]", #"["type","next"]"#, #""next""#, "1", "null", "true", "{", "}", "nope"] {
            #expect(decodeCommand(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func rejectsTrailingContent() {
        for s in [#"{"type":"next"} x"#, #"{"type":"next"}{}"#, #"{"type":"next"},"#, #"{"type":"next"}}"#,
                  #"{"type":"next"}0"#, message("hi") + " ]", message("hi") + "\u{0}"] {
            #expect(decodeCommand(s) == .failure(.badRequest), "\(s)")
        }
        #expect(decodeCommand(#"{"type":"next"}   "#) == .success(.next))
    }

    @Test func rejectsEveryTruncatedCommand() {
        let valid = [message("hi"), message(#"a\u00e9\ud83d\ude00"#), #"{"type":"typing","active":false}"#,
                     #"{"type":"next","x":[1,{"y":-2.5e3}]}"#]
        for json in valid {
            let bytes = Array(json.utf8)
            #expect(decodeBytes(bytes) != .failure(.badRequest))
            for cut in 0..<bytes.count {
                #expect(decodeBytes(Array(bytes[..<cut])) == .failure(.badRequest), "\(json) cut at \(cut)")
            }
        }
    }

    @Test func rejectsMalformedObjects() {
        for s in [#"{"type":"next",}"#, #"{,"type":"next"}"#, #"{"type" "next"}"#, #"{'type':'next'}"#, #"{type:"next"}"#,
                  #"{"type":"next""a":1}"#, #"{"type"::"next"}"#, #"{"type":"next",,"a":1}"#, #"{"type":next}"#] {
            #expect(decodeCommand(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func typeMustBeAKnownString() {
        for s in [#"{}"#, #"{"text":"hi"}"#, #"{"type":1}"#, #"{"type":null}"#, #"{"type":true}"#, #"{"type":["next"]}"#,
                  #"{"type":{"a":"next"}}"#, #"{"type":"dance"}"#, #"{"type":"Next"}"#, #"{"type":"next "}"#,
                  #"{"type":""}"#, #"{"type":"a-much-longer-unknown-command-name"}"#, #"{"Type":"next"}"#] {
            #expect(decodeCommand(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func messageTextMustBeANonEmptyString() {
        for s in [#"{"type":"message"}"#, #"{"type":"message","text":5}"#, #"{"type":"message","text":null}"#,
                  #"{"type":"message","text":["hi"]}"#, #"{"type":"message","text":{}}"#, message("")] {
            #expect(decodeCommand(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func textLimitCountsUnicodeScalarsOfRawFourByteCharacters() {
        let raw2000 = String(repeating: "😀", count: 2000)
        #expect(relayedText(message(raw2000))?.scalars == 2000)
        #expect(decodeCommand(message(raw2000 + "😀")) == .failure(.tooLong))
        #expect(decodeCommand(message(raw2000 + "a")) == .failure(.tooLong))
    }

    @Test func textLimitCountsAnEscapedSurrogatePairAsOneScalar() {
        let pairs2000 = String(repeating: #"\ud83d\ude00"#, count: 2000)
        #expect(relayedText(message(pairs2000))?.scalars == 2000)
        #expect(decodeCommand(message(pairs2000 + #"\uD83D\uDE00"#)) == .failure(.tooLong))
        #expect(relayedText(message(String(repeating: #"😀\ud83d\ude00"#, count: 1000)))?.scalars == 2000)
    }

    @Test func textLimitCountsEscapesAndMultiByteCharactersAsOneScalarEach() {
        #expect(relayedText(message(#"\n\u00e9é€x"#))?.scalars == 5)
        #expect(relayedText(message("abc"), max: 3)?.scalars == 3)
        #expect(decodeCommand(message("abcd"), max: 3) == .failure(.tooLong))
        #expect(decodeCommand(message(#"ab\n\t"#), max: 3) == .failure(.tooLong))
        // Combining marks are scalars of their own, even when they make one Character.
        #expect(relayedText(message("e\u{301}"))?.scalars == 2)
    }

    @Test func everyLegalEscapeIsAcceptedAndRelayedVerbatim() {
        for escape in [#"\""#, #"\\"#, #"\/"#, #"\b"#, #"\f"#, #"\n"#, #"\r"#, #"\t"#, #"\u0041"#, #"\u00e9"#,
                       #"\u00E9"#, #"\u0000"#, #"\uffff"#, #"\uD7FF"#, #"\uE000"#, #"\ud800\udc00"#, #"\uDBFF\uDFFF"#] {
            let relayed = relayedText(message("a" + escape + "b"))
            #expect(relayed?.text == "a" + escape + "b", "\(escape)")
            #expect(relayed?.scalars == 3, "\(escape)")
        }
    }

    @Test func illegalEscapesAreBadRequest() {
        for escape in [#"\x"#, #"\'"#, #"\a"#, #"\0"#, #"\U0041"#, #"\u12"#, #"\u12G4"#, #"\u 123"#, "\\\u{e9}"] {
            #expect(decodeCommand(message("a" + escape + "b")) == .failure(.badRequest), "\(escape)")
        }
        #expect(decodeCommand(#"{"type":"message","text":"abc\"#) == .failure(.badRequest))
    }

    @Test func loneSurrogateEscapesAreBadRequest() {
        for text in [#"\ud83d"#, #"\ude00"#, #"\ude00\ud83d"#, #"\ud83dx"#, #"\ud83d\u0041"#, #"\ud83d\ud83d"#,
                     #"\ud83d\n"#, #"x\uDFFF"#, #"\uDBFFx\uDC00"#, "\\ud83d😀"] {
            #expect(decodeCommand(message(text)) == .failure(.badRequest), "\(text)")
        }
        #expect(decodeCommand(#"{"type":"message","text":"\ud83d"#) == .failure(.badRequest))
    }

    @Test func rawControlCharactersAreBadRequest() {
        for c in 0..<0x20 {
            let s = "{\"type\":\"message\",\"text\":\"a\(Character(Unicode.Scalar(UInt8(c))))b\"}"
            #expect(decodeCommand(s) == .failure(.badRequest), "control \(c)")
            #expect(decodeCommand("{\"type\":\"next\",\"x\":\"\(Character(Unicode.Scalar(UInt8(c))))\"}") == .failure(.badRequest))
        }
        #expect(relayedText(message("a\u{7F}b"))?.scalars == 3)   // DEL is not a JSON control character
    }

    @Test func typingNeedsABooleanActive() {
        for s in [#"{"type":"typing"}"#, #"{"type":"typing","active":"true"}"#, #"{"type":"typing","active":1}"#,
                  #"{"type":"typing","active":null}"#, #"{"type":"typing","active":True}"#, #"{"type":"typing","active":truex}"#,
                  #"{"type":"typing","active":[true]}"#] {
            #expect(decodeCommand(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func nextAndStopIgnoreOtherFields() {
        let long = String(repeating: "x", count: 3000)
        #expect(decodeCommand(#"{"type":"next","text":"\#(long)"}"#) == .success(.next))
        #expect(decodeCommand(#"{"type":"stop","text":5,"active":"no"}"#) == .success(.stop))
        #expect(decodeCommand(#"{"type":"next","text":""}"#) == .success(.next))
        #expect(decodeCommand(#"{"type":"typing","active":true,"text":[]}"#) == .success(.typing(true)))
        #expect(decodeCommand(#"{"type":"message","text":"hi","active":{}}"#) == .success(.message(text: 26..<28, scalars: 2, id: nil)))
    }

    @Test func duplicateKeysLastOneWins() {
        #expect(decodeCommand(#"{"type":"next","type":"stop"}"#) == .success(.stop))
        #expect(decodeCommand(#"{"type":"stop","type":7}"#) == .failure(.badRequest))
        #expect(decodeCommand(#"{"type":7,"type":"stop"}"#) == .success(.stop))
        #expect(decodeCommand(#"{"type":"dance","type":"next"}"#) == .success(.next))
        #expect(relayedText(#"{"type":"message","text":"first","text":"second"}"#)?.text == "second")
        #expect(relayedText(#"{"type":"message","text":"\#(String(repeating: "x", count: 9))","text":"ok"}"#, max: 8)?.text == "ok")
        #expect(decodeCommand(#"{"type":"message","text":"ok","text":"toolong"}"#, max: 3) == .failure(.tooLong))
        #expect(decodeCommand(#"{"type":"message","text":"ok","text":1}"#) == .failure(.badRequest))
        #expect(decodeCommand(#"{"type":"typing","active":"x","active":true}"#) == .success(.typing(true)))
        #expect(decodeCommand(#"{"type":"typing","active":true,"active":null}"#) == .failure(.badRequest))
    }

    @Test func keysAndCommandNamesAreComparedAfterUnescaping() {
        #expect(decodeCommand(#"{"\u0074ype":"next"}"#) == .success(.next))
        #expect(decodeCommand(#"{"type":"n\u0065xt"}"#) == .success(.next))
        #expect(decodeCommand(#"{"\u0074\u0079\u0070\u0065":"\u0073top"}"#) == .success(.stop))
        #expect(decodeCommand(#"{"type":"typing","\u0061ctive":false}"#) == .success(.typing(false)))
        #expect(relayedText(#"{"type":"message","t\u0065xt":"hi"}"#)?.text == "hi")
        #expect(decodeCommand(#"{"type\n":"next"}"#) == .failure(.badRequest))           // a different key
        #expect(decodeCommand(#"{"ty\/pe":"next"}"#) == .failure(.badRequest))
        #expect(decodeCommand(#"{"type":"next\u0000"}"#) == .failure(.badRequest))
    }

    @Test func unknownFieldsAreIgnoredWhateverTheirValue() {
        let json = #"{"x":[1,-2.5e3,{"y":null,"z":[true,false,[]],"":{}},"s\u00e9"],"type":"next","w":"s","n":0}"#
        #expect(decodeCommand(json) == .success(.next))
        #expect(decodeCommand(#"{"a":{},"b":[],"c":"","d":-0,"type":"stop"}"#) == .success(.stop))
    }

    @Test func unknownFieldsMustStillBeValidJSON() {
        for value in ["[1,]", "[,1]", "[1 2]", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{1:2}"#, "tru", "nul", "falsey",
                      #""\x""#, #""\ud800""#, "[", "{", "]", "}", "[}", "{]", "undefined", "'s'"] {
            #expect(decodeCommand(#"{"type":"next","x":\#(value)}"#) == .failure(.badRequest), "\(value)")
        }
    }

    @Test func nestingDeeperThan32IsBadRequest() {
        // The command object is level 1, so 31 more containers are the most allowed.
        let ok = String(repeating: "[", count: 31) + String(repeating: "]", count: 31)
        #expect(decodeCommand(#"{"type":"next","x":\#(ok)}"#) == .success(.next))
        let over = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect(decodeCommand(#"{"type":"next","x":\#(over)}"#) == .failure(.badRequest))
        let objects31 = String(repeating: #"{"a":"#, count: 31) + "1" + String(repeating: "}", count: 31)
        #expect(decodeCommand(#"{"type":"next","x":\#(objects31)}"#) == .success(.next))
        let objects32 = String(repeating: #"{"a":"#, count: 32) + "1" + String(repeating: "}", count: 32)
        #expect(decodeCommand(#"{"type":"next","x":\#(objects32)}"#) == .failure(.badRequest))
        let mixed = String(repeating: #"[{"a":"#, count: 16) + "1" + String(repeating: "}]", count: 16)
        #expect(decodeCommand(#"{"type":"next","x":\#(mixed)}"#) == .failure(.badRequest))
        let hostile = String(repeating: "[", count: 100_000)
        #expect(decodeCommand(#"{"type":"next","x":\#(hostile)}"#) == .failure(.badRequest))
    }

    @Test func numbersFollowTheRFC8259Grammar() {
        for n in ["0", "-0", "1", "-1", "10", "1.5", "-0.25", "1e5", "1E+5", "1e-5", "-0.0e0", "2.5E-10",
                  "123456789012345678901234567890", "1e999"] {
            #expect(decodeCommand(#"{"type":"next","n":\#(n)}"#) == .success(.next), "\(n)")
            #expect(decodeCommand(#"{"type":"next","n":[\#(n),\#(n)]}"#) == .success(.next), "\(n)")
        }
        for n in ["01", "-01", "00", "+1", ".5", "1.", "1.e5", "1e", "1e+", "1E-", "-", "--1", "NaN", "Infinity",
                  "-Infinity", "0x10", "1_000", "1,5e", "0.5.5", "1ee5"] {
            #expect(decodeCommand(#"{"type":"next","n":\#(n)}"#) == .failure(.badRequest), "\(n)")
        }
    }

    @Test func acceptedTextUnescapesToTheCountedScalars() {
        // Cross-check with an independent reader: the literal the decoder accepts means exactly `scalars` scalars.
        for contents in ["hi", #"\ud83d\ude00😀"#, #"a\"b\\c\/d\b\f\n\r\t\u00e9"#, "日本語", #"\u0000\u001f"#] {
            let json = message(contents)
            guard let relayed = relayedText(json), case .object(let o)? = TestJSONReader.parse(Array(json.utf8)),
                  case .string(let text)? = o["text"] else {
                Issue.record("\(contents) refused")
                continue
            }
            #expect(text.unicodeScalars.count == relayed.scalars, "\(contents)")
        }
    }
}

/// The string scanner reads eight bytes at a time; these put every kind of byte at every offset of a word.
@Suite struct ChatCommandDecoderWordScanTests {
    /// Pieces of a JSON string literal, each with the scalars it stands for.
    static let pieces: [(literal: String, scalars: Int)] = [
        ("a", 1), ("Z", 1), (" ", 1), ("~", 1), ("é", 1), ("€", 1), ("😀", 1), ("ж", 1), ("\u{7F}", 1),
        (#"\""#, 1), (#"\\"#, 1), (#"\n"#, 1), (#"\u00e9"#, 1), (#"\ud83d\ude00"#, 1), (#"\/"#, 1),
    ]

    @Test func countsScalarsOfEveryMixAtEveryAlignment() {
        var rng = SystemRandomNumberGenerator()
        for length in 0..<40 {
            for _ in 0..<25 {
                var literal = ""
                var scalars = 0
                for _ in 0..<length {
                    let piece = Self.pieces.randomElement(using: &rng)!
                    literal += piece.literal
                    scalars += piece.scalars
                }
                let json = #"{"type":"message","text":""# + literal + #""}"#
                let result = decodeCommand(json)
                if scalars == 0 {
                    #expect(result == .failure(.badRequest))
                } else if case .success(.message(let range, let counted, _)) = result {
                    #expect(counted == scalars, "\(literal)")
                    #expect(range.count == literal.utf8.count, "\(literal)")
                } else {
                    Issue.record("refused \(literal)")
                }
            }
        }
    }

    @Test func findsAQuoteBackslashOrControlByteAtEveryOffset() {
        for offset in 0..<24 {
            for bad: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x1F] {
                var text = Array(repeating: UInt8(ascii: "x"), count: 24)
                text[offset] = bad
                let json = Array(#"{"type":"message","text":""#.utf8) + text + Array(#""}"#.utf8)
                #expect(decodeBytes(json) == .failure(.badRequest), "byte \(bad) at \(offset)")
            }
            // A lone backslash followed by a letter that is no escape.
            var text = Array(repeating: UInt8(ascii: "x"), count: 24)
            text[offset] = UInt8(ascii: "\\")
            let json = Array(#"{"type":"message","text":""#.utf8) + text + Array(#""}"#.utf8)
            #expect(decodeBytes(json) == .failure(.badRequest), "backslash at \(offset)")
            // A quote ends the literal early: what follows is not JSON.
            var quoted = Array(repeating: UInt8(ascii: "x"), count: 24)
            quoted[offset] = UInt8(ascii: "\"")
            let json2 = Array(#"{"type":"message","text":""#.utf8) + quoted + Array(#""}"#.utf8)
            #expect(decodeBytes(json2) == .failure(.badRequest), "quote at \(offset)")
        }
    }

    @Test func byteZeroXDelAndHighBytesAreNotSpecial() {
        // 0x7F and bytes of multi-byte characters must not be taken for control characters or quotes.
        let text = String(repeating: "\u{7F}€😀a", count: 5)
        guard case .success(.message(_, let scalars, _)) = decodeCommand(#"{"type":"message","text":""# + text + #""}"#) else {
            Issue.record("refused")
            return
        }
        #expect(scalars == 20)
    }
}

// MARK: - Version 2

private func decodeV2(_ json: String, max: Int = 2000) -> Result<ChatCommand, ChatErrorCode> {
    Array(json.utf8).withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: max, version: .v2) }
}

/// Both paths of the decoder on one input: the fast paths must never give another verdict than the general path.
private func decodeBothWays(_ json: String, version: ProtocolVersion, max: Int = 2000) -> Result<ChatCommand, ChatErrorCode> {
    let bytes = Array(json.utf8)
    let fast = bytes.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: max, version: version) }
    let general = bytes.withUnsafeBytes { ChatCommandDecoder.decodeWithoutFastPath($0, maxScalars: max, version: version) }
    #expect(fast == general, "\(json)")
    return fast
}

/// The message id of an accepted version 2 message, or the error.
private func messageID(_ json: String, max: Int = 2000) -> Result<UInt64?, ChatErrorCode> {
    switch decodeBothWays(json, version: .v2, max: max) {
    case .success(.message(_, _, let id)): return .success(id)
    case .success(let other): Issue.record("\(json): \(other)"); return .failure(.badRequest)
    case .failure(let code): return .failure(code)
    }
}

/// The interests of an accepted `start`, or the error.
private func startInterests(_ interests: String) -> Result<[String]?, ChatErrorCode> {
    let json = #"{"type":"start","interests":\#(interests)}"#
    switch decodeV2(json) {
    case .success(.start(let tags, _)): return .success(tags)
    case .success(let other): Issue.record("\(json): \(other)"); return .failure(.badRequest)
    case .failure(let code): return .failure(code)
    }
}

private func v2Message(_ text: String, id: String) -> String { #"{"type":"message","text":"\#(text)","id":\#(id)}"# }

@Suite struct ChatCommandDecoderVersion1Tests {
    @Test func versionTwoTypesAreUnknownOnVersion1() {
        for s in [#"{"type":"start"}"#, #"{"type":"start","interests":["a"],"images":true}"#, #"{"type":"ack","seq":1}"#,
                  #"{"type":"resume","token":"abc","seq":0}"#, #"{"type":"ping"}"#] {
            #expect(decodeCommand(s) == .failure(.badRequest), "\(s)")
            #expect(decodeBothWays(s, version: .v1) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func messageIdIsAnUnknownFieldOnVersion1WhateverItsValue() {
        for id in ["1", "0", "-1", "1.5", "1e3", #""7""#, "null", "true", "[1]", #"{"a":1}"#, "9007199254740992",
                   "123456789012345678901234567890"] {
            let json = v2Message("hi", id: id)
            #expect(decodeBothWays(json, version: .v1) == .success(.message(text: 26..<28, scalars: 2, id: nil)), "\(id)")
            guard case .success(.message(_, 2, nil)) = decodeBothWays(#"{"id":\#(id),"text":"hi","type":"message"}"#, version: .v1) else {
                Issue.record("refused \(id) first")
                continue
            }
        }
        // Still an unknown field that must be valid JSON.
        for id in ["01", "+1", ".5", "1.", "x", #""\x""#] {
            #expect(decodeBothWays(v2Message("hi", id: id), version: .v1) == .failure(.badRequest), "\(id)")
        }
    }

    @Test func versionTwoFieldsAreIgnoredOnVersion1() {
        #expect(decodeCommand(#"{"type":"next","interests":5,"images":"x","seq":-1,"token":null}"#) == .success(.next))
        #expect(decodeCommand(#"{"type":"typing","active":true,"seq":"x"}"#) == .success(.typing(true)))
    }

    @Test func fastPathAgreesWithTheGeneralPath() {
        for s in [message("hi"), message(""), message(#"a\"b"#), message("\\"), message(String(repeating: "x", count: 2001)),
                  message("hi") + " ", #"{"type":"message","text":"hi"} x"#, #"{"type":"message","text":"hi"]"#,
                  #"{"type":"message","text":"hi","type":"next"}"#, #"{"type":"message","text":"hi""#] {
            _ = decodeBothWays(s, version: .v1)
            _ = decodeBothWays(s, version: .v2)
        }
    }
}

@Suite struct ChatCommandDecoderVersion2Tests {
    @Test func versionOneCommandsDecodeTheSame() {
        for s in [#"{"type":"next"}"#, #"{"type":"stop"}"#, #"{"type":"typing","active":false}"#, message("hi"),
                  #"{"text":"héllo","type":"message"}"#, #"{"type":"typing"}"#, message(""), #"{"type":"dance"}"#, "[]"] {
            #expect(decodeV2(s) == decodeCommand(s), "\(s)")
        }
        #expect(decodeV2(message("hi")) == .success(.message(text: 26..<28, scalars: 2, id: nil)))
    }

    @Test func browserMessageWithAnId() {
        #expect(decodeBothWays(v2Message("hi", id: "123"), version: .v2) == .success(.message(text: 26..<28, scalars: 2, id: 123)))
        #expect(messageID(v2Message("hi", id: "1")) == .success(1))
        #expect(messageID(v2Message(#"\ud83d\ude00 é"#, id: "42")) == .success(42))
    }

    @Test func theIdFastPathAgreesWithTheGeneralPathWhateverTheShape() {
        let shapes = [
            #"{"type":"message","text":"hi","id":77}"#,
            #"{"type":"message","text":"hi","id":77} "#,
            #" {"type":"message","text":"hi","id":77}"#,
            #"{"type":"message","text":"hi","id": 77}"#,
            #"{"type":"message","text":"hi","id":77 }"#,
            #"{"type":"message","text":"hi" ,"id":77}"#,
            #"{"type" : "message", "text" : "hi", "id" : 77}"#,
            #"{"id":77,"type":"message","text":"hi"}"#,
            #"{"type":"message","id":77,"text":"hi"}"#,
            #"{"text":"hi","id":77,"type":"message"}"#,
            #"{"type":"message","text":"hi","\u0069d":77}"#,
            #"{"type":"message","text":"hi","id":5,"id":77}"#,
            #"{"type":"message","text":"hi","id":77,"x":[1]}"#,
        ]
        for s in shapes {
            guard case .success(.message(let range, let scalars, let id)) = decodeBothWays(s, version: .v2) else {
                Issue.record("refused \(s)")
                continue
            }
            #expect(String(decoding: Array(s.utf8)[range], as: UTF8.self) == "hi", "\(s)")
            #expect(scalars == 2 && id == 77, "\(s)")
        }
    }

    @Test func idsAtTheBoundaries() {
        #expect(messageID(v2Message("hi", id: "9007199254740991")) == .success(9_007_199_254_740_991))
        #expect(messageID(#"{"id":9007199254740991,"type":"message","text":"hi"}"#) == .success(9_007_199_254_740_991))
        #expect(messageID(v2Message("hi", id: "9007199254740990")) == .success(9_007_199_254_740_990))
        #expect(messageID(v2Message("hi", id: "1000000000000000")) == .success(1_000_000_000_000_000))   // 16 digits
        for id in ["9007199254740992", "9007199254740993", "9999999999999999", "10000000000000000", "18446744073709551615",
                   "18446744073709551616", "123456789012345678901234567890"] {
            #expect(messageID(v2Message("hi", id: id)) == .failure(.badRequest), "\(id)")
            #expect(messageID(#"{"id":\#(id),"type":"message","text":"hi"}"#) == .failure(.badRequest), "\(id)")
        }
    }

    @Test func badIdsAreBadRequest() {
        for id in ["0", "-0", "-1", "1.5", "1.0", "1e3", "1E3", "1e+3", "10e-1", #""7""#, #""""#, "null", "true", "false",
                   "[1]", "[]", #"{"id":1}"#, "01", "00", "+1", ".5", "1.", "--1", "0x10", "1_0", "Infinity", "NaN"] {
            #expect(messageID(v2Message("hi", id: id)) == .failure(.badRequest), "\(id)")
            #expect(messageID(#"{"id" : \#(id) , "text":"hi","type":"message"}"#) == .failure(.badRequest), "\(id)")
        }
    }

    @Test func absentIdIsNil() {
        #expect(messageID(message("hi")) == .success(nil))
        #expect(messageID(#"{"text":"hi","type":"message","ID":5}"#) == .success(nil))   // keys are case-sensitive
    }

    @Test func duplicateIdsLastOneWins() {
        #expect(messageID(#"{"type":"message","text":"hi","id":1,"id":2}"#) == .success(2))
        #expect(messageID(#"{"type":"message","text":"hi","id":"x","id":3}"#) == .success(3))
        #expect(messageID(#"{"type":"message","text":"hi","id":3,"id":"x"}"#) == .failure(.badRequest))
        #expect(messageID(#"{"type":"message","text":"hi","id":3,"id":0}"#) == .failure(.badRequest))
    }

    @Test func messageTextRulesHoldWithAnId() {
        #expect(messageID(v2Message("", id: "5")) == .failure(.badRequest))
        #expect(messageID(#"{"type":"message","id":5}"#) == .failure(.badRequest))
        #expect(messageID(#"{"type":"message","text":5,"id":5}"#) == .failure(.badRequest))
        #expect(messageID(v2Message("abc", id: "5"), max: 3) == .success(5))
        #expect(messageID(v2Message("abcd", id: "5"), max: 3) == .failure(.tooLong))
        #expect(messageID(v2Message(String(repeating: "😀", count: 2001), id: "5")) == .failure(.tooLong))
        // A bad id is a bad request even when the text is also too long.
        #expect(messageID(v2Message("abcd", id: "0"), max: 3) == .failure(.badRequest))
        #expect(messageID(v2Message(#"\ud83d"#, id: "5")) == .failure(.badRequest))
        #expect(messageID(v2Message("a\u{1}b", id: "5")) == .failure(.badRequest))
    }

    @Test func idIsIgnoredOnOtherCommands() {
        #expect(decodeV2(#"{"type":"next","id":"x"}"#) == .success(.next))
        #expect(decodeV2(#"{"type":"typing","active":true,"id":0}"#) == .success(.typing(true)))
        #expect(decodeV2(#"{"type":"ping","id":-1}"#) == .success(.ping))
        #expect(decodeV2(#"{"type":"next","id":01}"#) == .failure(.badRequest))   // but still valid JSON
    }

    // MARK: start

    @Test func startWithoutFields() {
        #expect(decodeV2(#"{"type":"start"}"#) == .success(.start(interests: nil, images: false)))
        #expect(decodeV2(#"{"type":"start","x":[1,{"y":null}]}"#) == .success(.start(interests: nil, images: false)))
    }

    @Test func startImagesMustBeABoolean() {
        #expect(decodeV2(#"{"type":"start","images":true}"#) == .success(.start(interests: nil, images: true)))
        #expect(decodeV2(#"{"type":"start","images":false}"#) == .success(.start(interests: nil, images: false)))
        #expect(decodeV2(#"{"images":true,"interests":["a"],"type":"start"}"#) == .success(.start(interests: ["a"], images: true)))
        for v in [#""true""#, "1", "0", "null", "[true]", "{}", "True"] {
            #expect(decodeV2(#"{"type":"start","images":\#(v)}"#) == .failure(.badRequest), "\(v)")
        }
        #expect(decodeV2(#"{"type":"start","images":"x","images":true}"#) == .success(.start(interests: nil, images: true)))
        #expect(decodeV2(#"{"type":"start","images":true,"images":null}"#) == .failure(.badRequest))
    }

    @Test func startInterestsFollowTheTagRules() {
        #expect(startInterests(#"["music","movies"]"#) == .success(["music", "movies"]))
        #expect(startInterests("[]") == .success([]))
        #expect(startInterests(#" [ "a" , "b" ] "#) == .success(["a", "b"]))
        #expect(startInterests(#"[" Music ","\tJAZZ\n"]"#) == .success(["music", "jazz"]))
        #expect(startInterests(#"["Music","music"," MUSIC","jazz","music"]"#) == .success(["music", "jazz"]))
        #expect(startInterests(#"["", " ", "ok", "\t"]"#) == .success(["ok"]))
        #expect(startInterests(#"["a","b","c","d","e","f","g"]"#) == .success(["a", "b", "c", "d", "e"]))
        #expect(startInterests(#"["a","a","","b","c","d","e","f"]"#) == .success(["a", "b", "c", "d", "e"]))
        #expect(startInterests(#"["ÄBC","CAFÉ"]"#) == .success(["äbc", "café"]))
    }

    @Test func startInterestsAreUnescaped() {
        #expect(startInterests(#"["caf\u00e9","\u0041B","\ud83d\ude00","a\/b","\"q\""]"#)
                == .success(["café", "ab", "😀", "a/b", "\"q\""]))
        #expect(startInterests(#"["b\\s","\b","\f"]"#) == .success(["b\\s"]))   // backspace and form feed are controls
        #expect(startInterests(#"["m\u0075sic","music"]"#) == .success(["music"]))   // a duplicate once unescaped
        #expect(startInterests(#"["\u0020padded\u0020"]"#) == .success(["padded"]))   // escaped spaces are trimmed too
        // A control character drops the tag, as in the query; trimmed surrounding whitespace is not one.
        #expect(startInterests(#"["a\u0000b","c\u0007","tab\tin","\nok\r","d"]"#) == .success(["ok", "d"]))
        #expect(startInterests(#"["\ud83d"]"#) == .failure(.badRequest))
        #expect(startInterests(#"["\x"]"#) == .failure(.badRequest))
    }

    @Test func startInterestsLengthIsCountedInCharacters() {
        let x32 = String(repeating: "x", count: 32)
        #expect(startInterests(#"["\#(x32)x","\#(x32)"]"#) == .success([x32]))
        let e32 = String(repeating: #"\u00e9"#, count: 32)
        #expect(startInterests(#"["\#(e32)"]"#) == .success([String(repeating: "é", count: 32)]))
        #expect(startInterests(#"["\#(e32)é"]"#) == .success([]))
        let flags = String(repeating: #"\ud83c\uddeb\ud83c\uddf7"#, count: 32)
        #expect(startInterests(#"["\#(flags)"]"#) == .success([String(repeating: "🇫🇷", count: 32)]))
        // Trimmed before counting.
        #expect(startInterests(#"["   \#(x32)   "]"#) == .success([x32]))
    }

    @Test func startInterestsMustBeAnArrayOfStrings() {
        for v in [#""music""#, "{}", #"{"a":"b"}"#, "null", "1", "true", #"["a",1]"#, #"[null]"#, #"[["a"]]"#, #"[{}]"#,
                  #"["a",true]"#, #"[false,"a"]"#] {
            #expect(startInterests(v) == .failure(.badRequest), "\(v)")
        }
        for v in [#"["a",]"#, #"[,"a"]"#, #"["a" "b"]"#, #"["a""#, "[", #"["a"}"#, #"["a",,"b"]"#, "[01]"] {
            #expect(startInterests(v) == .failure(.badRequest), "\(v)")
        }
        #expect(startInterests(#"["a",[[[]]]]"#) == .failure(.badRequest))
        // Nesting inside the array counts toward the depth limit (the array is level 2).
        let deep = String(repeating: "[", count: 30) + String(repeating: "]", count: 30)
        #expect(decodeV2(#"{"type":"next","interests":[\#(deep)]}"#) == .success(.next))
        let tooDeep = String(repeating: "[", count: 31) + String(repeating: "]", count: 31)
        #expect(decodeV2(#"{"type":"next","interests":[\#(tooDeep)]}"#) == .failure(.badRequest))
    }

    @Test func startInterestsDuplicateKeysLastOneWins() {
        #expect(decodeV2(#"{"type":"start","interests":["a"],"interests":["b"]}"#) == .success(.start(interests: ["b"], images: false)))
        #expect(decodeV2(#"{"type":"start","interests":5,"interests":["b"]}"#) == .success(.start(interests: ["b"], images: false)))
        #expect(decodeV2(#"{"type":"start","interests":["a"],"interests":[1]}"#) == .failure(.badRequest))
    }

    @Test func onlyTheFirst64ElementsAreWeighed() {
        let blanks63 = Array(repeating: #""""#, count: 63).joined(separator: ",")
        #expect(startInterests(#"[\#(blanks63),"late"]"#) == .success(["late"]))
        #expect(startInterests(#"[\#(blanks63),"","late"]"#) == .success([]))
        // Elements past the 64th are still checked to be strings.
        #expect(startInterests(#"[\#(blanks63),"",1]"#) == .failure(.badRequest))
        let many = (0..<5000).map { #""t\#($0 % 7)""# }.joined(separator: ",")
        #expect(startInterests("[\(many)]") == .success(["t0", "t1", "t2", "t3", "t4"]))
    }

    @Test func interestsAreIgnoredOnOtherCommands() {
        #expect(decodeV2(#"{"type":"next","interests":5,"images":"x"}"#) == .success(.next))
        #expect(decodeV2(#"{"type":"message","text":"hi","interests":[1]}"#) == .success(.message(text: 26..<28, scalars: 2, id: nil)))
        #expect(decodeV2(#"{"type":"next","interests":["a",]}"#) == .failure(.badRequest))   // but still valid JSON
    }

    @Test func startInterestsAgreeWithAnIndependentReader() {
        for array in [#"["caf\u00e9","\u0041B","\ud83d\ude00 x"]"#, #"[" a\tb ","A\u0009B","  "]"#, #"["\u00C9T\u00C9","été"]"#,
                      #"["\u212A","k"]"#, #"["ǅ","ǆ"]"#] {
            let json = #"{"type":"start","interests":\#(array)}"#
            guard case .object(let o)? = TestJSONReader.parse(Array(json.utf8)), case .array(let items)? = o["interests"] else {
                Issue.record("reader refused \(array)")
                continue
            }
            let raw = items.compactMap { item -> String? in if case .string(let s) = item { return s } else { return nil } }
            #expect(startInterests(array) == .success(Interests.normalize(raw)), "\(array)")
        }
    }

    // MARK: ack, resume, ping

    @Test func ackNeedsANonNegativeIntegerSeq() {
        #expect(decodeV2(#"{"type":"ack","seq":0}"#) == .success(.ack(seq: 0)))
        #expect(decodeV2(#"{"type":"ack","seq":1}"#) == .success(.ack(seq: 1)))
        #expect(decodeV2(#"{"seq" : 16 , "type" : "ack"}"#) == .success(.ack(seq: 16)))
        #expect(decodeV2(#"{"type":"ack","seq":9007199254740991}"#) == .success(.ack(seq: 9_007_199_254_740_991)))
        for v in ["9007199254740992", "10000000000000000", "-1", "-0", "1.5", "0.0", "1e2", "1E0", #""1""#, "null", "true",
                  "[1]", "{}"] {
            #expect(decodeV2(#"{"type":"ack","seq":\#(v)}"#) == .failure(.badRequest), "\(v)")
        }
        #expect(decodeV2(#"{"type":"ack"}"#) == .failure(.badRequest))
        #expect(decodeV2(#"{"type":"ack","seq":01}"#) == .failure(.badRequest))
        #expect(decodeV2(#"{"type":"ack","seq":"x","seq":4}"#) == .success(.ack(seq: 4)))
        #expect(decodeV2(#"{"type":"ack","seq":4,"seq":null}"#) == .failure(.badRequest))
        #expect(decodeV2(#"{"type":"ack","id":4}"#) == .failure(.badRequest))   // `id` is not `seq`
    }

    @Test func resumeNeedsATokenStringAndASeq() {
        let json = #"{"type":"resume","token":"AAAAbWFueS1yYW5kb20tYnl0ZXM","seq":12}"#
        guard case .success(.resume(let range, let seq)) = decodeV2(json) else {
            Issue.record("refused")
            return
        }
        #expect(String(decoding: Array(json.utf8)[range], as: UTF8.self) == "AAAAbWFueS1yYW5kb20tYnl0ZXM")
        #expect(seq == 12)
        // The range is of the literal as written: escapes stay (a real token never has any).
        let escaped = #"{"seq":0,"token":"a\u0062c","type":"resume"}"#
        guard case .success(.resume(let r2, let s2)) = decodeV2(escaped) else {
            Issue.record("refused escaped")
            return
        }
        #expect(String(decoding: Array(escaped.utf8)[r2], as: UTF8.self) == #"a\u0062c"#)
        #expect(s2 == 0)
        #expect(decodeV2(#"{"type":"resume","token":"","seq":0}"#) == .success(.resume(token: 26..<26, seq: 0)))
        for s in [#"{"type":"resume","seq":0}"#, #"{"type":"resume","token":"abc"}"#, #"{"type":"resume"}"#,
                  #"{"type":"resume","token":5,"seq":0}"#, #"{"type":"resume","token":null,"seq":0}"#,
                  #"{"type":"resume","token":["abc"],"seq":0}"#, #"{"type":"resume","token":"abc","seq":-1}"#,
                  #"{"type":"resume","token":"abc","seq":"0"}"#, #"{"type":"resume","token":"abc","seq":9007199254740992}"#,
                  #"{"type":"resume","token":"\ud800","seq":0}"#, #"{"type":"resume","token":"abc","token":1,"seq":0}"#] {
            #expect(decodeV2(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func pingNeedsNoFields() {
        #expect(decodeV2(#"{"type":"ping"}"#) == .success(.ping))
        #expect(decodeV2(#"{"type":"p\u0069ng","seq":"x","token":5}"#) == .success(.ping))
        #expect(decodeV2(#"{"type":"ping","x":[}"#) == .failure(.badRequest))
    }

    @Test func unknownTypesAreStillBadRequest() {
        for t in ["image", "Start", "ACK", "pong", "resumed", "start ", "", "Image_offer", "image_accepted"] {
            #expect(decodeV2(#"{"type":"\#(t)"}"#) == .failure(.badRequest), "\(t)")
        }
    }

    @Test func rejectsEveryTruncatedVersion2Command() {
        let valid = [v2Message("hi", id: "12"), #"{"type":"start","interests":["a","b\u00e9"],"images":true}"#,
                     #"{"type":"ack","seq":10}"#, #"{"type":"resume","token":"abc","seq":3}"#, #"{"type":"ping"}"#,
                     #"{"type":"image_offer","id":3,"mime":"image/png","bytes":100}"#, #"{"type":"image_accept","id":3}"#]
        for json in valid {
            let bytes = Array(json.utf8)
            #expect(bytes.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: 2000, version: .v2) } != .failure(.badRequest))
            for cut in 0..<bytes.count {
                let result = Array(bytes[..<cut]).withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: 2000, version: .v2) }
                #expect(result == .failure(.badRequest), "\(json) cut at \(cut)")
            }
        }
    }

    // MARK: Images (B.3)

    @Test func imageOfferNeedsAnIdThatFitsFourBytesAKnownTypeAndASize() {
        #expect(decodeV2(#"{"type":"image_offer","id":1,"mime":"image/jpeg","bytes":120000}"#)
                == .success(.imageOffer(id: 1, type: .jpeg, bytes: 120000)))
        #expect(decodeV2(#"{"bytes":1,"mime":"image\/gif","type":"image_offer","id":4294967295}"#)
                == .success(.imageOffer(id: 4294967295, type: .gif, bytes: 1)))
        #expect(decodeV2(#"{"type":"image_offer","id":2,"mime":"image/png","bytes":9007199254740991}"#)
                == .success(.imageOffer(id: 2, type: .png, bytes: 9007199254740991)))
        #expect(decodeV2(#"{"type":"image_offer","id":2,"mime":"image/webp","bytes":5}"#)
                == .success(.imageOffer(id: 2, type: .webp, bytes: 5)))
        for s in [#"{"type":"image_offer","mime":"image/png","bytes":5}"#,
                  #"{"type":"image_offer","id":0,"mime":"image/png","bytes":5}"#,
                  #"{"type":"image_offer","id":4294967296,"mime":"image/png","bytes":5}"#,
                  #"{"type":"image_offer","id":"1","mime":"image/png","bytes":5}"#,
                  #"{"type":"image_offer","id":1,"bytes":5}"#,
                  #"{"type":"image_offer","id":1,"mime":"image/bmp","bytes":5}"#,
                  #"{"type":"image_offer","id":1,"mime":"Image/PNG","bytes":5}"#,
                  #"{"type":"image_offer","id":1,"mime":"image/png ","bytes":5}"#,
                  #"{"type":"image_offer","id":1,"mime":["image/png"],"bytes":5}"#,
                  #"{"type":"image_offer","id":1,"mime":"image/png"}"#,
                  #"{"type":"image_offer","id":1,"mime":"image/png","bytes":0}"#,
                  #"{"type":"image_offer","id":1,"mime":"image/png","bytes":-5}"#,
                  #"{"type":"image_offer","id":1,"mime":"image/png","bytes":5.0}"#,
                  #"{"type":"image_offer","id":1,"mime":"image/png","bytes":9007199254740992}"#] {
            #expect(decodeV2(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func imageAnswersNeedAnId() {
        #expect(decodeV2(#"{"type":"image_accept","id":9}"#) == .success(.imageAnswer(id: 9, accept: true)))
        #expect(decodeV2(#"{"type":"image_decline","id":9,"mime":5}"#) == .success(.imageAnswer(id: 9, accept: false)))
        for s in [#"{"type":"image_accept"}"#, #"{"type":"image_decline","id":0}"#, #"{"type":"image_accept","id":true}"#] {
            #expect(decodeV2(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func imageCommandsAreUnknownOnVersion1() {
        for s in [#"{"type":"image_offer","id":1,"mime":"image/jpeg","bytes":1}"#, #"{"type":"image_accept","id":1}"#] {
            let bytes = Array(s.utf8)
            #expect(bytes.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: 2000, version: .v1) } == .failure(.badRequest))
        }
    }
}
