/// The open connections by slot; a slot's index is the connection's `PeerID`, so the chat's per-peer arrays and
/// this table line up. A slot is reused only after its connection's release (`Socket.didClose`).
///
/// The table does not own its connections: the loop's epoll set holds each from `register()` to its release,
/// which takes it out of here. So slots hold unmanaged references and a lookup costs no reference
/// counting, which a relayed message would otherwise pay for on every lookup.
final class ConnectionTable {
    private var slots: [Unmanaged<Connection>?] = []
    private var freeSlots: [UInt32] = []
    private(set) var count = 0
    /// A cluster node's stubs hold slots with no connection (`ClusterNode`); the outbox sends their frames there.
    var cluster: ClusterNode?

    func reserve() -> PeerID {
        if let free = freeSlots.popLast() { return PeerID(rawValue: free) }
        slots.append(nil)
        return PeerID(rawValue: UInt32(slots.count - 1))
    }

    /// Gives back a slot that `insert` never filled.
    func release(_ id: PeerID) { freeSlots.append(id.rawValue) }

    /// `conn` is registered: its handle keeps it alive until it is removed.
    func insert(_ conn: Connection) {
        slots[Int(conn.id.rawValue)] = Unmanaged.passUnretained(conn)
        count += 1
    }

    /// `held`: the chat keeps the slot for an away side (B.2) until it releases it (`releaseHeld`).
    func remove(_ conn: Connection, held: Bool) {
        slots[Int(conn.id.rawValue)] = nil
        if !held { freeSlots.append(conn.id.rawValue) }
        count -= 1
    }

    /// The chat let go of a held slot. While the slot's connection is still closing, its `remove` frees it.
    func releaseHeld(_ id: PeerID) {
        if slots[Int(id.rawValue)] == nil { freeSlots.append(id.rawValue) }
    }

    /// Runs `body` with the connection of a chat peer (the service only names peers that are open).
    @inline(__always)
    func with<R>(_ peer: PeerID, _ body: (Connection) -> R) -> R {
        slots[Int(peer.rawValue)].unsafelyUnwrapped._withUnsafeGuaranteedRef(body)
    }

    /// The slot's connection, if one is open there (a stub's slot, or an away side's, has none).
    @inline(__always)
    func slot(_ peer: PeerID) -> Unmanaged<Connection>? { slots[Int(peer.rawValue)] }

    func ifOpen(_ peer: PeerID, _ body: (Connection) -> Void) {
        guard Int(peer.rawValue) < slots.count, let conn = slots[Int(peer.rawValue)] else { return }
        conn._withUnsafeGuaranteedRef(body)
    }

    /// Every open connection, for the sweep, the drain and the metrics.
    func forEach(_ body: (Connection) -> Void) {
        var i = 0
        // By index: a body may close connections, which only changes slots at their release, later.
        while i < slots.count {
            if let conn = slots[i] { conn._withUnsafeGuaranteedRef(body) }
            i += 1
        }
    }
}

/// The chat service's outbox over real connections. It only appends and starts closes: nothing here calls back
/// into the chat service (which is in the middle of a call when it uses the outbox).
struct ConnectionOutbox: ChatOutbox {
    unowned(unsafe) let connections: ConnectionTable

    // A peer with no connection in its slot is a cluster stub (`ClusterNode.toStub`): its frames go to its node.

    @inline(__always)
    func send(_ frame: [UInt8], to peer: PeerID) -> Int {
        guard let conn = connections.slot(peer) else { return toStub(peer) { $0.append(contentsOf: frame) } }
        return conn._withUnsafeGuaranteedRef { conn in
            conn.sendPrebuilt(frame)
            return conn.outstandingBytes
        }
    }

    func sendText(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        guard let conn = connections.slot(peer) else {
            return toStub(peer) { WebSocketFrameEncoder.appendFrame(opcode: .text, payload: payload, into: &$0) }
        }
        return conn._withUnsafeGuaranteedRef { conn in
            conn.sendFrame(.text, payload)
            return conn.outstandingBytes
        }
    }

    @inline(__always)
    func relay(escapedText: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        guard let conn = connections.slot(peer) else {
            return toStub(peer) { ChatEventEncoder.messageFrame(escapedText: escapedText, into: &$0) }
        }
        return conn._withUnsafeGuaranteedRef { conn in
            conn.prepareOutput()
            ChatEventEncoder.messageFrame(escapedText: escapedText, into: &conn.output)
            conn.server.metrics.framesOut &+= 1
            conn.markDirty()
            return conn.outstandingBytes
        }
    }

    @inline(__always)
    func relay(escapedText: UnsafeRawBufferPointer, seq: UInt64, to peer: PeerID) -> Int {
        guard let conn = connections.slot(peer) else {
            return toStub(peer) { ChatEventEncoder.messageFrame(escapedText: escapedText, seq: seq, into: &$0) }
        }
        return conn._withUnsafeGuaranteedRef { conn in
            conn.prepareOutput()
            ChatEventEncoder.messageFrame(escapedText: escapedText, seq: seq, into: &conn.output)
            conn.server.metrics.framesOut &+= 1
            conn.markDirty()
            return conn.outstandingBytes
        }
    }

    func sendBinary(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        guard let conn = connections.slot(peer) else {
            return toStub(peer) { WebSocketFrameEncoder.appendFrame(opcode: .binary, payload: payload, into: &$0) }
        }
        return conn._withUnsafeGuaranteedRef { conn in
            conn.sendFrame(.binary, payload)
            return conn.outstandingBytes
        }
    }

    func allowBinary(_ bytes: Int, from peer: PeerID) {
        guard let conn = connections.slot(peer) else {
            connections.cluster?.toStubNode(peer, .allowBinary(bytes))
            return
        }
        conn._withUnsafeGuaranteedRef { $0.session?.allowBinary(bytes) }
    }

    func release(_ peer: PeerID) {
        if let cluster = connections.cluster, cluster.isStub(peer) { return cluster.freeStub(peer) }
        connections.releaseHeld(peer)
    }

    func close(_ peer: PeerID, _ reason: ChatCloseReason) {
        guard let conn = connections.slot(peer) else {
            connections.cluster?.closeStub(peer, reason)
            return
        }
        conn._withUnsafeGuaranteedRef { close($0, reason) }
    }

    func handBack(_ peer: PeerID, interests: [String], images: Bool, recent: [UInt32]) {
        connections.cluster?.handBackStub(peer, interests: interests, images: images, recent: recent)
    }

    @inline(never)
    private func toStub(_ peer: PeerID, _ build: (inout [UInt8]) -> Void) -> Int {
        connections.cluster?.toStub(peer, build) ?? 0
    }

    private func close(_ conn: Connection, _ reason: ChatCloseReason) {
        switch reason {
        case .slowConsumer:
            // A receiver that falls this far behind is closed; its partner was told it left.
            var fields = [("outstanding", String(conn.outstandingBytes))]
            if conn.server.config.logAddresses { fields.append(("addr", conn.address.description)) }
            conn.server.logger.log(.info, "slow consumer closed", fields: fields)
            conn.closeWebSocket(.policyViolation, dropPending: true, chat: .alreadyOut)
        case .resumedElsewhere:
            // Its messages not yet written are kept for the connection that resumed (they were not acknowledged).
            conn.closeWebSocket(.resumedElsewhere, dropPending: true, chat: .alreadyOut)
        case .banned:
            // What was already queued for it (its partner's last messages) still goes out before the close.
            conn.server.metrics.banCloses &+= 1
            // That a ban closed a connection, never whose (no identity, no address unless --log-addresses).
            var fields: [(String, String)] = []
            if conn.server.config.logAddresses { fields.append(("addr", conn.address.description)) }
            conn.server.logger.log(.info, "banned connection closed", fields: fields)
            conn.closeWebSocket(.policyViolation, reason: "banned", chat: .alreadyOut)
        }
    }
}
