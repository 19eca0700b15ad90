/// A close status code (RFC 6455 section 7.4, IANA "WebSocket Close Code Number Registry").
public struct WebSocketCloseCode: RawRepresentable, Equatable, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    static let normal = WebSocketCloseCode(rawValue: 1000)
    static let goingAway = WebSocketCloseCode(rawValue: 1001)
    static let protocolError = WebSocketCloseCode(rawValue: 1002)
    static let unsupportedData = WebSocketCloseCode(rawValue: 1003)
    /// Stands for "the close frame had no code"; RFC 6455 7.4.1 forbids putting it on the wire.
    static let noStatus = WebSocketCloseCode(rawValue: 1005)
    static let invalidPayload = WebSocketCloseCode(rawValue: 1007)
    static let policyViolation = WebSocketCloseCode(rawValue: 1008)
    static let messageTooBig = WebSocketCloseCode(rawValue: 1009)
    static let internalError = WebSocketCloseCode(rawValue: 1011)
    /// The server restarts (a cluster node drains): reconnect, to another node, and resume.
    static let serviceRestart = WebSocketCloseCode(rawValue: 1012)
    static let tryAgainLater = WebSocketCloseCode(rawValue: 1013)
    /// PROTOCOL.md version 2: this chat was resumed on another connection.
    static let resumedElsewhere = WebSocketCloseCode(rawValue: 4001)

    /// May a peer put this code in its close frame? 1004 is reserved, 1005, 1006 and 1015 only ever describe a
    /// local condition, 1016-2999 are kept for future RFCs, below 1000 and from 5000 are not codes at all.
    /// 1012-1014 were registered after RFC 6455, so peers do send them.
    static func isValidReceived(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}
