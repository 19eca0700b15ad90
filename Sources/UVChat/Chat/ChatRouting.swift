/// The seam between the chat's rules and "who is paired with whom, and where a message goes". The service asks
/// the routing to queue, pair and part peers, and asks it who a peer's partner is before each delivery; it never
/// looks at the queue itself. `LocalRouting` is the single-process answer (the matchmaker and a partner table); a
/// cluster backend is a second implementation of this protocol, not a flag in the service.
public protocol ChatRouting {
    /// Queues `peer` (giving up any place it had); the pairing made at once, or nil when it waits. `serial` names
    /// the peer in others' `avoid` lists; it is never paired with a peer whose serial is in its `avoid`, nor with
    /// one whose `avoid` holds its serial (repeat avoidance).
    /// `identity` and `avoidIdentities` do the same for identities that outlive a connection (blocks, B.5; 0: none).
    /// A peer is only ever paired within its `pool` (its operator group, and whether it is quarantined).
    mutating func enqueue(_ peer: PeerID, interests: [String], serial: UInt32, avoid: [UInt32], identity: UInt64,
                          avoidIdentities: [UInt64], pool: PairingPool, now: UInt64) -> Pairing?
    /// Takes `peer` out of its pair or the queue; returns the partner it had, who is now idle.
    mutating func part(_ peer: PeerID) -> PeerID?
    /// Pairings due by `now` (interest waits that ran out), already recorded as pairs.
    mutating func expire(now: UInt64) -> [Pairing]
    func partner(of peer: PeerID) -> PeerID?
    /// A resumed side moves to its new connection: `new` (idle, not queued) takes `old`'s place in its pair.
    mutating func rebind(_ old: PeerID, to new: PeerID)
    func isQueued(_ peer: PeerID) -> Bool
    /// When `expire(now:)` next has work (nanoseconds, the service's clock), if ever.
    var nextDeadline: UInt64? { get }
    var waitingCount: Int { get }
    /// Records a pair made outside `enqueue` and `expire` (the cluster's queue in Redis); neither waits any more.
    mutating func adopt(_ pairing: Pairing)
    /// The peer's chat lives on another node (a cluster: `ClusterRouting`); its commands go there.
    func isHostedElsewhere(_ peer: PeerID) -> Bool
    /// A peer hosted elsewhere ended its connection (dropped, or left): its home node is to be told.
    mutating func endHosting(_ peer: PeerID, dropped: Bool)
    /// `enqueue` returned nil without knowing yet (the cluster's queue answers later): the peer hears `waiting` or
    /// `paired` when it does, as on one node, where a newcomer that is paired at once never hears `waiting`.
    var answersLater: Bool { get }
    /// The peer is owed a `waiting` once the queue says it waits.
    mutating func owesWaiting(_ peer: PeerID)
    /// A `resume` with the token of another node (a cluster): true when the routing takes it (it finds the chat and
    /// the peer hears `resumed` or `resume_failed` later); false: the resume fails now.
    mutating func resumeElsewhere(_ peer: PeerID, node: UInt32, slot: UInt32, secret: (UInt64, UInt64), seq: UInt64) -> Bool
}

/// Who may meet whom at all (B.5): clients whose operator token names a group meet only that group, clients without
/// one only each other; a quarantined identity meets only other quarantined ones (of its group).
public struct PairingPool: Hashable, Sendable {
    public var group: String?
    public var quarantined: Bool

    public init(group: String? = nil, quarantined: Bool = false) {
        self.group = group
        self.quarantined = quarantined
    }

    public static let main = PairingPool()
    @inline(__always) var isMain: Bool { group == nil && !quarantined }
}

/// Pairs within this process: one FIFO matchmaker per pool and one partner slot per peer (peer ids are small,
/// dense connection slot numbers, so the table is an array). The main pool is a field of its own, so that a server
/// without groups or quarantine does exactly what it did before; other pools exist while someone waits in them.
public struct LocalRouting: ChatRouting {
    private let matchmaker: Matchmaker
    private let interestTimeoutNanos: UInt64
    private var pools: [PairingPool: Matchmaker] = [:]
    /// Peers waiting in a pool other than the main one.
    private var poolOfPeer: [PeerID: PairingPool] = [:]
    private static let noPartner = UInt32.max
    private var partners: [UInt32] = []

    public init(interestTimeoutNanos: UInt64) {
        self.interestTimeoutNanos = interestTimeoutNanos
        matchmaker = Matchmaker(interestTimeoutNanos: interestTimeoutNanos)
    }

    public mutating func enqueue(_ peer: PeerID, interests: [String], serial: UInt32, avoid: [UInt32], identity: UInt64,
                                 avoidIdentities: [UInt64], pool: PairingPool, now: UInt64) -> Pairing? {
        removeFromQueue(peer)
        let queue: Matchmaker
        if pool.isMain {
            queue = matchmaker
        } else if let existing = pools[pool] {
            queue = existing
        } else {
            queue = Matchmaker(interestTimeoutNanos: interestTimeoutNanos)
            pools[pool] = queue
        }
        guard let pairing = queue.enqueue(peer, interests: interests, serial: serial, avoid: avoid, identity: identity,
                                          avoidIdentities: avoidIdentities, now: now)
        else {
            if !pool.isMain { poolOfPeer[peer] = pool }
            return nil
        }
        if !pool.isMain { forgetPeer(pairing.a, in: pool) }
        record(pairing)
        return pairing
    }

    private mutating func removeFromQueue(_ peer: PeerID) {
        guard !poolOfPeer.isEmpty, let pool = poolOfPeer[peer] else { return matchmaker.remove(peer) }
        pools[pool]?.remove(peer)
        forgetPeer(peer, in: pool)
    }

    /// `peer` no longer waits in `pool`; an empty pool goes.
    private mutating func forgetPeer(_ peer: PeerID, in pool: PairingPool) {
        poolOfPeer[peer] = nil
        if let queue = pools[pool], queue.count == 0 { pools[pool] = nil }
    }

    public mutating func part(_ peer: PeerID) -> PeerID? {
        removeFromQueue(peer)
        let i = Int(peer.rawValue)
        guard i < partners.count, partners[i] != LocalRouting.noPartner else { return nil }
        let partner = partners[i]
        partners[i] = LocalRouting.noPartner
        partners[Int(partner)] = LocalRouting.noPartner
        return PeerID(rawValue: partner)
    }

    public mutating func expire(now: UInt64) -> [Pairing] {
        var pairings = matchmaker.expire(now: now)
        if !pools.isEmpty {
            for (pool, queue) in pools {
                let made = queue.expire(now: now)
                for pairing in made {
                    poolOfPeer[pairing.a] = nil
                    poolOfPeer[pairing.b] = nil
                }
                if queue.count == 0 { pools[pool] = nil }
                pairings += made
            }
        }
        for pairing in pairings { record(pairing) }
        return pairings
    }

    @inline(__always)
    public func partner(of peer: PeerID) -> PeerID? {
        let i = Int(peer.rawValue)
        guard i < partners.count, partners[i] != LocalRouting.noPartner else { return nil }
        return PeerID(rawValue: partners[i])
    }

    public mutating func rebind(_ old: PeerID, to new: PeerID) {
        guard let partner = partner(of: old) else { return }
        partners[Int(old.rawValue)] = LocalRouting.noPartner
        record(Pairing(a: partner, b: new, common: [], random: true))
    }

    public func isQueued(_ peer: PeerID) -> Bool {
        matchmaker.isQueued(peer) || (!poolOfPeer.isEmpty && poolOfPeer[peer] != nil)
    }
    public var nextDeadline: UInt64? {
        // Asked after every queueing: the common case (no other pool) is one field read.
        guard !pools.isEmpty else { return matchmaker.nextDeadline }
        var earliest = matchmaker.nextDeadline
        for queue in pools.values {
            if let d = queue.nextDeadline { earliest = min(earliest ?? .max, d) }
        }
        return earliest
    }
    public var waitingCount: Int { matchmaker.count + poolOfPeer.count }

    public mutating func adopt(_ pairing: Pairing) { record(pairing) }
    @inline(__always) public func isHostedElsewhere(_ peer: PeerID) -> Bool { false }
    @inline(__always) public var answersLater: Bool { false }
    public mutating func owesWaiting(_ peer: PeerID) {}
    public mutating func resumeElsewhere(_ peer: PeerID, node: UInt32, slot: UInt32, secret: (UInt64, UInt64),
                                         seq: UInt64) -> Bool { false }
    public mutating func endHosting(_ peer: PeerID, dropped: Bool) {}

    private mutating func record(_ pairing: Pairing) {
        let needed = Int(max(pairing.a.rawValue, pairing.b.rawValue)) + 1
        if partners.count < needed {
            partners.append(contentsOf: repeatElement(LocalRouting.noPartner, count: needed - partners.count))
        }
        partners[Int(pairing.a.rawValue)] = pairing.b.rawValue
        partners[Int(pairing.b.rawValue)] = pairing.a.rawValue
    }
}
