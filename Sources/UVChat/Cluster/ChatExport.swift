/// A version 2 chat taken out of a draining node (a rolling restart), to be taken up by whichever node its first
/// side resumes on: both sides' tokens, sequence numbers and unacknowledged messages, and what each side queued
/// with. It lives in Redis (memory only) for the resume grace, under the sides' old token slots, and is claimed
/// atomically (`uvchat_locate`), so at most one node ever takes it up.
public struct ChatExport: Equatable, Sendable {
    public struct Side: Equatable, Sendable {
        /// The slot its token names on the draining node.
        public var tokenSlot: UInt32
        public var secretHigh: UInt64
        public var secretLow: UInt64
        public var sentSeq: UInt64
        public var lastID: UInt64
        /// Unacknowledged messages to this side: `seq` and the escaped text as relayed.
        public var ring: [Kept]
        public var images: Bool
        public var interests: [String]
        public var queryInterests: [String]
        public var recent: [UInt32]
        public var serial: UInt32
        public var address: ClientAddress

        public struct Kept: Equatable, Sendable {
            public var seq: UInt64
            public var text: [UInt8]
        }
    }

    public var common: [String]
    public var random: Bool
    public var a: Side
    public var b: Side

    /// The side whose token names `slot`, and the other.
    public func sides(resuming slot: UInt32) -> (this: Side, other: Side)? {
        if a.tokenSlot == slot { return (a, b) }
        if b.tokenSlot == slot { return (b, a) }
        return nil
    }

    // MARK: - Bytes

    public var bytes: [UInt8] {
        var w = ByteWriter()
        w.byte(1)   // format
        w.strings(common)
        w.byte(random ? 1 : 0)
        for side in [a, b] {
            w.u32(side.tokenSlot)
            w.u64(side.secretHigh)
            w.u64(side.secretLow)
            w.u64(side.sentSeq)
            w.u64(side.lastID)
            w.u32(UInt32(side.ring.count))
            for kept in side.ring {
                w.u64(kept.seq)
                w.blob(kept.text)
            }
            w.byte(side.images ? 1 : 0)
            w.strings(side.interests)
            w.strings(side.queryInterests)
            w.u32(UInt32(side.recent.count))
            for s in side.recent { w.u32(s) }
            w.u32(side.serial)
            w.u64(side.address.high)
            w.u64(side.address.low)
        }
        return w.out
    }

    public init(common: [String], random: Bool, a: Side, b: Side) {
        self.common = common
        self.random = random
        self.a = a
        self.b = b
    }

    /// nil for anything but a whole export of this format.
    public init?(bytes: [UInt8]) {
        var r = ByteReader(bytes)
        guard r.byte() == 1, let common = r.strings(), let random = r.byte() else { return nil }
        var sides: [Side] = []
        for _ in 0..<2 {
            guard let tokenSlot = r.u32(), let high = r.u64(), let low = r.u64(), let sentSeq = r.u64(),
                  let lastID = r.u64(), let count = r.u32(), count <= ReplayRing.maxMessages else { return nil }
            var ring: [Side.Kept] = []
            for _ in 0..<count {
                guard let seq = r.u64(), let text = r.blob() else { return nil }
                ring.append(Side.Kept(seq: seq, text: text))
            }
            guard let images = r.byte(), let interests = r.strings(), let query = r.strings(), let n = r.u32(), n <= 64
            else { return nil }
            var recent: [UInt32] = []
            for _ in 0..<n {
                guard let s = r.u32() else { return nil }
                recent.append(s)
            }
            guard let serial = r.u32(), let ah = r.u64(), let al = r.u64() else { return nil }
            sides.append(Side(tokenSlot: tokenSlot, secretHigh: high, secretLow: low, sentSeq: sentSeq, lastID: lastID,
                              ring: ring, images: images == 1, interests: interests, queryInterests: query,
                              recent: recent, serial: serial, address: ClientAddress(high: ah, low: al)))
        }
        guard r.atEnd else { return nil }
        self.init(common: common, random: random == 1, a: sides[0], b: sides[1])
    }
}

struct ByteWriter {
    var out: [UInt8] = []
    mutating func byte(_ b: UInt8) { out.append(b) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    mutating func blob(_ b: [UInt8]) {
        u32(UInt32(b.count))
        out.append(contentsOf: b)
    }
    mutating func strings(_ s: [String]) {
        u32(UInt32(s.count))
        for x in s { blob(Array(x.utf8)) }
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var at = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var atEnd: Bool { at == bytes.count }
    mutating func byte() -> UInt8? {
        guard at < bytes.count else { return nil }
        at += 1
        return bytes[at - 1]
    }
    mutating func u32() -> UInt32? {
        guard bytes.count - at >= 4 else { return nil }
        defer { at += 4 }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian }
    }
    mutating func u64() -> UInt64? {
        guard bytes.count - at >= 8 else { return nil }
        defer { at += 8 }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian }
    }
    mutating func blob() -> [UInt8]? {
        guard let n = u32(), bytes.count - at >= Int(n) else { return nil }
        defer { at += Int(n) }
        return Array(bytes[at..<(at + Int(n))])
    }
    mutating func strings() -> [String]? {
        guard let n = u32(), n <= 64 else { return nil }
        var out: [String] = []
        for _ in 0..<n {
            guard let b = blob() else { return nil }
            out.append(String(decoding: b, as: UTF8.self))
        }
        return out
    }
}
