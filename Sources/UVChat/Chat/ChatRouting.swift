/// The seam between the chat's rules and "who is paired with whom, and where a message goes". The service asks
/// the routing to queue, pair and part peers, and asks it who a peer's partner is before each delivery; it never
/// looks at the queue itself. `LocalRouting` is the single-process answer (the matchmaker and a partner table); a
/// cluster backend is a second implementation of this protocol, not a flag in the service.
public protocol ChatRouting {
    /// Queues `peer` (giving up any place it had); the pairing made at once, or nil when it waits. `serial` names
    /// the peer in others' `avoid` lists; it is never paired with a peer whose serial is in its `avoid`, nor with
    /// one whose `avoid` holds its serial (repeat avoidance).
    mutating func enqueue(_ peer: PeerID, interests: [String], serial: UInt32, avoid: [UInt32], now: UInt64) -> Pairing?
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
}

/// Pairs within this process: the FIFO matchmaker and one partner slot per peer (peer ids are small, dense
/// connection slot numbers, so the table is an array).
public struct LocalRouting: ChatRouting {
    private let matchmaker: Matchmaker
    private static let noPartner = UInt32.max
    private var partners: [UInt32] = []

    public init(interestTimeoutNanos: UInt64) {
        matchmaker = Matchmaker(interestTimeoutNanos: interestTimeoutNanos)
    }

    public mutating func enqueue(_ peer: PeerID, interests: [String], serial: UInt32, avoid: [UInt32],
                                 now: UInt64) -> Pairing? {
        guard let pairing = matchmaker.enqueue(peer, interests: interests, serial: serial, avoid: avoid, now: now)
        else { return nil }
        record(pairing)
        return pairing
    }

    public mutating func part(_ peer: PeerID) -> PeerID? {
        matchmaker.remove(peer)
        let i = Int(peer.rawValue)
        guard i < partners.count, partners[i] != LocalRouting.noPartner else { return nil }
        let partner = partners[i]
        partners[i] = LocalRouting.noPartner
        partners[Int(partner)] = LocalRouting.noPartner
        return PeerID(rawValue: partner)
    }

    public mutating func expire(now: UInt64) -> [Pairing] {
        let pairings = matchmaker.expire(now: now)
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

    public func isQueued(_ peer: PeerID) -> Bool { matchmaker.isQueued(peer) }
    public var nextDeadline: UInt64? { matchmaker.nextDeadline }
    public var waitingCount: Int { matchmaker.count }

    private mutating func record(_ pairing: Pairing) {
        let needed = Int(max(pairing.a.rawValue, pairing.b.rawValue)) + 1
        if partners.count < needed {
            partners.append(contentsOf: repeatElement(LocalRouting.noPartner, count: needed - partners.count))
        }
        partners[Int(pairing.a.rawValue)] = pairing.b.rawValue
        partners[Int(pairing.b.rawValue)] = pairing.a.rawValue
    }
}
