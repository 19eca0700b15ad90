/// The pairing queue (PROTOCOL.md, "Pairing"): first in, first out, with interests and an interest timeout.
///
/// Sans-IO: the caller passes the time in, calls `expire(now:)` from one timer armed at `nextDeadline`, and sends
/// the events. Every waiting client is a node linked into intrusive doubly linked FIFO lists:
/// - one list per interest tag (the per-tag index), so matching by interest looks at the heads of the newcomer's tag
///   lists only and picks the oldest by enqueue sequence number: O(number of tags);
/// - the deadline list of clients still in their interest wait. Everyone has the same timeout, so enqueue order is
///   deadline order and the head holds the next deadline: one timer, not one per client;
/// - the list of clients that take a random match (no interests, or their interest wait ran out).
/// Repeat avoidance (PROTOCOL.md B.1): a client may carry the serials of partners it must not meet again (a
/// version 2 client's last 8). Two clients are compatible unless either one's list names the other; a list walk
/// skips at most `maxSkips` incompatible clients, so matching stays O(tags x that small number) and everyone else
/// keeps their FIFO place.
/// Nodes and list entries live in arrays with free lists and are addressed by index, so enqueue and removal touch a
/// constant number of links per list the client is in, and a dictionary finds a client's node for `remove`.
public final class Matchmaker {
    let interestTimeoutNanos: UInt64

    private struct Node {
        var peer: PeerID
        var sequence: UInt64
        var deadline: UInt64
        var interests: [String]
        var serial: UInt32
        var avoid: [UInt32]
        /// The client's identity (a keyed hash, B.5; 0 for none) and the identities it must not meet (its blocks).
        var identity: UInt64
        var avoidIdentities: [UInt64]
        /// The node's entries in its tag lists, chained through `Entry.sibling`.
        var firstTagEntry: Int32
        var deadlineEntry: Int32
        var randomEntry: Int32
    }

    /// One node's place in one list.
    private struct Entry {
        var node: Int32
        var list: Int32
        var prev: Int32
        var next: Int32
        var sibling: Int32
    }

    private struct List {
        var head: Int32 = -1
        var tail: Int32 = -1
    }

    private static let none: Int32 = -1
    private static let randomList: Int32 = 0
    private static let deadlineList: Int32 = 1
    /// Incompatible clients a list walk passes over before it gives up on the list.
    static let maxSkips = 16

    private var nodes: [Node] = []
    private var freeNodes: [Int32] = []
    private var entries: [Entry] = []
    private var freeEntries: [Int32] = []
    /// 0: random-willing, 1: interest deadlines, then tag lists. A tag list is dropped when it empties and its slot
    /// reused, so memory follows the tags of clients waiting now, not every tag ever seen.
    private var lists: [List] = [List(), List()]
    private var listTags: [String?] = [nil, nil]
    private var freeLists: [Int32] = []
    private var tagLists: [String: Int32] = [:]
    private var nodeOfPeer: [PeerID: Int32] = [:]
    private var sequence: UInt64 = 0

    public init(interestTimeoutNanos: UInt64 = 5_000_000_000) {
        self.interestTimeoutNanos = interestTimeoutNanos
    }

    public var count: Int { nodeOfPeer.count }

    func isQueued(_ id: PeerID) -> Bool { nodeOfPeer[id] != nil }

    var nextDeadline: UInt64? {
        guard let n = headNode(Matchmaker.deadlineList) else { return nil }
        return nodes[Int(n)].deadline
    }

    // MARK: - Operations

    /// Queues a client; returns the pairing made at once, or nil when it waits (the caller sends `waiting`).
    /// An id that is already queued is re-queued: its old place is given up first, so it can never meet itself.
    /// `serial` names the client in others' `avoid` lists; `avoid` lists the serials it must not be paired with.
    /// `identity` and `avoidIdentities` do the same for identities that outlive a connection (blocks, B.5).
    public func enqueue(_ id: PeerID, interests: [String], serial: UInt32 = 0, avoid: [UInt32] = [],
                        identity: UInt64 = 0, avoidIdentities: [UInt64] = [], now: UInt64) -> Pairing? {
        remove(id)
        let me = Constraints(serial: serial, avoid: avoid, identity: identity, avoidIdentities: avoidIdentities)
        if interests.isEmpty {
            if let partner = firstCompatible(in: Matchmaker.randomList, me) {
                let a = nodes[Int(partner)].peer
                removeNode(partner)
                return Pairing(a: a, b: id, common: [], random: true)
            }
            let n = newNode(id, interests: [], me, deadline: 0)
            nodes[Int(n)].randomEntry = link(n, into: Matchmaker.randomList)
            return nil
        }

        var best = Matchmaker.none
        var bestSequence = UInt64.max
        for tag in interests {
            guard let list = tagLists[tag], let head = firstCompatible(in: list, me) else { continue }
            if nodes[Int(head)].sequence < bestSequence {
                best = head
                bestSequence = nodes[Int(head)].sequence
            }
        }
        if best != Matchmaker.none {
            let partner = nodes[Int(best)]
            var common: [String] = []
            for tag in interests where partner.interests.contains(tag) && !common.contains(tag) { common.append(tag) }
            removeNode(best)
            return Pairing(a: partner.peer, b: id, common: common, random: false)
        }

        let deadline = now > UInt64.max - interestTimeoutNanos ? UInt64.max : now + interestTimeoutNanos
        let n = newNode(id, interests: interests, me, deadline: deadline)
        var chain = Matchmaker.none
        for (i, tag) in interests.enumerated() where !interests[..<i].contains(tag) {
            let e = link(n, into: tagList(tag))
            entries[Int(e)].sibling = chain
            chain = e
        }
        nodes[Int(n)].firstTagEntry = chain
        nodes[Int(n)].deadlineEntry = link(n, into: Matchmaker.deadlineList)
        return nil
    }

    /// Takes a waiting client out of every list it is in. No-op when it is not queued.
    public func remove(_ id: PeerID) {
        guard let n = nodeOfPeer[id] else { return }
        removeNode(n)
    }

    /// Every client whose interest wait has run out by `now` becomes random-willing, oldest deadline first, and is
    /// paired with the longest-waiting random-willing client if there is one. Expired clients stay in their tag
    /// lists: a newcomer who shares a tag still finds them by interest.
    func expire(now: UInt64) -> [Pairing] {
        var pairings: [Pairing] = []
        while let n = headNode(Matchmaker.deadlineList), nodes[Int(n)].deadline <= now {
            unlink(nodes[Int(n)].deadlineEntry)
            nodes[Int(n)].deadlineEntry = Matchmaker.none
            // `n` is not in the random list yet, so the partner is never itself.
            let me = Constraints(serial: nodes[Int(n)].serial, avoid: nodes[Int(n)].avoid, identity: nodes[Int(n)].identity,
                                 avoidIdentities: nodes[Int(n)].avoidIdentities)
            if let partner = firstCompatible(in: Matchmaker.randomList, me) {
                let x = nodes[Int(n)], y = nodes[Int(partner)]
                let (a, b) = x.sequence < y.sequence ? (x.peer, y.peer) : (y.peer, x.peer)
                removeNode(n)
                removeNode(partner)
                pairings.append(Pairing(a: a, b: b, common: [], random: true))
            } else {
                nodes[Int(n)].randomEntry = link(n, into: Matchmaker.randomList)
            }
        }
        return pairings
    }

    // MARK: - Nodes

    /// Who a newcomer is and whom it must not meet.
    private struct Constraints {
        var serial: UInt32
        var avoid: [UInt32]
        var identity: UInt64
        var avoidIdentities: [UInt64]
    }

    private func newNode(_ id: PeerID, interests: [String], _ me: Constraints, deadline: UInt64) -> Int32 {
        sequence += 1
        let node = Node(peer: id, sequence: sequence, deadline: deadline, interests: interests, serial: me.serial,
                        avoid: me.avoid, identity: me.identity, avoidIdentities: me.avoidIdentities,
                        firstTagEntry: Matchmaker.none, deadlineEntry: Matchmaker.none, randomEntry: Matchmaker.none)
        let n: Int32
        if let free = freeNodes.popLast() {
            n = free
            nodes[Int(n)] = node
        } else {
            n = Int32(nodes.count)
            nodes.append(node)
        }
        nodeOfPeer[id] = n
        return n
    }

    private func removeNode(_ n: Int32) {
        var e = nodes[Int(n)].firstTagEntry
        while e != Matchmaker.none {
            let sibling = entries[Int(e)].sibling
            unlink(e)
            e = sibling
        }
        if nodes[Int(n)].deadlineEntry != Matchmaker.none { unlink(nodes[Int(n)].deadlineEntry) }
        if nodes[Int(n)].randomEntry != Matchmaker.none { unlink(nodes[Int(n)].randomEntry) }
        nodeOfPeer[nodes[Int(n)].peer] = nil
        nodes[Int(n)].interests = []
        nodes[Int(n)].avoid = []
        nodes[Int(n)].avoidIdentities = []
        nodes[Int(n)].firstTagEntry = Matchmaker.none
        nodes[Int(n)].deadlineEntry = Matchmaker.none
        nodes[Int(n)].randomEntry = Matchmaker.none
        freeNodes.append(n)
    }

    // MARK: - Lists

    private func tagList(_ tag: String) -> Int32 {
        if let l = tagLists[tag] { return l }
        let l: Int32
        if let free = freeLists.popLast() {
            l = free
            lists[Int(l)] = List()
            listTags[Int(l)] = tag
        } else {
            l = Int32(lists.count)
            lists.append(List())
            listTags.append(tag)
        }
        tagLists[tag] = l
        return l
    }

    /// The longest-waiting client in `list` that may meet a client with these constraints: neither names the
    /// other's serial, nor (where both have one) the other's identity.
    private func firstCompatible(in list: Int32, _ me: Constraints) -> Int32? {
        var e = lists[Int(list)].head
        var skipped = 0
        while e != Matchmaker.none {
            let n = entries[Int(e)].node
            // Fields read in place: a copy of the node would retain and release its three arrays.
            let i = Int(n)
            if me.avoid.isEmpty && nodes[i].avoid.isEmpty && me.avoidIdentities.isEmpty && nodes[i].avoidIdentities.isEmpty {
                return n
            }
            if !me.avoid.contains(nodes[i].serial) && !nodes[i].avoid.contains(me.serial)
                && (nodes[i].identity == 0 || !me.avoidIdentities.contains(nodes[i].identity))
                && (me.identity == 0 || !nodes[i].avoidIdentities.contains(me.identity)) { return n }
            skipped += 1
            if skipped > Matchmaker.maxSkips { return nil }
            e = entries[Int(e)].next
        }
        return nil
    }

    private func headNode(_ list: Int32) -> Int32? {
        let head = lists[Int(list)].head
        return head == Matchmaker.none ? nil : entries[Int(head)].node
    }

    /// Appends node `n` at the tail of `list` and returns its entry.
    private func link(_ n: Int32, into list: Int32) -> Int32 {
        let tail = lists[Int(list)].tail
        let entry = Entry(node: n, list: list, prev: tail, next: Matchmaker.none, sibling: Matchmaker.none)
        let e: Int32
        if let free = freeEntries.popLast() {
            e = free
            entries[Int(e)] = entry
        } else {
            e = Int32(entries.count)
            entries.append(entry)
        }
        if tail == Matchmaker.none { lists[Int(list)].head = e } else { entries[Int(tail)].next = e }
        lists[Int(list)].tail = e
        return e
    }

    private func unlink(_ e: Int32) {
        let entry = entries[Int(e)]
        let l = Int(entry.list)
        if entry.prev == Matchmaker.none { lists[l].head = entry.next } else { entries[Int(entry.prev)].next = entry.next }
        if entry.next == Matchmaker.none { lists[l].tail = entry.prev } else { entries[Int(entry.next)].prev = entry.prev }
        if lists[l].head == Matchmaker.none, let tag = listTags[l] {
            tagLists[tag] = nil
            listTags[l] = nil
            freeLists.append(entry.list)
        }
        freeEntries.append(e)
    }
}
