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

// MARK: - Rolling restarts: chats leave a draining node and are taken up where a side resumes

extension ChatService where Routing == ClusterRouting {
    /// Every chat here whose two sides speak version 2 and are still in it, taken out whole (no `partner_left`:
    /// the chat goes on elsewhere) with the slots its sides had. Their connections are closed by the drain (1012);
    /// stubs among them are the shell's to forget; away sides' slots are released.
    public mutating func exportChats(now: UInt64) -> [(export: ChatExport, a: PeerID, b: PeerID)] {
        guard settings.resumeGraceSeconds > 0 else { return [] }
        var found: [(ChatExport, PeerID, PeerID)] = []
        for (p, member) in members2 {
            guard let side = member.side, let partner = routing.partner(of: p), p.rawValue < partner.rawValue,
                  isV2(partner), let partnerMember = members2[partner], let partnerSide = partnerMember.side
            else { continue }
            found.append((ChatExport(common: side.common, random: side.random,
                                     a: exportSide(p, side, member), b: exportSide(partner, partnerSide, partnerMember)),
                          p, partner))
        }
        for (_, a, b) in found {
            endOffers(a, b)
            endCall(of: a, notify: false, now: now)
            _ = routing.part(a)
            for x in [a, b] {
                let held = isHeld(x)
                members2[x]?.side = nil
                if held { release(x) }
            }
        }
        return found
    }

    private func exportSide(_ x: PeerID, _ side: ChatSide, _ member: Member2) -> ChatExport.Side {
        var ring: [ChatExport.Side.Kept] = []
        side.ring.forEach(after: 0) { seq, text in ring.append(.init(seq: seq, text: Array(text))) }
        let i = Int(x.rawValue)
        return ChatExport.Side(tokenSlot: side.token.slot, secretHigh: side.token.secret.0, secretLow: side.token.secret.1,
                               sentSeq: side.sentSeq, lastID: side.lastID, ring: ring, images: member.images,
                               interests: peers[i].interests, queryInterests: member.queryInterests,
                               recent: member.recent, serial: peers[i].tag & ChatService.serialMask,
                               address: peers[i].address?.key ?? .unknown)
    }

    /// A stub whose chat was exported: it is forgotten here (its node takes the chat up).
    public mutating func forgetStub(_ stub: PeerID, now: UInt64) {
        guard isStub(stub) else { return }
        endMembership(stub, now: now)
        forget(stub)
    }

    /// Takes up an exported chat: the side whose token named `tokenSlot` at `this`, the other at `other`. A side
    /// that is `live` is a connected member of this node (its chat moves here under it, and it hears
    /// `partner_away`); any other side is held away for the grace, for its resume (a token with the slot of its
    /// place here, which the cluster's `moved` record maps the old one to).
    public mutating func importChat(_ export: ChatExport, resuming tokenSlot: UInt32, this: PeerID, thisLive: Bool,
                                    other: PeerID, now: UInt64) -> Bool {
        guard let (t, o) = export.sides(resuming: tokenSlot),
              thisLive ? (isMember(this) && isV2(this) && members2[this]?.side == nil) : !isMember(this),
              !isMember(other), members2[other] == nil, this != other else { return false }
        place(t, at: this, live: thisLive, export, now: now)
        place(o, at: other, live: false, export, now: now)
        routing.adopt(Pairing(a: this, b: other, common: export.common, random: export.random))
        if thisLive { deliver(ChatFrames.partnerAway(grace: settings.resumeGraceSeconds), to: this, now: now) }
        return true
    }

    private mutating func place(_ s: ChatExport.Side, at slot: PeerID, live: Bool, _ export: ChatExport, now: UInt64) {
        let i = Int(slot.rawValue)
        let member: Member2
        if live, let existing = members2[slot] {
            member = existing
        } else {
            if peers.count <= i { peers.append(contentsOf: repeatElement(Peer(), count: i + 1 - peers.count)) }
            peers[i] = Peer()
            peers[i].tag = (s.serial & ChatService.serialMask) | ChatService.v2Bit
            peers[i].interests = s.interests
            member = Member2(queryInterests: s.queryInterests, now: now)
            members2[slot] = member
        }
        member.images = s.images && settings.maxImageBytes > 0
        for serial in s.recent { member.remember(partnerSerial: serial) }
        // The token keeps its secret; it now names this node and slot (the old one reaches it through the
        // cluster's `moved` record), so that a later drain of this node can export the chat again.
        let node = slot.rawValue < ChatService.tokenSlotLimit ? tokenNode << 20 : 0
        let side = ChatSide(token: ResumeToken(slot: slot.rawValue | node, secret: (s.secretHigh, s.secretLow)),
                            common: export.common, random: export.random)
        side.sentSeq = s.sentSeq
        side.lastID = s.lastID
        for kept in s.ring { _ = kept.text.withUnsafeBytes { side.ring.keep(seq: kept.seq, $0) } }
        side.pairedAt = now
        member.side = side
        if !live {
            side.awayDeadline = now + UInt64(settings.resumeGraceSeconds) * 1000
            awayCount += 1
            graceQueue.append(GraceEntry(deadline: side.awayDeadline, peer: slot, side: ObjectIdentifier(side)))
            deadlinesChanged = true
        }
    }

    /// The routing's `locate` found nothing: the resume fails (the client is idle and must `start`).
    public mutating func resumeNotFound(_ peer: PeerID, now: UInt64) {
        guard routing.unhost(peer) != nil, isMember(peer) else { return }
        failResume(peer, now: now)
    }

    /// Sends this member its own resume, with the token of the place its chat has here now (a local resume).
    public mutating func resumeHere(_ peer: PeerID, slot: UInt32, secret: (UInt64, UInt64), seq: UInt64, now: UInt64) {
        _ = routing.unhost(peer)
        guard isMember(peer) else { return }
        var text: [UInt8] = []
        ResumeToken(slot: slot, secret: secret).appendText(into: &text)
        text.withUnsafeBytes { resume($0, seq: seq, on: peer, now: now) }
    }
}
