/// The chat (PROTOCOL.md, "Client to server", "Pairing", "Guarantees") as a sans-IO service: the shell tells it
/// that a peer joined, sent a command or left, and passes the time in (milliseconds); the service decides, and
/// writes through `Outbox`. It knows nothing of sockets, and a unit test drives it with a recording outbox and a
/// number for a clock.
///
/// Generic over the outbox and the routing so that the server's use is specialised: a relayed message is one
/// decode, one routing lookup, two bucket checks and one append, with no action array and no allocation.
public struct ChatService<Outbox: ChatOutbox, Routing: ChatRouting> {
    public let settings: ChatSettings
    public var outbox: Outbox
    public private(set) var routing: Routing
    public var counters: ChatCounters { _counters }
    @usableFromInline var _counters = ChatCounters()
    /// Peers in the chat now (the `online` count): joined and not yet left.
    public private(set) var memberCount = 0
    /// A peer started waiting since the shell last armed its interest timer (`deadlinesSeen()`): the earliest
    /// deadline may have moved, so `nextDeadline` is worth a look.
    public private(set) var deadlinesChanged = false
    /// True once the server drains: partners are not told `partner_left` (the stranger did not leave; the
    /// server is going away, and the 1001 close says so).
    public private(set) var isDraining = false

    /// One member's state, 40 bytes: every open chat connection carries one.
    @usableFromInline
    struct Peer {
        @usableFromInline var buckets = PeerBuckets()
        /// The online count this peer was last told.
        @usableFromInline var lastOnline: Int32 = -1
        /// Its address's record while it is a member; nil otherwise.
        @usableFromInline var address: AddressRecord?
        @usableFromInline var interests: [String] = []

        @usableFromInline init() {}
    }

    /// By `PeerID.rawValue`; the shell's peer ids are small dense slot numbers.
    @usableFromInline var peers: [Peer] = []
    private var addresses = AddressTable()
    @usableFromInline let frames = ChatFrames()
    private var scratch: [UInt8] = []

    public init(settings: ChatSettings, outbox: Outbox, routing: Routing) {
        self.settings = settings
        self.outbox = outbox
        self.routing = routing
    }

    // MARK: - Joining and leaving

    /// The global and per-address caps for a new chat connection, checked before the upgrade is answered. Returns
    /// the `Retry-After` seconds for a 503, or nil to admit (which counts against the address's rate).
    public mutating func admit(address: ClientAddress, now: UInt64) -> Int? {
        guard settings.rateLimitsEnabled else { return nil }
        if memberCount >= settings.maxConnections { return 10 }
        let record = addresses.record(address.perAddressKey, now: now, settings: settings)
        if record.openChats >= settings.maxConnectionsPerAddress { return 30 }
        let perMinute = Double(settings.newConnectionsPerMinutePerAddress)
        addresses.touched(record, now: now)
        if !record.connections.take(now: now, rate: perMinute / 60, burst: perMinute) { return 60 }
        return nil
    }

    /// A peer upgraded to the chat: it hears the online count, then is queued (`waiting` or `paired`).
    public mutating func join(_ peer: PeerID, address: ClientAddress, interests: [String], now: UInt64) {
        let i = Int(peer.rawValue)
        if peers.count <= i {
            peers.append(contentsOf: repeatElement(Peer(), count: i + 1 - peers.count))
        }
        precondition(peers[i].address == nil, "a peer joined twice")
        memberCount += 1
        let record = addresses.record(address.perAddressKey, now: now, settings: settings)
        addresses.opened(record)
        peers[i].buckets = PeerBuckets(full: settings, now: now)
        peers[i].lastOnline = Int32(clamping: memberCount)
        peers[i].address = record
        peers[i].interests = interests
        deliver(ChatFrames.online(memberCount), to: peer, now: now)
        queue(peer, now: now)
    }

    /// The one way out of the chat (close frame, TCP close, error, shutdown, slow consumer): the partner is told,
    /// the queue forgets the peer, the counts drop. Idempotent, so every path of the shell may call it.
    public mutating func leave(_ peer: PeerID, now: UInt64) {
        let i = Int(peer.rawValue)
        guard i < peers.count, let record = peers[i].address else { return }
        part(peer, now: now)
        peers[i].address = nil
        peers[i].interests = []
        memberCount -= 1
        addresses.closed(record, now: now)
    }

    /// Per-address records held now (bounded; see `AddressTable`).
    var addressCount: Int { addresses.count }

    public func isMember(_ peer: PeerID) -> Bool {
        let i = Int(peer.rawValue)
        return i < peers.count && peers[i].address != nil
    }

    /// Where a member stands, for the metrics.
    public func status(of peer: PeerID) -> PeerStatus {
        guard isMember(peer) else { return .absent }
        if routing.partner(of: peer) != nil { return .paired }
        return routing.isQueued(peer) ? .queued : .idle
    }

    public mutating func beginDrain() { isDraining = true }

    // MARK: - Commands

    // The per-message path is inlinable so that a caller in another module (the relay microbenchmark) runs the
    // same specialised code as the server, not a generic copy of it.

    /// One text message from a member.
    @inlinable
    public mutating func receive(_ payload: UnsafeRawBufferPointer, from peer: PeerID, now: UInt64) {
        switch ChatCommandDecoder.decode(payload, maxScalars: settings.maxTextScalars) {
        case .failure(let code):
            refuse(peer, code, now: now)
        case .success(.message(let range, _)):
            guard let partner = routing.partner(of: peer) else {
                refuse(peer, .notPaired, now: now)
                return
            }
            if settings.rateLimitsEnabled && !allowMessage(from: peer, now: now) {
                refuseRate(peer, now: now)
                return
            }
            relay(UnsafeRawBufferPointer(rebasing: payload[range]), to: partner, now: now)
        case .success(.typing(let active)):
            guard let partner = routing.partner(of: peer) else { return }
            if settings.rateLimitsEnabled && !peers[Int(peer.rawValue)].buckets.take(.typing, now: now, settings: settings) {
                refuseRate(peer, now: now)
                return
            }
            deliver(active ? frames.typingOn : frames.typingOff, to: partner, now: now)
        case .success(.next):
            guard allowNext(from: peer, now: now) else { return }
            next(peer, now: now)
        case .success(.stop):
            guard allowNext(from: peer, now: now) else { return }
            part(peer, now: now)
        }
    }

    /// The peer's own bucket, then (when configured) the one its address shares.
    @inlinable
    mutating func allowMessage(from peer: PeerID, now: UInt64) -> Bool {
        let i = Int(peer.rawValue)
        guard peers[i].buckets.take(.message, now: now, settings: settings) else { return false }
        guard settings.addressRatePerSecond > 0, let record = peers[i].address else { return true }
        return record.messages.take(now: now, rate: settings.addressRatePerSecond, burst: settings.addressRateBurst)
    }

    /// `next` and `stop` share a bucket; refused, the command is not carried out.
    @usableFromInline
    mutating func allowNext(from peer: PeerID, now: UInt64) -> Bool {
        if !settings.rateLimitsEnabled || peers[Int(peer.rawValue)].buckets.take(.next, now: now, settings: settings) {
            return true
        }
        refuseRate(peer, now: now)
        return false
    }

    /// One append to the partner's output: the frame header, then the event with the sender's already-validated
    /// JSON string literal copied verbatim.
    @inlinable
    mutating func relay(_ escapedText: UnsafeRawBufferPointer, to partner: PeerID, now: UInt64) {
        let outstanding = outbox.relay(escapedText: escapedText, to: partner)
        _counters.messagesRelayed &+= 1
        if outstanding > settings.outgoingCap { dropSlowConsumer(partner, now: now) }
    }

    /// Every frame for a peer goes through here or `relay`: whatever the event, a receiver whose waiting bytes pass
    /// the cap is closed (1008) and its partner is told it left.
    @inlinable
    mutating func deliver(_ frame: [UInt8], to peer: PeerID, now: UInt64) {
        if outbox.send(frame, to: peer) > settings.outgoingCap { dropSlowConsumer(peer, now: now) }
    }

    @usableFromInline
    mutating func dropSlowConsumer(_ peer: PeerID, now: UInt64) {
        guard isMember(peer) else { return }
        _counters.slowConsumerCloses &+= 1
        leave(peer, now: now)
        outbox.close(peer, .slowConsumer)
    }

    @inlinable
    mutating func refuse(_ peer: PeerID, _ code: ChatErrorCode, now: UInt64) {
        _counters.refused[code.index] &+= 1
        deliver(frames.error(code), to: peer, now: now)
    }

    @usableFromInline
    mutating func refuseRate(_ peer: PeerID, now: UInt64) {
        _counters.rateLimitHits &+= 1
        refuse(peer, .rateLimited, now: now)
    }

    // MARK: - Pairing

    @usableFromInline
    mutating func next(_ peer: PeerID, now: UInt64) {
        part(peer, now: now)
        queue(peer, now: now)
    }

    /// Out of the pair (the partner is told, unless the server is draining) or the queue.
    @usableFromInline
    mutating func part(_ peer: PeerID, now: UInt64) {
        if let partner = routing.part(peer), !isDraining {
            deliver(frames.partnerLeft, to: partner, now: now)
        }
    }

    private mutating func queue(_ peer: PeerID, now: UInt64) {
        guard isMember(peer) else { return }   // dropped for its backlog on the way here
        if let pairing = routing.enqueue(peer, interests: peers[Int(peer.rawValue)].interests, now: now &* 1_000_000) {
            announce(pairing, now: now)
        } else {
            deadlinesChanged = true
            deliver(frames.waiting, to: peer, now: now)
        }
    }

    private mutating func announce(_ pairing: Pairing, now: UInt64) {
        _counters.pairsMade &+= 1
        scratch.removeAll(keepingCapacity: true)
        ChatEventEncoder.paired(common: pairing.common, random: pairing.random, into: &scratch)
        let (a, b) = scratch.withUnsafeBytes { payload in
            (outbox.sendText(payload, to: pairing.a), outbox.sendText(payload, to: pairing.b))
        }
        // Both hear of the pairing before either is dropped for its backlog.
        if a > settings.outgoingCap { dropSlowConsumer(pairing.a, now: now) }
        if b > settings.outgoingCap { dropSlowConsumer(pairing.b, now: now) }
    }

    /// When `expire(now:)` next has work, in milliseconds (rounded up), if ever.
    public var nextDeadline: UInt64? {
        routing.nextDeadline.map { $0 / 1_000_000 + ($0 % 1_000_000 == 0 ? 0 : 1) }
    }

    /// The shell has armed its timer for `nextDeadline`.
    public mutating func deadlinesSeen() { deadlinesChanged = false }

    /// Interest waits that ran out by `now` fall back to a random match.
    public mutating func expire(now: UInt64) {
        for pairing in routing.expire(now: now &* 1_000_000) { announce(pairing, now: now) }
    }

    // MARK: - The online count

    /// Every member hears the count when it differs from the last count it was told: at most once per call (the
    /// shell's interval), and never a repeat.
    public mutating func broadcastOnline(now: UInt64) {
        let count = Int32(clamping: memberCount)
        var frame: [UInt8] = []
        for i in peers.indices where peers[i].address != nil && peers[i].lastOnline != count {
            if frame.isEmpty { frame = ChatFrames.online(memberCount) }
            peers[i].lastOnline = count
            deliver(frame, to: PeerID(rawValue: UInt32(i)), now: now)
        }
    }
}

public enum PeerStatus: Equatable, Sendable {
    case absent, idle, queued, paired
}

/// What the service counts, rendered by the server's metrics.
public struct ChatCounters: Sendable {
    public var pairsMade: UInt64 = 0
    public var messagesRelayed: UInt64 = 0
    /// By `ChatErrorCode.index`.
    public var refused = [UInt64](repeating: 0, count: ChatErrorCode.allCases.count)
    public var rateLimitHits: UInt64 = 0
    public var slowConsumerCloses: UInt64 = 0
}
