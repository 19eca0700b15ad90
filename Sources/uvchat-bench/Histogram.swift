/// A log-bucketed latency histogram in the manner of HdrHistogram: each power of two is split into 128 linear
/// sub-buckets, so any recorded value is reported within 1/128 (0.8 %) of itself, from 1 ns to 2^63 ns.
struct Histogram {
    private static let subBits = 7
    private static let subCount = 1 << subBits
    private var counts = [UInt64](repeating: 0, count: 64 * subCount)
    private(set) var total: UInt64 = 0
    private(set) var max: UInt64 = 0

    mutating func record(_ value: UInt64) {
        counts[Self.bucket(value)] += 1
        total += 1
        if value > max { max = value }
    }

    /// The smallest value that at least `percentile` percent of the recorded values do not exceed
    /// (the upper edge of its bucket).
    func value(atPercentile percentile: Double) -> UInt64 {
        guard total > 0 else { return 0 }
        let rank = Swift.max(1, UInt64((percentile / 100 * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= rank { return Swift.min(Self.upperEdge(i), max) }
        }
        return max
    }

    private static func bucket(_ v: UInt64) -> Int {
        if v < UInt64(subCount) { return Int(v) }
        let magnitude = 63 - v.leadingZeroBitCount          // index of the top bit, >= subBits
        let shift = magnitude - subBits
        let sub = Int(v >> UInt64(shift)) - subCount       // the bits below the top one, 0..<subCount
        return (shift + 1) * subCount + sub
    }

    private static func upperEdge(_ index: Int) -> UInt64 {
        let row = index / subCount, sub = index % subCount
        if row == 0 { return UInt64(sub) }
        let shift = row - 1
        return (UInt64(subCount + sub + 1) << UInt64(shift)) - 1
    }
}
