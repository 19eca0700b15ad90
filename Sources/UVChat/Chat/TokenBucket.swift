/// A token bucket on the service's millisecond clock: `burst` tokens at most, `rate` more per second.
struct TokenBucket {
    var tokens: Double
    var at: UInt64   // ms

    @inline(__always)
    mutating func take(now: UInt64, rate: Double, burst: Double) -> Bool {
        tokens = min(burst, tokens + Double(now &- at) / 1000 * rate)
        at = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Per client address: open chat connections and two token buckets (new connections, messages).
struct AddressState {
    var openChats = 0
    var connections: TokenBucket
    var messages: TokenBucket

    init(now: UInt64, settings: ChatSettings) {
        connections = TokenBucket(tokens: Double(settings.newConnectionsPerMinutePerAddress), at: now)
        messages = TokenBucket(tokens: settings.addressRateBurst, at: now)
    }
}
