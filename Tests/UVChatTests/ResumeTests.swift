import Foundation
import Testing
@testable import UVChat

// Version 2 (PROTOCOL.md B.1, B.2) as plain calls: start, seq/ack/id, drop, resume, grace expiry and repeat
// avoidance, with a recording outbox and a number for the clock (milliseconds).

private func event(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

private func types(_ events: [String]) -> [String] { events.map { event($0)["type"] as? String ?? "?" } }

private extension Service {
    mutating func joinV2(_ n: UInt32, interests: [String] = [], now: UInt64 = 0) {
        join(peer(n), address: home, interests: interests, version: .v2, now: now)
    }
    mutating func say(_ text: String, from n: UInt32, id: Int? = nil, now: UInt64 = 0) {
        command(id.map { #"{"type":"message","text":"\#(text)","id":\#($0)}"# } ?? #"{"type":"message","text":"\#(text)"}"#,
                from: n, now: now)
    }
    mutating func resume(_ token: String, seq: Int, on n: UInt32, now: UInt64 = 0) {
        command(#"{"type":"resume","token":"\#(token)","seq":\#(seq)}"#, from: n, now: now)
    }
}

/// Two version 2 clients in a chat; returns their tokens (0 and 1).
private func chat2(_ configure: (inout ChatSettings) -> Void = { _ in }) -> (Service, RecordingOutbox, String, String) {
    var (chat, out) = service(configure)
    chat.joinV2(0)
    chat.joinV2(1)
    chat.command(#"{"type":"start"}"#, from: 0)
    chat.command(#"{"type":"start","images":true}"#, from: 1)
    let a = out.take(0).map(event).first { $0["type"] as? String == "paired" }
    let b = out.take(1).map(event).first { $0["type"] as? String == "paired" }
    return (chat, out, a?["token"] as? String ?? "", b?["token"] as? String ?? "")
}

/// The texts and seqs of the message events among `events`.
private func messages(_ events: [String]) -> [String] {
    events.map(event).filter { $0["type"] as? String == "message" }.map { "\($0["text"] ?? "")#\($0["seq"] ?? "-")" }
}

@Suite struct StartTests {
    @Test func aVersion2ClientHearsTheCountAndWaitsForStart() {
        var (chat, out) = service()
        chat.joinV2(0)
        chat.joinV2(1)
        #expect(types(out.take(0)) == ["online"])
        #expect(types(out.take(1)) == ["online"])
        #expect(chat.status(of: peer(0)) == .idle)
        chat.command(#"{"type":"start","interests":["a"]}"#, from: 0)
        #expect(out.take(0) == [#"{"type":"waiting"}"#])
    }

    @Test func pairedCarriesATokenTheGraceAndWhatThePartnerAccepts() {
        var (chat, out) = service()
        chat.joinV2(0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = out.take(1)
        chat.command(#"{"type":"start","images":true}"#, from: 0)
        let v2 = event(out.take(0).last ?? "")
        #expect(v2["type"] as? String == "paired" && v2["grace"] as? Int == 30)
        #expect((v2["partner"] as? [String: Any])?["images"] as? Bool == false)   // a version 1 partner (B.7)
        #expect((v2["token"] as? String)?.count == ResumeToken.textLength)
        // The version 1 side sees the version 1 event, byte for byte.
        #expect(out.take(1) == [#"{"type":"paired","common":[],"random":true}"#])
    }

    @Test func tokensDifferPerSideAndPerChat() {
        let (_, _, a, b) = chat2()
        #expect(!a.isEmpty && a != b)
        let (_, _, c, _) = chat2 { _ in }
        #expect(c == a)   // the seeded generator: deterministic in tests, and a fresh one per service
    }

    @Test func startWhilePairedIsNextWithTheNewSettings() {
        var (chat, out, _, _) = chat2()
        chat.command(#"{"type":"start","interests":["chess"]}"#, from: 0)
        #expect(out.take(1) == [#"{"type":"partner_left"}"#])
        #expect(out.take(0) == [#"{"type":"waiting"}"#])
        chat.joinV2(2)
        chat.command(#"{"type":"start","interests":["Chess"]}"#, from: 2)
        let p = event(out.take(2).last ?? "")
        #expect(p["common"] as? [String] == ["chess"] && p["random"] as? Bool == false)
    }

    @Test func startWithoutInterestsFallsBackToTheQuery() {
        var (chat, out) = service()
        chat.joinV2(0, interests: ["music"])
        chat.joinV2(1)
        chat.command(#"{"type":"start"}"#, from: 0)
        chat.command(#"{"type":"start","interests":["music"]}"#, from: 1)
        #expect(event(out.take(1).last ?? "")["common"] as? [String] == ["music"])
    }

    @Test func versionTwoCommandsAreUnknownOnVersionOne() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], now: 0)
        _ = out.take(0)
        for command in [#"{"type":"start"}"#, #"{"type":"ack","seq":0}"#, #"{"type":"ping"}"#,
                        #"{"type":"resume","token":"x","seq":0}"#] {
            chat.command(command, from: 0)
            #expect(out.take(0).map { event($0)["code"] as? String } == ["bad_request"])
        }
    }
}

@Suite struct SequenceTests {
    @Test func everyMessageToAVersion2ClientCarriesItsSeqPerDirectionPerChat() {
        var (chat, out, _, _) = chat2()
        chat.say("a", from: 0, id: 1)
        chat.say("b", from: 0, id: 2)
        chat.say("c", from: 1)
        #expect(messages(out.take(1)) == ["a#1", "b#2"])
        #expect(messages(out.take(0)) == ["c#1"])
        // A new chat starts again at 1 (with someone new: 0 and 1 do not meet again).
        chat.command(#"{"type":"next"}"#, from: 0)
        chat.joinV2(2)
        chat.command(#"{"type":"start"}"#, from: 2)
        _ = (out.take(0), out.take(2))
        chat.say("d", from: 0, id: 1)
        #expect(messages(out.take(2)) == ["d#1"])
    }

    @Test func idsMustGrowWithinAChat() {
        var (chat, out, _, _) = chat2()
        chat.say("a", from: 0, id: 5)
        chat.say("b", from: 0, id: 5)
        chat.say("c", from: 0, id: 4)
        chat.say("d", from: 0, id: 9)
        #expect(out.take(0).map { event($0)["code"] as? String } == ["bad_request", "bad_request"])
        #expect(messages(out.take(1)) == ["a#1", "d#2"])
    }

    @Test func acksAboveWhatWasSentAreRefusedAndOthersSilent() {
        var (chat, out, _, _) = chat2()
        chat.say("a", from: 0)
        _ = out.take(1)
        chat.command(#"{"type":"ack","seq":1}"#, from: 1)
        chat.command(#"{"type":"ack","seq":0}"#, from: 1)
        #expect(out.take(1) == [])
        chat.command(#"{"type":"ack","seq":2}"#, from: 1)
        #expect(out.take(1).map { event($0)["code"] as? String } == ["bad_request"])
        chat.command(#"{"type":"ping"}"#, from: 1)
        #expect(out.take(1) == [#"{"type":"pong"}"#])
    }
}

@Suite struct ResumeTests {
    @Test func aDropIsHeldAndAResumeGetsExactlyTheMissingMessagesOnce() {
        var (chat, out, tokenA, _) = chat2()
        chat.say("one", from: 1, id: 1)
        chat.say("two", from: 1, id: 2)
        chat.say("mine", from: 0, id: 7)
        _ = out.take(0)
        chat.command(#"{"type":"ack","seq":1}"#, from: 0)
        chat.drop(peer(0), now: 100)
        #expect(chat.isHeld(peer(0)) && chat.awayCount == 1 && chat.memberCount == 1)
        #expect(out.take(1).compactMap { event($0)["type"] as? String } == ["message", "partner_away"])
        chat.say("three", from: 1, id: 3, now: 200)
        chat.command(#"{"type":"typing","active":true}"#, from: 1, now: 200)   // dropped while away
        #expect(out.take(1) == [])

        chat.joinV2(2, now: 300)
        _ = out.take(2)
        chat.resume(tokenA, seq: 1, on: 2, now: 300)
        let events = out.take(2)
        let resumed = event(events.first ?? "")
        #expect(resumed["type"] as? String == "resumed" && resumed["id"] as? Int == 7)
        #expect(resumed["token"] as? String != tokenA && (resumed["token"] as? String)?.count == 27)
        #expect(messages(Array(events.dropFirst())) == ["two#2", "three#3"])
        #expect(out.take(1) == [#"{"type":"partner_back"}"#])
        #expect(out.released == [0] && chat.awayCount == 0 && !chat.isHeld(peer(0)))
        // Live traffic goes on with the next seq, both ways, and the new connection is the partner now.
        chat.say("four", from: 1, id: 4, now: 400)
        chat.say("back", from: 2, id: 8, now: 400)
        #expect(messages(out.take(2)) == ["four#4"])
        #expect(messages(out.take(1)) == ["back#2"])
        // Ids keep growing across the resume: 7 was accepted before it.
        chat.say("old", from: 2, id: 7, now: 400)
        #expect(out.take(2).map { event($0)["code"] as? String } == ["bad_request"])
    }

    @Test func aTokenWorksOnceAndTheNewOneWorksNext() {
        var (chat, out, tokenA, _) = chat2()
        chat.drop(peer(0), now: 0)
        chat.joinV2(2)
        _ = out.take(2)
        chat.resume(tokenA, seq: 0, on: 2)
        let next = event(out.take(2).first ?? "")["token"] as? String ?? ""
        chat.drop(peer(2), now: 10)
        chat.joinV2(3)
        _ = out.take(3)
        chat.resume(tokenA, seq: 0, on: 3)
        #expect(out.take(3).map { event($0)["code"] as? String } == ["resume_failed"])
        #expect(chat.status(of: peer(3)) == .idle)
        chat.resume(next, seq: 0, on: 3)
        #expect(types(out.take(3)) == ["resumed"])
    }

    @Test(arguments: [
        "", "AAAA", String(repeating: "A", count: 27), "not a token at all, not at all!",
    ])
    func forgedTokensFail(_ token: String) {
        var (chat, out, _, _) = chat2()
        chat.drop(peer(0), now: 0)
        chat.joinV2(2)
        _ = out.take(2)
        chat.resume(token, seq: 0, on: 2)
        #expect(out.take(2).map { event($0)["code"] as? String } == ["resume_failed"])
        #expect(chat.isHeld(peer(0)))
    }

    @Test func oneChangedCharacterOrAnotherSlotFails() {
        var (chat, out, tokenA, tokenB) = chat2()
        chat.drop(peer(0), now: 0)
        chat.joinV2(2)
        _ = out.take(2)
        var chars = Array(tokenA)
        chars[20] = chars[20] == "A" ? "B" : "A"
        chat.resume(String(chars), seq: 0, on: 2)
        // The partner's own token names the partner's side, which is not away: it moves that side (the 4001 case),
        // but never attaches anyone to side 0.
        let bSecret = tokenB.dropFirst(6), aSlot = tokenA.prefix(6)
        chat.resume(String(aSlot + bSecret), seq: 0, on: 2)
        #expect(out.take(2).map { event($0)["code"] as? String } == ["resume_failed", "resume_failed"])
        #expect(chat.counters.resumeFailures == 2 && chat.isHeld(peer(0)))
    }

    @Test func aTokenFromAFinishedChatFailsAndTheNewPartnerSeesNothing() {
        var (chat, out, tokenA, _) = chat2()
        chat.drop(peer(0), now: 0)
        chat.command(#"{"type":"next"}"#, from: 1)       // the partner moves on: the held chat is over
        #expect(out.released == [0] && chat.awayCount == 0)
        chat.joinV2(2)
        chat.command(#"{"type":"start"}"#, from: 2)
        _ = (out.take(1), out.take(2))                    // 1 and 2 are paired now
        chat.joinV2(3)
        _ = out.take(3)
        chat.resume(tokenA, seq: 0, on: 3)
        #expect(out.take(3).map { event($0)["code"] as? String } == ["resume_failed"])
        #expect(out.take(1) == [] && out.take(2) == [])
    }

    @Test func theGraceRunsOutAndThePartnerHearsItLeft() {
        var (chat, out, tokenA, _) = chat2 { $0.resumeGraceSeconds = 2 }
        chat.drop(peer(0), now: 1000)
        _ = out.take(1)
        #expect(chat.nextDeadline == 3000)
        chat.expire(now: 2999)
        #expect(out.take(1) == [] && chat.isHeld(peer(0)))
        chat.expire(now: 3000)
        #expect(out.take(1) == [#"{"type":"partner_left"}"#])
        #expect(out.released == [0] && chat.counters.graceExpired == 1 && chat.nextDeadline == nil)
        chat.joinV2(2)
        _ = out.take(2)
        chat.resume(tokenA, seq: 0, on: 2, now: 3001)
        #expect(out.take(2).map { event($0)["code"] as? String } == ["resume_failed"])
    }

    @Test func aLeaveEndsTheChatAndItsTokens() {
        var (chat, out, tokenA, tokenB) = chat2()
        chat.leave(peer(0), now: 0)        // a close frame
        #expect(out.take(1) == [#"{"type":"partner_left"}"#])
        #expect(!chat.isHeld(peer(0)) && out.released == [])
        chat.joinV2(2)
        _ = out.take(2)
        chat.resume(tokenA, seq: 0, on: 2)
        chat.resume(tokenB, seq: 0, on: 2)
        #expect(out.take(2).map { event($0)["code"] as? String } == ["resume_failed", "resume_failed"])
    }

    @Test func resumingWhileTheOldConnectionIsOpenClosesItWith4001() {
        var (chat, out, tokenA, _) = chat2()
        chat.say("x", from: 1)
        chat.joinV2(2)
        _ = (out.take(0), out.take(1), out.take(2))
        chat.resume(tokenA, seq: 0, on: 2)
        #expect(out.closed.map { $0.0 } == [0] && out.closed.first?.1 == .resumedElsewhere)
        #expect(messages(out.take(2)) == ["x#1"])
        #expect(out.take(1) == [])              // no partner_left, no partner_back
        #expect(!chat.isMember(peer(0)) && chat.memberCount == 2 && out.released == [])
        // The old connection's own leave, when the shell gets to it, changes nothing.
        chat.leave(peer(0), now: 1)
        chat.drop(peer(0), now: 1)
        chat.say("y", from: 1)
        #expect(messages(out.take(2)) == ["y#2"])
    }

    @Test func messagesForAnAbsentPartnerAreBoundedThenRefused() {
        var (chat, out, tokenA, _) = chat2 { $0.rateLimitsEnabled = false }
        chat.drop(peer(0), now: 0)
        _ = out.take(1)
        for n in 1...(ReplayRing.maxMessages + 1) { chat.say("m\(n)", from: 1, id: n) }
        #expect(out.take(1).map { event($0)["code"] as? String } == ["partner_away"])
        chat.joinV2(2)
        _ = out.take(2)
        chat.resume(tokenA, seq: 0, on: 2)
        let got = messages(out.take(2))
        #expect(got.count == ReplayRing.maxMessages && got.first == "m1#1" && got.last == "m64#64")
        // The refused message was not accepted: its id may be sent again (once the client has acked: until then
        // its ring is full).
        chat.command(#"{"type":"ack","seq":64}"#, from: 2)
        chat.say("m65", from: 1, id: 65)
        #expect(messages(out.take(2)) == ["m65#65"])
    }

    @Test func aConnectedReceiverWithAFullRingMakesTheSenderWaitAndForgetsNothing() {
        var (chat, out, tokenA, _) = chat2 { $0.rateLimitsEnabled = false }
        for n in 1...(ReplayRing.maxMessages + 1) { chat.say("m\(n)", from: 1, id: n) }
        #expect(out.take(1).map { event($0)["code"] as? String } == ["rate_limited"])
        #expect(messages(out.take(0)).count == ReplayRing.maxMessages && chat.counters.ringFullRefusals == 1)
        chat.command(#"{"type":"ack","seq":10}"#, from: 0)
        chat.say("m65", from: 1, id: 65)
        #expect(messages(out.take(0)) == ["m65#65"])
        // A drop now: the resume brings back everything above what the client says it has, with no gap.
        chat.drop(peer(0), now: 0)
        chat.joinV2(2)
        _ = out.take(2)
        chat.resume(tokenA, seq: 12, on: 2)
        let got = messages(out.take(2))
        #expect(got.first == "m13#13" && got.last == "m65#65" && got.count == 53)
    }

    @Test func aVersion1SenderBeyondTheBoundGetsRateLimited() {
        var (chat, out) = service { $0.rateLimitsEnabled = false }
        chat.joinV2(0)
        chat.command(#"{"type":"start"}"#, from: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        chat.drop(peer(0), now: 0)
        #expect(out.take(1) == [])     // a version 1 partner hears nothing of the drop
        let big = String(repeating: "x", count: 1500)
        for _ in 0..<44 { chat.say(big, from: 1) }   // 44 x 1500 bytes fill 64 KiB
        #expect(out.take(1).map { event($0)["code"] as? String } == ["rate_limited"])
    }

    @Test func bothSidesDropAndTheFirstGraceCounts() {
        var (chat, out, tokenA, tokenB) = chat2 { $0.resumeGraceSeconds = 10 }
        chat.drop(peer(0), now: 0)
        chat.drop(peer(1), now: 4000)
        #expect(chat.awayCount == 2 && out.take(0).isEmpty)
        // 0 comes back first: it hears that its partner is away, with the time the chat has left.
        chat.joinV2(2, now: 5000)
        _ = out.take(2)
        chat.resume(tokenA, seq: 0, on: 2, now: 5000)
        let events = out.take(2).map(event)
        #expect(events.map { $0["type"] as? String } == ["resumed", "partner_away"])
        #expect(events.last?["grace"] as? Int == 9)
        // 1's own grace (from 4000) runs out at 14000: the chat ends then; 2 hears partner_left.
        chat.expire(now: 10_000)
        #expect(out.take(2) == [])
        chat.joinV2(3, now: 11_000)
        _ = out.take(3)
        chat.resume(tokenB, seq: 0, on: 3, now: 11_000)
        #expect(types(out.take(3)) == ["resumed"])
        #expect(out.take(2) == [#"{"type":"partner_back"}"#])
    }

    @Test func whenBothAreAwayTheFirstGraceEndsTheChatForBoth() {
        var (chat, out, _, _) = chat2 { $0.resumeGraceSeconds = 10 }
        chat.drop(peer(0), now: 0)
        chat.drop(peer(1), now: 4000)
        chat.expire(now: 10_000)
        #expect(chat.awayCount == 0 && Set(out.released) == [0, 1])
    }

    @Test func aResumeRacingANextFailsAndANextAfterAResumeIsALeave() {
        var (chat, out, tokenA, _) = chat2()
        chat.drop(peer(0), now: 0)
        chat.joinV2(2)
        chat.command(#"{"type":"next"}"#, from: 1)     // arrives first
        _ = out.take(2)
        chat.resume(tokenA, seq: 0, on: 2)
        #expect(out.take(2).map { event($0)["code"] as? String } == ["resume_failed"])

        var (chat2, out2, tokenC, _) = chat2()
        chat2.drop(peer(0), now: 0)
        chat2.joinV2(2)
        chat2.resume(tokenC, seq: 0, on: 2)            // arrives first
        _ = out2.take(2)
        chat2.command(#"{"type":"next"}"#, from: 1)
        #expect(out2.take(2) == [#"{"type":"partner_left"}"#])
    }

    @Test func aClientThatDropsWhileQueuedOrIdleSimplyLeaves() {
        var (chat, out) = service()
        chat.joinV2(0)
        chat.joinV2(1)
        chat.command(#"{"type":"start"}"#, from: 1)
        chat.drop(peer(0), now: 0)
        chat.drop(peer(1), now: 0)
        #expect(!chat.isHeld(peer(0)) && !chat.isHeld(peer(1)) && chat.memberCount == 0 && out.released == [])
        #expect(chat.routing.waitingCount == 0)
    }

    @Test func aVersion1ClientThatDropsHasLeft() {
        var (chat, out) = service()
        chat.joinV2(0)
        chat.command(#"{"type":"start"}"#, from: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = out.take(0)
        chat.drop(peer(1), now: 0)
        #expect(out.take(0) == [#"{"type":"partner_left"}"#] && !chat.isHeld(peer(1)))
    }

    @Test func whileDrainingADropIsALeaveAndNobodyIsTold() {
        var (chat, out, _, _) = chat2()
        chat.beginDrain()
        chat.drop(peer(0), now: 0)
        #expect(!chat.isHeld(peer(0)) && out.take(1) == [])
    }

    @Test func aResumeMustBeTheCommandOfAnIdleConnection() {
        var (chat, out, tokenA, _) = chat2()
        chat.drop(peer(0), now: 0)
        chat.joinV2(2)
        chat.joinV2(3)
        chat.command(#"{"type":"start"}"#, from: 2)    // 2 is queued now
        _ = out.take(2)
        chat.resume(tokenA, seq: 0, on: 2)
        #expect(out.take(2).map { event($0)["code"] as? String } == ["resume_failed"])
        // A seq above what was sent is refused too, and the side stays held.
        chat.resume(tokenA, seq: 5, on: 3)
        #expect(out.take(3).compactMap { event($0)["code"] as? String } == ["resume_failed"])
        #expect(chat.isHeld(peer(0)))
    }

    @Test func awaySidesCountAgainstTheGlobalCap() {
        var (chat, _, _, _) = chat2 { $0.maxConnections = 2 }
        #expect(chat.admit(address: home, now: 0) == 10)
        chat.drop(peer(0), now: 0)
        #expect(chat.memberCount == 1 && chat.admit(address: home, now: 0) == 10)
        chat.command(#"{"type":"stop"}"#, from: 1)   // the held chat ends: the slot is free again
        #expect(chat.admit(address: home, now: 0) == nil)
    }

    @Test func graceZeroTurnsResumeOff() {
        var (chat, out, _, _) = chat2 { $0.resumeGraceSeconds = 0 }
        chat.drop(peer(0), now: 0)
        #expect(out.take(1) == [#"{"type":"partner_left"}"#] && !chat.isHeld(peer(0)))
    }
}

@Suite struct RepeatAvoidanceTests {
    @Test func lastPartnersAreSkippedAndEveryoneElseKeepsTheirPlace() {
        var (chat, out, _, _) = chat2()
        chat.command(#"{"type":"next"}"#, from: 0)    // 0 waits; 1 is idle
        chat.command(#"{"type":"start"}"#, from: 1)   // 1 must not meet 0 again: it waits too
        #expect(out.take(1).last == #"{"type":"waiting"}"#)
        chat.joinV2(2)
        chat.command(#"{"type":"start"}"#, from: 2)   // the longest-waiting compatible one: 0
        #expect(chat.routing.partner(of: peer(2)) == peer(0))
        chat.joinV2(3)
        chat.command(#"{"type":"start"}"#, from: 3)
        #expect(chat.routing.partner(of: peer(3)) == peer(1))
    }

    @Test func aVersion1PairRematchesAsBefore() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        chat.command(#"{"type":"next"}"#, from: 0)
        chat.command(#"{"type":"next"}"#, from: 1)
        _ = out.take(0)
        #expect(chat.routing.partner(of: peer(0)) == peer(1))
    }

    @Test func onlyTheLastEightCount() {
        var (chat, _) = service { $0.rateLimitsEnabled = false }
        chat.joinV2(0)
        // Version 1 clients 1 ... 9 meet 0 in turn (they remember nothing themselves); then 1, nine partners
        // ago, may meet it again, and 9 may not.
        for n: UInt32 in 1...9 {
            chat.command(#"{"type":"start"}"#, from: 0)
            chat.join(peer(n), address: home, interests: [], now: 0)
            #expect(chat.routing.partner(of: peer(0)) == peer(n))
            chat.command(#"{"type":"stop"}"#, from: n)
        }
        chat.command(#"{"type":"start"}"#, from: 0)
        chat.command(#"{"type":"next"}"#, from: 9)   // waits behind 0 rather than meet it again
        #expect(chat.routing.partner(of: peer(0)) == nil && chat.routing.waitingCount == 2)
        chat.command(#"{"type":"next"}"#, from: 1)   // 0 is first in the queue and may meet 1
        #expect(chat.routing.partner(of: peer(0)) == peer(1))
    }
}

@Suite struct ReplayRingTests {
    private func keep(_ ring: inout ReplayRing, _ seq: UInt64, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { ring.keep(seq: seq, $0) }
    }

    private func contents(_ ring: ReplayRing, after seq: UInt64 = 0) -> [String] {
        var out: [String] = []
        ring.forEach(after: seq) { s, text in out.append("\(s):" + String(decoding: text, as: UTF8.self)) }
        return out
    }

    @Test func holdsInOrderAndForgetsWhatIsAcknowledged() {
        var ring = ReplayRing()
        #expect(ring.bytes.capacity == 0 && ring.isEmpty)
        for n: UInt64 in 1...5 { #expect(keep(&ring, n, "t\(n)")) }
        #expect(contents(ring, after: 3) == ["4:t4", "5:t5"])
        ring.acknowledge(through: 2)
        #expect(contents(ring) == ["3:t3", "4:t4", "5:t5"] && ring.heldBytes == 6)
        ring.acknowledge(through: 9)
        #expect(ring.isEmpty && ring.heldBytes == 0)
    }

    @Test func theBoundsRefuseWhatDoesNotFitAndForgetNothing() {
        var ring = ReplayRing()
        for n in 1...ReplayRing.maxMessages { #expect(keep(&ring, UInt64(n), "x")) }
        #expect(!keep(&ring, 65, "y"))
        #expect(contents(ring).first == "1:x" && contents(ring).last == "64:x" && ring.count == ReplayRing.maxMessages)
        ring.acknowledge(through: 1)
        #expect(keep(&ring, 65, "y") && contents(ring).last == "65:y")
        var big = ReplayRing()
        let half = String(repeating: "h", count: ReplayRing.maxBytes / 2)
        #expect(keep(&big, 1, half) && keep(&big, 2, half))
        #expect(!keep(&big, 3, "z") && big.heldBytes == ReplayRing.maxBytes && big.count == 2)
        var empty = ReplayRing()
        #expect(!keep(&empty, 1, String(repeating: "o", count: ReplayRing.maxBytes + 1)) && empty.isEmpty)
    }

    @Test func storageStaysWithinTwiceTheBound() {
        var ring = ReplayRing()
        let text = String(repeating: "s", count: 1000)
        for n: UInt64 in 1...10_000 {
            _ = keep(&ring, n, text)
            if n % 3 == 0 { ring.acknowledge(through: n - 1) }
        }
        #expect(ring.bytes.count <= 2 * ReplayRing.maxBytes && ring.entries.count <= 2 * ReplayRing.maxMessages)
        #expect(ring.heldBytes <= ReplayRing.maxBytes)
    }
}

@Suite struct ResumeTokenTests {
    @Test func roundTripsAndRefusesAnythingElse() {
        let token = ResumeToken(slot: 0x0102_0304, secret: (0xDEAD_BEEF_0011_2233, 0x4455_6677_8899_AABB))
        var text: [UInt8] = []
        token.appendText(into: &text)
        #expect(text.count == ResumeToken.textLength)
        let back = text.withUnsafeBytes { ResumeToken(text: $0) }
        #expect(back == token)
        for bad in ["", "AAAA", String(repeating: "A", count: 26) + "=", String(repeating: "+", count: 27),
                    String(repeating: "A", count: 26) + "B"] {   // B leaves spare bits set
            #expect(Array(bad.utf8).withUnsafeBytes { ResumeToken(text: $0) } == nil, "\(bad)")
        }
        #expect(token.matches(token.secret) && !token.matches((token.secret.0, token.secret.1 ^ 1)))
    }

    @Test func thePeerRecordStaysFortyBytes() {
        #expect(MemoryLayout<Service.Peer>.stride == 40)
    }
}
