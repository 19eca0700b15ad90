/// The last `/metrics` rendering, reused for `lifetimeMillis`: however many requests arrive (a client may pipeline
/// hundreds in one write), the counters are walked, the connections counted and procfs read at most once per
/// interval, and every other answer in that interval is the same text.
///
/// So every value in a `/metrics` answer, counters and gauges (connections by state, draining, RSS, open
/// descriptors) alike, may be up to `lifetimeMillis` old. Prometheus scrapes every 15 s or so, so this costs it
/// nothing.
struct MetricsCache {
    static let lifetimeMillis: UInt64 = 1000

    private var text = ""
    private var renderedAt: UInt64 = 0
    private var isEmpty = true

    /// The cached text when it was rendered less than `lifetimeMillis` before `now` (loop milliseconds).
    func text(at now: UInt64) -> String? {
        guard !isEmpty, now &- renderedAt < Self.lifetimeMillis else { return nil }
        return text
    }

    mutating func store(_ text: String, at now: UInt64) {
        self.text = text
        renderedAt = now
        isEmpty = false
    }
}
