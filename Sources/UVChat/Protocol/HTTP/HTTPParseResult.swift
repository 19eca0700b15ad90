enum HTTPParseResult {
    /// Every byte given was taken into the parser's buffer; call again with more.
    case needMore
    /// `consumed` counts only the bytes of the latest call's input that belong to the head. The bytes after it are
    /// the next pipelined request or, after an upgrade, the first WebSocket frames: the caller must keep them.
    case head(HTTPRequestHead, consumed: Int)
    /// The connection should answer with this status and close. The parser stays failed until `reset()`.
    case error(HTTPStatus)
}
