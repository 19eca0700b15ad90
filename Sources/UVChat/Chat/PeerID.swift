/// A client's identity in the matchmaker. The server allocates them: its connection slot numbers.
public struct PeerID: Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
}
