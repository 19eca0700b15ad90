import Testing
@testable import UVChat

// The moderation memory (PROTOCOL.md B.5) with a number for a clock: reports and bans, blocks, the decaying abuse
// score and quarantine, and the bounds of every table.

private func key(_ n: UInt64) -> IdentityKey { IdentityKey(rawValue: n) }

private func memory(_ configure: (inout ModerationSettings) -> Void = { _ in }) -> ModerationMemory {
    var s = ModerationSettings()
    configure(&s)
    return ModerationMemory(settings: s)
}

@Suite struct ModerationMemoryTests {
    @Test func threeDifferentReportersBanForTheBanTime() {
        let m = memory()
        #expect(!m.hasBans)
        #expect(m.report(key(1), by: key(10), reason: .spam, now: 0) == .counted)
        #expect(m.report(key(1), by: key(11), reason: .abuse, now: 1000) == .counted)
        #expect(m.banRemaining(key(1), now: 1000) == nil)
        #expect(m.report(key(1), by: key(12), reason: .other, now: 2000) == .banned(untilMillis: 3_602_000))
        #expect(m.hasBans && m.bansTotal == 1 && m.activeBans == 1)
        #expect(m.banRemaining(key(1), now: 2000) == 3_600_000)
        #expect(m.banRemaining(key(2), now: 2000) == nil)
        #expect(m.banRemaining(key(1), now: 3_602_000) == nil)
        m.prune(now: 3_602_000)
        #expect(m.activeBans == 0 && !m.hasBans)
    }

    @Test func oneReporterNeverBansNorDoesReportingOneself() {
        let m = memory()
        for t in 0..<10 { #expect(m.report(key(1), by: key(10), reason: .spam, now: UInt64(t)) == (t == 0 ? .counted : .repeated)) }
        #expect(m.report(key(1), by: key(1), reason: .spam, now: 20) == .repeated)
        #expect(m.report(key(1), by: key(11), reason: .spam, now: 30) == .counted)
        #expect(m.banRemaining(key(1), now: 40) == nil && m.bansTotal == 0)
    }

    @Test func reportsOutsideTheWindowDoNotAddUp() {
        let m = memory { $0.reportWindowMillis = 10_000 }
        #expect(m.report(key(1), by: key(10), reason: .spam, now: 0) == .counted)
        #expect(m.report(key(1), by: key(11), reason: .spam, now: 5000) == .counted)
        // The first left the window: two in it, no ban; then a third within it bans.
        #expect(m.report(key(1), by: key(12), reason: .spam, now: 10_001) == .counted)
        #expect(m.report(key(1), by: key(13), reason: .spam, now: 12_000) == .banned(untilMillis: 12_000 + 3_600_000))
        // The same reporter counts again once its report left the window.
        let n = memory { $0.reportWindowMillis = 10_000 }
        #expect(n.report(key(1), by: key(10), reason: .spam, now: 0) == .counted)
        #expect(n.report(key(1), by: key(10), reason: .spam, now: 10_001) == .counted)
    }

    @Test func blocksHoldBothWaysAndExpire() {
        let m = memory { $0.blockMillis = 1000 }
        m.block(key(2), by: key(1), now: 0)
        #expect(m.isBlocked(key(1), key(2), now: 10) && m.isBlocked(key(2), key(1), now: 10))
        #expect(!m.isBlocked(key(1), key(3), now: 10))
        #expect(m.blocked(by: key(1), now: 10) == [2] && m.blocked(by: key(2), now: 10) == [])
        #expect(!m.isBlocked(key(1), key(2), now: 1000) && m.blocked(by: key(1), now: 1000) == [])
        #expect(m.blockCount == 1)
        m.prune(now: 1000)
        #expect(m.blockCount == 0)
    }

    @Test func blockedByIsNewestFirstAndBounded() {
        let m = memory()
        let n = ModerationSettings.blocksPerIdentity
        for i in 0..<(n + 5) { m.block(key(UInt64(100 + i)), by: key(1), now: UInt64(i)) }
        let list = m.blocked(by: key(1), now: 100)
        #expect(list.count == n)
        #expect(list.first == UInt64(100 + n + 4) && list.last == 105)
    }

    @Test func theBlockTableIsBoundedOldestFirst() {
        let m = memory { $0.maxBlocks = 50 }
        for i in 0..<80 { m.block(key(UInt64(1000 + i)), by: key(UInt64(i)), now: UInt64(i)) }
        #expect(m.blockCount == 50)
        #expect(!m.isBlocked(key(0), key(1000), now: 100))
        #expect(m.isBlocked(key(79), key(1079), now: 100))
    }

    @Test func theScoreHalvesEveryHalfLife() {
        let m = memory { $0.abuseHalfLifeMillis = 1000; $0.quarantineScore = 100 }
        m.record(.reported, for: key(1), now: 0)
        #expect(m.score(key(1), now: 0) == 8)
        #expect(abs(m.score(key(1), now: 1000) - 4) < 1e-9)
        #expect(abs(m.score(key(1), now: 3000) - 1) < 1e-9)
        m.record(.refusal, for: key(1), now: 3000)
        #expect(abs(m.score(key(1), now: 3000) - 2) < 1e-9)
        #expect(AbuseEvent.quickNext.weight == 0.5 && AbuseEvent.blocked.weight == 4)
    }

    @Test func crossingTheLineQuarantinesOnceForTheQuarantineTime() {
        let m = memory { $0.quarantineScore = 3; $0.quarantineMillis = 5000 }
        #expect(!m.record(.refusal, for: key(1), now: 0))
        #expect(!m.record(.refusal, for: key(1), now: 0))
        #expect(m.record(.refusal, for: key(1), now: 0))
        #expect(m.isQuarantined(key(1), now: 4999) && !m.isQuarantined(key(2), now: 0))
        // Crossing again while quarantined extends it, and is not a new quarantine.
        for _ in 0..<3 { #expect(!m.record(.refusal, for: key(1), now: 4000)) }
        #expect(m.isQuarantined(key(1), now: 8999) && !m.isQuarantined(key(1), now: 9000))
        #expect(m.quarantinesTotal == 1)
        let off = memory { $0.quarantineScore = 0 }
        for _ in 0..<100 { #expect(!off.record(.reported, for: key(1), now: 0)) }
    }

    @Test func theIdentityTableIsBoundedLeastRecentlyTouchedFirst() {
        let m = memory { $0.maxIdentities = 100 }
        for i in 0..<150 { m.record(.refusal, for: key(UInt64(i)), now: 0) }
        #expect(m.identityCount == 100)
        #expect(m.score(key(0), now: 0) == 0 && m.score(key(149), now: 0) == 1)
        // A touch keeps a record young.
        m.record(.refusal, for: key(50), now: 0)
        for i in 200..<299 { m.record(.refusal, for: key(UInt64(i)), now: 0) }
        #expect(m.score(key(50), now: 0) == 2)
        #expect(m.identityCount == 100)
    }

    @Test func aFloodOfEventsKeepsTheBookkeepingBounded() {
        let m = memory { $0.quarantineScore = 0 }
        for i in 0..<100_000 { m.record(.refusal, for: key(UInt64(i % 3)), now: UInt64(i)) }
        #expect(m.identityCount == 3)
        #expect(m.orderLengths.touch <= 2 * 3 + 1024 + 1)
        for i in 0..<50_000 { m.block(key(2), by: key(1), now: UInt64(i)) }
        #expect(m.blockCount == 1 && m.orderLengths.blocks <= 2 + 1024 + 1)
        #expect(m.isBlocked(key(1), key(2), now: 50_000))
    }

    @Test func theBlockCapNeverTakesARenewedPair() {
        let m = memory { $0.maxBlocks = 2 }
        m.block(key(10), by: key(1), now: 0)
        m.block(key(20), by: key(2), now: 1)
        m.block(key(10), by: key(1), now: 2)     // renewed: its first entry is stale
        m.block(key(30), by: key(3), now: 3)     // over the cap: the oldest current pair (2 -> 20) goes
        #expect(m.isBlocked(key(1), key(10), now: 4))
        #expect(!m.isBlocked(key(2), key(20), now: 4))
        #expect(m.isBlocked(key(3), key(30), now: 4) && m.blockCount == 2)
    }

    @Test func pruneDropsWhatExpiredAndKeepsWhatHolds() {
        let m = memory { $0.abuseHalfLifeMillis = 1000; $0.banMillis = 100_000 }
        m.record(.refusal, for: key(1), now: 0)            // decays below 0.5 after a little over a half-life
        m.ban(key(2), now: 0)
        m.record(.reported, for: key(3), now: 0)           // 8: needs four half-lives
        m.prune(now: 2000)
        #expect(m.identityCount == 2)
        #expect(m.banRemaining(key(2), now: 2000) != nil)
        m.prune(now: 200_000)
        #expect(m.identityCount == 0 && m.activeBans == 0)
    }
}
