/// Close status codes (RFC 6455 section 7.4 and the IANA registry).
struct WebSocketCloseCode: RawRepresentable, Equatable, Sendable {
    var rawValue: UInt16
    init(rawValue: UInt16) { self.rawValue = rawValue }

    static let normal = WebSocketCloseCode(rawValue: 1000)
    static let goingAway = WebSocketCloseCode(rawValue: 1001)
    static let protocolError = WebSocketCloseCode(rawValue: 1002)
    static let unsupportedData = WebSocketCloseCode(rawValue: 1003)
    static let noStatus = WebSocketCloseCode(rawValue: 1005)
    static let invalidPayload = WebSocketCloseCode(rawValue: 1007)
    static let policyViolation = WebSocketCloseCode(rawValue: 1008)
    static let messageTooBig = WebSocketCloseCode(rawValue: 1009)
    static let internalError = WebSocketCloseCode(rawValue: 1011)
    static let tryAgainLater = WebSocketCloseCode(rawValue: 1013)

    /// May this code appear in a close frame a peer sends? 1004-1006 and 1015 are reserved for local use,
    /// 1016-2999 are unassigned, 0-999 and 5000+ are not codes.
    static func isValidReceived(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }
}

enum WebSocketOpcode: UInt8 {
    case continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10
}

/// What the parser found. Payload pointers are valid until the next call to `WebSocketParser.next`.
enum WebSocketEvent {
    case text(UnsafeRawBufferPointer)
    case binary(UnsafeRawBufferPointer)
    case ping(UnsafeRawBufferPointer)
    case pong(UnsafeRawBufferPointer)
    case close(code: UInt16?, reason: UnsafeRawBufferPointer)
    case fail(WebSocketCloseCode)
}
