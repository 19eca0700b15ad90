#if canImport(Glibc)
import Glibc
#endif

/// A node of a cluster (`--redis`): the glue between the chat service's cluster entry points, Redis (two
/// connections: commands, and the subscription to this node's channel) and the other nodes (`ClusterWire`).
///
/// - The queue: `ClusterRouting`'s ops become `FCALL`s of `ClusterFunctions`; their answers pair clients here, or
///   make a stub for another node's client (this node is then the chat's home), or hand a client to its home.
/// - The relay: frames for a stub and messages of a member whose chat is elsewhere are gathered per node and sent
///   as one PUBLISH per node per loop iteration (from the loop's flush, before the sockets are written).
/// - Liveness: a heartbeat every `--cluster-heartbeat-seconds` registers this node, reaps silent ones and brings
///   back the cluster's online count and its live nodes; a chat with a node that is gone ends (`partner_left`).
/// - Redis lost: the node goes on alone (local pairing and relay; `/healthz` says `degraded`), its cross-node chats
///   end, and it rejoins when Redis answers again.
final class ClusterNode {
    unowned let server: Server
    let name: String
    private let commands: RedisClient
    private let subscriber: RedisClient
    private let channel: String
    private let timeoutMillis: UInt64
    private var heartbeatTimer: LoopTimer?
    private var functionLoaded = false
    /// The last heartbeat was answered: this node is registered.
    private var registered = false
    private var heartbeatInFlight = false
    private var closing = false
    /// Mirrors `ClusterRouting.clustered`: the outbox calls in here in the middle of a chat call, when the chat
    /// itself may not be read.
    private var clustered = false

    /// Other nodes, interned: stubs and batches name them by index.
    private var nodeNames: [String] = []
    private var nodeIndex: [String: Int] = [:]
    private var channels: [[UInt8]] = []
    private var batches: [[UInt8]] = []
    private var lastFrames: [Int] = []
    private var dirtyNodes: [Int] = []
    private var liveNodes: Set<String> = []

    /// A stub: another node's client whose chat is here. Named there by its slot and paired entry.
    struct StubKey: Hashable {
        var node: Int
        var slot: UInt32
        var entry: UInt64
    }
    private var stubs: [StubKey: PeerID] = [:]
    private var stubKeys: [UInt32: StubKey] = [:]
    private var scratch: [UInt8] = []
    /// Messages of members whose chat is being found (a resume on another node, a drained home), in order,
    /// bounded per member (64 records of at most one message each: a client waits for its `resumed` anyway).
    private var pending: [PeerID: [ClusterRecord]] = [:]
    static let maxPendingRecords = 64

    // Metrics.
    private(set) var roundTrips: UInt64 = 0
    private(set) var roundTripMicros: UInt64 = 0
    private(set) var reapedNodes: UInt64 = 0
    private(set) var recordsOut: UInt64 = 0
    private(set) var recordsIn: UInt64 = 0
    private(set) var publishes: UInt64 = 0
    private(set) var degradedSince: UInt64 = 0
    private(set) var clusterOnline = 0

    /// This run of the node: a restarted node gets a new number, and so new tokens (`uvchat_heartbeat`).
    private let run = String(UInt64.random(in: 1...UInt64.max), radix: 16)
    /// Locates Redis asked to try again shortly (an exported chat whose connected side is being taken up).
    private var retries: [() -> Void] = []
    private var retryTimer: LoopTimer?

    init(server: Server, endpoint: RedisEndpoint, name: String) {
        self.server = server
        self.name = name
        channel = "uvchat:n:\(name)"
        let config = server.config
        timeoutMillis = max(500, config.clusterNodeTimeout.loopMillis)
        let password = config.redisPassword?.bytesForParsing
        commands = RedisClient(loop: server.loop, endpoint: endpoint, name: "uvchat-\(name)", user: config.redisUser,
                               password: password, timeoutMillis: timeoutMillis)
        subscriber = RedisClient(loop: server.loop, endpoint: endpoint, name: "uvchat-\(name)-sub", user: config.redisUser,
                                 password: password, timeoutMillis: timeoutMillis)
    }

    /// Connected, registered and subscribed: the node is part of the cluster.
    var isJoined: Bool { clustered && registered && commands.state == .ready && subscriber.state == .ready }
    var reconnects: UInt64 { commands.reconnects + subscriber.reconnects }
    var stubCount: Int { stubs.count }

    func start() throws {
        commands.onReady = { [unowned self] in commandsReady() }
        commands.onDown = { [unowned self] reason in redisLost("commands", reason) }
        subscriber.onReady = { [unowned self] in
            server.logger.log(.info, "cluster subscribed", ["node": name])
        }
        subscriber.onDown = { [unowned self] reason in redisLost("subscription", reason) }
        subscriber.onMessage = { [unowned self] _, payload in received(payload) }
        subscriber.subscribe(channel)
        commands.connect()
        subscriber.connect()
        heartbeatTimer = try server.loop.repeatingTimer(every: server.config.clusterHeartbeat.loopMillis) { [unowned self] in
            heartbeat()
        }
        degradedSince = server.loop.nowMillis
    }

    // MARK: - Redis up and down

    private func commandsReady() {
        let started = server.loop.nowMillis
        commands.send([b("FUNCTION"), b("LOAD"), b("REPLACE"), Array(ClusterFunctions.library.utf8)]) { [unowned self] reply in
            if case .error(let message) = reply {
                // Without the library there is no shared queue: the node stays on its own and says why.
                server.logger.log(.error, "cluster: loading the queue functions failed", ["error": message])
                return
            }
            observeRoundTrip(since: started)
            functionLoaded = true
            heartbeat()
        }
    }

    private func redisLost(_ which: String, _ reason: String) {
        server.logger.log(.warn, "cluster: Redis connection lost; pairing locally", ["connection": which, "reason": reason])
        if which == "commands" { functionLoaded = false }
        registered = false
        heartbeatInFlight = false
        // A subscription that died lost messages; a command connection that died cannot queue: either way the
        // cross-node chats are over and the queue is local until both are back.
        if which == "commands" { subscriber.dropConnection("commands lost") } else { commands.dropConnection("subscription lost") }
        leaveCluster(now: server.loop.nowMillis)
    }

    /// Alone from now on: waiters queue here, cross-node chats end.
    private func leaveCluster(now: UInt64) {
        if degradedSince == 0 { degradedSince = now }
        if server.chat.routing.clustered { server.chat.setClustered(false, now: now) }
        clustered = false
        endChats(now: now) { _ in true }
        for i in batches.indices { batches[i].removeAll(keepingCapacity: false) }
        dirtyNodes.removeAll()
        server.armMatchTimer()
    }

    private func heartbeat() {
        let now = server.loop.nowMillis
        commands.healthCheck(now: now)
        subscriber.healthCheck(now: now)
        guard !closing, functionLoaded, commands.state == .ready, !heartbeatInFlight else { return }
        heartbeatInFlight = true
        let sent = commands.send([b("FCALL"), b("uvchat_heartbeat"), b("0"), b(name), b(String(timeoutMillis)),
                                  b(String(server.chat.memberCount)), b(run)]) { [unowned self] reply in
            heartbeatInFlight = false
            observeRoundTrip(since: now)
            heartbeatAnswered(reply)
        }
        if !sent { heartbeatInFlight = false }
    }

    private func heartbeatAnswered(_ reply: RedisValue) {
        let now = server.loop.nowMillis
        guard let items = reply.array, items.count == 5, let present = items[0].integer, let total = items[1].integer,
              let live = items[2].array, let reaped = items[3].array, let number = items[4].integer else {
            server.logger.log(.warn, "cluster: heartbeat failed", ["reply": reply.isError ? (reply.text ?? "error") : "malformed"])
            return
        }
        if present == 0 && registered {
            // The others took this node for dead (a pause, a cut): its entries and its chats are gone there.
            server.logger.log(.warn, "cluster: this node was reaped; rejoining", ["node": name])
            leaveCluster(now: now)
        }
        registered = true
        if number > 0 && number < 4096 { server.chat.tokenNode = UInt32(number) }
        reapedNodes &+= UInt64(reaped.count)
        for node in reaped {
            if let n = node.text { server.logger.log(.info, "cluster: reaped a silent node", ["node": n]) }
        }
        liveNodes = Set(live.compactMap(\.text))
        clusterOnline = Int(total)
        server.chat.remoteOnline = max(0, Int(total) - server.chat.memberCount)
        if !server.chat.routing.clustered && subscriber.state == .ready {
            server.chat.setClustered(true, now: now)
            clustered = true
            degradedSince = 0
            server.logger.log(.info, "cluster: joined", ["node": name, "nodes": String(liveNodes.count)])
        }
        endChats(now: now) { [liveNodes] node in !liveNodes.contains(node) }
        server.armMatchTimer()
    }

    private func observeRoundTrip(since: UInt64) {
        roundTrips &+= 1
        roundTripMicros &+= (server.loop.nowMillis &- since) &* 1000
    }

    /// Every cross-node chat with a node for which `isGone` holds ends: stubs leave (their partners here hear
    /// `partner_left`), members whose chat was there hear `partner_left`.
    private func endChats(now: UInt64, _ isGone: (String) -> Bool) {
        for (key, stub) in stubs where isGone(nodeNames[key.node]) {
            // Its client's node is gone, so its connection is: a version 2 side is away (held for a resume on any
            // node), anyone else leaves. A held side stays in its slot until the chat releases it.
            server.chat.drop(stub, now: now)
            if server.chat.isHeld(stub) {
                stubKeys[stub.rawValue] = nil
                stubs[key] = nil
            } else {
                freeStub(stub)
            }
        }
        for peer in server.chat.routing.hostedOn(isGone) {
            setHosted(peer, false)
            server.chat.hostedChatEnded(peer, notify: true, now: now)
        }
    }

    // MARK: - Ops and batches (once per loop iteration)

    /// Sends what the chat asked of the cluster since the last pass, then one PUBLISH per node with records.
    func pump() {
        while !server.chat.routing.ops.isEmpty {
            var ops: [ClusterRouting.Op] = []
            swap(&ops, &server.chat.routing.ops)
            for op in ops { perform(op) }
        }
        guard !dirtyNodes.isEmpty else { return }
        for n in dirtyNodes where !batches[n].isEmpty {
            if commands.state == .ready {
                commands.send([b("PUBLISH"), channels[n], batches[n]], nil)
                publishes &+= 1
            }
            batches[n].removeAll(keepingCapacity: batches[n].count <= 64 * 1024)
            lastFrames[n] = -1
        }
        dirtyNodes.removeAll(keepingCapacity: true)
    }

    private func perform(_ op: ClusterRouting.Op) {
        let now = server.loop.nowMillis
        switch op {
        case .enqueue(let peer, let w, let replacing):
            let profile = server.chat.clusterProfile(of: peer)
            let args: [[UInt8]] = [
                b("FCALL"), b("uvchat_enqueue"), b("0"), b(name), b(ClusterMatch.name(node: name, entry: w.entry)),
                b(String(peer.rawValue)), b(w.interests.joined(separator: "\n")), b(String(w.serial)),
                b(w.avoid.map(String.init).joined(separator: ",")), b(w.identity == 0 ? "" : String(w.identity)),
                b(w.avoidIdentities.map(String.init).joined(separator: ",")), b(ClusterNode.poolName(w.pool)),
                b(profile.text), b(replacing.map { ClusterMatch.name(node: name, entry: $0) } ?? ""),
            ]
            let sent = commands.send(args) { [unowned self] reply in
                observeRoundTrip(since: now)
                queueAnswered(peer, entry: w.entry, reply)
            }
            if !sent { queueUnavailable() }
        case .dequeue(let entry):
            commands.send([b("FCALL"), b("uvchat_dequeue"), b("0"), b(ClusterMatch.name(node: name, entry: entry))], nil)
        case .expire(let peer, let entry):
            let sent = commands.send([b("FCALL"), b("uvchat_expire"), b("0"),
                                      b(ClusterMatch.name(node: name, entry: entry))]) { [unowned self] reply in
                observeRoundTrip(since: now)
                queueAnswered(peer, entry: entry, reply)
            }
            if !sent { queueUnavailable() }
        case .ended(let peer, let hosting, let dropped):
            pending[peer] = nil
            guard !hosting.node.isEmpty else { return }   // it went while its chat was being found
            record(to: hosting.node, ClusterEnvelope(slot: peer.rawValue, entry: hosting.entry, .gone(dropped: dropped)))
        case .locate(let peer, let node, let slot, let high, let low, let seq):
            setHosted(peer, true)
            locate(peer, node: node, slot: slot, secret: (high, low), seq: seq, live: false)
        }
    }

    // MARK: - Resumes across nodes

    /// Finds the chat of a token of node `node` (its number) and `slot`: there (attach), moved (attach there, or
    /// resume here), exported by a drain (take it up here), or nowhere (`resume_failed`). `live`: `peer` is the
    /// connected side of a chat its draining home exported (`moved` record), not a resume.
    private func locate(_ peer: PeerID, node: UInt32, slot: UInt32, secret: (UInt64, UInt64), seq: UInt64, live: Bool,
                        attempt: Int = 0) {
        let started = server.loop.nowMillis
        let thisSlot = live ? peer : server.connections.reserve()
        let otherSlot = server.connections.reserve()
        let sent = commands.send([b("FCALL"), b("uvchat_locate"), b("0"), b(String(node)), b(String(slot)), b(name),
                                  b(String(thisSlot.rawValue)), b(String(otherSlot.rawValue)),
                                  b(String(server.chat.tokenNode))]) { [unowned self] reply in
            observeRoundTrip(since: started)
            if reply.array?.first?.text == "wait" && attempt < 30 {
                if !live { server.connections.release(thisSlot) }
                server.connections.release(otherSlot)
                retryLater { [unowned self] in
                    guard server.chat.routing.hosted[peer] == ClusterRouting.locating else { return }
                    locate(peer, node: node, slot: slot, secret: secret, seq: seq, live: live, attempt: attempt + 1)
                }
                return
            }
            located(peer, node: node, slot: slot, secret: secret, seq: seq, live: live, reply,
                    slots: (thisSlot, otherSlot))
        }
        if !sent {
            if !live { server.connections.release(thisSlot) }
            server.connections.release(otherSlot)
            notFound(peer, live: live)
        }
    }

    private func located(_ peer: PeerID, node: UInt32, slot: UInt32, secret: (UInt64, UInt64), seq: UInt64, live: Bool,
                         _ reply: RedisValue, slots: (this: PeerID, other: PeerID)) {
        let now = server.loop.nowMillis
        let items = reply.array ?? []
        let kind = items.first?.text ?? ""
        let stillWaiting = server.chat.routing.hosted[peer] == ClusterRouting.locating
        server.logger.log(.debug, "cluster: locate answered", ["answer": kind, "live": String(live),
                                                                "waiting": String(stillWaiting)])
        if kind == "state", items.count == 4, case .string(let blob) = items[1], let export = ChatExport(bytes: blob),
           let foundNode = items[2].integer.flatMap(UInt32.init(exactly:)),
           let foundSlot = items[3].integer.flatMap(UInt32.init(exactly:)),
           server.chat.importChat(export, resuming: foundNode << 20 | foundSlot, this: slots.this,
                                  thisLive: live && stillWaiting, other: slots.other, now: now) {
            if live {
                _ = server.chat.routing.unhost(peer)
                setHosted(peer, false)
                replayHere(peer, now: now)
            } else if stillWaiting {
                setHosted(peer, false)
                server.chat.resumeHere(peer, slot: slots.this.rawValue, secret: secret, seq: seq, now: now)
                replayHere(peer, now: now)
            }
            if server.chat.deadlinesChanged { server.armMatchTimer() }
            return
        }
        if !live { server.connections.release(slots.this) }
        server.connections.release(slots.other)
        guard stillWaiting else { return }
        // Still where it was (live) or moved: the resume goes to that node and slot, here or there.
        let target: (node: String, slot: UInt32)?
        switch kind {
        case "live" where items.count == 2 && !live:
            target = items[1].text.map { ($0, slot) }
        case "moved" where items.count == 3 && !live:
            if let home = items[1].text, let s = items[2].text.flatMap({ UInt32($0) }) { target = (home, s) } else { target = nil }
        default:
            target = nil
        }
        guard let target else { return notFound(peer, live: live) }
        if target.node == name {
            setHosted(peer, false)
            server.chat.resumeHere(peer, slot: target.slot, secret: secret, seq: seq, now: now)
            replayHere(peer, now: now)
        } else {
            attach(peer, to: target.node, slot: target.slot, secret: secret, seq: seq)
        }
    }

    /// Runs `body` in 100 ms (all retries due together share one timer).
    private func retryLater(_ body: @escaping () -> Void) {
        retries.append(body)
        guard retries.count == 1 else { return }
        if retryTimer == nil {
            retryTimer = try? server.loop.timer { [unowned self] in
                let due = retries
                retries.removeAll()
                for r in due { r() }
            }
        }
        try? retryTimer?.start(after: 100)
    }

    private func notFound(_ peer: PeerID, live: Bool) {
        let now = server.loop.nowMillis
        pending[peer] = nil
        setHosted(peer, false)
        if live {
            server.chat.hostedChatEnded(peer, notify: true, now: now)
        } else {
            server.chat.resumeNotFound(peer, now: now)
        }
    }

    /// The connection's chat is on `home`: it becomes a stub there, which takes the resume.
    private func attach(_ peer: PeerID, to home: String, slot: UInt32, secret: (UInt64, UInt64), seq: UInt64) {
        var address = ClientAddress.unknown
        server.connections.ifOpen(peer) { address = $0.address }
        let entry = server.chat.routing.newEntry()
        server.chat.hostedElsewhere(peer, on: home, entry: entry)
        var command = Array(#"{"type":"resume","token":""#.utf8)
        ResumeToken(slot: slot, secret: secret).appendText(into: &command)
        command += Array(#"","seq":\#(seq)}"#.utf8)
        record(to: home, ClusterEnvelope(slot: peer.rawValue, entry: entry, .attach(address: address, command: command)))
        for r in pending.removeValue(forKey: peer) ?? [] {
            record(to: home, ClusterEnvelope(slot: peer.rawValue, entry: entry, r))
        }
    }

    /// What the member sent while its chat was being found, now that the chat is here.
    private func replayHere(_ peer: PeerID, now: UInt64) {
        for r in pending.removeValue(forKey: peer) ?? [] {
            switch r {
            case .text(let bytes): bytes.withUnsafeBytes { server.chat.receive($0, from: peer, now: now) }
            case .binary(var bytes): bytes.withUnsafeMutableBytes { server.chat.receiveBinary($0, from: peer, now: now) }
            case .skippedBinary: server.chat.refuseBinary(from: peer, now: now)
            default: break
            }
        }
    }

    /// Redis refused a command (down, or its output over the bound): the node carries on alone.
    private func queueUnavailable() {
        guard server.chat.routing.clustered else { return }
        commands.dropConnection("the queue is unreachable")
    }

    static func poolName(_ pool: PairingPool) -> String {
        switch (pool.group, pool.quarantined) {
        case (nil, false): "m"
        case (nil, true): "q"
        case (let g?, false): "g:" + g
        case (let g?, true): "q:" + g
        }
    }

    /// What Redis did with a queue call of `peer`'s wait `entry`.
    private func queueAnswered(_ peer: PeerID, entry: UInt64, _ value: RedisValue) {
        let now = server.loop.nowMillis
        switch ClusterQueueReply(value) {
        case .waiting:
            if server.chat.routing.isWaiting(peer, entry: entry) { server.chat.clusterWaiting(peer, now: now) }
        case .gone:
            return
        case .failed:
            if case .error(let message) = value {
                server.logger.log(.warn, "cluster: a queue call failed", ["error": message])
            }
            if server.chat.routing.isWaiting(peer, entry: entry) { queueUnavailable() }
        case .paired(let match):
            let mine = server.chat.routing.isWaiting(peer, entry: entry)
            if match.node == name {
                let other = PeerID(rawValue: match.slot)
                let theirs = server.chat.routing.isWaiting(other, entry: match.entry)
                if mine && theirs {
                    let (a, b) = match.partnerIsOlder ? (other, peer) : (peer, other)
                    server.chat.clusterPaired(a, b, common: match.common, random: match.random, now: now)
                } else if mine {
                    server.chat.routing.took(peer)
                    server.chat.requeue(peer, now: now)
                } else if theirs {
                    server.chat.routing.took(other)
                    server.chat.requeue(other, now: now)
                }
            } else if !mine {
                // The one who made the pair is gone: the other goes back to the queue on its node.
                record(to: match.node, ClusterEnvelope(slot: match.slot, entry: match.entry, .requeue))
            } else {
                let stub = makeStub(node: match.node, slot: match.slot, entry: match.entry)
                // The adoption goes first: the frames of the pairing follow it in the same message.
                record(to: match.node, ClusterEnvelope(slot: match.slot, entry: match.entry, .adopt))
                server.chat.joinStub(stub, address: match.profile.address, version: match.profile.version,
                                     images: match.profile.images, serial: match.serial, interests: match.interests,
                                     now: now)
                let (a, b) = match.partnerIsOlder ? (stub, peer) : (peer, stub)
                server.chat.clusterPaired(a, b, common: match.common, random: match.random, now: now)
            }
            if server.chat.deadlinesChanged { server.armMatchTimer() }
        }
    }

    // MARK: - Stubs (this node is the chat's home)

    private func makeStub(node: String, slot: UInt32, entry: UInt64) -> PeerID {
        let stub = server.connections.reserve()
        let key = StubKey(node: index(of: node), slot: slot, entry: entry)
        stubs[key] = stub
        stubKeys[stub.rawValue] = key
        return stub
    }

    func isStub(_ peer: PeerID) -> Bool { stubKeys[peer.rawValue] != nil }

    /// The stub is out of the chat: its slot goes back to the table.
    func freeStub(_ peer: PeerID) {
        guard let key = stubKeys.removeValue(forKey: peer.rawValue) else { return }
        stubs[key] = nil
        server.connections.release(peer)
    }

    /// Frames for a stub: built by `build`, appended to its node's batch. Returns the bytes waiting (none here: the
    /// client's own node holds its socket and enforces its outgoing cap).
    func toStub(_ peer: PeerID, _ build: (inout [UInt8]) -> Void) -> Int {
        guard let key = stubKeys[peer.rawValue] else { return 0 }
        scratch.removeAll(keepingCapacity: true)
        build(&scratch)
        let n = key.node
        open(n)
        scratch.withUnsafeBytes {
            ClusterWire.appendFrames(slot: key.slot, entry: key.entry, $0, lastRecordAt: &lastFrames[n], into: &batches[n])
        }
        recordsOut &+= 1
        return 0
    }

    /// A record about a stub to its node (its chat ended here, or it may send an image).
    func toStubNode(_ peer: PeerID, _ record: ClusterRecord) {
        guard let key = stubKeys[peer.rawValue] else { return }
        self.record(to: key.node, ClusterEnvelope(slot: key.slot, entry: key.entry, record))
    }

    /// The service closed a stub (slow consumer, banned, resumed elsewhere): its node closes the socket.
    func closeStub(_ peer: PeerID, _ reason: ChatCloseReason) {
        switch reason {
        case .slowConsumer: toStubNode(peer, .close(code: 1008, reason: ""))
        case .resumedElsewhere: toStubNode(peer, .close(code: 4001, reason: ""))
        case .banned: toStubNode(peer, .close(code: 1008, reason: "banned"))
        }
        freeStub(peer)
    }

    func handBackStub(_ peer: PeerID, interests: [String], images: Bool, recent: [UInt32]) {
        toStubNode(peer, .handBack(interests: interests, images: images, recent: recent))
        freeStub(peer)
    }

    // MARK: - Members whose chat is elsewhere (this node owns the socket)

    /// A message of a member whose chat is on another node goes there as it came.
    func forward(_ peer: PeerID, _ record: ClusterRecord) {
        guard let hosting = server.chat.routing.hosted[peer] else { return }
        if hosting.node.isEmpty {
            // Its chat is being found: the message waits (a client that floods meanwhile is closed).
            if pending[peer, default: []].count < ClusterNode.maxPendingRecords {
                pending[peer, default: []].append(record)
            } else {
                server.connections.ifOpen(peer) { $0.closeWebSocket(.policyViolation, dropPending: true) }
            }
            return
        }
        self.record(to: hosting.node, ClusterEnvelope(slot: peer.rawValue, entry: hosting.entry, record))
    }

    /// A text of a member whose chat is on another node, from where it lies in the read buffer: the per-message
    /// path, so no `ClusterRecord` and no copy but the one into the node's batch.
    func forward(_ peer: PeerID, text payload: UnsafeRawBufferPointer) {
        guard let hosting = server.chat.routing.hosted[peer] else { return }
        guard !hosting.node.isEmpty else { return forward(peer, .text(Array(payload))) }
        record(to: index(of: hosting.node)) {
            ClusterWire.appendText(slot: peer.rawValue, entry: hosting.entry, payload, into: &$0)
        }
    }

    private func setHosted(_ peer: PeerID, _ on: Bool) {
        server.connections.ifOpen(peer) { $0.isHostedElsewhere = on }
    }

    // MARK: - Records in and out

    private func index(of node: String) -> Int {
        if let i = nodeIndex[node] { return i }
        let i = nodeNames.count
        nodeNames.append(node)
        nodeIndex[node] = i
        channels.append(Array("uvchat:n:\(node)".utf8))
        batches.append([])
        lastFrames.append(-1)
        return i
    }

    private func open(_ n: Int) {
        if batches[n].isEmpty {
            ClusterWire.begin(from: name, into: &batches[n])
            dirtyNodes.append(n)
            lastFrames[n] = -1
        }
    }

    private func record(to node: String, _ envelope: ClusterEnvelope) {
        record(to: index(of: node), envelope)
    }

    private func record(to n: Int, _ envelope: ClusterEnvelope) {
        record(to: n) { ClusterWire.append(envelope, into: &$0) }
    }

    /// One record, which `write` appends, into this iteration's message for node `n`.
    private func record(to n: Int, _ write: (inout [UInt8]) -> Void) {
        guard clustered else { return }
        open(n)
        write(&batches[n])
        lastFrames[n] = -1
        recordsOut &+= 1
    }

    private func received(_ payload: UnsafeRawBufferPointer) {
        guard clustered, let (from, records) = ClusterWire.receive(payload) else { return }
        let now = server.loop.nowMillis
        let node = index(of: from)
        recordsIn &+= UInt64(records.count)
        // Frames and texts, one per message, are used where they lie in the channel message.
        for record in records {
            switch record {
            case .inPlace(let raw) where raw.kind == ClusterWire.textKind:
                receiveText(raw.body, slot: raw.slot, entry: raw.entry, node: node, now: now)
            case .inPlace(let raw):
                writeFrames(raw.body, to: PeerID(rawValue: raw.slot), from: from, node: node, entry: raw.entry)
            case .decoded(let envelope):
                dispatch(envelope, from: from, node: node, now: now)
            }
        }
        if server.chat.deadlinesChanged { server.armMatchTimer() }
    }

    /// A text an owner forwarded for one of our stubs: to the chat, unless the stub's chat is gone.
    private func receiveText(_ text: UnsafeRawBufferPointer, slot: UInt32, entry: UInt64, node: Int, now: UInt64) {
        guard let stub = stubs[StubKey(node: node, slot: slot, entry: entry)] else {
            return chatGone(ClusterEnvelope(slot: slot, entry: entry, .text([])), node)
        }
        server.chat.receive(text, from: stub, now: now)
    }

    /// Frames the home built for a client of ours: to its socket, unless it is no longer the client they are for.
    private func writeFrames(_ frames: UnsafeRawBufferPointer, to peer: PeerID, from: String, node: Int, entry: UInt64) {
        guard isHosted(peer, on: from, entry: entry) else {
            return record(to: node, ClusterEnvelope(slot: peer.rawValue, entry: entry, .gone(dropped: false)))
        }
        server.connections.ifOpen(peer) { conn in
            conn.sendPrebuilt(frames)
            if conn.outstandingBytes > server.config.outgoingCap {
                conn.closeWebSocket(.policyViolation, dropPending: true)
            }
        }
    }

    private func dispatch(_ e: ClusterEnvelope, from: String, node: Int, now: UInt64) {
        let peer = PeerID(rawValue: e.slot)
        switch e.record {
        // To the home: about a stub here.
        case .text(let bytes):
            bytes.withUnsafeBytes { receiveText($0, slot: e.slot, entry: e.entry, node: node, now: now) }
        case .binary(var bytes):
            guard let stub = stubs[StubKey(node: node, slot: e.slot, entry: e.entry)] else { return chatGone(e, node) }
            bytes.withUnsafeMutableBytes { server.chat.receiveBinary($0, from: stub, now: now) }
        case .skippedBinary:
            guard let stub = stubs[StubKey(node: node, slot: e.slot, entry: e.entry)] else { return }
            server.chat.refuseBinary(from: stub, now: now)
        case .gone(let dropped):
            guard let stub = stubs[StubKey(node: node, slot: e.slot, entry: e.entry)] else { return }
            if dropped { server.chat.drop(stub, now: now) } else { server.chat.leave(stub, now: now) }
            if !server.chat.isHeld(stub) { freeStub(stub) }
        case .attach(let address, let command):
            // A connection on `from` resumes a chat of this node: it becomes a stub here, which takes the resume.
            let key = StubKey(node: node, slot: e.slot, entry: e.entry)
            guard stubs[key] == nil else { return }
            let stub = makeStub(node: from, slot: e.slot, entry: e.entry)
            server.chat.joinStub(stub, address: address, version: .v2, images: false,
                                 serial: UInt32.random(in: 1...(1 << 29)), interests: [], now: now)
            command.withUnsafeBytes { server.chat.receive($0, from: stub, now: now) }
        case .moved(let num, let slot):
            guard isHosted(peer, on: from, entry: e.entry) else { return }
            server.chat.routing.relocate(peer)
            locate(peer, node: num, slot: slot, secret: (0, 0), seq: 0, live: true)
        // To the owner: about a member here.
        case .adopt:
            if server.chat.routing.isWaiting(peer, entry: e.entry) {
                server.chat.hostedElsewhere(peer, on: from, entry: e.entry)
                setHosted(peer, true)
            } else {
                record(to: node, ClusterEnvelope(slot: e.slot, entry: e.entry, .gone(dropped: false)))
            }
        case .requeue:
            if server.chat.routing.isWaiting(peer, entry: e.entry) {
                server.chat.routing.took(peer)
                server.chat.requeue(peer, now: now)
            }
        case .frames(let bytes):
            bytes.withUnsafeBytes { writeFrames($0, to: peer, from: from, node: node, entry: e.entry) }
        case .allowBinary(let n):
            guard isHosted(peer, on: from, entry: e.entry) else { return }
            server.connections.ifOpen(peer) { $0.session?.allowBinary(n) }
        case .handBack(let interests, let images, let recent):
            guard isHosted(peer, on: from, entry: e.entry) else { return }
            setHosted(peer, false)
            server.chat.returned(peer, interests: interests, images: images, recent: recent, now: now)
        case .close(let code, let reason):
            guard isHosted(peer, on: from, entry: e.entry) else { return }
            setHosted(peer, false)
            server.chat.hostedChatEnded(peer, notify: code == 0, now: now)
            guard code != 0 else { return }
            server.connections.ifOpen(peer) { conn in
                if code == 4001 {
                    conn.closeWebSocket(.resumedElsewhere, dropPending: true)
                } else if reason == "banned" {
                    server.metrics.banCloses &+= 1
                    conn.closeWebSocket(.policyViolation, reason: "banned")
                } else {
                    conn.closeWebSocket(.policyViolation, dropPending: true)
                }
            }
        }
    }

    private func isHosted(_ peer: PeerID, on node: String, entry: UInt64) -> Bool {
        guard let h = server.chat.routing.hosted[peer] else { return false }
        return h.node == node && h.entry == entry
    }

    /// A message for a stub this home no longer has: the chat is over, its owner tells the client.
    private func chatGone(_ e: ClusterEnvelope, _ node: Int) {
        record(to: node, ClusterEnvelope(slot: e.slot, entry: e.entry, .close(code: 0, reason: "")))
    }

    // MARK: - Drain and stop

    /// The node drains (a rolling restart). Every chat whose sides both speak version 2 is exported to Redis for
    /// their resumes on other nodes; a side that is a stub is taken up at once by its own node (`moved`). Other
    /// chats end (their remote sides hear `partner_left`). Then the node leaves the queue, and `done` runs once
    /// Redis has it all (or after a second), so that the 1012 closes come after the chats can be found.
    func beginDrain(then done: @escaping () -> Void) {
        let now = server.loop.nowMillis
        // No more heartbeats: the node leaves the cluster now (one more would register it again).
        closing = true
        let num = server.chat.tokenNode
        guard clustered, commands.state == .ready, num != 0 else {
            for (_, stub) in stubs { toStubNode(stub, .close(code: 0, reason: "")) }
            pump()
            return done()
        }
        exportsChats = true
        let mask = ChatService<ConnectionOutbox, ClusterRouting>.tokenSlotLimit - 1
        let ttl = UInt64(server.config.resumeGraceSeconds) * 1000 + 5000
        for (export, a, b) in server.chat.exportChats(now: now) {
            let (sa, sb) = (export.a.tokenSlot, export.b.tokenSlot)
            // (A token issued before this node had its number names no node: that chat cannot be found elsewhere.)
            if sa >> 20 == num && sb >> 20 == num {
                // A side that is another node's client is taken up by that node, at once (`moved`).
                let claimant = [a, b].compactMap { stubKeys[$0.rawValue].map { nodeNames[$0.node] } }.first ?? ""
                commands.send([self.b("FCALL"), self.b("uvchat_export"), self.b("0"), self.b(String(num)),
                               self.b(String(sa & mask)), self.b(String(sb & mask)), export.bytes,
                               self.b(String(ttl)), self.b(claimant)], nil)
                exportedChats &+= 1
            }
            for (x, side) in [(a, export.a), (b, export.b)] where isStub(x) {
                toStubNode(x, .moved(node: num, slot: side.tokenSlot & mask))
                server.chat.forgetStub(x, now: now)
                freeStub(x)
            }
        }
        for (_, stub) in stubs { toStubNode(stub, .close(code: 0, reason: "")) }
        var finished = false
        let finish = { [unowned self] in
            guard !finished else { return }
            finished = true
            drainWait?.close()
            drainWait = nil
            done()
        }
        let sent = commands.send([b("FCALL"), b("uvchat_leave"), b("0"), b(name)]) { _ in finish() }
        pump()
        guard sent else { return finish() }
        drainWait = try? server.loop.timer { finish() }
        try? drainWait?.start(after: 1000)
    }

    private var drainWait: LoopTimer?
    /// The drain left this node's version 2 chats in Redis: another node can take their resumes (1012, B.2).
    private(set) var exportsChats = false
    private(set) var exportedChats: UInt64 = 0

    func close() {
        closing = true
        heartbeatTimer?.close()
        heartbeatTimer = nil
        drainWait?.close()
        drainWait = nil
        retryTimer?.close()
        retryTimer = nil
        pump()
        commands.close(gracefully: true)
        subscriber.close(gracefully: false)
    }

    // MARK: - Metrics

    func metricsText() -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        metric("uvchat_cluster_joined", "gauge", "1 while this node is part of the cluster (Redis reachable, registered).",
               isJoined ? "1" : "0")
        metric("uvchat_cluster_online", "gauge", "Members online in the whole cluster, from the last heartbeat.",
               String(clusterOnline))
        metric("uvchat_cluster_nodes", "gauge", "Live nodes in the cluster, from the last heartbeat.", String(liveNodes.count))
        metric("uvchat_cluster_stubs", "gauge", "Clients of other nodes whose chat is on this node.", String(stubs.count))
        metric("uvchat_cluster_hosted_elsewhere", "gauge", "Clients of this node whose chat is on another node.",
               String(server.chat.routing.hosted.count))
        metric("uvchat_redis_round_trips_total", "counter", "Answered Redis queue calls and heartbeats.", String(roundTrips))
        metric("uvchat_redis_round_trip_seconds_total", "counter",
               "Time those calls took, at the loop's millisecond resolution.", String(Double(roundTripMicros) / 1e6))
        metric("uvchat_redis_reconnects_total", "counter", "Connection attempts to Redis after a loss.", String(reconnects))
        metric("uvchat_redis_refused_commands_total", "counter",
               "Commands refused because Redis's output buffer was over its bound.",
               String(commands.refusedCommands + subscriber.refusedCommands))
        metric("uvchat_cluster_reaped_nodes_total", "counter", "Silent nodes this node reaped.", String(reapedNodes))
        metric("uvchat_cluster_records_sent_total", "counter", "Cross-node records sent (frames, messages, events).",
               String(recordsOut))
        metric("uvchat_cluster_records_received_total", "counter", "Cross-node records received.", String(recordsIn))
        metric("uvchat_cluster_exported_chats_total", "counter",
               "Chats this node left in Redis for their resumes elsewhere when it drained.", String(exportedChats))
        metric("uvchat_cluster_publishes_total", "counter", "PUBLISH commands (one per node per loop iteration at most).",
               String(publishes))
        return out
    }

    private func b(_ s: String) -> [UInt8] { Array(s.utf8) }
}

@available(*, unavailable)
extension ClusterNode: Sendable {}
