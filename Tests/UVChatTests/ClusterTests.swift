import Testing
@testable import UVChat

/// The sans-IO parts of the cluster (issue 18): the records nodes exchange, Redis's answers, the routing's ops and
/// the service's cluster entry points, as plain calls. The end-to-end behaviour with a real redis-server is in
/// Tests/e2e/test_cluster.py.
@Suite struct ClusterWireTests {
    @Test func everyRecordSurvivesTheWire() throws {
        let records: [ClusterRecord] = [
            .adopt, .frames([0x81, 0x02, 0x68, 0x69]), .allowBinary(1 << 20),
            .handBack(interests: ["music", "chess"], images: true, recent: [7, 1 << 29]),
            .handBack(interests: [], images: false, recent: []),
            .close(code: 1008, reason: "banned"), .close(code: 0, reason: ""), .text(Array(#"{"type":"next"}"#.utf8)),
            .binary([0, 1, 2, 255]), .skippedBinary, .gone(dropped: true), .gone(dropped: false),
            .attach(address: ClientAddress(text: "2001:db8::1")!, command: Array("resume".utf8)), .requeue,
        ]
        var message: [UInt8] = []
        ClusterWire.begin(from: "node-7", into: &message)
        for (i, r) in records.enumerated() {
            ClusterWire.append(ClusterEnvelope(slot: UInt32(i), entry: UInt64(i) << 40, r), into: &message)
        }
        let decoded = try #require(message.withUnsafeBytes { ClusterWire.decode($0) })
        #expect(decoded.from == "node-7")
        #expect(decoded.records.map(\.record) == records)
        #expect(decoded.records.map(\.slot) == (0..<records.count).map(UInt32.init))
        #expect(decoded.records.last?.entry == UInt64(records.count - 1) << 40)
    }

    @Test func framesForOneClientMergeIntoOneRecord() throws {
        var message: [UInt8] = []
        var last = -1
        ClusterWire.begin(from: "a", into: &message)
        for chunk in [[1, 2], [3], [4, 5, 6]] as [[UInt8]] {
            chunk.withUnsafeBytes { ClusterWire.appendFrames(slot: 3, entry: 9, $0, lastRecordAt: &last, into: &message) }
        }
        // Another client's frames start a record of their own.
        ([7] as [UInt8]).withUnsafeBytes { ClusterWire.appendFrames(slot: 4, entry: 9, $0, lastRecordAt: &last, into: &message) }
        let decoded = try #require(message.withUnsafeBytes { ClusterWire.decode($0) })
        #expect(decoded.records == [ClusterEnvelope(slot: 3, entry: 9, .frames([1, 2, 3, 4, 5, 6])),
                                    ClusterEnvelope(slot: 4, entry: 9, .frames([7]))])
    }

    @Test func truncatedOrUnknownMessagesAreRefusedWhole() {
        var message: [UInt8] = []
        ClusterWire.begin(from: "n", into: &message)
        ClusterWire.append(ClusterEnvelope(slot: 1, entry: 2, .text([1, 2, 3])), into: &message)
        for cut in 0..<message.count where cut != 2 {
            // (Two bytes is a name and no record: a message with nothing in it, which is fine.)
            let prefix = Array(message[..<cut])
            #expect(prefix.withUnsafeBytes { ClusterWire.decode($0) } == nil || cut == 2)
        }
        var unknown = message
        unknown[2] = 99
        #expect(unknown.withUnsafeBytes { ClusterWire.decode($0) } == nil)
        var badLength = message
        badLength[2 + 13] = 0xff
        #expect(badLength.withUnsafeBytes { ClusterWire.decode($0) } == nil)
    }

    @Test func recordsReadInPlaceMatchTheDecodedOnes() throws {
        var message: [UInt8] = []
        ClusterWire.begin(from: "home", into: &message)
        Array(#"{"type":"message","text":"hi"}"#.utf8).withUnsafeBytes {
            ClusterWire.appendText(slot: 5, entry: 6, $0, into: &message)
        }
        ClusterWire.append(ClusterEnvelope(slot: 5, entry: 6, .gone(dropped: true)), into: &message)
        ClusterWire.append(ClusterEnvelope(slot: 1, entry: 2, .frames([0x81, 0x00])), into: &message)
        let decoded = try #require(message.withUnsafeBytes { ClusterWire.decode($0) })
        #expect(decoded.records.map(\.record) == [.text(Array(#"{"type":"message","text":"hi"}"#.utf8)),
                                                  .gone(dropped: true), .frames([0x81, 0x00])])
        var seen: [ClusterEnvelope] = []
        var inPlace = 0
        message.withUnsafeBytes { raw in
            guard let received = ClusterWire.receive(raw) else {
                Issue.record("refused")
                return
            }
            #expect(received.from == "home")
            for record in received.records {
                switch record {
                case .inPlace(let r):
                    inPlace += 1
                    seen.append(ClusterEnvelope(slot: r.slot, entry: r.entry,
                                                r.kind == ClusterWire.textKind ? .text(Array(r.body)) : .frames(Array(r.body))))
                case .decoded(let envelope):
                    seen.append(envelope)
                }
            }
        }
        #expect(seen == decoded.records && inPlace == 2)
        // A malformed record anywhere fails the whole message before any record is acted on.
        var broken = message
        broken[broken.count - 2 - 17] = 99
        #expect(broken.withUnsafeBytes { ClusterWire.receive($0) } == nil)
        var badGone = message
        badGone.append(contentsOf: [9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 1])   // gone with 2 bytes
        #expect(badGone.withUnsafeBytes { ClusterWire.receive($0) } == nil)
    }
}

@Suite struct RedisReplyTests {
    @Test func endpoints() {
        #expect(RedisEndpoint(url: "redis://127.0.0.1:6380") == .tcp(host: "127.0.0.1", port: 6380))
        #expect(RedisEndpoint(url: "redis://redis.internal") == .tcp(host: "redis.internal", port: 6379))
        #expect(RedisEndpoint(url: "redis://[::1]:7000/") == .tcp(host: "::1", port: 7000))
        #expect(RedisEndpoint(url: "unix:/run/redis/redis.sock") == .unix(path: "/run/redis/redis.sock"))
        #expect(RedisEndpoint(url: "unix:///run/r.sock") == .unix(path: "/run/r.sock"))
        for bad in ["redis://user:pw@host:1", "redis://h:0", "redis://h:99999", "http://h", "unix:relative", "redis://",
                    "redis://h:1/2"] {
            #expect(RedisEndpoint(url: bad) == nil, "\(bad)")
        }
    }

    @Test func queueAnswers() {
        #expect(ClusterQueueReply(.array([.string(Array("waiting".utf8)), .integer(5)])) == .waiting)
        #expect(ClusterQueueReply(.array([.string(Array("gone".utf8))])) == .gone)
        #expect(ClusterQueueReply(.error("ERR Function not found")) == .failed)
        #expect(ClusterQueueReply(.integer(1)) == .failed)
        let profile = ClusterProfile(version: .v2, images: true, address: ClientAddress(text: "198.51.100.7")!)
        let paired = RedisValue.array([
            .string(Array("paired".utf8)), .string(Array("node2".utf8)), .integer(17), .string(Array("node2.41".utf8)),
            .integer(99), .string(Array(profile.text.utf8)), .string(Array("chess\nmusic".utf8)), .integer(0),
            .integer(1), .string(Array("music\nchess\ngo".utf8)),
        ])
        #expect(ClusterQueueReply(paired) == .paired(ClusterMatch(
            node: "node2", slot: 17, entry: 41, serial: 99, profile: profile, common: ["chess", "music"], random: false,
            partnerIsOlder: true, interests: ["music", "chess", "go"])))
        #expect(ClusterProfile(text: profile.text) == profile)
        #expect(ClusterProfile(text: "2|1|zz|0") == nil)
    }
}

typealias ClusterService = ChatService<RecordingOutbox, ClusterRouting>

@Suite struct ClusterRoutingTests {
    func service(enabled: Bool = true) -> (ClusterService, RecordingOutbox) {
        let outbox = RecordingOutbox()
        return (ClusterService(settings: ChatSettings(), outbox: outbox,
                               routing: ClusterRouting(interestTimeoutNanos: 1_000_000_000, enabled: enabled),
                               entropy: SplitMix64(seed: 7)), outbox)
    }

    @Test func withoutRedisItIsTheLocalQueue() {
        var (chat, outbox) = service(enabled: false)
        chat.join(peer(1), address: home, interests: [], now: 0)
        chat.join(peer(2), address: home, interests: [], now: 0)
        #expect(outbox.take(1).suffix(2) == [#"{"type":"waiting"}"#, #"{"type":"paired","common":[],"random":true}"#])
        #expect(chat.routing.ops.isEmpty)
        #expect(chat.routing.partner(of: peer(2)) == peer(1))
    }

    @Test func clusteredQueueingGoesToRedisAndWaitingComesWithItsAnswer() {
        var (chat, outbox) = service()
        chat.setClustered(true, now: 0)
        chat.join(peer(1), address: home, interests: ["music"], now: 0)
        #expect(outbox.take(1) == [#"{"type":"online","count":1}"#])   // no `waiting` before Redis says so
        guard case .enqueue(let p, let w, let replacing)? = chat.routing.ops.first else {
            Issue.record("no enqueue op")
            return
        }
        #expect(p == peer(1) && w.interests == ["music"] && replacing == nil && w.inRedis)
        #expect(chat.routing.isWaiting(peer(1), entry: w.entry))
        chat.clusterWaiting(peer(1), now: 1)
        #expect(outbox.take(1) == [#"{"type":"waiting"}"#])
        chat.clusterWaiting(peer(1), now: 2)
        #expect(outbox.take(1).isEmpty)   // once
        // Its interest wait is kept here: at the deadline the routing asks Redis to expire the entry.
        chat.routing.ops.removeAll()
        chat.expire(now: 1000)
        #expect(chat.routing.ops == [.expire(peer(1), entry: w.entry)])
        // Leaving gives the entry up.
        chat.routing.ops.removeAll()
        chat.leave(peer(1), now: 1001)
        #expect(chat.routing.ops == [.dequeue(entry: w.entry)])
        #expect(!chat.routing.isQueued(peer(1)))
    }

    @Test func redisLostMovesWaitersToTheLocalQueueInOrder() {
        var (chat, outbox) = service()
        chat.setClustered(true, now: 0)
        for n: UInt32 in 1...3 { chat.join(peer(n), address: home, interests: [], now: 0) }
        chat.setClustered(false, now: 5)
        // 1 and 2 (the oldest) pair; 3 waits, and hears the `waiting` it was owed.
        #expect(chat.routing.partner(of: peer(1)) == peer(2))
        #expect(outbox.take(3).last == #"{"type":"waiting"}"#)
        #expect(chat.routing.isQueued(peer(3)))
        // Back: 3 moves to Redis under a new entry.
        chat.routing.ops.removeAll()
        chat.setClustered(true, now: 6)
        guard case .enqueue(let p, _, _)? = chat.routing.ops.first else {
            Issue.record("no enqueue op")
            return
        }
        #expect(p == peer(3))
    }

    @Test func aStubRelaysThroughTheOutboxAndQueuesOnItsOwnNode() {
        var (chat, outbox) = service()
        chat.setClustered(true, now: 0)
        chat.join(peer(1), address: home, interests: [], version: .v2, now: 0)
        chat.command(#"{"type":"start"}"#, from: 1)
        guard case .enqueue(_, let w, _)? = chat.routing.ops.first else {
            Issue.record("no enqueue op")
            return
        }
        // Redis paired 1 with a client of another node: its stub is slot 5, with serial 77.
        chat.joinStub(peer(5), address: ClientAddress(text: "203.0.113.9")!, version: .v1, images: false, serial: 77,
                      interests: ["go"], now: 1)
        #expect(chat.routing.isWaiting(peer(1), entry: w.entry))
        chat.clusterPaired(peer(5), peer(1), common: [], random: true, now: 1)
        #expect(chat.memberCount == 1)   // the stub is counted on its own node
        #expect(outbox.take(5) == [#"{"type":"paired","common":[],"random":true}"#])
        chat.command(#"{"type":"message","text":"hi","id":1}"#, from: 1)
        #expect(outbox.take(5) == [#"{"type":"message","text":"hi"}"#])
        chat.command(#"{"type":"message","text":"yo"}"#, from: 5)
        #expect(outbox.take(1).last == #"{"type":"message","text":"yo","seq":1}"#)
        // The stub presses next: 1 hears partner_left, the stub's node gets it back to queue with its interests and
        // whom it just met (1's serial, for repeat avoidance there).
        chat.command(#"{"type":"next"}"#, from: 5)
        #expect(outbox.take(1) == [#"{"type":"partner_left"}"#])
        #expect(!chat.isMember(peer(5)))
        #expect(outbox.handedBack.count == 1)
        #expect(outbox.handedBack.first?.peer == 5 && outbox.handedBack.first?.interests == ["go"])
        #expect(chat.routing.ops.allSatisfy { if case .enqueue(let p, _, _) = $0 { p != peer(5) } else { true } })
    }

    @Test func aMemberHostedElsewhereTellsItsHomeWhenItGoes() {
        var (chat, _) = service()
        chat.setClustered(true, now: 0)
        chat.join(peer(1), address: home, interests: [], version: .v2, now: 0)
        chat.command(#"{"type":"start"}"#, from: 1)
        guard case .enqueue(_, let w, _)? = chat.routing.ops.first else {
            Issue.record("no enqueue op")
            return
        }
        chat.hostedElsewhere(peer(1), on: "node9", entry: w.entry)
        #expect(chat.routing.isHostedElsewhere(peer(1)) && !chat.routing.isQueued(peer(1)))
        chat.routing.ops.removeAll()
        chat.drop(peer(1), now: 5)
        #expect(chat.routing.ops == [.ended(peer(1), ClusterRouting.Hosting(node: "node9", entry: w.entry), dropped: true)])
        #expect(!chat.isMember(peer(1)))
    }
}

@Suite struct ChatExportTests {
    func side(_ slot: UInt32) -> ChatExport.Side {
        ChatExport.Side(tokenSlot: 3 << 20 | slot, secretHigh: 0xdead, secretLow: 0xbeef, sentSeq: 9, lastID: 4,
                        ring: [.init(seq: 8, text: Array("hello".utf8)), .init(seq: 9, text: Array("x".utf8))],
                        images: true, interests: ["go"], queryInterests: [], recent: [5, 6], serial: 77,
                        address: ClientAddress(text: "192.0.2.9")!)
    }

    @Test func anExportSurvivesItsBytesAndNothingElseDecodes() throws {
        let e = ChatExport(common: ["go"], random: false, a: side(1), b: side(2))
        #expect(ChatExport(bytes: e.bytes) == e)
        #expect(e.sides(resuming: 3 << 20 | 2)?.this == side(2))
        #expect(e.sides(resuming: 7) == nil)
        let bytes = e.bytes
        for cut in stride(from: 0, to: bytes.count, by: 7) { #expect(ChatExport(bytes: Array(bytes[..<cut])) == nil) }
        #expect(ChatExport(bytes: bytes + [0]) == nil)
    }

    @Test func aDrainedChatIsTakenUpWithItsRingAndResumedOnItsNewSlot() {
        let outbox = RecordingOutbox()
        var chat = ClusterService(settings: ChatSettings(), outbox: outbox,
                                  routing: ClusterRouting(interestTimeoutNanos: 1_000_000_000, enabled: true),
                                  entropy: SplitMix64(seed: 3))
        chat.setClustered(true, now: 0)
        chat.tokenNode = 5
        let e = ChatExport(common: ["go"], random: false, a: side(1), b: side(2))
        // Node 5 takes it up at slots 10 (the side that resumes) and 11 (the other, held for its resume).
        let taken = chat.importChat(e, resuming: 3 << 20 | 1, this: peer(10), thisLive: false, other: peer(11), now: 0)
        #expect(taken)
        #expect(chat.awayCount == 2 && chat.routing.partner(of: peer(10)) == peer(11))
        chat.join(peer(1), address: home, interests: [], version: .v2, now: 1)
        chat.resumeHere(peer(1), slot: 10, secret: (0xdead, 0xbeef), seq: 8, now: 1)
        let got = outbox.take(1)
        #expect(got.count == 4, "\(got)")   // online, resumed, the kept message above 8, partner_away
        #expect(got.dropFirst().first?.contains(#""type":"resumed""#) == true)
        #expect(got.contains(#"{"type":"message","text":"x","seq":9}"#))
        #expect(got.last?.hasPrefix(#"{"type":"partner_away""#) == true)
        #expect(chat.routing.partner(of: peer(1)) == peer(11))
        // The wrong secret finds nothing.
        chat.join(peer(2), address: home, interests: [], version: .v2, now: 2)
        chat.resumeHere(peer(2), slot: 11, secret: (1, 2), seq: 0, now: 2)
        #expect(outbox.take(2).last?.contains("resume_failed") == true)
    }
}
