/// The opcodes RFC 6455 section 5.2 defines; 3-7 and 11-15 are reserved and refused by the parser.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10

    /// Control opcodes have the high bit of the nibble set (RFC 6455 5.5).
    var isControl: Bool { rawValue & 0x08 != 0 }
}
