import Foundation
import Testing
@testable import UVChat

// Reports, blocks, bans, groups and quarantine (PROTOCOL.md B.5) in the chat service as plain calls, with
// identities given as the shell would give them after the upgrade (keys standing for tokens and cookies).

private func event(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

private func types(_ events: [String]) -> [String] { events.compactMap { event($0)["type"] as? String } }

private func codes(_ events: [String]) -> [String] {
    events.map(event).compactMap { $0["type"] as? String == "error" ? $0["code"] as? String : nil }
}

/// A cookie or token identity, as the shell resolves one.
private func person(_ n: UInt64, group: String? = nil) -> PeerIdentity {
    PeerIdentity(key: IdentityKey(rawValue: 10_000 + n), group: group)
}

private let report = #"{"type":"report","reason":"spam"}"#
private let block = #"{"type":"block"}"#

extension Service {
    /// A version 2 member that has sent `start`.
    fileprivate mutating func arrive(_ n: UInt32, as identity: PeerIdentity = .anonymous, address: ClientAddress = home,
                                     now: UInt64 = 0) {
        join(peer(n), address: address, interests: [], version: .v2, identity: identity, now: now)
        command(#"{"type":"start"}"#, from: n, now: now)
    }
}

private func paired(_ out: RecordingOutbox, _ n: UInt32) -> Bool { types(out.take(n)).contains("paired") }

@Suite struct ModerationServiceTests {
    @Test func reportWhilePairedEndsTheChatAndLeavesTheReporterIdle() {
        var (chat, out) = service()
        chat.arrive(0, as: person(0))
        chat.arrive(1, as: person(1))
        #expect(paired(out, 0) && paired(out, 1))
        chat.command(report, from: 0, now: 10)
        #expect(types(out.take(0)) == ["reported"])
        #expect(types(out.take(1)) == ["partner_left"])
        #expect(chat.status(of: peer(0)) == .idle)
        #expect(chat.counters.reports[ReportReason.spam.rawValue] == 1)
        // Once per partner: a second report is about nobody; a block of the same partner still works.
        chat.command(report, from: 0, now: 20)
        #expect(codes(out.take(0)) == ["nothing_to_report"])
        chat.command(block, from: 0, now: 30)
        #expect(types(out.take(0)) == ["blocked"])
        chat.command(block, from: 0, now: 40)
        #expect(codes(out.take(0)) == ["nothing_to_report"])
    }

    @Test func theLastPartnerCanBeReportedOnlyWithinTheGrace() {
        var (chat, out) = service { $0.reportGraceMillis = 60_000 }
        chat.arrive(0, as: person(0))
        chat.command(report, from: 0)
        #expect(codes(out.take(0)) == ["nothing_to_report"])   // no chat yet
        chat.arrive(1, as: person(1))
        _ = out.take(0)
        _ = out.take(1)
        chat.command(#"{"type":"stop"}"#, from: 1, now: 1000)
        #expect(types(out.take(0)) == ["partner_left"])
        chat.command(block, from: 0, now: 61_000)
        #expect(types(out.take(0)) == ["blocked"])
        chat.command(report, from: 1, now: 61_001)
        #expect(codes(out.take(1)) == ["nothing_to_report"])
    }

    @Test func reasonsAreCheckedAndVersion1HasNoReports() {
        var (chat, out) = service()
        chat.arrive(0, as: person(0))
        chat.arrive(1, as: person(1))
        _ = out.take(0)
        chat.command(#"{"type":"report","reason":"rude"}"#, from: 0)
        #expect(codes(out.take(0)) == ["bad_request"])
        chat.command(#"{"type":"report"}"#, from: 0)
        #expect(types(out.take(0)) == ["reported"])
        #expect(chat.counters.reports[ReportReason.other.rawValue] == 1)
        chat.join(peer(2), address: home, interests: [], now: 0)
        _ = out.take(2)
        chat.command(report, from: 2)
        #expect(codes(out.take(2)) == ["bad_request"])
    }

    @Test func threeDifferentReportersBanAndCloseTheTarget() {
        var (chat, out) = service()
        let target = person(99)
        let far = ClientAddress(text: "198.51.100.7")!
        for (round, reporter) in [UInt32(1), 2, 3].enumerated() {
            let t = UInt64(round) * 1000
            chat.arrive(0, as: target, address: far, now: t)
            chat.arrive(reporter, as: person(UInt64(reporter)), now: t)
            chat.command(report, from: reporter, now: t + 1)
            if round < 2 {
                #expect(out.closed.isEmpty)
                chat.leave(peer(0), now: t + 2)
                chat.leave(peer(reporter), now: t + 2)
            }
        }
        #expect(out.closed.contains { $0.0 == 0 && $0.1 == .banned })
        #expect(!chat.isMember(peer(0)))
        #expect(chat.moderation.bansTotal == 1)
        // The identity and its address (for clients without a cookie) are banned; another cookie at that address
        // is not.
        #expect(chat.banRemaining(identity: target, address: home, now: 5000) != nil)
        #expect(chat.banRemaining(identity: .anonymous, address: far, now: 5000) != nil)
        #expect(chat.banRemaining(identity: person(7), address: far, now: 5000) == nil)
        #expect(chat.banRemaining(identity: .anonymous, address: home, now: 5000) == nil)
    }

    @Test func aTokenBanStaysWithTheToken() {
        var (chat, out) = service()
        let target = PeerIdentity(key: IdentityKey(rawValue: 777), isToken: true)
        let far = ClientAddress(text: "198.51.100.9")!
        for round in 0..<3 {
            let t = UInt64(round) * 1000
            chat.arrive(0, as: target, address: far, now: t)
            chat.arrive(UInt32(round + 1), as: person(UInt64(round + 1)), now: t)
            chat.command(report, from: UInt32(round + 1), now: t + 1)
            if round < 2 { chat.leave(peer(0), now: t + 2) }
        }
        #expect(out.closed.contains { $0.0 == 0 && $0.1 == .banned })
        #expect(chat.banRemaining(identity: target, address: home, now: 5000) != nil)
        // The operator vouches for tokens: the address is not banned with it.
        #expect(chat.banRemaining(identity: .anonymous, address: far, now: 5000) == nil)
    }

    @Test func oneReporterNeverBans() {
        var (chat, out) = service()
        let target = person(99)
        let reporterAddress = ClientAddress(text: "203.0.113.5")!
        for round in 0..<3 {
            let t = UInt64(round) * 1000
            // A reporter without a cookie: each new connection of it may meet the target again (only the reporting
            // connection keeps away from it), and each is the same identity: its address.
            chat.arrive(0, as: target, now: t)
            chat.arrive(1, address: reporterAddress, now: t)
            #expect(paired(out, 1))
            chat.command(report, from: 1, now: t + 1)
            #expect(types(out.take(1)) == ["reported"])
            chat.leave(peer(0), now: t + 2)
            chat.leave(peer(1), now: t + 2)
        }
        #expect(out.closed.isEmpty)
        #expect(chat.counters.reports[ReportReason.spam.rawValue] == 3)
        #expect(chat.banRemaining(identity: target, address: home, now: 5000) == nil)
    }

    @Test func clientsWithoutIdentityOfOneAddressAreOneReporter() {
        var (chat, out) = service { $0.moderation.reportThreshold = 1 }
        chat.arrive(0)
        chat.arrive(1)
        _ = out.take(1)
        chat.command(report, from: 1)
        #expect(types(out.take(1)) == ["reported"])
        #expect(out.closed.isEmpty)
        #expect(chat.moderation.bansTotal == 0)
    }

    @Test func aBlockedPairIsNotPairedAgainWhileOthersWait() {
        var (chat, out) = service()
        chat.arrive(0, as: person(0))
        chat.arrive(1, as: person(1))
        chat.command(block, from: 0, now: 10)
        chat.leave(peer(0), now: 20)
        chat.leave(peer(1), now: 20)
        _ = out.take(0)
        _ = out.take(1)
        // New connections of both, then a third person: the blocked one waits for the third.
        chat.arrive(2, as: person(1), now: 30)
        chat.arrive(3, as: person(0), now: 40)
        #expect(types(out.take(3)) == ["online", "waiting"])
        chat.arrive(4, as: person(4), now: 50)
        #expect(paired(out, 2) && paired(out, 4))
        #expect(chat.status(of: peer(3)) == .queued)
    }

    @Test func groupsNeverMix() {
        var (chat, out) = service()
        chat.arrive(0, as: person(0, group: "a"))
        chat.arrive(1, as: person(1, group: "b"))
        chat.arrive(2, as: person(2))
        #expect(!paired(out, 0) && !paired(out, 1) && !paired(out, 2))
        chat.arrive(3, as: person(3, group: "b"))
        #expect(paired(out, 1) && paired(out, 3))
        chat.arrive(4)
        #expect(paired(out, 2) && paired(out, 4))
        #expect(chat.status(of: peer(0)) == .queued)
    }

    @Test func aQuarantinedIdentityMeetsOnlyOtherQuarantinedOnes() {
        var (chat, out) = service { $0.moderation.quarantineScore = 3 }
        chat.arrive(0, as: person(0))
        _ = out.take(0)
        // It goes over while it waits: it moves to the quarantined pool.
        for _ in 0..<3 { chat.command("{", from: 0, now: 5) }
        #expect(chat.moderation.isQuarantined(IdentityKey(rawValue: 10_000), now: 10))
        chat.arrive(1, as: person(1), now: 10)
        #expect(!paired(out, 0) && !paired(out, 1))
        // Another goes over before it starts: it queues among the quarantined, where 0 waits.
        chat.join(peer(2), address: home, interests: [], version: .v2, identity: person(2), now: 20)
        for _ in 0..<3 { chat.command("{", from: 2, now: 20) }
        chat.command(#"{"type":"start"}"#, from: 2, now: 21)
        #expect(paired(out, 0) && paired(out, 2))
        #expect(chat.status(of: peer(1)) == .queued)
        #expect(chat.moderation.quarantinesTotal == 2)
    }
}
