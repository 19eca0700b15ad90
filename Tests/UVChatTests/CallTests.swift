import Foundation
import Testing
@testable import UVChat

// Calls (PROTOCOL.md B.4) in the chat service as plain calls: every action in every state of the call (none,
// ringing as caller or callee, started), the `start` pair and its `ice` objects, the verbatim signal relay, the
// buckets, the version 1 partner, and the call's end with its chat, a drop and a resume.

private func event(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

private func codes(_ events: [String]) -> [String] {
    events.map(event).compactMap { $0["type"] as? String == "error" ? $0["code"] as? String : nil }
}

private let request = #"{"type":"call","action":"request","video":true}"#
private let accept = #"{"type":"call","action":"accept"}"#
private let decline = #"{"type":"call","action":"decline"}"#
private let end = #"{"type":"call","action":"end"}"#
private let signal = #"{"type":"signal","data":{"candidate":"a"}}"#
private let actions = ["request": request, "accept": accept, "decline": decline, "end": end, "signal": signal]

/// The TURN settings of the credential vector below (the secret is coturn's `static-auth-secret`).
private func turn(_ s: inout ChatSettings) {
    s.ice.stunURLs = ["stun:stun.example.net:3478"]
    s.ice.turnURLs = ["turn:turn.example.net:3478?transport=udp", "turns:turn.example.net:5349"]
    s.ice.turnSecret = Secret(Array("north-wind".utf8))
}

/// Peers 0 and 1 in a version 2 chat (their first events taken); the wall clock reads 1,700,000,000.
private func callChat(_ configure: (inout ChatSettings) -> Void = { _ in }, v1Partner: Bool = false)
    -> (Service, RecordingOutbox, String) {
    var settings = ChatSettings()
    configure(&settings)
    let out = RecordingOutbox()
    var chat = Service(settings: settings, outbox: out, routing: LocalRouting(interestTimeoutNanos: 5_000_000_000),
                       entropy: SplitMix64(seed: 42), unixTime: { 1_700_000_000 })
    chat.join(peer(0), address: home, interests: [], version: .v2, now: 0)
    chat.command(#"{"type":"start"}"#, from: 0)
    chat.join(peer(1), address: home, interests: [], version: v1Partner ? .v1 : .v2, now: 0)
    if !v1Partner { chat.command(#"{"type":"start"}"#, from: 1) }
    let token = out.take(0).map(event).first { $0["type"] as? String == "paired" }?["token"] as? String ?? ""
    #expect(!token.isEmpty)
    #expect(out.take(1).contains { event($0)["type"] as? String == "paired" })
    return (chat, out, token)
}

/// Ringing: 0 called 1.
private func ringing(_ configure: (inout ChatSettings) -> Void = { _ in }) -> (Service, RecordingOutbox, String) {
    var (chat, out, token) = callChat(configure)
    chat.command(request, from: 0)
    #expect(out.take(1) == [request])
    return (chat, out, token)
}

/// Started: 1 accepted; both `start`s taken.
private func started(_ configure: (inout ChatSettings) -> Void = { _ in }) -> (Service, RecordingOutbox, String) {
    var (chat, out, token) = ringing(configure)
    chat.command(accept, from: 1)
    #expect(out.take(0).count == 1 && out.take(1).count == 1)
    return (chat, out, token)
}

@Suite struct CallTests {
    @Test func aRequestRingsTheCalleeOnlyAndSaysWhichKindOfCall() {
        var (chat, out, _) = callChat()
        chat.command(#"{"type":"call","action":"request"}"#, from: 0)
        #expect(out.take(1) == [#"{"type":"call","action":"request","video":false}"#], "no video field: voice")
        #expect(out.take(0).isEmpty)
        chat.command(end, from: 0)
        chat.command(request, from: 1)
        #expect(out.take(0) == [request])
        chat.command(request, from: 0)
        #expect(codes(out.take(0)) == ["busy"])
        #expect(chat.counters.callsRequested == 2 && chat.counters.callsEnded == 1, "a refused request never rang")
    }

    @Test func acceptStartsTheCallForBothWithTheCallerAsInitiator() {
        var (chat, out, _) = ringing()
        chat.command(accept, from: 1)
        let callee = out.take(1).map(event), caller = out.take(0).map(event)
        #expect(callee.count == 1 && caller.count == 1)
        #expect(callee.first?["action"] as? String == "start" && caller.first?["action"] as? String == "start")
        #expect(callee.first?["initiator"] as? Bool == false)
        #expect(caller.first?["initiator"] as? Bool == true)
        let ice = caller.first?["ice"] as? [String: Any]
        #expect((ice?["iceServers"] as? [Any])?.isEmpty == true)
        #expect(ice?["iceTransportPolicy"] as? String == "all")
        #expect(Set(ice?.keys.map { $0 } ?? []) == ["iceServers", "iceTransportPolicy"])
        #expect(chat.counters.callsAccepted == 1 && chat.counters.callsStarted == 1)
    }

    @Test func theIceObjectNamesStunAndTurnWithAFreshCredentialPerSide() throws {
        var (chat, out, _) = ringing { turn(&$0); $0.ice.relayOnly = true; $0.ice.credentialSeconds = 600 }
        chat.command(accept, from: 1)
        let objects = [out.take(0), out.take(1)].map { $0.first.map(event)?["ice"] as? [String: Any] }
        var usernames: Set<String> = []
        for ice in objects {
            #expect(ice?["iceTransportPolicy"] as? String == "relay")
            let servers = try #require(ice?["iceServers"] as? [[String: Any]])
            #expect(servers.count == 2)
            #expect(servers[0]["urls"] as? [String] == ["stun:stun.example.net:3478"])
            #expect(servers[0]["username"] == nil)
            #expect(servers[1]["urls"] as? [String] == ["turn:turn.example.net:3478?transport=udp",
                                                        "turns:turn.example.net:5349"])
            let username = try #require(servers[1]["username"] as? String)
            let parts = username.split(separator: ":")
            #expect(parts.count == 2 && parts[0] == "1700000600", "expiry: now + 600 s")
            #expect(parts.count == 2 && parts[1].count == 16 && parts[1].allSatisfy(\.isHexDigit))
            let credential = servers[1]["credential"] as? String
            #expect(credential == Array(TURNCredential.password(secret: Secret(Array("north-wind".utf8)),
                                                               username: Array(username.utf8))).string)
            usernames.insert(username)
        }
        #expect(usernames.count == 2, "each side has its own credential")
    }

    @Test func theTurnCredentialMatchesAVectorComputedWithPythonsHmac() {
        // python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b'north-wind',
        //             b'1700000600:0123456789abcdef', hashlib.sha1).digest()).decode())"
        let username = TURNCredential.username(expiry: 1_700_000_600, random: 0x0123_4567_89AB_CDEF)
        #expect(username.string == "1700000600:0123456789abcdef")
        #expect(TURNCredential.password(secret: Secret(Array("north-wind".utf8)), username: username).string
                == "DtvIZN92gUBpdkAPux6KpzQcCz4=")
    }

    @Test func hmacSHA1MatchesRFC2202() {
        #expect(HMAC.sha1(key: [UInt8](repeating: 0x0B, count: 20), message: Array("Hi There".utf8)).hex
                == "b617318655057264e28bc0b6fb378c8ef146be00")
        #expect(HMAC.sha1(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)).hex
                == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        #expect(HMAC.sha1(key: [UInt8](repeating: 0xAA, count: 80),
                          message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)).hex
                == "aa4ae5e15272d00e95705637ce8a3b55ed402112")
    }

    @Test func everyActionInEveryState() {
        // Not paired: everything is `not_paired`.
        var (lone, loneOut) = service()
        lone.join(peer(0), address: home, interests: [], version: .v2, now: 0)
        lone.command(#"{"type":"start"}"#, from: 0)
        _ = loneOut.take(0)
        for (_, json) in actions { lone.command(json, from: 0) }
        #expect(codes(loneOut.take(0)) == Array(repeating: "not_paired", count: actions.count))

        // Paired, no call: a request rings; the rest are `no_call`.
        for name in ["accept", "decline", "end", "signal"] {
            var (chat, out, _) = callChat()
            chat.command(actions[name]!, from: 0)
            #expect(codes(out.take(0)) == ["no_call"], "\(name) with no call")
            #expect(out.take(1).isEmpty)
        }

        // Ringing, from the caller: another request is busy; accept, decline and signal are not the caller's.
        for (name, code) in [("request", "busy"), ("accept", "no_call"), ("decline", "no_call"), ("signal", "no_call")] {
            var (chat, out, _) = ringing()
            chat.command(actions[name]!, from: 0)
            #expect(codes(out.take(0)) == [code], "caller's \(name) while ringing")
            #expect(out.take(1).isEmpty)
        }
        // Ringing, from the callee: its own request is busy and a signal has no call yet.
        for (name, code) in [("request", "busy"), ("signal", "no_call")] {
            var (chat, out, _) = ringing()
            chat.command(actions[name]!, from: 1)
            #expect(codes(out.take(1)) == [code], "callee's \(name) while ringing")
            #expect(out.take(0).isEmpty)
        }
        // Ringing: decline reaches the caller only; end from either side reaches the other only.
        do {
            var (chat, out, _) = ringing()
            chat.command(decline, from: 1)
            #expect(out.take(0) == [decline] && out.take(1).isEmpty)
            #expect(chat.counters.callsDeclined == 1 && chat.counters.callsEnded == 0)
            chat.command(accept, from: 1)
            #expect(codes(out.take(1)) == ["no_call"], "the call is over")
        }
        for side: UInt32 in [0, 1] {
            var (chat, out, _) = ringing()
            chat.command(end, from: side)
            #expect(out.take(1 - side) == [end] && out.take(side).isEmpty)
            chat.command(request, from: 1 - side)
            #expect(out.take(side) == [request], "a new call may ring")
        }

        // Started: requests are busy, accept and decline have nothing to answer, signals flow, end ends.
        for side: UInt32 in [0, 1] {
            for (name, code) in [("request", "busy"), ("accept", "no_call"), ("decline", "no_call")] {
                var (chat, out, _) = started()
                chat.command(actions[name]!, from: side)
                #expect(codes(out.take(side)) == [code], "\(name) from \(side) during a call")
                #expect(out.take(1 - side).isEmpty)
            }
            var (chat, out, _) = started()
            chat.command(signal, from: side)
            #expect(out.take(1 - side) == [signal] && out.take(side).isEmpty)
            chat.command(end, from: side)
            #expect(out.take(1 - side) == [end] && out.take(side).isEmpty)
            chat.command(signal, from: 1 - side)
            #expect(codes(out.take(1 - side)) == ["no_call"])
            #expect(chat.counters.callsEnded == 1 && chat.counters.signalsRelayed == 1)
        }
    }

    @Test func signalDataIsRelayedByteForByte() {
        var (chat, out, _) = started()
        let data = #"{ "sdp" : {"type":"offer","sdp":"v=0\r\no=- 46 2 IN IP4 127.0.0.1\r\n"}, "n":[1e3,-0.5,true,null,{}],"é":"\u00e9\ud83d\ude00" }"#
        chat.command(#"{"data":\#(data) ,"type":"signal","extra":[1]}"#, from: 0)
        #expect(out.take(1) == [#"{"type":"signal","data":\#(data)}"#])
        #expect(chat.counters.signalBytesRelayed == UInt64(data.utf8.count))
    }

    @Test func signalDataMustBeAnObject() {
        var (chat, out, _) = started()
        for bad in [#"{"type":"signal"}"#, #"{"type":"signal","data":"x"}"#, #"{"type":"signal","data":[{}]}"#,
                    #"{"type":"signal","data":null}"#, #"{"type":"signal","data":1}"#,
                    #"{"type":"signal","data":{"a":}}"#, #"{"type":"signal","data":{"a":"\ud800"}}"#,
                    #"{"type":"signal","data":{"a":1}"#] {
            chat.command(bad, from: 0)
            #expect(codes(out.take(0)) == ["bad_request"], "\(bad)")
        }
        #expect(out.take(1).isEmpty)
    }

    @Test func callCommandsAreCheckedAndAreVersion2Only() {
        var (chat, out, _) = callChat()
        for bad in [#"{"type":"call"}"#, #"{"type":"call","action":"start"}"#, #"{"type":"call","action":"ring"}"#,
                    #"{"type":"call","action":1}"#, #"{"type":"call","action":"request","video":"yes"}"#] {
            chat.command(bad, from: 0)
            #expect(codes(out.take(0)) == ["bad_request"], "\(bad)")
        }
        #expect(out.take(1).isEmpty)
        for json in [request, signal] {
            var bytes = Array(json.utf8)
            let verdict = bytes.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: 2000, version: .v1) }
            #expect(verdict == .failure(.badRequest), "version 1 has no \(json)")
        }
    }

    @Test func aVersion1PartnerIsDeclinedByTheServer() {
        var (chat, out, _) = callChat(v1Partner: true)
        chat.command(request, from: 0)
        #expect(out.take(0) == [decline])
        #expect(out.take(1).isEmpty, "the version 1 side hears nothing of it")
        chat.command(signal, from: 0)
        #expect(codes(out.take(0)) == ["no_call"])
        #expect(chat.counters.callsRequested == 1 && chat.counters.callsDeclined == 1)
    }

    @Test func theCallEndsWithItsChatAndThePartnerHearsOnlyPartnerLeft() {
        for ending in [#"{"type":"next"}"#, #"{"type":"stop"}"#, "leave"] {
            var (chat, out, _) = started()
            if ending == "leave" { chat.leave(peer(0), now: 0) } else { chat.command(ending, from: 0) }
            #expect(out.take(1).map { event($0)["type"] as? String } == ["partner_left"], "\(ending)")
            #expect(chat.counters.callsEnded == 1)
            chat.command(signal, from: 1)
            #expect(codes(out.take(1)) == ["not_paired"])
        }
        // A ringing call ends with its chat the same way, and the callee's answer finds nothing.
        var (chat, out, _) = ringing()
        chat.command(#"{"type":"next"}"#, from: 0)
        #expect(out.take(1).map { event($0)["type"] as? String } == ["partner_left"])
        chat.command(accept, from: 1)
        #expect(codes(out.take(1)) == ["not_paired"])
        #expect(chat.callMembers.values.allSatisfy { $0.call == nil })
    }

    @Test func aDropEndsTheCallAtOnceAndTheResumedSideMayCallAgain() {
        var (chat, out, token) = started()
        chat.drop(peer(0), now: 10)
        #expect(out.take(1).map { event($0)["type"] as? String } == ["partner_away", "call"])
        #expect(chat.counters.callsEnded == 1)
        chat.command(signal, from: 1, now: 20)
        #expect(codes(out.take(1)) == ["no_call"])
        chat.command(request, from: 1, now: 20)
        #expect(codes(out.take(1)) == ["partner_away"])
        chat.join(peer(2), address: home, interests: [], version: .v2, now: 30)
        chat.command(#"{"type":"resume","token":"\#(token)","seq":0}"#, from: 2, now: 30)
        #expect(out.take(2).map { event($0)["type"] as? String } == ["online", "resumed"])
        chat.command(signal, from: 2, now: 40)
        #expect(codes(out.take(2)) == ["no_call"], "the call did not come back with the resume")
        chat.command(request, from: 2, now: 40)
        _ = out.take(1)
        chat.command(accept, from: 1, now: 40)
        #expect(out.take(2).first.map(event)?["initiator"] as? Bool == true)
    }

    @Test func aResumeThatTakesOverAnOpenConnectionEndsItsCall() {
        var (chat, out, token) = started()
        chat.join(peer(2), address: home, interests: [], version: .v2, now: 10)
        chat.command(#"{"type":"resume","token":"\#(token)","seq":0}"#, from: 2, now: 10)
        #expect(out.take(1) == [end])
        #expect(out.closed.map(\.0) == [0])
        chat.command(signal, from: 1, now: 20)
        #expect(codes(out.take(1)) == ["no_call"])
    }

    @Test func requestsAndSignalsHaveBucketsOfTheirOwn() {
        var (chat, out, _) = callChat { $0.callRequestBurst = 2; $0.callRequestRatePerSecond = 0.2 }
        for _ in 0..<2 {
            chat.command(request, from: 0)
            chat.command(end, from: 0)
        }
        chat.command(request, from: 0)
        #expect(codes(out.take(0)) == ["rate_limited"])
        chat.command(#"{"type":"next"}"#, from: 0)
        chat.command(request, from: 0, now: 1000)
        #expect(codes(out.take(0)) == ["not_paired"] || codes(out.take(0)) == ["rate_limited"])

        var (c2, o2, _) = started { $0.signalBurst = 3; $0.signalRatePerSecond = 1 }
        for _ in 0..<4 { c2.command(signal, from: 0) }
        #expect(codes(o2.take(0)) == ["rate_limited"])
        #expect(o2.take(1).count == 3)
        c2.command(signal, from: 0, now: 1000)
        #expect(o2.take(1) == [signal], "refilled after a second")
        c2.command(signal, from: 1)
        #expect(o2.take(0) == [signal], "each side has its own bucket")
    }

    @Test func aSlowCalleeClosedOnItsStartLeavesTheCallerNoStart() {
        var (chat, out, _) = ringing { $0.outgoingCap = 4096 }
        out.outstanding = [1: 5000]   // the callee has not read for a while
        chat.command(accept, from: 1)
        #expect(out.closed.map(\.0) == [1])
        #expect(out.take(0).map { event($0)["type"] as? String } == ["partner_left"])
    }
}

private extension Array where Element == UInt8 {
    var string: String { String(decoding: self, as: UTF8.self) }
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
