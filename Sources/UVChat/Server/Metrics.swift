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
    var idleTimeouts: UInt64 = 0
    var protocolFailures: UInt64 = 0
    var closeSent: [UInt16: UInt64] = [:]
    var closeReceived: [UInt16: UInt64] = [:]
    /// Loop lag histogram buckets in seconds (upper bounds), cumulative at render time.
    static let lagBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
    var lagCounts = [UInt64](repeating: 0, count: 11)
    var lagSum: Double = 0
    var lagCount: UInt64 = 0

    mutating func observeLag(seconds: Double) {
        var i = 0
        while i < Metrics.lagBuckets.count && seconds > Metrics.lagBuckets[i] { i += 1 }
        lagCounts[i] &+= 1
        lagSum += seconds
        lagCount &+= 1
    }
}
