/// A command from a client (PROTOCOL.md, "Client to server", and Part B for version 2).
public enum ChatCommand: Equatable {
    /// `text` is the byte range, within the decoded input, of the JSON string literal's contents (between the quotes,
    /// still escaped). The decoder has validated every escape and counted the scalars, so the server relays a message
    /// by copying these bytes between `{"type":"message","text":"` and `"}`: one parse, one write, no String.
    /// `id` (version 2 only; always nil on version 1) is the client's message number, 1 ... 2^53 - 1.
    case message(text: Range<Int>, scalars: Int, id: UInt64?)
    case typing(Bool)
    case next
    case stop
    // Version 2 only: on version 1 these are unknown types (`bad_request`).
    /// `interests`: nil when the field is absent (the query's interests count), else the tags after the rules of
    /// PROTOCOL.md "Interests" (trimmed, lower-cased, 1 to 32 characters, at most 5, no duplicates).
    case start(interests: [String]?, images: Bool)
    case ack(seq: UInt64)
    /// `token` is the byte range of the string literal's contents (still escaped: a token never needs escapes, so
    /// one that has any simply matches nothing).
    case resume(token: Range<Int>, seq: UInt64)
    case ping
    /// `image_offer` (B.3): `id` 1 ... 2^32 - 1 (it prefixes the binary message as 4 bytes), `bytes` 1 ... 2^53 - 1
    /// (the service holds it to the image limit: `too_large`).
    case imageOffer(id: UInt32, type: ImageType, bytes: UInt64)
    /// `image_accept` (true) or `image_decline` (false).
    case imageAnswer(id: UInt32, accept: Bool)
    /// `call` (B.4): what a client may ask (the `start` action is the server's).
    case call(CallAction)
    /// `signal` (B.4): `data` is the byte range of the object, grammar-checked, relayed to the partner as it is.
    case signal(data: Range<Int>)
    /// `report` (B.5): about the partner, or the last one within the report grace; a missing `reason` is `other`.
    case report(ReportReason)
    /// `block` (B.5).
    case block
}

/// A client's `call` action (B.4). `request` without `video` is a voice call.
public enum CallAction: Equatable, Sendable {
    case request(video: Bool)
    case accept, decline, end
}

/// Which protocol a connection speaks, chosen at the upgrade (`Sec-WebSocket-Protocol: uvchat.2`).
public enum ProtocolVersion: UInt8, Sendable {
    case v1 = 1
    case v2 = 2
}
