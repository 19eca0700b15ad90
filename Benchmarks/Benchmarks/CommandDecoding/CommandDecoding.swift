import Benchmark
import UVChat
import UVChatBenchSupport

// `ChatCommandDecoder.decode` on one command payload per unit of work (1000 per measured iteration), with the
// server's default `maxScalars` (ServerConfiguration.maxTextScalars = 2000), as `Server.chatCommand` calls it on the
// payload of a text event (PROTOCOL.md, "Client to server"):
// - message 100B: `{"type":"message","text":"..."}` with plain ASCII text, exactly as `JSON.stringify` writes it
//   (the decoder's fast path);
// - message 100B mixed: the same shape, Cyrillic and emoji text (scalar counting over multi-byte sequences);
// - message 100B escaped: the same shape, text with `\"`, `\n`, `\\` and `\u00e9` escapes;
// - message 100B reordered: `{"text":"...","type":"message"}`, keys in the other order (the general path a
//   non-browser client may take);
// - message 100B v2 id: `{"type":"message","text":"...","id":12345}`, the version 2 page's message with its id,
//   decoded as version 2 (the decoder's second fast path);
// - typing: `{"type":"typing","active":true}` (the protocol's field is `active`).

let maxScalars = 2000

let benchmarks: @Sendable () -> Void = {
    let prefixCount = Fixtures.messageCommand(text: []).count - 2
    let mixed = Fixtures.mixedText(bytes: 100 - (prefixCount + 2))
    let escapedText = Array(#"she said \"ok\"\nthen left \\ caf\u00e9 at noon, see you tomorrow maybe?"#.utf8)
    let escapedPadded = escapedText + Fixtures.asciiText(bytes: 100 - (prefixCount + 2) - escapedText.count)
    let reorderedText = Fixtures.asciiText(bytes: 100 - #"{"text":"","type":"message"}"#.utf8.count)
    let reordered = Array(#"{"text":""#.utf8) + reorderedText + Array(#"","type":"message"}"#.utf8)
    let idSuffix = Array(#"","id":12345}"#.utf8)
    let idText = Fixtures.asciiText(bytes: 100 - (prefixCount + idSuffix.count))
    let withID = Array(Fixtures.messageCommand(text: idText).dropLast(2)) + idSuffix

    let cases: [(name: String, payload: [UInt8], version: ProtocolVersion, expected: ChatCommand)] = [
        ("message 100B", Fixtures.messageCommand(totalBytes: 100), .v1,
         .message(text: prefixCount..<98, scalars: 72, id: nil)),
        ("message 100B mixed", Fixtures.messageCommand(text: mixed), .v1,
         .message(text: prefixCount..<98, scalars: String(decoding: mixed, as: UTF8.self).unicodeScalars.count, id: nil)),
        ("message 100B escaped", Fixtures.messageCommand(text: escapedPadded), .v1,
         .message(text: prefixCount..<98, scalars: 72 - 4 - 5, id: nil)),   // four 2-byte escapes and one 6-byte escape
        ("message 100B reordered", reordered, .v1,
         .message(text: 9..<(9 + reorderedText.count), scalars: reorderedText.count, id: nil)),
        ("message 100B v2 id", withID, .v2,
         .message(text: prefixCount..<(prefixCount + idText.count), scalars: idText.count, id: 12345)),
        ("typing", Fixtures.typingCommand, .v1, .typing(true)),
    ]

    for (name, payload, version, expected) in cases {
        Benchmark("decode \(name)", configuration: .uvchat(allocationFree: true)) { (benchmark: Benchmark, buffer: ByteBuffer) in
            let bytes = buffer.raw
            for _ in benchmark.scaledIterations {
                blackHole(ChatCommandDecoder.decode(identity(bytes), maxScalars: maxScalars, version: version))
            }
        } setup: {
            if name.hasPrefix("message") { precondition(payload.count == 100, "\(name): \(payload.count) bytes") }
            let buffer = ByteBuffer(payload)
            let result = ChatCommandDecoder.decode(buffer.raw, maxScalars: maxScalars, version: version)
            guard result == .success(expected) else { fatalError("decode \(name): \(result), expected \(expected)") }
            return buffer
        }
    }
}
