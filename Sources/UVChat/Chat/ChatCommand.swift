/// A command from a client (PROTOCOL.md, "Client to server").
public enum ChatCommand: Equatable {
    /// `text` is the byte range, within the decoded input, of the JSON string literal's contents (between the quotes,
    /// still escaped). The decoder has validated every escape and counted the scalars, so the server relays a message
    /// by copying these bytes between `{"type":"message","text":"` and `"}`: one parse, one write, no String.
    case message(text: Range<Int>, scalars: Int)
    case typing(Bool)
    case next
    case stop
}
