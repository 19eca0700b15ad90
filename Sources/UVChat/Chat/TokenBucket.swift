/// A token bucket on the service's millisecond clock: `burst` tokens at most, `rate` more per second. The count is
/// kept as a `Float` (exact enough for bursts of a few hundred) so that a peer's record stays 32 bytes.
@usableFromInline
struct TokenBucket {
    @usableFromInline var at: UInt64   // ms
    @usableFromInline var tokens: Float

    @usableFromInline
    init(tokens: Double, at: UInt64) {
        self.at = at
        self.tokens = Float(tokens)
    }

    @inlinable
    mutating func take(now: UInt64, rate: Double, burst: Double) -> Bool {
        let refilled = min(burst, Double(tokens) + Double(now &- at) / 1000 * rate)
        at = now
        guard refilled >= 1 else {
            tokens = Float(refilled)
            return false
        }
        tokens = Float(refilled - 1)
        return true
    }
}

/// Per client address: open chat connections and two token buckets (new connections, messages). A class, so that
/// each member holds its address's record and a message checks the shared bucket without a table lookup.
@usableFromInline
final class AddressRecord {
    var openChats = 0
    var connections: TokenBucket
    @usableFromInline var messages: TokenBucket

    init(now: UInt64, settings: ChatSettings) {
        connections = TokenBucket(tokens: Double(settings.newConnectionsPerMinutePerAddress), at: now)
        messages = TokenBucket(tokens: settings.addressRateBurst, at: now)
    }
}
