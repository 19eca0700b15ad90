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
    guard case .success(.message(let range, let scalars)) = decodeBytes(bytes, max: max) else { return nil }
    return (String(decoding: bytes[range], as: UTF8.self), scalars)
}

private func message(_ literalContents: String) -> String { #"{"type":"message","text":""# + literalContents + #""}"# }

@Suite struct ChatCommandDecoderTests {
    @Test func decodesEveryCommand() {
        #expect(decodeCommand(#"{"type":"next"}"#) == .success(.next))
        #expect(decodeCommand(#"{"type":"stop"}"#) == .success(.stop))
        #expect(decodeCommand(#"{"type":"typing","active":true}"#) == .success(.typing(true)))
        #expect(decodeCommand(#"{"active":false,"type":"typing"}"#) == .success(.typing(false)))
        #expect(decodeCommand(message("hi")) == .success(.message(text: 26..<28, scalars: 2)))
    }

    @Test func messageRangeIsTheLiteralContentsWhereverTheFieldSits() {
        let json = #" {"text" : "héllo" , "x":[1], "type":"message"} "#
        let bytes = Array(json.utf8)
        guard case .success(.message(let range, let scalars)) = decodeBytes(bytes) else {
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
        #expect(decodeCommand(#"{"type":"message","text":"hi","active":{}}"#) == .success(.message(text: 26..<28, scalars: 2)))
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
                } else if case .success(.message(let range, let counted)) = result {
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
        guard case .success(.message(_, let scalars)) = decodeCommand(#"{"type":"message","text":""# + text + #""}"#) else {
            Issue.record("refused")
            return
        }
        #expect(scalars == 20)
    }
}
