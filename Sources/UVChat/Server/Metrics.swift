/// The HTTP and WebSocket counters the connections keep; with the loop's `IOCounters` and the chat's
/// `ChatCounters`, rendered in the Prometheus text format by `MetricsText`.
struct Metrics {
    var framesIn: UInt64 = 0
    var framesOut: UInt64 = 0
    var httpRequests: UInt64 = 0
    var httpErrors: UInt64 = 0
    var httpNotFound: UInt64 = 0
    var handshakeRejected: UInt64 = 0
    var handshakeTimeouts: UInt64 = 0
    var originRejected: UInt64 = 0
    var capacityRejected: UInt64 = 0
    var echoUpgrades: UInt64 = 0
    var chatUpgrades: UInt64 = 0
    /// Of which version 2 (`uvchat.2`).
    var chatUpgradesV2: UInt64 = 0
    // Identity and moderation (B.5).
    var authMissing: UInt64 = 0
    var authInvalid: UInt64 = 0
    var banRejections: UInt64 = 0
    var banCloses: UInt64 = 0
    var identitiesIssued: UInt64 = 0
    var idleTimeouts: UInt64 = 0
    var protocolFailures: UInt64 = 0
    /// Close frames by code, bounded: the application range 3000-4999 is one counter (`CloseCodeCounts`).
    var closeSent = CloseCodeCounts()
    var closeReceived = CloseCodeCounts()
    /// Loop lag histogram buckets in seconds (upper bounds), cumulative at render time.
    static let lagBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
    var lagCounts = [UInt64](repeating: 0, count: 11)
    var lagSum: Double = 0
    var lagCount: UInt64 = 0

    mutating func countCloseSent(_ code: UInt16) { closeSent.count(code) }
    mutating func countCloseReceived(_ code: UInt16) { closeReceived.count(code) }

    mutating func observeLag(seconds: Double) {
        var i = 0
        while i < Metrics.lagBuckets.count && seconds > Metrics.lagBuckets[i] { i += 1 }
        lagCounts[i] &+= 1
        lagSum += seconds
        lagCount &+= 1
    }
}

/// Close frames counted by code in a fixed set of counters, so that neither the memory nor the `/metrics` text
/// grows with the codes peers choose: 1000-1015 each on its own (the codes RFC 6455 and the IANA registry define,
/// 1005 standing for "no code"), the application range 3000-4999 as one counter labelled `3000-4999`, anything
/// else (which the session never lets through) as `other`.
struct CloseCodeCounts {
    static let applicationRange: ClosedRange<UInt16> = 3000...4999
    static let applicationLabel = "3000-4999"
    private static let protocolCodes: ClosedRange<UInt16> = 1000...1015
    private static let applicationSlot = protocolCodes.count
    private static let otherSlot = applicationSlot + 1

    private var counts = [UInt64](repeating: 0, count: otherSlot + 1)

    mutating func count(_ code: UInt16) {
        counts[Self.slot(code)] &+= 1
    }

    /// How many closes were counted under `code`'s label (for an application code: the whole range).
    subscript(code: UInt16) -> UInt64 { counts[Self.slot(code)] }

    private static func slot(_ code: UInt16) -> Int {
        if protocolCodes.contains(code) { return Int(code - protocolCodes.lowerBound) }
        if applicationRange.contains(code) { return applicationSlot }
        return otherSlot
    }

    /// The label values seen so far with their counts, protocol codes first in order, then the range, then other.
    var samples: [(label: String, value: UInt64)] {
        var out: [(label: String, value: UInt64)] = []
        for (slot, value) in counts.enumerated() where value != 0 {
            switch slot {
            case Self.applicationSlot: out.append((Self.applicationLabel, value))
            case Self.otherSlot: out.append(("other", value))
            default: out.append((String(Int(Self.protocolCodes.lowerBound) + slot), value))
            }
        }
        return out
    }
}
