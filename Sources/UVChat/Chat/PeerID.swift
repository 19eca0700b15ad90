/// A client's identity in the matchmaker. The server allocates them: its connection slot numbers.
struct PeerID: Hashable, Sendable {
    let rawValue: UInt32
}
