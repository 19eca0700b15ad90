import Testing
@testable import UVChat

func decode(_ json: String, max: Int = 2000) -> Result<ChatCommand, ChatErrorCode> {
    var bytes = Array(json.utf8)
    return bytes.withUnsafeMutableBytes { ChatCommandDecoder.decode(UnsafeRawBufferPointer($0), maxScalars: max) }
}

/// The relayed literal for a message command, as the partner will see it.
func relayed(_ json: String) -> String? {
    let bytes = Array(json.utf8)
    guard case .success(.message(let range, _)) = decode(json) else { return nil }
    var out: [UInt8] = []
    bytes.withUnsafeBytes { ChatEventEncoder.message(escapedText: UnsafeRawBufferPointer(rebasing: $0[range]), into: &out) }
    return String(decoding: out, as: UTF8.self)
}

@Suite struct ChatCommandDecoderTests {
    @Test func decodesEachCommand() {
        #expect(decode(#"{"type":"next"}"#) == .success(.next))
        #expect(decode(#" { "type" : "stop" } "#) == .success(.stop))
        #expect(decode(#"{"type":"typing","active":true}"#) == .success(.typing(true)))
        #expect(decode(#"{"active":false,"type":"typing"}"#) == .success(.typing(false)))
        #expect(relayed(#"{"type":"message","text":"hi"}"#) == #"{"type":"message","text":"hi"}"#)
    }

    @Test func notJSONIsBadRequest() {
        for s in ["", "nope", "{", "[]", "\"x\"", "{\"type\":\"next\"} x", "{\"type\":\"next\",}", "{'type':'next'}"] {
            #expect(decode(s) == .failure(.badRequest), "\(s)")
        }
    }

    @Test func missingOrNonStringTypeIsBadRequest() {
        #expect(decode(#"{}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":1}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":null}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"dance"}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"a-very-long-unknown-type-name"}"#) == .failure(.badRequest))
    }

    @Test func wrongFieldTypesAreBadRequest() {
        #expect(decode(#"{"type":"message","text":5}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"message"}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"typing","active":"yes"}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"typing","active":1}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"typing"}"#) == .failure(.badRequest))
    }

    @Test func emptyTextIsBadRequest() {
        #expect(decode(#"{"type":"message","text":""}"#) == .failure(.badRequest))
    }

    @Test func countsUnicodeScalarsNotBytesOrUTF16Units() {
        let raw2000 = String(repeating: "😀", count: 2000)
        let raw2001 = String(repeating: "😀", count: 2001)
        if case .success(.message(_, let n)) = decode(#"{"type":"message","text":"\#(raw2000)"}"#) { #expect(n == 2000) } else {
            Issue.record("2000 raw 4-byte characters refused")
        }
        #expect(decode(#"{"type":"message","text":"\#(raw2001)"}"#) == .failure(.tooLong))
        let esc2000 = String(repeating: #"\ud83d\ude00"#, count: 2000)
        let esc2001 = String(repeating: #"\ud83d\ude00"#, count: 2001)
        if case .success(.message(_, let n)) = decode(#"{"type":"message","text":"\#(esc2000)"}"#) { #expect(n == 2000) } else {
            Issue.record("2000 escaped pairs refused")
        }
        #expect(decode(#"{"type":"message","text":"\#(esc2001)"}"#) == .failure(.tooLong))
    }

    @Test func loneSurrogateEscapesAreBadRequest() {
        #expect(decode(#"{"type":"message","text":"\ud83d"}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"message","text":"\ude00"}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"message","text":"\ude00\ud83d"}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"message","text":"\ud83dx"}"#) == .failure(.badRequest))
    }

    @Test func escapesAreValidatedAndKeptForTheRelay() {
        let text = #"a\"b\\c\/d\b\f\n\r\t\u00e9"#
        #expect(relayed(#"{"type":"message","text":"\#(text)"}"#) == #"{"type":"message","text":"\#(text)"}"#)
        #expect(decode(#"{"type":"message","text":"\x"}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"message","text":"\u12"}"#) == .failure(.badRequest))
        #expect(decode("{\"type\":\"message\",\"text\":\"a\u{01}b\"}") == .failure(.badRequest))   // raw control char
    }

    @Test func unknownFieldsAreIgnoredButMustBeJSON() {
        #expect(decode(#"{"type":"next","x":[1,-2.5e3,{"y":null,"z":[true,false]}],"w":"s"}"#) == .success(.next))
        #expect(decode(#"{"type":"next","x":01}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"next","x":+1}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"next","x":NaN}"#) == .failure(.badRequest))
        #expect(decode(#"{"type":"next","x":[1,]}"#) == .failure(.badRequest))
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(decode(#"{"type":"next","x":\#(deep)}"#) == .failure(.badRequest))
    }

    @Test func duplicateKeysLastOneWins() {
        #expect(decode(#"{"type":"next","type":"stop"}"#) == .success(.stop))
        #expect(relayed(#"{"type":"message","text":"first","text":"second"}"#) == #"{"type":"message","text":"second"}"#)
        #expect(decode(#"{"type":"typing","active":"x","active":true}"#) == .success(.typing(true)))
    }

    @Test func keysAreComparedAfterUnescaping() {
        #expect(decode(#"{"\u0074ype":"n\u0065xt"}"#) == .success(.next))
    }
}

@Suite struct ChatEventEncoderTests {
    func text(_ build: (inout [UInt8]) -> Void) -> String {
        var out: [UInt8] = []
        build(&out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func encodesEveryEvent() {
        #expect(text { ChatEventEncoder.online(count: 42, into: &$0) } == #"{"type":"online","count":42}"#)
        #expect(text { ChatEventEncoder.online(count: 0, into: &$0) } == #"{"type":"online","count":0}"#)
        #expect(text { ChatEventEncoder.waiting(into: &$0) } == #"{"type":"waiting"}"#)
        #expect(text { ChatEventEncoder.paired(common: ["music", "a\"b"], random: false, into: &$0) }
                == #"{"type":"paired","common":["music","a\"b"],"random":false}"#)
        #expect(text { ChatEventEncoder.paired(common: [], random: true, into: &$0) } == #"{"type":"paired","common":[],"random":true}"#)
        #expect(text { ChatEventEncoder.partnerLeft(into: &$0) } == #"{"type":"partner_left"}"#)
        #expect(text { ChatEventEncoder.typing(false, into: &$0) } == #"{"type":"typing","active":false}"#)
        #expect(text { ChatEventEncoder.error(.rateLimited, message: "slow down", into: &$0) }
                == #"{"type":"error","code":"rate_limited","message":"slow down"}"#)
        #expect(text { ChatEventEncoder.appendJSONString("a\n\u{01}", into: &$0) } == #""a\n\u0001""#)
    }

    @Test func messagePayloadLengthMatchesTheBytes() {
        let literal = Array("héllo".utf8)
        var out: [UInt8] = []
        literal.withUnsafeBytes { ChatEventEncoder.message(escapedText: $0, into: &out) }
        #expect(out.count == ChatEventEncoder.messagePayloadLength(escapedTextCount: literal.count))
    }
}

@Suite struct InterestsTests {
    @Test func normalizesTags() {
        #expect(Interests.parse(query: "interests=Music,%20Movies%20,music") == ["music", "movies"])
        #expect(Interests.parse(query: nil) == [])
        #expect(Interests.parse(query: "x=1&interests=a,b&y=2") == ["a", "b"])
        #expect(Interests.parse(query: "interests=a,b,c,d,e,f,g") == ["a", "b", "c", "d", "e"])
        #expect(Interests.parse(query: "interests=,%20,ok") == ["ok"])
        let long = String(repeating: "x", count: 33)
        #expect(Interests.parse(query: "interests=\(long),\(String(long.dropFirst()))") == [String(long.dropFirst())])
        #expect(Interests.parse(query: "interests=%E2%9C%93,bad%ZZ,%C0") == ["✓"])
        #expect(Interests.parse(query: "interests=rock+roll") == ["rock roll"])
    }
}

@Suite struct MatchmakerTests {
    func id(_ n: UInt32) -> PeerID { PeerID(rawValue: n) }

    @Test func pairsTenClientsInArrivalOrder() {
        let mm = Matchmaker()
        var pairs: [Pairing] = []
        for n in 0..<10 {
            if let p = mm.enqueue(id(UInt32(n)), interests: [], now: 0) { pairs.append(p) }
        }
        #expect(pairs.map { [$0.a.rawValue, $0.b.rawValue] } == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
        #expect(pairs.allSatisfy { $0.random && $0.common.isEmpty })
        #expect(mm.count == 0)
    }

    @Test func interestMatchPicksLongestWaitingSharer() {
        let mm = Matchmaker()
        #expect(mm.enqueue(id(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.enqueue(id(2), interests: ["dogs", "music"], now: 1) == nil)
        #expect(mm.enqueue(id(3), interests: ["music"], now: 2) == Pairing(a: id(2), b: id(3), common: ["music"], random: false))
        #expect(mm.enqueue(id(4), interests: ["music", "cats"], now: 3) == Pairing(a: id(1), b: id(4), common: ["cats"], random: false))
    }

    @Test func noInterestNewcomerDoesNotTakeSomeoneStillWaitingForInterests() {
        let mm = Matchmaker()
        #expect(mm.enqueue(id(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.enqueue(id(2), interests: [], now: 1) == nil)
        #expect(mm.count == 2)
    }

    @Test func interestTimeoutFallsBackToRandom() {
        let mm = Matchmaker(interestTimeoutNanos: 5_000)
        #expect(mm.enqueue(id(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.enqueue(id(2), interests: ["dogs"], now: 1_000) == nil)
        #expect(mm.nextDeadline == 5_000)
        #expect(mm.expire(now: 4_999) == [])
        #expect(mm.expire(now: 5_000) == [])          // 1 is now random-willing, nobody else is yet
        #expect(mm.nextDeadline == 6_000)
        #expect(mm.expire(now: 6_000) == [Pairing(a: id(1), b: id(2), common: [], random: true)])
        #expect(mm.nextDeadline == nil)
    }

    @Test func expiredClientPairsWithNoInterestClient() {
        let mm = Matchmaker(interestTimeoutNanos: 10)
        #expect(mm.enqueue(id(1), interests: ["cats"], now: 0) == nil)
        #expect(mm.expire(now: 10) == [])
        #expect(mm.enqueue(id(2), interests: [], now: 11) == Pairing(a: id(1), b: id(2), common: [], random: true))
        // An expired client still matches by interest, with `common`.
        #expect(mm.enqueue(id(3), interests: ["x"], now: 12) == nil)
        #expect(mm.expire(now: 22) == [])
        #expect(mm.enqueue(id(4), interests: ["x"], now: 23) == Pairing(a: id(3), b: id(4), common: ["x"], random: false))
    }

    @Test func removedClientsNeverPair() {
        let mm = Matchmaker()
        #expect(mm.enqueue(id(1), interests: [], now: 0) == nil)
        mm.remove(id(1))
        #expect(!mm.isQueued(id(1)))
        #expect(mm.enqueue(id(2), interests: [], now: 1) == nil)
        mm.remove(id(99))   // not queued: no-op
        #expect(mm.count == 1)
    }

    @Test func neverPairsAClientWithItself() {
        let mm = Matchmaker()
        #expect(mm.enqueue(id(1), interests: [], now: 0) == nil)
        #expect(mm.enqueue(id(1), interests: [], now: 1) == nil)   // a re-queue, not a second client
        #expect(mm.count == 1)
        #expect(mm.enqueue(id(1), interests: ["a"], now: 2) == nil)
        #expect(mm.enqueue(id(1), interests: ["a"], now: 3) == nil)
        #expect(mm.count == 1)
    }

    @Test func hundredThousandQueuedClients() {
        let mm = Matchmaker(interestTimeoutNanos: 1_000)
        let n: UInt32 = 100_000
        // Everyone has a distinct tag, so nobody pairs on arrival.
        for i in 0..<n { #expect(mm.enqueue(id(i), interests: ["t\(i)"], now: UInt64(i)) == nil) }
        #expect(mm.count == Int(n))
        for i in stride(from: UInt32(1), to: n, by: 2) { mm.remove(id(i)) }   // from the middle, half of them
        #expect(mm.count == Int(n) / 2)
        // A newcomer sharing a tag with client 50,000 finds it at once.
        #expect(mm.enqueue(id(n), interests: ["zzz", "t50000"], now: UInt64(n)) == Pairing(a: id(50_000), b: id(n), common: ["t50000"], random: false))
        // All interest waits run out: they pair in FIFO order, oldest first.
        let pairs = mm.expire(now: UInt64(n) + 2_000)
        #expect(pairs.count == (Int(n) / 2 - 1) / 2)
        #expect(pairs.first == Pairing(a: id(0), b: id(2), common: [], random: true))
        #expect(Set(pairs.flatMap { [$0.a, $0.b] }).count == pairs.count * 2)
        #expect(mm.count == (Int(n) / 2 - 1) % 2)
    }
}
