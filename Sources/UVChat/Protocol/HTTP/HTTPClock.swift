/// The `Date` field's value (RFC 9110 section 6.6.1): formatted when the wall-clock second changes, not per
/// request. The shell passes the time in.
struct HTTPClock {
    private(set) var date: String
    private var second: Int

    init(now: Int) {
        second = now
        date = HTTPDate.format(now)
    }

    /// Moves to `now` (seconds since the epoch); true when the value changed.
    mutating func advance(to now: Int) -> Bool {
        guard now != second else { return false }
        second = now
        date = HTTPDate.format(now)
        return true
    }
}
