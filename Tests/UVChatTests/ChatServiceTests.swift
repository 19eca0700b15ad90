import Testing
@testable import UVChat

/// The chat service driven as plain calls: a recording outbox stands for the sockets, a number for the clock.
private final class RecordingOutbox: ChatOutbox {
    /// Every text event each peer was sent, decoded from the frames, in order.
    var sent: [UInt32: [String]] = [:]
    var closed: [(UInt32, ChatCloseReason)] = []
    /// What the outbox reports as waiting for a peer: everything it was sent, as for a receiver that never reads
    /// (a test resets it to stand for one that does).
    var outstanding: [UInt32: Int] = [:]

    func send(_ frame: [UInt8], to peer: PeerID) -> Int {
        record(frame, peer)
        outstanding[peer.rawValue, default: 0] += frame.count
        return outstanding[peer.rawValue, default: 0]
    }

    func sendText(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        sent[peer.rawValue, default: []].append(String(decoding: payload, as: UTF8.self))
        outstanding[peer.rawValue, default: 0] += payload.count + 2
        return outstanding[peer.rawValue, default: 0]
    }

    func relay(escapedText: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        var frame: [UInt8] = []
        ChatEventEncoder.messageFrame(escapedText: escapedText, into: &frame)
        record(frame, peer)
        outstanding[peer.rawValue, default: 0] += frame.count
        return outstanding[peer.rawValue, default: 0]
    }

    func relay(escapedText: UnsafeRawBufferPointer, seq: UInt64, to peer: PeerID) -> Int {
        var frame: [UInt8] = []
        ChatEventEncoder.messageFrame(escapedText: escapedText, seq: seq, into: &frame)
        record(frame, peer)
        outstanding[peer.rawValue, default: 0] += frame.count
        return outstanding[peer.rawValue, default: 0]
    }

    var released: [UInt32] = []
    func release(_ peer: PeerID) { released.append(peer.rawValue) }

    func close(_ peer: PeerID, _ reason: ChatCloseReason) { closed.append((peer.rawValue, reason)) }

    private func record(_ frame: [UInt8], _ peer: PeerID) {
        // Server frames are unmasked text frames: FIN|text, then the shortest length form.
        #expect(frame[0] == 0x81)
        let (start, length): (Int, Int) = frame[1] < 126 ? (2, Int(frame[1])) : (4, Int(frame[2]) << 8 | Int(frame[3]))
        #expect(frame.count == start + length)
        sent[peer.rawValue, default: []].append(String(decoding: frame[start...], as: UTF8.self))
    }

    /// What `peer` was sent since the last call.
    func take(_ peer: UInt32) -> [String] {
        defer { sent[peer] = [] }
        return sent[peer] ?? []
    }
}

private typealias Service = ChatService<RecordingOutbox, LocalRouting>

private func peer(_ n: UInt32) -> PeerID { PeerID(rawValue: n) }
private let home = ClientAddress(text: "192.0.2.1")!

private func service(_ configure: (inout ChatSettings) -> Void = { _ in }, interestTimeoutMillis: UInt64 = 5000)
    -> (Service, RecordingOutbox) {
    var settings = ChatSettings()
    configure(&settings)
    let outbox = RecordingOutbox()
    return (Service(settings: settings, outbox: outbox,
                    routing: LocalRouting(interestTimeoutNanos: interestTimeoutMillis * 1_000_000)), outbox)
}

private extension Service {
    mutating func command(_ json: String, from n: UInt32, now: UInt64 = 0) {
        var bytes = Array(json.utf8)
        bytes.withUnsafeBytes { receive($0, from: peer(n), now: now) }
    }
}

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
        #expect(chat.counters.refused == [1, 1, 1, 0])
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
