#if canImport(Glibc)
import Glibc
#endif

/// A keyed hash naming one identity (a token `sub`, an identity cookie, a client address: `IdentityKeys`). The
/// memory below never holds anything else of a person.
public struct IdentityKey: Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// Why someone was reported (B.5).
public enum ReportReason: Int, CaseIterable, Sendable {
    case spam, abuse, underage, other

    public var wireName: StaticString {
        switch self {
        case .spam: "spam"
        case .abuse: "abuse"
        case .underage: "underage"
        case .other: "other"
        }
    }
}

/// The moderation rules' numbers; every one a flag with the protocol's default.
public struct ModerationSettings: Sendable {
    public var reportThreshold = 3
    public var reportWindowMillis: UInt64 = 3_600_000
    public var banMillis: UInt64 = 3_600_000
    public var blockMillis: UInt64 = 86_400_000
    public var abuseHalfLifeMillis: UInt64 = 600_000
    /// 0: nobody is ever quarantined.
    public var quarantineScore = 20.0
    public var quarantineMillis: UInt64 = 3_600_000
    /// Records (score, reports, ban); beyond it the least recently touched go first.
    public var maxIdentities = 100_000
    /// Block pairs; beyond it the oldest go first.
    public var maxBlocks = 100_000
    /// The newest blocks of one blocker that `blocked(by:)` returns (and the matchmaker checks).
    public static let blocksPerIdentity = 32

    public init() {}
}

/// What feeds the abuse score, and by how much (README, "What feeds the abuse score").
public enum AbuseEvent: Sendable {
    /// A command the server refused (`rate_limited`, `bad_request`).
    case refusal
    /// `next` within seconds of being paired.
    case quickNext
    /// Someone blocked it.
    case blocked
    /// Someone new reported it.
    case reported

    public var weight: Double {
        switch self {
        case .refusal: 1
        case .quickNext: 0.5
        case .blocked: 4
        case .reported: 8
        }
    }
}

public enum ReportOutcome: Equatable, Sendable {
    /// A reporter not counted before in the window.
    case counted
    /// This reporter already counted in the window (or reported itself): nothing changes.
    case repeated
    /// This report reached the threshold: the target is banned until then (ms).
    case banned(untilMillis: UInt64)
}

/// Reports, bans, blocks and the decaying abuse score (PROTOCOL.md B.5), in memory, sans-IO: times are the chat
/// service's milliseconds. Every table has a hard cap, and `prune` lets go of what expired, looking at a bounded
/// number of entries per call, oldest first: records in the order they were last touched, blocks in the order
/// they were made (a queue with lazy deletion: an entry whose record was touched again later is skipped).
public final class ModerationMemory {
    public let settings: ModerationSettings

    struct Report {
        var reporter: IdentityKey
        var at: UInt64
        var reason: ReportReason
    }

    struct Record {
        var score = 0.0
        var scoredAt: UInt64 = 0
        var quarantineEnd: UInt64 = 0
        var banEnd: UInt64 = 0
        var reports: [Report] = []
        /// The stamp of its newest entry in `touchOrder`.
        var stamp: UInt64 = 0
    }

    private var records: [IdentityKey: Record] = [:]
    private var touchOrder: [(key: IdentityKey, stamp: UInt64)] = []
    private var touchHead = 0
    private var nextStamp: UInt64 = 0

    struct BlockPair: Hashable {
        var blocker: IdentityKey
        var blocked: IdentityKey
    }

    /// Block pairs and when each ends; the per-blocker lists, newest last; and the order they were made in.
    private var blocks: [BlockPair: UInt64] = [:]
    private var blocksBy: [IdentityKey: [IdentityKey]] = [:]
    private var blockOrder: [(pair: BlockPair, end: UInt64)] = []
    private var blockHead = 0

    public private(set) var bansTotal: UInt64 = 0
    public private(set) var quarantinesTotal: UInt64 = 0
    /// Bans set and not yet seen to end by `prune` (so it may count a few that ended since).
    public private(set) var activeBans = 0

    /// Entries `prune` looks at per call.
    static let pruneBudget = 256

    public init(settings: ModerationSettings) {
        self.settings = settings
    }

    public var identityCount: Int { records.count }
    public var blockCount: Int { blocks.count }
    public var hasBans: Bool { activeBans > 0 }

    // MARK: - Reports and bans

    public func report(_ target: IdentityKey, by reporter: IdentityKey, reason: ReportReason, now: UInt64) -> ReportOutcome {
        guard reporter != target else { return .repeated }
        var record = records[target] ?? Record()
        let windowStart = now > settings.reportWindowMillis ? now - settings.reportWindowMillis : 0
        record.reports.removeAll { $0.at < windowStart }
        guard !record.reports.contains(where: { $0.reporter == reporter }) else {
            store(target, record, now: now)
            return .repeated
        }
        // Only as many as the threshold needs are kept: the oldest beyond that can no longer matter more.
        let keep = max(settings.reportThreshold, 1) * 4
        if record.reports.count >= keep { record.reports.removeFirst(record.reports.count - keep + 1) }
        record.reports.append(Report(reporter: reporter, at: now, reason: reason))
        addScore(&record, AbuseEvent.reported.weight, now: now)
        var outcome = ReportOutcome.counted
        endBan(&record, now: now)
        if record.reports.count >= settings.reportThreshold && record.banEnd == 0 {
            record.banEnd = now + settings.banMillis
            // The reports that made this ban are spent: the next ban needs new ones.
            record.reports.removeAll()
            bansTotal &+= 1
            activeBans += 1
            outcome = .banned(untilMillis: record.banEnd)
        }
        store(target, record, now: now)
        return outcome
    }

    @discardableResult
    public func ban(_ key: IdentityKey, now: UInt64) -> UInt64 {
        var record = records[key] ?? Record()
        endBan(&record, now: now)
        if record.banEnd == 0 { activeBans += 1 }
        record.banEnd = max(record.banEnd, now + settings.banMillis)
        store(key, record, now: now)
        return record.banEnd
    }

    public func banRemaining(_ key: IdentityKey, now: UInt64) -> UInt64? {
        guard activeBans > 0, let record = records[key], record.banEnd > now else { return nil }
        return record.banEnd - now
    }

    /// A ban that ran out is taken off the count (once): true when it changed the record.
    @discardableResult
    private func endBan(_ record: inout Record, now: UInt64) -> Bool {
        guard record.banEnd != 0 && record.banEnd <= now else { return false }
        activeBans -= 1
        record.banEnd = 0
        return true
    }

    // MARK: - Blocks

    public func block(_ blocked: IdentityKey, by blocker: IdentityKey, now: UInt64) {
        let pair = BlockPair(blocker: blocker, blocked: blocked)
        let end = now + settings.blockMillis
        blocks[pair] = end
        var list = blocksBy[blocker] ?? []
        list.removeAll { $0 == blocked }
        if list.count >= ModerationSettings.blocksPerIdentity { list.removeFirst() }
        list.append(blocked)
        blocksBy[blocker] = list
        blockOrder.append((pair, end))
        // Over the cap, the oldest go; an entry of a pair renewed since is skipped, never taken for the renewal.
        while blocks.count > settings.maxBlocks, blockHead < blockOrder.count {
            dropBlock(at: blockHead, force: false)
            blockHead += 1
        }
        compactBlockOrder()
    }

    public func blocked(by blocker: IdentityKey, now: UInt64) -> [UInt64] {
        guard let list = blocksBy[blocker] else { return [] }
        var out: [UInt64] = []
        for key in list.reversed() where (blocks[BlockPair(blocker: blocker, blocked: key)] ?? 0) > now {
            out.append(key.rawValue)
        }
        return out
    }

    public func isBlocked(_ a: IdentityKey, _ b: IdentityKey, now: UInt64) -> Bool {
        (blocks[BlockPair(blocker: a, blocked: b)] ?? 0) > now || (blocks[BlockPair(blocker: b, blocked: a)] ?? 0) > now
    }

    /// Drops the block at `index` of the order if it is still the pair's current entry (or `force`).
    private func dropBlock(at index: Int, force: Bool) {
        let entry = blockOrder[index]
        guard let end = blocks[entry.pair], end == entry.end || force else { return }
        blocks[entry.pair] = nil
        if var list = blocksBy[entry.pair.blocker] {
            list.removeAll { $0 == entry.pair.blocked }
            blocksBy[entry.pair.blocker] = list.isEmpty ? nil : list
        }
    }

    private func compactBlockOrder() {
        if blockHead >= 1024 && blockHead * 2 >= blockOrder.count {
            blockOrder.removeFirst(blockHead)
            blockHead = 0
        }
        // Renewals leave stale entries behind; once they outnumber the blocks, one pass keeps only the current ones
        // (amortised O(1) per block, and the order stays bounded by twice the table).
        if blockOrder.count - blockHead > 2 * blocks.count + 1024 {
            blockOrder = blockOrder[blockHead...].filter { blocks[$0.pair] == $0.end }
            blockHead = 0
        }
    }

    // MARK: - The abuse score

    @discardableResult
    public func record(_ event: AbuseEvent, for key: IdentityKey, now: UInt64) -> Bool {
        var record = records[key] ?? Record()
        let entered = addScore(&record, event.weight, now: now)
        store(key, record, now: now)
        return entered
    }

    public func isQuarantined(_ key: IdentityKey, now: UInt64) -> Bool {
        (records[key]?.quarantineEnd ?? 0) > now
    }

    public func score(_ key: IdentityKey, now: UInt64) -> Double {
        guard let record = records[key] else { return 0 }
        return decayed(record, now: now)
    }

    /// The score halves every half-life: score * 2^(-elapsed / half-life).
    private func decayed(_ record: Record, now: UInt64) -> Double {
        guard record.score > 0, now > record.scoredAt else { return record.score }
        let halfLives = Double(now - record.scoredAt) / Double(max(settings.abuseHalfLifeMillis, 1))
        return record.score * exp2(-halfLives)
    }

    /// True when this addition put the record into quarantine (a crossing while quarantined extends it).
    @discardableResult
    private func addScore(_ record: inout Record, _ weight: Double, now: UInt64) -> Bool {
        record.score = decayed(record, now: now) + weight
        record.scoredAt = now
        guard settings.quarantineScore > 0, record.score >= settings.quarantineScore else { return false }
        let wasQuarantined = record.quarantineEnd > now
        record.quarantineEnd = now + settings.quarantineMillis
        // Counted once per crossing: the score starts again below the line.
        record.score = 0
        if wasQuarantined { return false }
        quarantinesTotal &+= 1
        return true
    }

    // MARK: - Bounds

    private func store(_ key: IdentityKey, _ record: Record, now: UInt64) {
        var record = record
        nextStamp &+= 1
        record.stamp = nextStamp
        records[key] = record
        touchOrder.append((key, nextStamp))
        // Over the cap, the least recently touched go, whatever they hold.
        while records.count > settings.maxIdentities, touchHead < touchOrder.count {
            let entry = touchOrder[touchHead]
            touchHead += 1
            if let old = records[entry.key], old.stamp == entry.stamp {
                if old.banEnd != 0 { activeBans -= 1 }
                records[entry.key] = nil
            }
        }
        compactTouchOrder()
    }

    private func compactTouchOrder() {
        if touchHead >= 1024 && touchHead * 2 >= touchOrder.count {
            touchOrder.removeFirst(touchHead)
            touchHead = 0
        }
        // Every touch appends an entry and leaves the record's older one stale: however fast an identity is touched
        // (a flood of refused commands), one pass keeps only the current entries once stale ones outnumber the
        // records, so the order stays bounded by twice the table (amortised O(1) per touch).
        if touchOrder.count - touchHead > 2 * records.count + 1024 {
            touchOrder = touchOrder[touchHead...].filter { records[$0.key]?.stamp == $0.stamp }
            touchHead = 0
        }
    }

    /// Entries in the two orders (for the tests of their bound).
    var orderLengths: (touch: Int, blocks: Int) { (touchOrder.count - touchHead, blockOrder.count - blockHead) }

    /// Whether a record still means anything: a ban or quarantine on, reports in the window, or a score worth
    /// keeping.
    private func isLive(_ record: Record, now: UInt64) -> Bool {
        if record.banEnd > now || record.quarantineEnd > now { return true }
        let windowStart = now > settings.reportWindowMillis ? now - settings.reportWindowMillis : 0
        if record.reports.contains(where: { $0.at >= windowStart }) { return true }
        return decayed(record, now: now) >= 0.5
    }

    /// Lets go of expired records and blocks, oldest first, at most `pruneBudget` entries of each per call. A live
    /// record at the old end goes to the young end (it is looked at again later), so the walk always progresses
    /// past it.
    public func prune(now: UInt64) {
        // Only the entries there now: a live record sent to the young end is not looked at twice in one call.
        var budget = min(ModerationMemory.pruneBudget, touchOrder.count - touchHead)
        while budget > 0 && touchHead < touchOrder.count {
            budget -= 1
            let entry = touchOrder[touchHead]
            guard var record = records[entry.key], record.stamp == entry.stamp else {
                touchHead += 1
                continue
            }
            if endBan(&record, now: now) { records[entry.key] = record }
            touchHead += 1
            if isLive(record, now: now) {
                // Still meaningful: to the young end, so that what expired behind it is reached too.
                nextStamp &+= 1
                record.stamp = nextStamp
                records[entry.key] = record
                touchOrder.append((entry.key, nextStamp))
                continue
            }
            records[entry.key] = nil
        }
        compactTouchOrder()
        budget = ModerationMemory.pruneBudget
        while budget > 0 && blockHead < blockOrder.count && blockOrder[blockHead].end <= now {
            budget -= 1
            dropBlock(at: blockHead, force: false)
            blockHead += 1
        }
        compactBlockOrder()
    }
}
