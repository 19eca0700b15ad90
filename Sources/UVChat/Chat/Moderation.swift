/// Reports, blocks, bans and the abuse score in the chat (PROTOCOL.md B.5), over the memory in
/// `Moderation/ModerationMemory.swift`. The service never sees a token, a cookie or an address as such here: the
/// shell resolves them at the upgrade into keyed hashes (`IdentityKeys`), and only those, times and reasons are kept.

/// Who a connection is, as far as the chat needs to know: its strongest identity (a verified token's `sub`, else the
/// signed identity cookie) and its operator group. Without either, the client address stands in (`IdentityKeys`).
public struct PeerIdentity: Sendable, Equatable {
    /// The token's key, else the cookie's; nil for a client that presented neither.
    public var key: IdentityKey?
    /// The cookie's key when `key` is the token's (a ban of either holds).
    public var cookieKey: IdentityKey?
    /// The verified token's `grp`.
    public var group: String?
    /// `key` is a token's (the operator vouches for it; a ban of it does not reach its address).
    public var isToken: Bool

    public init(key: IdentityKey? = nil, cookieKey: IdentityKey? = nil, group: String? = nil, isToken: Bool = false) {
        self.key = key
        self.cookieKey = cookieKey
        self.group = group
        self.isToken = isToken
    }

    public static let anonymous = PeerIdentity()
}

/// Keyed hashes of identities: SipHash (the standard library's `Hasher`) under a key drawn at random when the
/// process starts, so a key names one identity for this process's life and nothing outside it can be computed from
/// it, or linked to it, after the process ends. Each kind has its own domain, so a token `sub` can never equal a
/// cookie id or an address.
public enum IdentityKeys {
    public static func token(subject: String) -> IdentityKey {
        var h = Hasher()
        h.combine(UInt8(1))
        h.combine(subject)
        return key(h)
    }

    public static func cookie(_ cookie: IdentityCookie) -> IdentityKey {
        key(domain: 2, cookie.high, cookie.low)
    }

    /// The per-address key (an IPv4 address or an IPv6 /64), as every per-address limit counts it.
    public static func address(_ address: ClientAddress) -> IdentityKey {
        let a = address.perAddressKey
        return key(domain: 3, a.high, a.low)
    }

    private static func key(domain: UInt8, _ high: UInt64, _ low: UInt64) -> IdentityKey {
        var h = Hasher()
        h.combine(domain)
        h.combine(high)
        h.combine(low)
        return key(h)
    }

    /// 0 is "no identity" in the matchmaker.
    private static func key(_ h: Hasher) -> IdentityKey {
        let v = UInt64(bitPattern: Int64(h.finalize()))
        return IdentityKey(rawValue: v == 0 ? 1 : v)
    }
}

/// What a version 2 member remembers of its last partner, so that it can report or block it for a while after the
/// chat ended (B.5).
struct LastPartner {
    /// The partner's identity (strong or its address's), whether that was a strong one, and whether a token's.
    var key: IdentityKey
    var strong: Bool
    var token: Bool
    /// Its address's key, banned with a strong identity so that clearing cookies does not escape the ban.
    var addressKey: IdentityKey
    var serial: UInt32
    /// ms: the chat's end.
    var ended: UInt64
    var reported = false
    var blocked = false
}

/// The moderation side of one version 2 member, from its first chat's end on.
final class MemberModeration {
    var last: LastPartner?
    /// Whom it blocked or reported on this connection: serials (everyone) and strong identities; bounded.
    var avoidSerials: [UInt32] = []
    var avoidKeys: [UInt64] = []

    static let avoidLimit = 32
}

extension ChatService {
    /// The key a member is known by for reports, scores and bans: its strong identity, else its address's.
    func identityKey(of peer: PeerID) -> (key: IdentityKey, strong: Bool, address: IdentityKey) {
        let i = Int(peer.rawValue)
        let address = peers[i].address.map { IdentityKeys.address($0.key) }
            ?? members2[peer]?.side?.awayAddress ?? IdentityKey(rawValue: 1)
        if let key = identities[peer]?.key { return (key, true, address) }
        return (address, false, address)
    }

    /// At a chat's end: `member` may report or block `other` for a while.
    mutating func remember(_ other: PeerID, as member: PeerID, now: UInt64, awayAddress: IdentityKey? = nil) {
        guard let m = members2[member] else { return }
        var (key, strong, address) = identityKey(of: other)
        if let awayAddress, awayAddress.rawValue != 0, peers[Int(other.rawValue)].address == nil {
            address = awayAddress
            if !strong { key = awayAddress }
        }
        let record = m.moderation ?? MemberModeration()
        record.last = LastPartner(key: key, strong: strong, token: identities[other]?.isToken == true, addressKey: address,
                                  serial: peers[Int(other.rawValue)].tag & ChatService.serialMask, ended: now)
        m.moderation = record
    }

    /// Milliseconds of ban left for a client about to upgrade, if it is banned: a token or cookie identity is judged
    /// by those; a client with neither by its address (so that clearing cookies does not escape a ban, B.5).
    public func banRemaining(identity: PeerIdentity, address: ClientAddress, now: UInt64) -> UInt64? {
        guard moderation.hasBans else { return nil }
        if let key = identity.key {
            var left = moderation.banRemaining(key, now: now)
            if let cookie = identity.cookieKey, let more = moderation.banRemaining(cookie, now: now) {
                left = max(left ?? 0, more)
            }
            return left
        }
        return moderation.banRemaining(IdentityKeys.address(address), now: now)
    }

    // MARK: - report and block

    /// `report` and `block` (B.5): about the partner (the chat ends first: the partner hears `partner_left`, the
    /// sender is idle), or the last partner within the report grace; once each per partner.
    @usableFromInline
    mutating func moderate(_ peer: PeerID, report reason: ReportReason?, now: UInt64) {
        guard members2[peer] != nil else { return }
        // While paired the chat ends first; that is when both sides remember each other.
        if routing.partner(of: peer) != nil { part(peer, now: now) }
        guard let mine = members2[peer]?.moderation, var last = mine.last,
              now &- last.ended <= settings.reportGraceMillis,
              reason == nil ? !last.blocked : !last.reported else {
            return refuse(peer, .nothingToReport, now: now)
        }
        let (me, meStrong, _) = identityKey(of: peer)
        // Either keeps the two apart from now on: this connection by serial (and by the other's strong identity),
        // and a strong identity for the block's lifetime (the memory), when both have one.
        mine.remember(avoiding: last)
        let counts = last.key != me   // two clients of one address without cookies are one identity
        if counts && meStrong && last.strong { moderation.block(last.key, by: me, now: now) }
        if let reason {
            last.reported = true
            _counters.reports[reason.rawValue] &+= 1
            if counts {
                let wasQuarantined = moderation.isQuarantined(last.key, now: now)
                if case .banned = moderation.report(last.key, by: me, reason: reason, now: now) {
                    banned(last, now: now)
                } else if !wasQuarantined && moderation.isQuarantined(last.key, now: now) {
                    // The report's weight put it over the line: its waiting connections move now.
                    quarantined(last.key, now: now)
                }
            }
        } else {
            last.blocked = true
            _counters.blocks &+= 1
            if counts && moderation.record(.blocked, for: last.key, now: now) { quarantined(last.key, now: now) }
        }
        mine.last = last
        deliver(reason == nil ? frames.blocked : frames.reported, to: peer, now: now)
    }

    /// The reported identity reached the threshold: a cookie identity's address is banned too (it holds only for
    /// upgrades that show no token or cookie: clearing cookies does not escape), and every open connection of the
    /// identity itself is closed with 1008. Others at the same address who are chatting now are left alone. A
    /// token's `sub` is banned alone: the operator, who issues tokens, decides who gets a new one.
    private mutating func banned(_ last: LastPartner, now: UInt64) {
        if last.strong && !last.token { moderation.ban(last.addressKey, now: now) }
        var targets: [PeerID] = []
        for i in peers.indices where peers[i].address != nil {
            let peer = PeerID(rawValue: UInt32(i))
            if identityKey(of: peer).key == last.key || identities[peer]?.cookieKey == last.key { targets.append(peer) }
        }
        for peer in targets where isMember(peer) {
            leave(peer, now: now)
            outbox.close(peer, .banned)
        }
    }

    // MARK: - The abuse score

    /// A refused command counts against its sender's identity (README, "What feeds the abuse score").
    @usableFromInline
    mutating func scoreRefusal(_ peer: PeerID, now: UInt64) {
        guard settings.moderation.quarantineScore > 0, isMember(peer) else { return }
        let key = identityKey(of: peer).key
        if moderation.record(.refusal, for: key, now: now) { quarantined(key, now: now) }
    }

    /// A `next` within 3 s of being paired: a bot skimming the queue does this all day, a person now and then.
    mutating func scoreNext(_ peer: PeerID, now: UInt64) {
        guard settings.moderation.quarantineScore > 0, let side = members2[peer]?.side,
              routing.partner(of: peer) != nil, now &- side.pairedAt < 3000 else { return }
        let key = identityKey(of: peer).key
        if moderation.record(.quickNext, for: key, now: now) { quarantined(key, now: now) }
    }

    /// An identity just went into quarantine: those of its connections that wait in the queue now move to the
    /// quarantined pool, so that no one of it waits where it can no longer be paired.
    mutating func quarantined(_ key: IdentityKey, now: UInt64) {
        var waiting: [PeerID] = []
        for i in peers.indices where peers[i].address != nil {
            let peer = PeerID(rawValue: UInt32(i))
            if routing.isQueued(peer) && identityKey(of: peer).key == key { waiting.append(peer) }
        }
        for peer in waiting { requeue(peer, now: now) }
    }

    /// The pool a member queues in.
    func pool(of peer: PeerID, key: IdentityKey, now: UInt64) -> PairingPool {
        let group = identities[peer]?.group
        let quarantined = settings.moderation.quarantineScore > 0 && moderation.isQuarantined(key, now: now)
        return group == nil && !quarantined ? .main : PairingPool(group: group, quarantined: quarantined)
    }

    /// Once a second: the memory's amortised cleanup.
    public mutating func pruneModeration(now: UInt64) {
        moderation.prune(now: now)
    }
}

extension MemberModeration {
    func remember(avoiding last: LastPartner) {
        if !avoidSerials.contains(last.serial) {
            if avoidSerials.count == MemberModeration.avoidLimit { avoidSerials.removeFirst() }
            avoidSerials.append(last.serial)
        }
        if last.strong && !avoidKeys.contains(last.key.rawValue) {
            if avoidKeys.count == MemberModeration.avoidLimit { avoidKeys.removeFirst() }
            avoidKeys.append(last.key.rawValue)
        }
    }
}
