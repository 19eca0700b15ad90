/// Per client address (an IPv4 address or an IPv6 /64, `ClientAddress.perAddressKey`): open chat connections and
/// the buckets every connection from there shares. A class, so that each member holds its address's record and a
/// check costs no table lookup.
@usableFromInline
final class AddressRecord {
    let key: ClientAddress
    var openChats = 0
    /// New chat connections per minute.
    var connections: TokenBucket
    /// Chat messages of all the address's connections (only when `addressRatePerSecond` is above 0).
    @usableFromInline var messages: TokenBucket
    /// ms: when the record last had no open chat or was last admitted while it had none.
    fileprivate var idleSince: UInt64 = 0
    fileprivate unowned(unsafe) var older: AddressRecord?
    fileprivate unowned(unsafe) var newer: AddressRecord?
    fileprivate var isIdle = false

    init(key: ClientAddress, now: UInt64, settings: ChatSettings) {
        self.key = key
        connections = TokenBucket(tokens: Double(settings.newConnectionsPerMinutePerAddress), at: now)
        messages = TokenBucket(tokens: settings.addressRateBurst, at: now)
    }
}

/// The per-address records, bounded and pruned in O(1) amortised: records with an open chat are bounded by the
/// connection caps; the others ("idle") wait in a list, oldest first, and are dropped once their buckets have had
/// time to refill (then they are no different from a new record) or when there are more than `maxIdle` of them
/// (then the oldest go first, whatever their buckets say). Each prune looks only at the head of the list.
struct AddressTable {
    /// A minute refills the per-minute connection bucket whatever its settings.
    static let idleLifetimeMillis: UInt64 = 60_000
    let maxIdle: Int

    private var records: [ClientAddress: AddressRecord] = [:]
    private var oldestIdle: AddressRecord?
    private unowned(unsafe) var newestIdle: AddressRecord?
    private(set) var idleCount = 0

    init(maxIdle: Int = 65_536) { self.maxIdle = maxIdle }

    var count: Int { records.count }

    /// The record for `key` (a `perAddressKey`), made (idle) if there is none.
    mutating func record(_ key: ClientAddress, now: UInt64, settings: ChatSettings) -> AddressRecord {
        if let record = records[key] { return record }
        let record = AddressRecord(key: key, now: now, settings: settings)
        records[key] = record
        linkIdle(record, now: now)
        prune(now: now)
        return record
    }

    /// An idle record that was just used (an admission) goes to the young end of the list.
    mutating func touched(_ record: AddressRecord, now: UInt64) {
        guard record.isIdle else { return }
        unlinkIdle(record)
        linkIdle(record, now: now)
    }

    mutating func opened(_ record: AddressRecord) {
        record.openChats += 1
        if record.isIdle { unlinkIdle(record) }
    }

    mutating func closed(_ record: AddressRecord, now: UInt64) {
        record.openChats -= 1
        if record.openChats == 0 { linkIdle(record, now: now) }
        prune(now: now)
    }

    /// Drops idle records from the old end while they are past their lifetime or over the bound.
    mutating func prune(now: UInt64) {
        while let oldest = oldestIdle,
              idleCount > maxIdle || now &- oldest.idleSince >= AddressTable.idleLifetimeMillis {
            unlinkIdle(oldest)
            records[oldest.key] = nil
        }
    }

    private mutating func linkIdle(_ record: AddressRecord, now: UInt64) {
        record.idleSince = now
        record.isIdle = true
        record.older = newestIdle
        record.newer = nil
        if let newest = newestIdle { newest.newer = record } else { oldestIdle = record }
        newestIdle = record
        idleCount += 1
    }

    private mutating func unlinkIdle(_ record: AddressRecord) {
        if let older = record.older { older.newer = record.newer } else { oldestIdle = record.newer }
        if let newer = record.newer { newer.older = record.older } else { newestIdle = record.older }
        record.older = nil
        record.newer = nil
        record.isIdle = false
        idleCount -= 1
    }
}
