/// What `WebSocketParser.next` found. The pointers are borrowed: they stay valid only until the next call to `next`
/// (or `shrinkIfIdle`) and point either into the caller's input buffer, unmasked in place, or into the parser's own
/// message buffer. Copy what must outlive that.
public enum WebSocketEvent {
    /// A complete text message, fragments reassembled, already checked to be valid UTF-8.
    case text(UnsafeRawBufferPointer)
    /// A complete binary message, fragments reassembled.
    case binary(UnsafeRawBufferPointer)
    /// A binary message over the allowance (`WebSocketParser.binaryAllowance`), read and dropped unseen.
    case skippedBinary
    case ping(UnsafeRawBufferPointer)
    case pong(UnsafeRawBufferPointer)
    /// A valid close frame; `code` is nil when its payload was empty. The parser ignores all input after it.
    case close(code: UInt16?, reason: UnsafeRawBufferPointer)
    /// The peer broke the protocol: send a close frame with this code and close. The parser stays failed.
    case fail(WebSocketCloseCode)
}
