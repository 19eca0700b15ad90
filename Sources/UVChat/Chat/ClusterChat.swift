/// The chat service's entry points for a cluster node (`ClusterRouting`, `Cluster/ClusterWire.swift`): pairs that
/// Redis made, stubs for other nodes' clients whose chat is here, and members of this node whose chat is elsewhere.
/// Sans-IO like the rest: the shell calls these with what Redis or another node said.
extension ChatService where Routing == ClusterRouting {
    /// In a cluster, serials name members across nodes (repeat avoidance): each node starts at a random point of the
    /// 31-bit space, so that two nodes' serials seldom meet (a collision only keeps two strangers apart once).
    public mutating func seedSerials(_ seed: UInt32) {
        lastSerial = seed & ChatService.serialMask
    }

    /// Redis paired two waiting members (both still waiting, the shell checked): `a` waited longer.
    public mutating func clusterPaired(_ a: PeerID, _ b: PeerID, common: [String], random: Bool, now: UInt64) {
        let pairing = Pairing(a: a, b: b, common: common, random: random)
        routing.adopt(pairing)
        announce(pairing, now: now)
    }

    /// Pairs the local queue made outside a command (Redis went away and its waiters queued here).
    public mutating func announce(_ pairings: [Pairing], now: UInt64) {
        for pairing in pairings { announce(pairing, now: now) }
    }

    /// Redis lost or found: the waiters move between the queues.
    public mutating func setClustered(_ on: Bool, now: UInt64) {
        let (pairings, owed) = routing.setClustered(on, now: now * 1_000_000)
        announce(pairings, now: now)
        for peer in owed where isMember(peer) { deliver(frames.waiting, to: peer, now: now) }
        deadlinesChanged = true
    }

    /// Redis says `peer` waits: it hears `waiting` if it is owed one.
    public mutating func clusterWaiting(_ peer: PeerID, now: UInt64) {
        if routing.confirmWaiting(peer) && isMember(peer) { deliver(frames.waiting, to: peer, now: now) }
    }

    /// Another node's client, paired with one of ours: its chat is here, its socket there. The stub is a member
    /// that is not counted online here (its node counts it), hears no online count, and never queues here.
    public mutating func joinStub(_ stub: PeerID, address: ClientAddress, version: ProtocolVersion, images: Bool,
                                  serial: UInt32, interests: [String], now: UInt64) {
        let i = Int(stub.rawValue)
        if peers.count <= i {
            peers.append(contentsOf: repeatElement(Peer(), count: i + 1 - peers.count))
        }
        precondition(peers[i].address == nil && members2[stub] == nil, "a stub joined a slot in use")
        let record = addressRecord(address, now: now)
        peers[i].buckets = PeerBuckets(full: settings, now: now)
        peers[i].lastOnline = -1
        peers[i].address = record
        peers[i].interests = interests
        peers[i].tag = (serial & ChatService.serialMask) | ChatService.remoteBit | (version == .v2 ? ChatService.v2Bit : 0)
        if version == .v2 {
            let member = Member2(queryInterests: interests, now: now)
            member.images = images && settings.maxImageBytes > 0
            members2[stub] = member
        }
    }

    /// What a waiting member's Redis entry says of it (read in place, hence mutating).
    public mutating func clusterProfile(of peer: PeerID) -> ClusterProfile {
        let i = Int(peer.rawValue)
        return ClusterProfile(version: isV2(peer) ? .v2 : .v1, images: members2[peer]?.images ?? false,
                              address: peers[i].address?.key ?? .unknown)
    }

    public func isStub(_ peer: PeerID) -> Bool {
        let i = Int(peer.rawValue)
        return i < peers.count && peers[i].remote
    }

    /// This node's member `peer` was paired on `node`: its chat is there from now on.
    public mutating func hostedElsewhere(_ peer: PeerID, on node: String, entry: UInt64) {
        routing.host(peer, on: node, entry: entry)
    }

    /// The node that held `peer`'s chat is gone (reaped, or Redis lost): the chat is over, and the member hears
    /// `partner_left` unless `notify` is false (the home closed it).
    public mutating func hostedChatEnded(_ peer: PeerID, notify: Bool, now: UInt64) {
        guard routing.unhost(peer) != nil else { return }
        if notify && isMember(peer) && !isDraining { deliver(frames.partnerLeft, to: peer, now: now) }
    }

    /// The home handed `peer` back: its chat there is over and it queues again, with what it asked for there.
    public mutating func returned(_ peer: PeerID, interests: [String], images: Bool, recent: [UInt32], now: UInt64) {
        guard routing.unhost(peer) != nil, isMember(peer) else { return }
        peers[Int(peer.rawValue)].interests = interests
        if let member = members2[peer] {
            member.images = images && settings.maxImageBytes > 0
            for serial in recent { member.remember(partnerSerial: serial) }
        }
        queue(peer, now: now)
    }
}

extension ChatService {
    /// A stub's `next` or `start`: it queues on its own node. The stub is forgotten (its slot goes back to the
    /// shell), and its node hears what it queues with and whom it just met.
    mutating func handBack(_ peer: PeerID, now: UInt64) {
        let i = Int(peer.rawValue)
        let interests = peers[i].interests
        let member = members2[peer]
        let images = member?.images ?? false
        let recent = member?.recent ?? []
        endMembership(peer, now: now)
        forget(peer)
        outbox.handBack(peer, interests: interests, images: images, recent: recent)
    }
}
