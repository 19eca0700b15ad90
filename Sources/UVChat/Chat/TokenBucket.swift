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

/// A member's own buckets (chat messages; typing; `next` and `stop`), with one clock reading for all three so that
/// a member's record stays small: each take refills all three. The reading is the low 32 bits of the millisecond
/// clock (16 bytes in all): the wrapping difference is right for gaps under 49 days, and a member silent for longer
/// finds its buckets as it left them, refilled from then on.
@usableFromInline
struct PeerBuckets {
    @usableFromInline var at: UInt32 = 0
    @usableFromInline var message: Float = 0
    @usableFromInline var typing: Float = 0
    @usableFromInline var next: Float = 0

    @usableFromInline enum Kind { case message, typing, next }

    @usableFromInline init() {}

    init(full settings: ChatSettings, now: UInt64) {
        at = UInt32(truncatingIfNeeded: now)
        message = Float(settings.rateBurst)
        typing = Float(settings.typingBurst)
        next = Float(settings.nextBurst)
    }

    @inlinable
    mutating func take(_ kind: Kind, now: UInt64, settings: ChatSettings) -> Bool {
        let clock = UInt32(truncatingIfNeeded: now)
        let seconds = Double(clock &- at) / 1000
        at = clock
        message = Float(min(settings.rateBurst, Double(message) + seconds * settings.ratePerSecond))
        typing = Float(min(settings.typingBurst, Double(typing) + seconds * settings.typingRatePerSecond))
        next = Float(min(settings.nextBurst, Double(next) + seconds * settings.nextRatePerSecond))
        switch kind {
        case .message: return PeerBuckets.spend(&message)
        case .typing: return PeerBuckets.spend(&typing)
        case .next: return PeerBuckets.spend(&next)
        }
    }

    @inlinable
    static func spend(_ tokens: inout Float) -> Bool {
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
