/// Version 2's per-client state (PROTOCOL.md B.1, B.2). Only version 2 members have one, so a version 1
/// connection carries none of this, and a version 2 connection carries its chat side only while it is paired.
@usableFromInline
final class Member2 {
    /// The query's `interests`: what a `start` without `interests` falls back to.
    let queryInterests: [String]
    /// Whether this client accepts image offers (its last `start`).
    var images = false
    /// The serials of its last partners (repeat avoidance, B.1), kept inline: a ring of 8, 0 for none.
    private var recentSerials = SIMD8<UInt32>()
    private var recentNext = 0
    /// `ack` and `ping`.
    var controlBucket: TokenBucket
    /// Its side of the chat it is in, while paired (or away).
    @usableFromInline var side: ChatSide?
    /// Its last partner and whom it keeps away from (B.5): made when its first chat ends, so that a connection
    /// that is still in its first chat, or never had one, carries only this reference.
    var moderation: MemberModeration?

    static let recentLimit = 8

    init(queryInterests: [String], now: UInt64) {
        self.queryInterests = queryInterests
        controlBucket = TokenBucket(tokens: Member2.controlBurst, at: now)
    }

    static let controlRatePerSecond = 50.0
    static let controlBurst = 100.0

    func remember(partnerSerial: UInt32) {
        recentSerials[recentNext] = partnerSerial
        recentNext = (recentNext + 1) % Member2.recentLimit
    }

    /// For the matchmaker, when the member queues (not per message).
    var recent: [UInt32] {
        var out: [UInt32] = []
        for i in 0..<Member2.recentLimit where recentSerials[i] != 0 { out.append(recentSerials[i]) }
        return out
    }
}

/// One version 2 client's side of one chat: its resume token, the messages sent to it and not yet acknowledged,
/// and the last message id it sent. Dies with the chat (the token with it).
@usableFromInline
final class ChatSide {
    var token: ResumeToken
    /// `seq` of the last message sent (or kept) for this client in this chat.
    @usableFromInline var sentSeq: UInt64 = 0
    /// The last `id` accepted from this client in this chat (0: none).
    @usableFromInline var lastID: UInt64 = 0
    @usableFromInline var ring = ReplayRing()
    /// The pairing, repeated in `resumed`.
    let common: [String]
    let random: Bool
    /// ms: while away, when the chat ends unless the client comes back; 0 while it is connected.
    @usableFromInline var awayDeadline: UInt64 = 0
    /// ms: when the chat began (a `next` soon after feeds the abuse score, B.5).
    var pairedAt: UInt64 = 0
    /// While away: its address's identity key (the connection, which knew the address, is gone).
    var awayAddress = IdentityKey(rawValue: 0)

    @usableFromInline var isAway: Bool { awayDeadline != 0 }

    init(token: ResumeToken, common: [String], random: Bool) {
        self.token = token
        self.common = common
        self.random = random
    }
}

/// The unacknowledged messages to one client, oldest first, at most `maxMessages` and `maxBytes` of text: the
/// escaped text as relayed, and its `seq`. Empty, it holds no memory; once used, its storage stays for the chat
/// (so that a chat in progress allocates nothing per message) and goes with it.
@usableFromInline
struct ReplayRing {
    @usableFromInline static let maxMessages = 64
    @usableFromInline static let maxBytes = 64 * 1024

    @usableFromInline struct Entry {
        @usableFromInline var seq: UInt64
        @usableFromInline var length: Int

        @inlinable init(seq: UInt64, length: Int) {
            self.seq = seq
            self.length = length
        }
    }

    /// The texts, back to back; `head` bytes at the front belong to entries already dropped.
    @usableFromInline var bytes: [UInt8] = []
    @usableFromInline var head = 0
    @usableFromInline var entries: [Entry] = []
    @usableFromInline var first = 0
    /// Bytes of text held now.
    @usableFromInline var heldBytes = 0

    @usableFromInline init() {}

    var count: Int { entries.count - first }
    var isEmpty: Bool { count == 0 }

    /// Keeps `text` as message `seq` if it fits in what is left of the bounds; false (and nothing kept) when it
    /// does not: nothing unacknowledged is ever forgotten to make room.
    @inlinable
    mutating func keep(seq: UInt64, _ text: UnsafeRawBufferPointer) -> Bool {
        guard entries.count - first < ReplayRing.maxMessages && heldBytes + text.count <= ReplayRing.maxBytes else {
            return false
        }
        compactIfWorthIt()
        bytes.append(contentsOf: text)
        entries.append(Entry(seq: seq, length: text.count))
        heldBytes += text.count
        return true
    }

    /// The client has everything up to `seq`.
    mutating func acknowledge(through seq: UInt64) {
        while first < entries.count && entries[first].seq <= seq { dropFirst() }
        if first == entries.count { clear(keepingCapacity: true) }
    }

    /// Each kept message above `seq`, oldest first.
    func forEach(after seq: UInt64, _ body: (UInt64, UnsafeRawBufferPointer) -> Void) {
        var offset = head
        bytes.withUnsafeBytes { all in
            for e in entries[first...] {
                if e.seq > seq { body(e.seq, UnsafeRawBufferPointer(rebasing: all[offset..<(offset + e.length)])) }
                offset += e.length
            }
        }
    }

    mutating func clear(keepingCapacity: Bool) {
        bytes.removeAll(keepingCapacity: keepingCapacity)
        entries.removeAll(keepingCapacity: keepingCapacity)
        head = 0
        first = 0
        heldBytes = 0
    }

    @inlinable
    mutating func dropFirst() {
        head += entries[first].length
        heldBytes -= entries[first].length
        first += 1
    }

    /// Dropped entries and bytes are reclaimed when they are at least half of what is stored, so each byte is moved
    /// at most once on average and storage stays within twice the bound.
    @inlinable
    mutating func compactIfWorthIt() {
        if first > 0 && first * 2 >= entries.count {
            entries.removeFirst(first)
            first = 0
        }
        if head > 0 && head * 2 >= bytes.count {
            bytes.removeFirst(head)
            head = 0
        }
    }
}

/// A resume token: which side (the peer slot it was issued to) and 128 bits from the kernel's CSPRNG. On the wire
/// it is base64url without padding of the slot (4 bytes, big-endian) and the secret (16 bytes): 27 characters.
struct ResumeToken: Equatable {
    var slot: UInt32
    var secret: (UInt64, UInt64)

    static let textLength = 27

    static func == (a: ResumeToken, b: ResumeToken) -> Bool { a.slot == b.slot && a.matches(b.secret) }

    /// Constant time in the secret: no early exit on the first differing bit.
    func matches(_ other: (UInt64, UInt64)) -> Bool {
        (secret.0 ^ other.0) | (secret.1 ^ other.1) == 0
    }

    static func random(slot: UInt32, using generator: inout some RandomNumberGenerator) -> ResumeToken {
        ResumeToken(slot: slot, secret: (generator.next(), generator.next()))
    }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20)
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: slot >> UInt32(shift))) }
        for word in [secret.0, secret.1] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return out
    }

    /// Appends the token's text form (no quotes).
    func appendText(into out: inout [UInt8]) {
        Base64.encode(bytes, url: true, into: &out)
    }

    /// nil unless `text` is exactly a token's text form.
    init?(text: UnsafeRawBufferPointer) {
        guard text.count == ResumeToken.textLength, let raw = Base64.decodeURL(text), raw.count == 20 else { return nil }
        var slot: UInt32 = 0
        for i in 0..<4 { slot = slot << 8 | UInt32(raw[i]) }
        var a: UInt64 = 0, b: UInt64 = 0
        for i in 4..<12 { a = a << 8 | UInt64(raw[i]) }
        for i in 12..<20 { b = b << 8 | UInt64(raw[i]) }
        self.init(slot: slot, secret: (a, b))
    }

    init(slot: UInt32, secret: (UInt64, UInt64)) {
        self.slot = slot
        self.secret = secret
    }
}

/// The random generator tokens are drawn from, held by reference.
final class TokenSource {
    private var generator: any RandomNumberGenerator

    init(_ generator: any RandomNumberGenerator) { self.generator = generator }

    func next() -> UInt64 { generator.next() }
}
