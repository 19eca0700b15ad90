/// The open connections by slot; a slot's index is the connection's `PeerID`, so the chat's per-peer arrays and
/// this table line up. A slot is reused only after its connection's close callback.
final class ConnectionTable {
    private var slots: [Connection?] = []
    private var freeSlots: [UInt32] = []
    private(set) var count = 0

    func reserve() -> PeerID {
        if let free = freeSlots.popLast() { return PeerID(rawValue: free) }
        slots.append(nil)
        return PeerID(rawValue: UInt32(slots.count - 1))
    }

    /// Gives back a slot that `insert` never filled.
    func release(_ id: PeerID) { freeSlots.append(id.rawValue) }

    func insert(_ conn: Connection) {
        slots[Int(conn.id.rawValue)] = conn
        count += 1
    }

    func remove(_ conn: Connection) {
        slots[Int(conn.id.rawValue)] = nil
        freeSlots.append(conn.id.rawValue)
        count -= 1
    }

    /// The connection of a chat peer (the service only names peers that are open).
    @inline(__always)
    subscript(peer: PeerID) -> Connection { slots[Int(peer.rawValue)].unsafelyUnwrapped }

    /// Every open connection, for the sweep, the drain and the metrics.
    func forEach(_ body: (Connection) -> Void) {
        for case let conn? in slots { body(conn) }
    }
}

/// The chat service's outbox over real connections. It only appends and starts closes: nothing here calls back
/// into the chat service (which is in the middle of a call when it uses the outbox).
struct ConnectionOutbox: ChatOutbox {
    unowned(unsafe) let connections: ConnectionTable

    @inline(__always)
    func send(_ frame: [UInt8], to peer: PeerID) { connections[peer].sendPrebuilt(frame) }

    func sendText(_ payload: UnsafeRawBufferPointer, to peer: PeerID) { connections[peer].sendFrame(.text, payload) }

    @inline(__always)
    func relay(escapedText: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        let conn = connections[peer]
        conn.prepareOutput()
        ChatEventEncoder.messageFrame(escapedText: escapedText, into: &conn.output)
        conn.server.metrics.framesOut &+= 1
        conn.markDirty()
        return conn.outstandingBytes
    }

    func close(_ peer: PeerID, _ reason: ChatCloseReason) {
        let conn = connections[peer]
        switch reason {
        case .slowConsumer:
            // A receiver that falls this far behind is closed; its partner was told it left.
            var fields = [("outstanding", String(conn.outstandingBytes))]
            if conn.server.config.logAddresses { fields.append(("addr", conn.address.description)) }
            conn.server.logger.log(.info, "slow consumer closed", fields: fields)
            conn.closeWebSocket(.policyViolation, dropPending: true, leavingChat: false)
        }
    }
}
