/// A client's identity in the matchmaker (the server uses its connection slot number).
struct PeerID: Hashable, Sendable {
    let rawValue: UInt32
}

/// A match: `a` waited longer, `b` is the newcomer (or the client whose interest wait ran out).
struct Pairing: Equatable {
    let a: PeerID
    let b: PeerID
    let common: [String]
    let random: Bool
}

/// The pairing queue: first in, first out, with interests. Sans-IO: the caller passes the time in and arms a
/// single timer at `nextDeadline`.
///
/// Every waiting client is linked into intrusive doubly linked lists: one per interest tag (oldest first), the
/// deadline list of clients still in their interest wait (enqueue order is deadline order, since the timeout is the
/// same for everyone), and the list of clients that take a random match. Enqueue, removal and matching touch only
/// list heads and the client's own links: O(1) per list, O(number of the client's tags) in all.
final class Matchmaker {
    private struct Node {
        var peer: PeerID
        var seq: UInt64
        var deadline: UInt64
        var interests: [String]
        /// Index of this node's membership entry in each list it is in (tag lists first, in `interests` order).
        var tagEntries: [Int32]
        var deadlineEntry: Int32 = -1
        var randomEntry: Int32 = -1
    }

    /// A node's place in one list.
    private struct Entry {
        var node: Int32
        var list: Int32
        var prev: Int32
        var next: Int32
    }

    private struct List {
        var head: Int32 = -1
        var tail: Int32 = -1
    }

    let interestTimeoutNanos: UInt64
    private var nodes: [Node?] = []
    private var freeNodes: [Int32] = []
    private var entries: [Entry] = []
    private var freeEntries: [Int32] = []
    private var lists: [List] = [List(), List()]   // 0: random-willing, 1: interest deadlines, 2...: tags
    private var tagLists: [String: Int32] = [:]
    private var byPeer: [PeerID: Int32] = [:]
    private var sequence: UInt64 = 0

    private static let randomList: Int32 = 0
    private static let deadlineList: Int32 = 1

    init(interestTimeoutNanos: UInt64 = 5_000_000_000) {
        self.interestTimeoutNanos = interestTimeoutNanos
    }

    var count: Int { byPeer.count }

    func isQueued(_ id: PeerID) -> Bool { byPeer[id] != nil }

    var nextDeadline: UInt64? {
        let head = lists[Int(Matchmaker.deadlineList)].head
        guard head >= 0 else { return nil }
        return nodes[Int(entries[Int(head)].node)]!.deadline
    }

    // MARK: - Operations

    func enqueue(_ id: PeerID, interests: [String], now: UInt64) -> Pairing? {
        remove(id)
        if interests.isEmpty {
            if let partner = headNode(of: Matchmaker.randomList) {
                let peer = nodes[Int(partner)]!.peer
                removeNode(partner)
                return Pairing(a: peer, b: id, common: [], random: true)
            }
            let n = newNode(id, interests: [], deadline: 0)
            nodes[Int(n)]!.randomEntry = link(n, into: Matchmaker.randomList)
            return nil
        }
        // The longest-waiting client sharing any tag: compare the heads of this client's tag lists.
        var best: Int32 = -1
        var bestSeq = UInt64.max
        for tag in interests {
            guard let list = tagLists[tag], let head = headNode(of: list) else { continue }
            let seq = nodes[Int(head)]!.seq
            if seq < bestSeq {
                best = head
                bestSeq = seq
            }
        }
        if best >= 0 {
            let partner = nodes[Int(best)]!
            let common = interests.filter { partner.interests.contains($0) }
            removeNode(best)
            return Pairing(a: partner.peer, b: id, common: common, random: false)
        }
        let n = newNode(id, interests: interests, deadline: now &+ interestTimeoutNanos)
        var tagEntries: [Int32] = []
        tagEntries.reserveCapacity(interests.count)
        for tag in interests { tagEntries.append(link(n, into: tagList(tag))) }
        nodes[Int(n)]!.tagEntries = tagEntries
        nodes[Int(n)]!.deadlineEntry = link(n, into: Matchmaker.deadlineList)
        return nil
    }

    func remove(_ id: PeerID) {
        guard let n = byPeer[id] else { return }
        removeNode(n)
    }

    /// Clients whose interest wait ran out take a random match: with the client already waiting for one, if any.
    func expire(now: UInt64) -> [Pairing] {
        var pairings: [Pairing] = []
        while let n = headNode(of: Matchmaker.deadlineList), nodes[Int(n)]!.deadline <= now {
            unlink(nodes[Int(n)]!.deadlineEntry)
            nodes[Int(n)]!.deadlineEntry = -1
            if let partner = headNode(of: Matchmaker.randomList) {
                let a = nodes[Int(partner)]!.peer
                let b = nodes[Int(n)]!.peer
                removeNode(partner)
                removeNode(n)
                pairings.append(Pairing(a: a, b: b, common: [], random: true))
            } else {
                // Still matchable by interest, and now by anyone who takes a random match.
                nodes[Int(n)]!.randomEntry = link(n, into: Matchmaker.randomList)
            }
        }
        return pairings
    }

    // MARK: - Nodes and lists

    private func newNode(_ id: PeerID, interests: [String], deadline: UInt64) -> Int32 {
        sequence &+= 1
        let node = Node(peer: id, seq: sequence, deadline: deadline, interests: interests, tagEntries: [])
        let n: Int32
        if let free = freeNodes.popLast() {
            n = free
            nodes[Int(n)] = node
        } else {
            n = Int32(nodes.count)
            nodes.append(node)
        }
        byPeer[id] = n
        return n
    }

    private func removeNode(_ n: Int32) {
        guard let node = nodes[Int(n)] else { return }
        for e in node.tagEntries { unlink(e) }
        if node.deadlineEntry >= 0 { unlink(node.deadlineEntry) }
        if node.randomEntry >= 0 { unlink(node.randomEntry) }
        byPeer[node.peer] = nil
        nodes[Int(n)] = nil
        freeNodes.append(n)
    }

    private func tagList(_ tag: String) -> Int32 {
        if let l = tagLists[tag] { return l }
        let l: Int32
        if let free = freeTagLists.popLast() {
            l = free
            lists[Int(l)] = List()
        } else {
            l = Int32(lists.count)
            lists.append(List())
        }
        tagLists[tag] = l
        tagOfList[l] = tag
        return l
    }

    private func headNode(of list: Int32) -> Int32? {
        let head = lists[Int(list)].head
        return head >= 0 ? entries[Int(head)].node : nil
    }

    /// Appends the node at the tail of `list`; returns the membership entry.
    private func link(_ n: Int32, into list: Int32) -> Int32 {
        let tail = lists[Int(list)].tail
        let entry = Entry(node: n, list: list, prev: tail, next: -1)
        let e: Int32
        if let free = freeEntries.popLast() {
            e = free
            entries[Int(e)] = entry
        } else {
            e = Int32(entries.count)
            entries.append(entry)
        }
        if tail >= 0 { entries[Int(tail)].next = e } else { lists[Int(list)].head = e }
        lists[Int(list)].tail = e
        return e
    }

    private func unlink(_ e: Int32) {
        let entry = entries[Int(e)]
        if entry.prev >= 0 { entries[Int(entry.prev)].next = entry.next } else { lists[Int(entry.list)].head = entry.next }
        if entry.next >= 0 { entries[Int(entry.next)].prev = entry.prev } else { lists[Int(entry.list)].tail = entry.prev }
        if lists[Int(entry.list)].head < 0 && entry.list > Matchmaker.deadlineList {
            // An empty tag list is forgotten so that the tag table holds only tags someone is waiting with.
            if let tag = tagName(entry.list) { tagLists[tag] = nil; freeTagList(entry.list) }
        }
        entries[Int(e)] = Entry(node: -1, list: -1, prev: -1, next: -1)
        freeEntries.append(e)
    }

    // Tag list ids are reused so that `lists` does not grow with every distinct tag ever seen.
    private var freeTagLists: [Int32] = []
    private var tagOfList: [Int32: String] = [:]

    private func tagName(_ list: Int32) -> String? { tagOfList[list] }

    private func freeTagList(_ list: Int32) {
        tagOfList[list] = nil
        freeTagLists.append(list)
    }
}
