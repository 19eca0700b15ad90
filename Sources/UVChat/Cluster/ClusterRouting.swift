/// The routing of a node in a cluster (`--redis`): who waits where, and which of this node's members have their
/// chat on another node. Sans-IO like the rest of the chat: queue calls come out as `ops` for the shell to send to
/// Redis, and Redis's answers come back in through the service's cluster entry points.
///
/// Pairs are kept in the same partner table as on one node (`LocalRouting`), so a relayed message costs what it
/// costs on one node whether its partner is a local client or the stub of a remote one. While Redis is unreachable
/// (or without `--redis`) the local matchmaker pairs, and the node is one server on its own; its waiters move to
/// Redis when it comes back.
public struct ClusterRouting: ChatRouting {
    /// A client waiting, with what it was queued with (so that it can move between Redis and the local queue).
    public struct Waiter: Equatable, Sendable {
        /// The queue entry, never reused by this node: it names the wait in Redis and, once paired, the stub.
        public var entry: UInt64
        public var interests: [String]
        public var serial: UInt32
        public var avoid: [UInt32]
        public var identity: UInt64
        public var avoidIdentities: [UInt64]
        public var pool: PairingPool
        public var inRedis: Bool
    }

    /// Where the chat of a member of this node lives.
    public struct Hosting: Equatable, Sendable {
        public var node: String
        public var entry: UInt64
    }

    public enum Op: Equatable, Sendable {
        /// Queue in Redis (giving up `replacing`, if it waited before).
        case enqueue(PeerID, Waiter, replacing: UInt64?)
        case dequeue(entry: UInt64)
        /// The interest wait of this entry ran out (its owner keeps the timer).
        case expire(PeerID, entry: UInt64)
        /// A member whose chat lives on another node ended its connection (dropped or left): tell the home.
        case ended(PeerID, Hosting, dropped: Bool)
        /// A `resume` with another node's token: find that chat (live there, moved, or exported by a drain).
        case locate(PeerID, node: UInt32, slot: UInt32, secretHigh: UInt64, secretLow: UInt64, seq: UInt64)
    }

    private var local: LocalRouting
    private let interestTimeoutNanos: UInt64
    /// A cluster node at all (`--redis`); a single process never leaves `LocalRouting`'s paths.
    public let enabled: Bool
    /// Redis is reachable and this node registered: queueing goes there.
    public private(set) var clustered = false
    private var waiters: [PeerID: Waiter] = [:]
    /// Interest deadlines of entries in Redis, in queue order (one timeout for all).
    private var deadlines: [(deadline: UInt64, peer: PeerID, entry: UInt64)] = []
    private var deadlineHead = 0
    public private(set) var hosted: [PeerID: Hosting] = [:]
    public var ops: [Op] = []
    private var lastEntry: UInt64 = 0
    /// Waiters queued in Redis that are owed `waiting` (they hear it when Redis says they wait).
    private var unannounced: Set<PeerID> = []

    public init(interestTimeoutNanos: UInt64, enabled: Bool = false) {
        local = LocalRouting(interestTimeoutNanos: interestTimeoutNanos)
        self.interestTimeoutNanos = interestTimeoutNanos
        self.enabled = enabled
    }

    // MARK: - ChatRouting

    public mutating func enqueue(_ peer: PeerID, interests: [String], serial: UInt32, avoid: [UInt32], identity: UInt64,
                                 avoidIdentities: [UInt64], pool: PairingPool, now: UInt64) -> Pairing? {
        guard enabled else {
            return local.enqueue(peer, interests: interests, serial: serial, avoid: avoid, identity: identity,
                                 avoidIdentities: avoidIdentities, pool: pool, now: now)
        }
        let replacing = takeWaiter(peer, dequeue: false)
        lastEntry += 1
        var waiter = Waiter(entry: lastEntry, interests: interests, serial: serial, avoid: avoid, identity: identity,
                            avoidIdentities: avoidIdentities, pool: pool, inRedis: clustered)
        guard clustered else {
            if let replacing { ops.append(.dequeue(entry: replacing)) }
            if let pairing = local.enqueue(peer, interests: interests, serial: serial, avoid: avoid, identity: identity,
                                           avoidIdentities: avoidIdentities, pool: pool, now: now) {
                waiters[pairing.a] = nil
                return pairing
            }
            waiter.inRedis = false
            waiters[peer] = waiter
            return nil
        }
        waiters[peer] = waiter
        if !interests.isEmpty {
            let deadline = now > UInt64.max - interestTimeoutNanos ? UInt64.max : now + interestTimeoutNanos
            deadlines.append((deadline, peer, waiter.entry))
        }
        ops.append(.enqueue(peer, waiter, replacing: replacing))
        return nil
    }

    /// Forgets `peer`'s wait; returns the Redis entry it had (which the caller gives up), or nil.
    private mutating func takeWaiter(_ peer: PeerID, dequeue: Bool) -> UInt64? {
        guard let old = waiters.removeValue(forKey: peer) else { return nil }
        if !old.inRedis {
            _ = local.part(peer)
            return nil
        }
        if dequeue { ops.append(.dequeue(entry: old.entry)) }
        return old.entry
    }

    public mutating func part(_ peer: PeerID) -> PeerID? {
        guard enabled else { return local.part(peer) }
        _ = takeWaiter(peer, dequeue: true)
        if !unannounced.isEmpty { unannounced.remove(peer) }
        if let hosting = hosted.removeValue(forKey: peer) { ops.append(.ended(peer, hosting, dropped: false)) }
        return local.part(peer)
    }

    public mutating func expire(now: UInt64) -> [Pairing] {
        let pairings = local.expire(now: now)
        guard enabled else { return pairings }
        for p in pairings {
            waiters[p.a] = nil
            waiters[p.b] = nil
        }
        while deadlineHead < deadlines.count && deadlines[deadlineHead].deadline <= now {
            let d = deadlines[deadlineHead]
            deadlineHead += 1
            if let w = waiters[d.peer], w.entry == d.entry, w.inRedis { ops.append(.expire(d.peer, entry: d.entry)) }
        }
        if deadlineHead == deadlines.count {
            deadlines.removeAll(keepingCapacity: true)
            deadlineHead = 0
        } else if deadlineHead >= 1024 && deadlineHead * 2 >= deadlines.count {
            deadlines.removeFirst(deadlineHead)
            deadlineHead = 0
        }
        return pairings
    }

    @inline(__always)
    public func partner(of peer: PeerID) -> PeerID? { local.partner(of: peer) }

    public mutating func rebind(_ old: PeerID, to new: PeerID) { local.rebind(old, to: new) }

    public func isQueued(_ peer: PeerID) -> Bool {
        enabled ? waiters[peer] != nil : local.isQueued(peer)
    }

    public var nextDeadline: UInt64? {
        guard enabled, deadlineHead < deadlines.count else { return local.nextDeadline }
        return min(local.nextDeadline ?? .max, deadlines[deadlineHead].deadline)
    }

    public var waitingCount: Int { enabled ? waiters.count : local.waitingCount }

    public mutating func adopt(_ pairing: Pairing) {
        waiters[pairing.a] = nil
        waiters[pairing.b] = nil
        if !unannounced.isEmpty {
            unannounced.remove(pairing.a)
            unannounced.remove(pairing.b)
        }
        local.adopt(pairing)
    }

    public func isHostedElsewhere(_ peer: PeerID) -> Bool { !hosted.isEmpty && hosted[peer] != nil }

    /// A member hosted while its chat is being found (`locate`): its messages wait for the answer.
    public static let locating = Hosting(node: "", entry: 0)

    public mutating func resumeElsewhere(_ peer: PeerID, node: UInt32, slot: UInt32, secret: (UInt64, UInt64),
                                         seq: UInt64) -> Bool {
        guard enabled && clustered else { return false }
        hosted[peer] = ClusterRouting.locating
        ops.append(.locate(peer, node: node, slot: slot, secretHigh: secret.0, secretLow: secret.1, seq: seq))
        return true
    }

    /// A member's chat is being moved (its home drains): hold its messages until it is found.
    public mutating func relocate(_ peer: PeerID) { hosted[peer] = ClusterRouting.locating }

    /// A fresh entry number (an attach to another node's chat names the stub with it).
    public mutating func newEntry() -> UInt64 {
        lastEntry += 1
        return lastEntry
    }

    public var answersLater: Bool { enabled && clustered }

    public mutating func owesWaiting(_ peer: PeerID) { unannounced.insert(peer) }

    /// Redis says `peer` waits: true when it is owed its `waiting` (once).
    public mutating func confirmWaiting(_ peer: PeerID) -> Bool {
        !unannounced.isEmpty && unannounced.remove(peer) != nil
    }

    public mutating func endHosting(_ peer: PeerID, dropped: Bool) {
        if let hosting = hosted.removeValue(forKey: peer) { ops.append(.ended(peer, hosting, dropped: dropped)) }
    }

    // MARK: - Cluster

    /// `peer` still waits in Redis under `entry` (an answer about an older wait is stale).
    public func isWaiting(_ peer: PeerID, entry: UInt64) -> Bool {
        guard let w = waiters[peer] else { return false }
        return w.inRedis && w.entry == entry
    }

    /// Redis took `peer`'s entry out of the queue (paired); it is not waiting any more until queued again.
    public mutating func took(_ peer: PeerID) { waiters[peer] = nil }

    /// `peer`'s chat is now on `node` (it was paired there).
    public mutating func host(_ peer: PeerID, on node: String, entry: UInt64) {
        waiters[peer] = nil
        unannounced.remove(peer)
        hosted[peer] = Hosting(node: node, entry: entry)
    }

    public mutating func unhost(_ peer: PeerID) -> Hosting? { hosted.removeValue(forKey: peer) }

    /// Redis came back (or went away). Back: the local waiters move to Redis in their order. Gone: the Redis waiters
    /// queue locally in their order, and the pairs that makes are returned (already recorded), with the waiters
    /// still owed their `waiting` (which the local queue answers at once).
    public mutating func setClustered(_ on: Bool, now: UInt64) -> (pairings: [Pairing], owedWaiting: [PeerID]) {
        guard enabled, on != clustered else { return ([], []) }
        clustered = on
        let moving = waiters.filter { $0.value.inRedis != on }.sorted { $0.value.entry < $1.value.entry }
        var pairings: [Pairing] = []
        deadlines.removeAll()
        deadlineHead = 0
        for (peer, w) in moving {
            waiters[peer] = nil
            if on { _ = local.part(peer) }
            if let pairing = enqueue(peer, interests: w.interests, serial: w.serial, avoid: w.avoid, identity: w.identity,
                                     avoidIdentities: w.avoidIdentities, pool: w.pool, now: now) {
                pairings.append(pairing)
            }
        }
        var owed: [PeerID] = []
        if !on {
            for p in pairings {
                unannounced.remove(p.a)
                unannounced.remove(p.b)
            }
            owed = Array(unannounced)
            unannounced.removeAll()
        }
        return (pairings, owed)
    }

    /// Every member whose chat is on `node` (to end them when that node is gone).
    public func hostedOn(_ isGone: (String) -> Bool) -> [PeerID] {
        hosted.compactMap { isGone($0.value.node) ? $0.key : nil }
    }
}

/// What Redis answered to a queue call.
public enum ClusterQueueReply: Equatable, Sendable {
    case waiting
    /// The entry was gone already (paired, or its node was reaped).
    case gone
    case paired(ClusterMatch)
    /// An error or a reply of another shape: the call did nothing we can rely on.
    case failed

    public init(_ value: RedisValue) {
        guard let items = value.array, let kind = items.first?.text else {
            self = .failed
            return
        }
        switch kind {
        case "waiting": self = .waiting
        case "gone": self = .gone
        case "paired":
            guard items.count >= 10, let node = items[1].text, let slot = items[2].integer.flatMap(UInt32.init(exactly:)),
                  let entryText = items[3].text, let entry = ClusterMatch.entry(of: entryText),
                  let serial = items[4].integer.flatMap(UInt32.init(exactly:)), let profileText = items[5].text,
                  let profile = ClusterProfile(text: profileText), let commonText = items[6].text,
                  let random = items[7].integer, let older = items[8].integer, let interestText = items[9].text
            else {
                self = .failed
                return
            }
            self = .paired(ClusterMatch(node: node, slot: slot, entry: entry, serial: serial, profile: profile,
                                        common: ClusterMatch.lines(commonText), random: random == 1,
                                        partnerIsOlder: older == 1, interests: ClusterMatch.lines(interestText)))
        default:
            self = .failed
        }
    }
}

/// The partner Redis found: where it is, its queue entry, and what the home needs to make its stub.
public struct ClusterMatch: Equatable, Sendable {
    public var node: String
    public var slot: UInt32
    public var entry: UInt64
    public var serial: UInt32
    public var profile: ClusterProfile
    public var common: [String]
    public var random: Bool
    /// It waited longer (it is the pairing's `a`).
    public var partnerIsOlder: Bool
    public var interests: [String]

    /// An entry's name in Redis: `<node>.<entry>`.
    public static func name(node: String, entry: UInt64) -> String { "\(node).\(entry)" }

    static func entry(of name: String) -> UInt64? {
        guard let dot = name.lastIndex(of: ".") else { return nil }
        return UInt64(name[name.index(after: dot)...])
    }

    static func lines(_ text: String) -> [String] {
        text.isEmpty ? [] : text.split(separator: "\n").map(String.init)
    }
}

/// A waiting client's profile in its Redis entry: what its home needs to know of it besides routing data.
public struct ClusterProfile: Equatable, Sendable {
    public var version: ProtocolVersion
    public var images: Bool
    public var address: ClientAddress

    public init(version: ProtocolVersion, images: Bool, address: ClientAddress) {
        self.version = version
        self.images = images
        self.address = address
    }

    /// `<version>|<images 0/1>|<address high hex>|<address low hex>`.
    public var text: String {
        "\(version == .v2 ? 2 : 1)|\(images ? 1 : 0)|\(String(address.high, radix: 16))|\(String(address.low, radix: 16))"
    }

    public init?(text: String) {
        let parts = text.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 4, let high = UInt64(parts[2], radix: 16), let low = UInt64(parts[3], radix: 16)
        else { return nil }
        version = parts[0] == "2" ? .v2 : .v1
        images = parts[1] == "1"
        address = ClientAddress(high: high, low: low)
    }
}
