import Testing
@testable import UVChat

private let paired = #"{"type":"paired","common":[],"random":true}"#
private let waiting = #"{"type":"waiting"}"#
private let partnerLeft = #"{"type":"partner_left"}"#

@Suite struct ChatServiceTests {
    @Test func joinSendsTheOnlineCountThenWaitingOrPaired() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], now: 0)
        #expect(out.take(0) == [#"{"type":"online","count":1}"#, waiting])
        chat.join(peer(1), address: home, interests: [], now: 0)
        #expect(out.take(1) == [#"{"type":"online","count":2}"#, paired])
        #expect(out.take(0) == [paired])
        #expect(chat.memberCount == 2 && chat.counters.pairsMade == 1)
        #expect(chat.status(of: peer(0)) == .paired && chat.status(of: peer(7)) == .absent)
    }

    @Test func aMessageReachesThePartnerExactlyAsSent() {
        var (chat, out) = service()
        chat.join(peer(3), address: home, interests: [], now: 0)
        chat.join(peer(4), address: home, interests: [], now: 0)
        _ = (out.take(3), out.take(4))
        chat.command(#"{"type":"message","text":"hi \u00e9 \"x\""}"#, from: 4)
        #expect(out.take(3) == [#"{"type":"message","text":"hi \u00e9 \"x\""}"#])
        #expect(out.take(4) == [])
        #expect(chat.counters.messagesRelayed == 1)
    }

    @Test func typingIsRelayedWhenPairedAndIgnoredOtherwise() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.command(#"{"type":"typing","active":true}"#, from: 0)
        #expect(out.take(0) == [#"{"type":"online","count":1}"#, waiting])
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        chat.command(#"{"type":"typing","active":false}"#, from: 0)
        #expect(out.take(1) == [#"{"type":"typing","active":false}"#])
    }

    @Test func refusedCommandsGetTheirErrorAndAreCountedByCode() {
        var (chat, out) = service { $0.maxTextScalars = 3 }
        chat.join(peer(0), address: home, interests: [], now: 0)
        _ = out.take(0)
        chat.command(#"{"type":"message","text":"yo"}"#, from: 0)
        chat.command("not json", from: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        chat.command(#"{"type":"message","text":"four"}"#, from: 0)
        #expect(out.take(0).map { $0.contains(#""code":"too_long""#) } == [true])
        #expect(chat.counters.refused == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(out.take(1) == [])
    }

    @Test func nextPartsThePairAndQueuesAgain() {
        var (chat, out) = service()
        for n: UInt32 in 0...2 { chat.join(peer(n), address: home, interests: [], now: 0) }
        _ = (out.take(0), out.take(1), out.take(2))
        // 0 and 1 are paired, 2 waits; 1 sends next: 0 is told and idle, 1 meets 2.
        chat.command(#"{"type":"next"}"#, from: 1)
        #expect(out.take(0) == [partnerLeft])
        #expect(out.take(1) == [paired] && out.take(2) == [paired])
        #expect(chat.status(of: peer(0)) == .idle)
        #expect(chat.routing.partner(of: peer(1)) == peer(2))
    }

    @Test func stopPartsThePairAndStaysIdle() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        chat.command(#"{"type":"stop"}"#, from: 0)
        #expect(out.take(1) == [partnerLeft] && out.take(0) == [])
        #expect(chat.status(of: peer(0)) == .idle && chat.status(of: peer(1)) == .idle)
        chat.command(#"{"type":"stop"}"#, from: 0)
        #expect(out.take(0) == [] && out.take(1) == [])
    }

    @Test func leaveTellsThePartnerOnceAndNothingLaterReachesIt() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        chat.leave(peer(0), now: 0)
        chat.leave(peer(0), now: 0)   // every path of the shell may call it
        #expect(out.take(1) == [partnerLeft])
        #expect(chat.memberCount == 1 && !chat.isMember(peer(0)))
        chat.command(#"{"type":"message","text":"anyone?"}"#, from: 1)
        #expect(out.take(1).map { $0.contains("not_paired") } == [true])
        #expect(out.take(0) == [])
    }

    @Test func drainingPartsWithoutPartnerLeft() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        chat.beginDrain()
        chat.leave(peer(0), now: 0)
        #expect(out.take(1) == [])
    }

    @Test func theMessageBucketRefusesPastTheBurstAndRefillsWithTime() {
        var (chat, out) = service { $0.rateBurst = 3; $0.ratePerSecond = 1 }
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        for _ in 0..<4 { chat.command(#"{"type":"message","text":"x"}"#, from: 0, now: 0) }
        #expect(out.take(1).count == 3)
        #expect(out.take(0).map { $0.contains("rate_limited") } == [true])
        #expect(chat.counters.rateLimitHits == 1)
        chat.command(#"{"type":"message","text":"x"}"#, from: 0, now: 1000)
        #expect(out.take(1).count == 1)
    }

    @Test func aReceiverPastTheCapIsClosedAndItsPartnerToldItLeft() {
        var (chat, out) = service { $0.outgoingCap = 100 }
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        out.outstanding = [:]
        let text = String(repeating: "a", count: 60)
        chat.command(#"{"type":"message","text":"\#(text)"}"#, from: 0)
        #expect(out.closed.isEmpty)
        chat.command(#"{"type":"message","text":"\#(text)"}"#, from: 0)
        #expect(out.closed.map { $0.0 } == [1] && out.closed.first?.1 == .slowConsumer)
        #expect(out.take(0) == [partnerLeft])
        #expect(!chat.isMember(peer(1)) && chat.counters.slowConsumerCloses == 1)
    }

    @Test func admissionCapsConnectionsGloballyAndPerAddress() {
        var (chat, _) = service { $0.maxConnections = 3; $0.maxConnectionsPerAddress = 2 }
        let other = ClientAddress(text: "198.51.100.7")!
        #expect(chat.admit(address: home, now: 0) == nil)
        chat.join(peer(0), address: home, interests: [], now: 0)
        #expect(chat.admit(address: home, now: 0) == nil)
        chat.join(peer(1), address: home, interests: [], now: 0)
        #expect(chat.admit(address: home, now: 0) == 30)
        #expect(chat.admit(address: other, now: 0) == nil)
        chat.join(peer(2), address: other, interests: [], now: 0)
        #expect(chat.admit(address: other, now: 0) == 10)
        chat.leave(peer(0), now: 0)
        #expect(chat.admit(address: home, now: 0) == nil)
    }

    @Test func admissionRatesNewConnectionsPerAddress() {
        var (chat, _) = service { $0.newConnectionsPerMinutePerAddress = 2 }
        #expect(chat.admit(address: home, now: 0) == nil)
        #expect(chat.admit(address: home, now: 0) == nil)
        #expect(chat.admit(address: home, now: 0) == 60)
        #expect(chat.admit(address: home, now: 30_000) == nil)
    }

    @Test func withoutRateLimitsNothingIsRefusedForRate() {
        var (chat, out) = service { $0.rateLimitsEnabled = false; $0.maxConnections = 1; $0.rateBurst = 1 }
        #expect(chat.admit(address: home, now: 0) == nil)
        chat.join(peer(0), address: home, interests: [], now: 0)
        #expect(chat.admit(address: home, now: 0) == nil)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        for _ in 0..<50 { chat.command(#"{"type":"message","text":"x"}"#, from: 0) }
        #expect(out.take(1).count == 50 && out.take(0).isEmpty)
    }

    @Test func interestWaitFallsBackToRandomWhenItExpires() {
        var (chat, out) = service(interestTimeoutMillis: 5000)
        chat.join(peer(0), address: home, interests: ["chess"], now: 0)
        // The shell arms its one timer when someone starts waiting.
        #expect(chat.deadlinesChanged)
        chat.deadlinesSeen()
        #expect(!chat.deadlinesChanged)
        chat.join(peer(1), address: home, interests: [], now: 1000)
        _ = (out.take(0), out.take(1))
        #expect(chat.nextDeadline == 5000)
        chat.expire(now: 4999)
        #expect(out.take(0) == [])
        chat.expire(now: 5000)
        #expect(out.take(0) == [paired] && out.take(1) == [paired])
        #expect(chat.nextDeadline == nil)
    }

    @Test func sharedInterestsPairAtOnceAndAreListed() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: ["music", "chess"], now: 0)
        chat.join(peer(1), address: home, interests: ["chess"], now: 0)
        #expect(out.take(1).last == #"{"type":"paired","common":["chess"],"random":false}"#)
    }

    @Test func onlineIsBroadcastOnlyWhenTheCountChangedForThatPeer() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], now: 0)
        _ = out.take(0)
        chat.broadcastOnline(now: 0)
        #expect(out.take(0) == [])
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        chat.broadcastOnline(now: 0)
        #expect(out.take(0) == [#"{"type":"online","count":2}"#])
        #expect(out.take(1) == [])
        chat.broadcastOnline(now: 0)
        #expect(out.take(0) == [])
    }

    // MARK: - Hardening (issue 13)

    @Test func typingCountsAgainstTheReceiversCap() {
        var (chat, out) = service { $0.outgoingCap = 300; $0.rateLimitsEnabled = false }
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        // Peer 1 never reads: each typing event waits in its output until the cap is passed.
        for n in 0..<20 { chat.command(#"{"type":"typing","active":\#(n % 2 == 0)}"#, from: 0) }
        #expect(out.closed.map { $0.0 } == [1])
        #expect(out.take(0).last == partnerLeft)
        #expect(!chat.isMember(peer(1)) && chat.counters.slowConsumerCloses == 1)
        // Once it is gone nothing more is queued for it.
        #expect(out.take(1).count < 20)
    }

    @Test func anErrorBacklogCountsAgainstTheSendersOwnCap() {
        var (chat, out) = service { $0.outgoingCap = 400 }
        chat.join(peer(0), address: home, interests: [], now: 0)
        for _ in 0..<20 { chat.command("garbage", from: 0) }
        #expect(out.closed.map { $0.0 } == [0])
        #expect(!chat.isMember(peer(0)))
    }

    @Test func typingHasABucketOfItsOwn() {
        var (chat, out) = service { $0.typingBurst = 4; $0.typingRatePerSecond = 2 }
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        for _ in 0..<6 { chat.command(#"{"type":"typing","active":true}"#, from: 0, now: 0) }
        #expect(out.take(1).count == 4)
        #expect(out.take(0).filter { $0.contains("rate_limited") }.count == 2)
        // Messages keep their own bucket.
        chat.command(#"{"type":"message","text":"hi"}"#, from: 0, now: 0)
        #expect(out.take(1).count == 1)
        chat.command(#"{"type":"typing","active":false}"#, from: 0, now: 500)
        #expect(out.take(1) == [#"{"type":"typing","active":false}"#])
    }

    @Test func nextAndStopShareABucketAndARefusedOneIsNotCarriedOut() {
        var (chat, out) = service { $0.nextBurst = 3; $0.nextRatePerSecond = 0.5 }
        chat.join(peer(0), address: home, interests: [], now: 0)
        chat.join(peer(1), address: home, interests: [], now: 0)
        _ = (out.take(0), out.take(1))
        chat.command(#"{"type":"next"}"#, from: 0, now: 0)   // 1 is sent away, 0 waits
        chat.command(#"{"type":"stop"}"#, from: 0, now: 0)   // 0 leaves the queue
        chat.command(#"{"type":"next"}"#, from: 0, now: 0)   // 0 waits again
        _ = (out.take(0), out.take(1))
        chat.join(peer(2), address: home, interests: [], now: 0)
        #expect(chat.routing.partner(of: peer(0)) == peer(2))
        _ = (out.take(0), out.take(2))
        chat.command(#"{"type":"next"}"#, from: 0, now: 0)
        #expect(out.take(0).map { $0.contains("rate_limited") } == [true])
        #expect(out.take(2) == [])
        #expect(chat.routing.partner(of: peer(0)) == peer(2))
        // Two seconds later one more is allowed.
        chat.command(#"{"type":"next"}"#, from: 0, now: 2000)
        #expect(out.take(2) == [partnerLeft])
    }

    @Test func oneIPv6Slash64IsOneAddress() {
        var (chat, _) = service { $0.maxConnectionsPerAddress = 3 }
        for n in 1...3 {
            let a = ClientAddress(text: "2001:db8:1:2::\(n)")!
            #expect(chat.admit(address: a, now: 0) == nil)
            chat.join(peer(UInt32(n)), address: a, interests: [], now: 0)
        }
        #expect(chat.admit(address: ClientAddress(text: "2001:db8:1:2:ffff:ffff:ffff:ffff")!, now: 0) == 30)
        #expect(chat.admit(address: ClientAddress(text: "2001:db8:1:3::1")!, now: 0) == nil)
    }

    @Test func byDefaultNoAddressBucketRefusesPeopleSharingAnAddress() {
        var (chat, out) = service()
        for n: UInt32 in 0..<12 { chat.join(peer(n), address: home, interests: [], now: 0) }
        for n: UInt32 in 0..<12 { _ = out.take(n) }
        // Twelve people at five messages a second each, for four seconds: 240 messages from one address.
        for tick in 0..<20 {
            for n: UInt32 in 0..<12 { chat.command(#"{"type":"message","text":"hello"}"#, from: n, now: UInt64(tick) * 200) }
        }
        #expect(chat.counters.rateLimitHits == 0)
        #expect(chat.counters.messagesRelayed == 240)
    }

    @Test func anAddressBucketWhenConfiguredIsShared() {
        var (chat, out) = service { $0.addressRatePerSecond = 1; $0.addressRateBurst = 3 }
        for n: UInt32 in 0..<4 { chat.join(peer(n), address: home, interests: [], now: 0) }
        for n: UInt32 in 0..<4 { _ = out.take(n) }
        for n: UInt32 in 0..<4 { chat.command(#"{"type":"message","text":"x"}"#, from: n, now: 0) }
        #expect(chat.counters.messagesRelayed == 3 && chat.counters.rateLimitHits == 1)
    }
}

@Suite struct AddressTableTests {
    private let settings = ChatSettings()

    private func key(_ n: Int) -> ClientAddress { ClientAddress(ipv4: UInt32(0x0A00_0000 + n)) }

    @Test func idleRecordsGoOnceTheirLifetimeIsOver() {
        var table = AddressTable()
        _ = table.record(key(1), now: 0, settings: settings)
        _ = table.record(key(2), now: 30_000, settings: settings)
        #expect(table.count == 2)
        table.prune(now: 59_999)
        #expect(table.count == 2)
        table.prune(now: 60_000)
        #expect(table.count == 1)
        table.prune(now: 90_000)
        #expect(table.count == 0)
    }

    @Test func recordsWithOpenChatsStayAndGoIdleWhenTheLastCloses() {
        var table = AddressTable()
        let r = table.record(key(1), now: 0, settings: settings)
        table.opened(r)
        table.opened(r)
        table.prune(now: 1_000_000)
        #expect(table.count == 1 && table.idleCount == 0)
        table.closed(r, now: 1_000_000)
        table.closed(r, now: 1_000_000)
        #expect(table.count == 1 && table.idleCount == 1)
        table.prune(now: 1_060_000)
        #expect(table.count == 0)
    }

    @Test func theIdleListIsBoundedOldestFirst() {
        var table = AddressTable(maxIdle: 100)
        for n in 0..<1000 { _ = table.record(key(n), now: UInt64(n), settings: settings) }
        #expect(table.count == 100 && table.idleCount == 100)
        // The newest hundred are the ones kept.
        let kept = table.record(key(999), now: 1000, settings: settings)
        #expect(table.count == 100)
        _ = kept
        _ = table.record(key(0), now: 1000, settings: settings)
        #expect(table.count == 100)
    }

    @Test func aTouchMovesARecordToTheYoungEnd() {
        var table = AddressTable()
        let old = table.record(key(1), now: 0, settings: settings)
        _ = table.record(key(2), now: 10_000, settings: settings)
        table.touched(old, now: 50_000)
        table.prune(now: 70_000)
        // key 2 (idle since 10 s) went; key 1 (touched at 50 s) stays.
        #expect(table.count == 1)
        #expect(table.record(key(1), now: 70_000, settings: settings) === old)
    }
}
