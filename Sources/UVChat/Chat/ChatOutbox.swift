/// What the chat service asks of the shell: put bytes in front of a peer, or close it. The shell implements it
/// over its connections (`ConnectionOutbox`); tests implement it with a recorder. Calls only append or start a
/// close: they never call back into the service, so a command is handled start to finish without re-entry.
public protocol ChatOutbox {
    /// A whole frame built once (a prebuilt event), appended to the peer's output. Returns the bytes now waiting to
    /// be written to that peer (every byte counts against its outgoing cap).
    func send(_ frame: [UInt8], to peer: PeerID) -> Int
    /// A text frame around `payload`; returns the bytes now waiting, as `send` does.
    func sendText(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int
    /// The partner's copy of a message: `ChatEventEncoder.messageFrame(escapedText:)` appended to its output.
    /// Returns the bytes now waiting to be written to that peer.
    func relay(escapedText: UnsafeRawBufferPointer, to peer: PeerID) -> Int
    /// A version 2 client's copy: `ChatEventEncoder.messageFrame(escapedText:seq:)`. Returns the bytes waiting.
    func relay(escapedText: UnsafeRawBufferPointer, seq: UInt64, to peer: PeerID) -> Int
    /// A binary frame around `payload` (an image: B.3); returns the bytes now waiting, as `send` does.
    func sendBinary(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int
    /// From now on the peer's connection takes one binary message of at most `bytes` (0: none); a larger one is
    /// dropped unread and reported to `ChatService.refuseBinary`.
    func allowBinary(_ bytes: Int, from peer: PeerID)
    /// An away side's chat is over (or it resumed elsewhere): the slot the shell held for it may be reused.
    func release(_ peer: PeerID)
    /// Close the peer's WebSocket. The service has already taken the peer out of the chat.
    func close(_ peer: PeerID, _ reason: ChatCloseReason)
    /// A stub's chat is over and its client queues again (a cluster): its own node is told, with what it queues
    /// with; the service has forgotten the stub, whose slot the shell may reuse.
    func handBack(_ peer: PeerID, interests: [String], images: Bool, recent: [UInt32])
}

extension ChatOutbox {
    /// Outboxes of a single node (tests, benchmarks) have no stubs.
    public func handBack(_ peer: PeerID, interests: [String], images: Bool, recent: [UInt32]) {}
}

/// Why the service closes a peer.
public enum ChatCloseReason: Equatable, Sendable {
    /// Its outgoing buffer passed the cap: close 1008, dropping the frames not yet written.
    case slowConsumer
    /// Its chat side was resumed on another connection (B.2): close 4001.
    case resumedElsewhere
    /// Its identity was banned (B.5): close 1008 with the reason "banned", which the page reads.
    case banned
}
