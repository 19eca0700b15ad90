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
    public internal(set) var routing: Routing
    public var counters: ChatCounters { _counters }
    @usableFromInline var _counters = ChatCounters()
    /// Peers in the chat on this node now: joined and not yet left (stubs of other nodes' clients are not counted).
    public private(set) var memberCount = 0
    /// The members of the cluster's other nodes (from the last heartbeat; 0 on a single node).
    public var remoteOnline = 0
    /// This node's number in the cluster (1-4095), which its resume tokens carry; 0 on a single node.
    public var tokenNode: UInt32 = 0
    /// The `online` count: this node's members and the cluster's others.
    @inlinable public var onlineCount: Int { memberCount + remoteOnline }
    /// A peer started waiting since the shell last armed its interest timer (`deadlinesSeen()`): the earliest
    /// deadline may have moved, so `nextDeadline` is worth a look.
    public internal(set) var deadlinesChanged = false
    /// True once the server drains: partners are not told `partner_left` (the stranger did not leave; the
    /// server is going away, and the 1001 close says so).
    public private(set) var isDraining = false

    /// One member's state, 40 bytes: every open chat connection carries one.
    @usableFromInline
    struct Peer {
        @usableFromInline var buckets = PeerBuckets()
        /// The online count this peer was last told.
        @usableFromInline var lastOnline: Int32 = -1
        /// The member's serial (bits 0-29: the name others' repeat-avoidance lists know it by), whether it is a
        /// stub (bit 30) and whether it speaks version 2 (bit 31).
        @usableFromInline var tag: UInt32 = 0
        /// Its address's record while it is a member; nil otherwise.
        @usableFromInline var address: AddressRecord?
        @usableFromInline var interests: [String] = []
        /// A stub: the member is another node's client whose chat is here (a cluster); its socket is there. Bit 30
        /// of the tag, so that the record stays 40 bytes.
        @usableFromInline var remote: Bool {
            get { tag & ChatService.remoteBit != 0 }
            set { tag = newValue ? tag | ChatService.remoteBit : tag & ~ChatService.remoteBit }
        }

        @usableFromInline init() {}
    }

    /// By `PeerID.rawValue`; the shell's peer ids are small dense slot numbers.
    @usableFromInline var peers: [Peer] = []
    private var addresses = AddressTable()
    @usableFromInline let frames = ChatFrames()
    var scratch: [UInt8] = []

    // Version 2 (PROTOCOL.md B.1, B.2). Nothing here grows with version 1 members.
    /// Version 2 members, and the away sides whose slots are held for a resume.
    @usableFromInline var members2: [PeerID: Member2] = [:]
    /// Away sides by deadline (the grace is the same for all, so drop order is deadline order); an entry whose side
    /// came back or ended is skipped when it comes up.
    var graceQueue: [GraceEntry] = []
    private var graceHead = 0
    /// Sides away now (their slots held).
    public internal(set) var awayCount = 0
    var lastSerial: UInt32 = 0
    /// Version 2 members that have offered an image (B.3), by sender: the offer bucket and the open offer.
    var imageSenders: [PeerID: ImageSender] = [:]
    /// Version 2 members that have made or been asked for a call (B.4): their buckets and their call.
    var callMembers: [PeerID: CallMember] = [:]
    /// The `ice` object of a call's `start`, and the wall clock its TURN credentials expire by (seconds since 1970,
    /// from the shell: the service reads no clock of its own).
    let iceServers: ICEServers
    let unixTime: @Sendable () -> UInt64
    /// Where resume tokens come from: the kernel's CSPRNG in the server, a seeded generator in tests. Behind a
    /// reference, so that the service holds no existential of its own (which made the shell copy the whole service
    /// to read one of its fields).
    let entropy: TokenSource
    /// Reports, bans, blocks and abuse scores (B.5): keyed hashes and times, bounded, expiring.
    public let moderation: ModerationMemory
    /// Members that came with a token or an identity cookie (or a group), by peer; nobody else has an entry.
    var identities: [PeerID: PeerIdentity] = [:]

    @usableFromInline static var v2Bit: UInt32 { 1 << 31 }
    @usableFromInline static var remoteBit: UInt32 { 1 << 30 }
    static var serialMask: UInt32 { remoteBit - 1 }

    struct GraceEntry {
        var deadline: UInt64
        var peer: PeerID
        var side: ObjectIdentifier
    }

    /// `unixTime` is the wall clock in seconds, read only when a call starts (0 suits a service that never
    /// starts calls with TURN servers: tests and benchmarks).
    public init(settings: ChatSettings, outbox: Outbox, routing: Routing,
                entropy: any RandomNumberGenerator = SystemRandomNumberGenerator(),
                unixTime: @escaping @Sendable () -> UInt64 = { 0 }) {
        self.settings = settings
        self.outbox = outbox
        self.routing = routing
        self.entropy = TokenSource(entropy)
        self.iceServers = ICEServers(settings.ice)
        self.unixTime = unixTime
        self.moderation = ModerationMemory(settings: settings.moderation)
    }

    // MARK: - Joining and leaving

    /// The global and per-address caps for a new chat connection, checked before the upgrade is answered. Returns
    /// the `Retry-After` seconds for a 503, or nil to admit (which counts against the address's rate).
    public mutating func admit(address: ClientAddress, now: UInt64) -> Int? {
        guard settings.rateLimitsEnabled else { return nil }
        // Away sides hold a slot and up to a ring of messages each: they count against the global cap too.
        if memberCount + awayCount >= settings.maxConnections { return 10 }
        let record = addresses.record(address.perAddressKey, now: now, settings: settings)
        if record.openChats >= settings.maxConnectionsPerAddress { return 30 }
        let perMinute = Double(settings.newConnectionsPerMinutePerAddress)
        addresses.touched(record, now: now)
        if !record.connections.take(now: now, rate: perMinute / 60, burst: perMinute) { return 60 }
        return nil
    }

    /// A peer upgraded to the chat: it hears the online count, then a version 1 peer is queued (`waiting` or
    /// `paired`); a version 2 peer waits for its `start` or `resume` (B.1).
    /// `identity` is what the shell verified at the upgrade (a token, an identity cookie), if anything.
    public mutating func join(_ peer: PeerID, address: ClientAddress, interests: [String],
                              version: ProtocolVersion = .v1, identity: PeerIdentity = .anonymous, now: UInt64) {
        let i = Int(peer.rawValue)
        if peers.count <= i {
            peers.append(contentsOf: repeatElement(Peer(), count: i + 1 - peers.count))
        }
        precondition(peers[i].address == nil && members2[peer] == nil, "a peer joined twice, or joined a held slot")
        memberCount += 1
        let record = addresses.record(address.perAddressKey, now: now, settings: settings)
        addresses.opened(record)
        peers[i].buckets = PeerBuckets(full: settings, now: now)
        peers[i].lastOnline = Int32(clamping: onlineCount)
        peers[i].address = record
        peers[i].interests = interests
        lastSerial = lastSerial == ChatService.serialMask ? 1 : lastSerial + 1
        peers[i].tag = lastSerial | (version == .v2 ? ChatService.v2Bit : 0)
        if identity.key != nil || identity.group != nil { identities[peer] = identity }
        // Built in the service's scratch buffer and framed straight into the peer's output: no arrays per join.
        sendEvent(to: peer, now: now) { [count = onlineCount] in ChatEventEncoder.online(count: count, into: &$0) }
        if version == .v2 {
            members2[peer] = Member2(queryInterests: interests, now: now)
        } else {
            queue(peer, now: now)
        }
    }

    /// The one way out of the chat (close frame, TCP close, error, shutdown, slow consumer): the partner is told,
    /// the queue forgets the peer, the counts drop. Idempotent, so every path of the shell may call it.
    public mutating func leave(_ peer: PeerID, now: UInt64) {
        guard isMember(peer) else { return }
        part(peer, now: now)
        endMembership(peer, now: now)
        forget(peer)
    }

    /// The connection ended without a close frame (TCP close, a read error, no pong): a version 2 member in a chat
    /// is away (B.2): its partner hears `partner_away`, the chat and the peer's slot are held for the grace period.
    /// Anyone else leaves. `isHeld` tells the shell to keep the slot until `ChatOutbox.release`.
    public mutating func drop(_ peer: PeerID, now: UInt64) {
        guard isMember(peer) else { return }
        // Its chat is on another node: that node holds (or ends) it.
        if routing.isHostedElsewhere(peer) {
            routing.endHosting(peer, dropped: true)
            return leave(peer, now: now)
        }
        guard isV2(peer), !isDraining, settings.resumeGraceSeconds > 0, let side = members2[peer]?.side,
              let partner = routing.partner(of: peer) else {
            leave(peer, now: now)
            return
        }
        side.awayDeadline = now + UInt64(settings.resumeGraceSeconds) * 1000
        // Its partner may still report it (B.5), by address when it has no token or cookie.
        if let record = peers[Int(peer.rawValue)].address { side.awayAddress = IdentityKeys.address(record.key) }
        endMembership(peer, now: now)
        endOffers(peer, partner)
        awayCount += 1
        _counters.drops &+= 1
        graceQueue.append(GraceEntry(deadline: side.awayDeadline, peer: peer, side: ObjectIdentifier(side)))
        deadlinesChanged = true
        if isV2(partner), let partnerSide = members2[partner]?.side, !partnerSide.isAway {
            deliver(ChatFrames.partnerAway(grace: settings.resumeGraceSeconds), to: partner, now: now)
        }
        // The call does not wait for the resume (Calls.swift): the present side hears `end` after `partner_away`.
        endCall(of: peer, notify: isMember(partner), now: now)
    }

    /// An away side's slot: the shell keeps it (no new connection takes the number) until the service releases it.
    public func isHeld(_ peer: PeerID) -> Bool {
        !isMember(peer) && members2[peer]?.side?.isAway == true
    }

    /// Not counted online any more; its address's record lets go. Settings stay (an away side keeps them).
    mutating func endMembership(_ peer: PeerID, now: UInt64) {
        let i = Int(peer.rawValue)
        guard let record = peers[i].address else { return }
        peers[i].address = nil
        if !peers[i].remote { memberCount -= 1 }
        addresses.closed(record, now: now)
    }

    /// Nothing of the slot's last occupant is left.
    mutating func forget(_ peer: PeerID) {
        let i = Int(peer.rawValue)
        peers[i].interests = []
        peers[i].tag = 0
        peers[i].remote = false
        if !members2.isEmpty { members2[peer] = nil }
        if !imageSenders.isEmpty { imageSenders[peer] = nil }
        if !callMembers.isEmpty { callMembers[peer] = nil }
        if !identities.isEmpty { identities[peer] = nil }
    }

    /// An away side whose chat is over: its slot goes back to the shell.
    mutating func release(_ peer: PeerID) {
        forget(peer)
        awayCount -= 1
        outbox.release(peer)
    }

    /// A stub's address record (ClusterChat.swift), opened like a member's.
    mutating func addressRecord(_ address: ClientAddress, now: UInt64) -> AddressRecord {
        let record = addresses.record(address.perAddressKey, now: now, settings: settings)
        addresses.opened(record)
        return record
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

    /// A paired version 2 member: the shell pings it sooner, so that a dead connection is noticed in seconds.
    /// Mutating only so that the shell's sweep reads it in place (see `takeNextDeadline`).
    public mutating func wantsQuickPings(_ peer: PeerID) -> Bool {
        isMember(peer) && isV2(peer) && routing.partner(of: peer) != nil
    }

    @inlinable
    func isV2(_ peer: PeerID) -> Bool { peers[Int(peer.rawValue)].tag & ChatService.v2Bit != 0 }

    public mutating func beginDrain() { isDraining = true }

    // MARK: - Commands

    // The per-message path is inlinable so that a caller in another module (the relay microbenchmark) runs the
    // same specialised code as the server, not a generic copy of it.

    /// One text message from a member.
    @inlinable
    public mutating func receive(_ payload: UnsafeRawBufferPointer, from peer: PeerID, now: UInt64) {
        let version: ProtocolVersion = isV2(peer) ? .v2 : .v1
        switch ChatCommandDecoder.decode(payload, maxScalars: settings.maxTextScalars, version: version) {
        case .failure(let code):
            refuse(peer, code, now: now)
        case .success(.message(let range, _, let id)):
            guard let partner = routing.partner(of: peer) else {
                refuse(peer, .notPaired, now: now)
                return
            }
            if settings.rateLimitsEnabled && !allowMessage(from: peer, now: now) {
                refuseRate(peer, now: now)
                return
            }
            let text = UnsafeRawBufferPointer(rebasing: payload[range])
            if (peers[Int(peer.rawValue)].tag | peers[Int(partner.rawValue)].tag) & ChatService.v2Bit == 0 {
                relay(text, to: partner, now: now)
            } else {
                relayInChat2(text, id: id, from: peer, to: partner, now: now)
            }
        case .success(.typing(let active)):
            guard let partner = routing.partner(of: peer) else { return }
            if settings.rateLimitsEnabled && !peers[Int(peer.rawValue)].buckets.take(.typing, now: now, settings: settings) {
                refuseRate(peer, now: now)
                return
            }
            // To an away partner, typing is dropped (B.2).
            if isV2(partner) && members2[partner]?.side?.isAway == true { return }
            deliver(active ? frames.typingOn : frames.typingOff, to: partner, now: now)
        case .success(.next):
            guard allowNext(from: peer, now: now) else { return }
            next(peer, now: now)
        case .success(.stop):
            guard allowNext(from: peer, now: now) else { return }
            part(peer, now: now)
        case .success(.start(let interests, let images)):
            guard allowNext(from: peer, now: now) else { return }
            start(peer, interests: interests, images: images, now: now)
        case .success(.ack(let seq)):
            guard allowControl(from: peer, now: now) else { return }
            acknowledge(seq, from: peer, now: now)
        case .success(.ping):
            guard allowControl(from: peer, now: now) else { return }
            deliver(frames.pong, to: peer, now: now)
        case .success(.resume(let token, let seq)):
            guard allowNext(from: peer, now: now) else { return }
            resume(UnsafeRawBufferPointer(rebasing: payload[token]), seq: seq, on: peer, now: now)
        case .success(.imageOffer(let id, let type, let bytes)):
            offerImage(peer, id: id, type: type, bytes: bytes, now: now)
        case .success(.imageAnswer(let id, let accept)):
            guard allowControl(from: peer, now: now) else { return }
            answerImage(peer, id: id, accept: accept, now: now)
        case .success(.call(let action)):
            // `request` has a bucket of its own (Calls.swift); answers and `end` are control traffic.
            if case .request = action {} else { guard allowControl(from: peer, now: now) else { return } }
            call(action, from: peer, now: now)
        case .success(.signal(let data)):
            signal(UnsafeRawBufferPointer(rebasing: payload[data]), from: peer, now: now)
        case .success(.report(let reason)):
            guard allowNext(from: peer, now: now) else { return }
            moderate(peer, report: reason, now: now)
        case .success(.block):
            guard allowNext(from: peer, now: now) else { return }
            moderate(peer, report: nil, now: now)
        }
    }

    /// A message in a chat with a version 2 side: the sender's `id` must grow; the receiver's copy carries its
    /// `seq` and is kept until acknowledged; an away receiver's copy is only kept, within the ring's bound.
    @inlinable
    mutating func relayInChat2(_ text: UnsafeRawBufferPointer, id: UInt64?, from peer: PeerID, to partner: PeerID,
                               now: UInt64) {
        let senderSide = isV2(peer) ? members2[peer]?.side : nil
        if let id, let senderSide {
            guard id > senderSide.lastID else {
                refuse(peer, .badRequest, now: now)
                return
            }
        }
        guard isV2(partner), let side = members2[partner]?.side else {
            if let id, let senderSide { senderSide.lastID = id }
            relay(text, to: partner, now: now)
            return
        }
        // Kept until acknowledged. Away, a message that does not fit is refused (a version 1 sender has no
        // `partner_away` code, B.7). Connected, a full ring refuses the sender until the client acks: forgetting the
        // oldest would leave a gap a resume could not fill. Only a text larger than the whole ring (possible with
        // `--max-message-bytes` above 64 KiB) goes out without being kept.
        let seq = side.sentSeq &+ 1
        if !side.ring.keep(seq: seq, text) && (side.isAway || text.count <= ReplayRing.maxBytes) {
            if side.isAway {
                refuse(peer, isV2(peer) ? .partnerAway : .rateLimited, now: now)
            } else {
                _counters.ringFullRefusals &+= 1
                refuseRate(peer, now: now)
            }
            return
        }
        if let id, let senderSide { senderSide.lastID = id }
        side.sentSeq = seq
        if side.isAway {
            _counters.messagesKept &+= 1
            return
        }
        let outstanding = outbox.relay(escapedText: text, seq: side.sentSeq, to: partner)
        _counters.messagesRelayed &+= 1
        if outstanding > settings.outgoingCap { dropSlowConsumer(partner, now: now) }
    }

    /// `ack` and `ping` share a generous bucket of their own.
    @usableFromInline
    mutating func allowControl(from peer: PeerID, now: UInt64) -> Bool {
        guard settings.rateLimitsEnabled, let member = members2[peer] else { return true }
        if member.controlBucket.take(now: now, rate: Member2.controlRatePerSecond, burst: Member2.controlBurst) {
            return true
        }
        refuseRate(peer, now: now)
        return false
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

    /// An event built for this one send (an image answer, a call's `start`, a signal), framed by the outbox.
    mutating func sendEvent(to peer: PeerID, now: UInt64, _ build: (inout [UInt8]) -> Void) {
        scratch.removeAll(keepingCapacity: true)
        build(&scratch)
        let outstanding = scratch.withUnsafeBytes { outbox.sendText($0, to: peer) }
        if outstanding > settings.outgoingCap { dropSlowConsumer(peer, now: now) }
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
        if code == .rateLimited || code == .badRequest { scoreRefusal(peer, now: now) }
    }

    @usableFromInline
    mutating func refuseRate(_ peer: PeerID, now: UInt64) {
        _counters.rateLimitHits &+= 1
        refuse(peer, .rateLimited, now: now)
    }

    // MARK: - Pairing

    @usableFromInline
    mutating func next(_ peer: PeerID, now: UInt64) {
        if isV2(peer) { scoreNext(peer, now: now) }
        part(peer, now: now)
        queue(peer, now: now)
    }

    /// Out of the pair (the partner is told, unless the server is draining or the partner is away: then its held
    /// side ends too) or the queue. The peer's own chat side (and so its token) ends.
    @usableFromInline
    mutating func part(_ peer: PeerID, now: UInt64) {
        let ownSide = isV2(peer) ? members2[peer]?.side : nil
        if isV2(peer) { members2[peer]?.side = nil }
        guard let partner = routing.part(peer) else { return }
        // Each version 2 side remembers the other for a while: it may still report or block it (B.5). A side
        // that is away is known by the address its chat side kept.
        if isV2(peer) { remember(partner, as: peer, now: now) }
        if isV2(partner) { remember(peer, as: partner, now: now, awayAddress: ownSide?.awayAddress) }
        endOffers(peer, partner)
        endCall(of: peer, notify: false, now: now)
        if isV2(partner), let member = members2[partner], let side = member.side {
            member.side = nil
            if side.isAway {
                release(partner)
                return
            }
        }
        if !isDraining { deliver(frames.partnerLeft, to: partner, now: now) }
    }

    mutating func queue(_ peer: PeerID, now: UInt64, sayWaiting: Bool = true) {
        guard isMember(peer) else { return }   // dropped for its backlog on the way here
        let i = Int(peer.rawValue)
        // A stub queues on its own node (which holds its socket, and its place in the queue).
        if peers[i].remote { return handBack(peer, now: now) }
        var avoid: [UInt32] = []
        var identity: UInt64 = 0
        var avoidIdentities: [UInt64] = []
        var pool = PairingPool.main
        if isV2(peer), let member = members2[peer] {
            avoid = member.recent
            if let m = member.moderation {
                avoid += m.avoidSerials
                avoidIdentities = m.avoidKeys
            }
        }
        // Nothing of this is looked up for a client without a token or cookie while nobody was ever quarantined:
        // the common case queues exactly as before.
        if !identities.isEmpty || moderation.quarantinesTotal > 0 {
            let (key, strong, _) = identityKey(of: peer)
            if strong {
                identity = key.rawValue
                if moderation.blockCount > 0 { avoidIdentities += moderation.blocked(by: key, now: now) }
            }
            pool = self.pool(of: peer, key: key, now: now)
        }
        if let pairing = routing.enqueue(peer, interests: peers[i].interests, serial: peers[i].tag & ChatService.serialMask,
                                         avoid: avoid, identity: identity, avoidIdentities: avoidIdentities, pool: pool,
                                         now: now &* 1_000_000) {
            announce(pairing, now: now)
        } else {
            deadlinesChanged = true
            if sayWaiting {
                if routing.answersLater { routing.owesWaiting(peer) } else { deliver(frames.waiting, to: peer, now: now) }
            }
        }
    }

    /// Back into the queue, in the pool it belongs to now, without a second `waiting`.
    mutating func requeue(_ peer: PeerID, now: UInt64) {
        queue(peer, now: now, sayWaiting: false)
    }

    mutating func announce(_ pairing: Pairing, now: UInt64) {
        _counters.pairsMade &+= 1
        let a = pairing.a, b = pairing.b
        let outstanding: (Int, Int)
        if !isV2(a) && !isV2(b) {
            scratch.removeAll(keepingCapacity: true)
            ChatEventEncoder.paired(common: pairing.common, random: pairing.random, into: &scratch)
            outstanding = scratch.withUnsafeBytes { payload in
                (outbox.sendText(payload, to: a), outbox.sendText(payload, to: b))
            }
        } else {
            outstanding = (announce(pairing, to: a, partner: b, now: now), announce(pairing, to: b, partner: a, now: now))
        }
        // Both hear of the pairing before either is dropped for its backlog.
        if outstanding.0 > settings.outgoingCap { dropSlowConsumer(a, now: now) }
        if outstanding.1 > settings.outgoingCap { dropSlowConsumer(b, now: now) }
    }

    /// One side's `paired`: a version 2 side gets its chat side, its token and what its partner accepts, and
    /// remembers the partner (repeat avoidance).
    private mutating func announce(_ pairing: Pairing, to peer: PeerID, partner: PeerID, now: UInt64) -> Int {
        scratch.removeAll(keepingCapacity: true)
        if isV2(peer), let member = members2[peer] {
            let partnerSerial = peers[Int(partner.rawValue)].tag & ChatService.serialMask
            member.remember(partnerSerial: partnerSerial)
            let side = ChatSide(token: newToken(for: peer), common: pairing.common, random: pairing.random)
            side.pairedAt = now
            member.side = side
            // A version 1 partner takes no image offers (B.7).
            let partnerImages = isV2(partner) && members2[partner]?.images == true
            ChatEventEncoder.paired(common: pairing.common, random: pairing.random, token: side.token,
                                    grace: settings.resumeGraceSeconds, partnerImages: partnerImages, into: &scratch)
        } else {
            ChatEventEncoder.paired(common: pairing.common, random: pairing.random, into: &scratch)
        }
        return scratch.withUnsafeBytes { outbox.sendText($0, to: peer) }
    }

    /// In a cluster a token names its node too (`tokenNode`, bits 20-31 of the slot), so that any node can find
    /// the chat it belongs to; 0 on a single node (and for a slot past 2^20, which then resumes only here).
    mutating func newToken(for peer: PeerID) -> ResumeToken {
        let node = peer.rawValue < ChatService.tokenSlotLimit ? tokenNode << 20 : 0
        return ResumeToken(slot: peer.rawValue | node, secret: (entropy.next(), entropy.next()))
    }

    static var tokenSlotLimit: UInt32 { 1 << 20 }

    // MARK: - Version 2: start, ack, resume

    /// `start`: queue with these settings; while queued or paired it is `next` with them (B.1).
    @usableFromInline
    mutating func start(_ peer: PeerID, interests: [String]?, images: Bool, now: UInt64) {
        guard let member = members2[peer] else { return }
        // A server that takes no images (`--max-image-bytes 0`) has no member that accepts them.
        member.images = images && settings.maxImageBytes > 0
        peers[Int(peer.rawValue)].interests = interests ?? member.queryInterests
        next(peer, now: now)
    }

    @usableFromInline
    mutating func acknowledge(_ seq: UInt64, from peer: PeerID, now: UInt64) {
        // After the chat ended an ack is about nothing: no answer.
        guard let side = members2[peer]?.side else { return }
        guard seq <= side.sentSeq else {
            refuse(peer, .badRequest, now: now)
            return
        }
        side.ring.acknowledge(through: seq)
    }

    /// `resume` (B.2): the token names one side of one chat; that side moves to this connection, which hears
    /// `resumed`, then every kept message above `seq`, then live traffic. The old connection, if the server still
    /// has it, is closed with 4001; the partner hears `partner_back` if it was told `partner_away`.
    @usableFromInline
    mutating func resume(_ text: UnsafeRawBufferPointer, seq: UInt64, on peer: PeerID, now: UInt64) {
        guard let fresh = members2[peer], routing.partner(of: peer) == nil, !routing.isQueued(peer),
              let token = ResumeToken(text: text) else { return failResume(peer, now: now) }
        // A token of another node (a cluster): the routing finds where that chat is now.
        let node = token.slot >> 20
        if node != 0 && node != tokenNode {
            if routing.resumeElsewhere(peer, node: node, slot: token.slot & (ChatService.tokenSlotLimit - 1),
                                       secret: token.secret, seq: seq) { return }
            return failResume(peer, now: now)
        }
        var slot = token.slot & (ChatService.tokenSlotLimit - 1)
        // A token the cluster rewrote (node 0 on a cluster node: the place a moved chat was taken up) may name a
        // slot its side has left since (it resumed there, and its `resumed` never reached the client): the side is
        // found by its secret, which is unique. Only on this path, and a resume is rate-limited.
        if node == 0 && tokenNode != 0
            && !(Int(slot) < peers.count && members2[PeerID(rawValue: slot)]?.side?.token.matches(token.secret) == true),
           let found = members2.first(where: { $0.key != peer && $0.value.side?.token.matches(token.secret) == true }) {
            slot = found.key.rawValue
        }
        guard slot != peer.rawValue, Int(slot) < peers.count else { return failResume(peer, now: now) }
        let old = PeerID(rawValue: slot)
        guard isV2(old), let member = members2[old], let side = member.side, side.token.matches(token.secret),
              seq <= side.sentSeq, let partner = routing.partner(of: old)
        else { return failResume(peer, now: now) }

        let wasAway = side.isAway
        endOffers(old, partner)   // (an away side's died with its drop)
        endCall(of: old, notify: true, now: now)   // likewise; a connection taken over has no call on the new one
        let (o, n) = (Int(old.rawValue), Int(peer.rawValue))
        let freshTag = peers[n].tag
        // The person moves to this connection: settings, partner history, buckets, serial and chat side.
        members2[peer] = member
        if let sender = imageSenders.removeValue(forKey: old) { imageSenders[peer] = sender }
        if let caller = callMembers.removeValue(forKey: old) { callMembers[peer] = caller }
        peers[n].interests = peers[o].interests
        peers[n].buckets = peers[o].buckets
        // (A stub's side may resume on a connection of this node: the new slot keeps what it is.)
        peers[n].tag = peers[o].tag & ~ChatService.remoteBit | freshTag & ChatService.remoteBit
        routing.rebind(old, to: peer)
        side.token = newToken(for: peer)
        side.awayDeadline = 0
        side.ring.acknowledge(through: seq)
        _counters.resumes &+= 1
        if wasAway {
            release(old)
        } else {
            // The old connection is still open: it keeps a blank record, leaves quietly (it has no partner any
            // more) and is closed with 4001.
            members2[old] = fresh
            peers[o].tag = freshTag & ~ChatService.remoteBit | peers[o].tag & ChatService.remoteBit
            leave(old, now: now)
            outbox.close(old, .resumedElsewhere)
        }

        let partnerMember = isV2(partner) ? members2[partner] : nil
        scratch.removeAll(keepingCapacity: true)
        ChatEventEncoder.resumed(token: side.token, grace: settings.resumeGraceSeconds, id: side.lastID,
                                 common: side.common, random: side.random,
                                 partnerImages: partnerMember?.images == true, into: &scratch)
        var outstanding = scratch.withUnsafeBytes { outbox.sendText($0, to: peer) }
        side.ring.forEach(after: seq) { s, message in
            outstanding = outbox.relay(escapedText: message, seq: s, to: peer)
            _counters.messagesReplayed &+= 1
        }
        if outstanding > settings.outgoingCap { return dropSlowConsumer(peer, now: now) }
        if let partnerSide = partnerMember?.side {
            if partnerSide.isAway {
                let left = partnerSide.awayDeadline > now ? (partnerSide.awayDeadline - now + 999) / 1000 : 0
                deliver(ChatFrames.partnerAway(grace: Int(left)), to: peer, now: now)
            } else if wasAway {
                deliver(frames.partnerBack, to: partner, now: now)
            }
        }
    }

    mutating func failResume(_ peer: PeerID, now: UInt64) {
        _counters.resumeFailures &+= 1
        refuse(peer, .resumeFailed, now: now)
    }

    /// When `expire(now:)` next has work, in milliseconds (rounded up), if ever.
    public var nextDeadline: UInt64? {
        let match = routing.nextDeadline.map { $0 / 1_000_000 + ($0 % 1_000_000 == 0 ? 0 : 1) }
        guard graceHead < graceQueue.count else { return match }
        return min(match ?? .max, graceQueue[graceHead].deadline)
    }

    /// The shell has armed its timer for `nextDeadline`.
    public mutating func deadlinesSeen() { deadlinesChanged = false }

    /// `deadlinesSeen()`, then `nextDeadline`: mutating, so that the shell reads it in place (a non-mutating read
    /// of the service through the server's stored property made Swift copy the whole service, every call).
    public mutating func takeNextDeadline() -> UInt64? {
        deadlinesChanged = false
        return nextDeadline
    }

    /// Interest waits that ran out by `now` fall back to a random match; away sides whose grace ran out end their
    /// chats (the partner hears `partner_left`; B.2).
    public mutating func expire(now: UInt64) {
        for pairing in routing.expire(now: now &* 1_000_000) { announce(pairing, now: now) }
        while graceHead < graceQueue.count && graceQueue[graceHead].deadline <= now {
            let entry = graceQueue[graceHead]
            graceHead += 1
            guard !isMember(entry.peer), let side = members2[entry.peer]?.side, ObjectIdentifier(side) == entry.side,
                  side.awayDeadline == entry.deadline else { continue }
            _counters.graceExpired &+= 1
            part(entry.peer, now: now)
            release(entry.peer)
        }
        if graceHead == graceQueue.count {
            graceQueue.removeAll(keepingCapacity: graceQueue.count <= 1024)
            graceHead = 0
        } else if graceHead >= 1024 && graceHead * 2 >= graceQueue.count {
            graceQueue.removeFirst(graceHead)
            graceHead = 0
        }
    }

    // MARK: - The online count

    /// Every member hears the count when it differs from the last count it was told: at most once per call (the
    /// shell's interval), and never a repeat.
    public mutating func broadcastOnline(now: UInt64) {
        let count = Int32(clamping: onlineCount)
        var frame: [UInt8] = []
        for i in peers.indices where peers[i].address != nil && peers[i].lastOnline != count && !peers[i].remote {
            if frame.isEmpty { frame = ChatFrames.online(onlineCount) }
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
    // Version 2 (B.2).
    /// Connections that dropped out of a chat and were held for a resume.
    public var drops: UInt64 = 0
    public var resumes: UInt64 = 0
    public var resumeFailures: UInt64 = 0
    /// Held chats that ended because the grace ran out.
    public var graceExpired: UInt64 = 0
    /// Messages kept for an away partner, and messages sent again after a resume.
    public var messagesKept: UInt64 = 0
    public var messagesReplayed: UInt64 = 0
    /// Messages refused (`rate_limited`) because the connected receiver had not acknowledged a full ring.
    public var ringFullRefusals: UInt64 = 0
    // Images (B.3).
    public var imageOffers: UInt64 = 0
    public var imageAccepts: UInt64 = 0
    public var imageDeclines: UInt64 = 0
    public var imagesRelayed: UInt64 = 0
    /// Cleaned image bytes sent to receivers, and the bytes the cleaner took out (metadata and trailing data).
    public var imageBytesRelayed: UInt64 = 0
    public var imageBytesRemoved: UInt64 = 0
    // Calls (B.4).
    /// `request`s that rang, and those the server declined for a version 1 partner (also in `callsDeclined`).
    public var callsRequested: UInt64 = 0
    public var callsAccepted: UInt64 = 0
    public var callsDeclined: UInt64 = 0
    /// `start` pairs sent.
    public var callsStarted: UInt64 = 0
    /// Calls that rang or ran and then ended: `end`, the chat's end, a drop (not a `decline`).
    public var callsEnded: UInt64 = 0
    public var signalsRelayed: UInt64 = 0
    public var signalBytesRelayed: UInt64 = 0
    // Reports and blocks (B.5).
    /// By `ReportReason.rawValue`.
    public var reports = [UInt64](repeating: 0, count: ReportReason.allCases.count)
    public var blocks: UInt64 = 0
}
