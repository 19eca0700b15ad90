import Benchmark
import UVChat
import UVChatBenchSupport

// The server's whole per-message path from a read to the partner's output buffer, one chat message per unit of work
// (1000 per measured iteration), with the calls and arguments of the server:
//   Connection.handleFrames   WebSocketParser.next on the read: header, unmask in place, UTF-8 check
//   Server.chatCommand        ChatCommandDecoder.decode(payload, maxScalars: 2000)
//   Server.relay              ChatEventEncoder.messageFrame(escapedText:into: partner.pending): frame header, then
//                             the event with the sender's JSON string literal copied verbatim
//   (typing)                  partner.sendPrebuilt(frames.typingOn): one append of a frame built at start-up
// The partner's `pending` is a class property like `Connection.pending`, a buffer with the 2048-byte capacity that
// `Server.lendOutputBuffer` gives, emptied after each message the way a written-out buffer is recycled.
// Not included: rate limiting, metrics counters, `markDirty` and the socket write (Server/Connection bookkeeping).
//
// These are the benchmarks behind "no heap allocation per relayed message": their mallocCountTotal tolerance is 0.

let maxMessageBytes = 16 * 1024     // ServerConfiguration.maxMessageBytes
let maxScalars = 2000               // ServerConfiguration.maxTextScalars
let frameCount = 1000

/// The receiving side of a pairing: what `Server.relay` writes into.
final class Partner {
    var pending: [UInt8] = []

    init() { pending.reserveCapacity(2048) }
}

final class RelayState {
    let slots: FrameSlots
    let partner = Partner()
    var parser = WebSocketParser(maxMessageBytes: maxMessageBytes)
    /// `PrebuiltFrames.typingOn`, built the way `PrebuiltFrames.text` builds it.
    let typingOn: [UInt8]

    init(command: [UInt8]) {
        slots = FrameSlots(frame: Fixtures.maskedFrame(payload: command), count: frameCount)
        var payload: [UInt8] = []
        ChatEventEncoder.typing(true, into: &payload)
        var frame: [UInt8] = []
        payload.withUnsafeBytes { WebSocketFrameEncoder.appendFrame(opcode: .text, payload: $0, into: &frame) }
        typingOn = frame
    }
}

/// One read holding one frame, handled as `Connection.handleFrames` and `Server.chatCommand` handle it.
@inline(__always)
func handleRead(_ input: UnsafeMutableRawBufferPointer, _ state: RelayState) {
    var offset = 0
    while let event = state.parser.next(input, offset: &offset) {
        guard case .text(let payload) = event else { fatalError("not a text event: \(event)") }
        switch ChatCommandDecoder.decode(payload, maxScalars: maxScalars) {
        case .success(.message(let range, _)):
            relay(UnsafeRawBufferPointer(rebasing: payload[range]), to: state.partner)
        case .success(.typing(let active)):
            precondition(active)
            state.partner.pending.append(contentsOf: state.typingOn)
        default:
            fatalError("unexpected command")
        }
    }
}

/// `Server.relay` without its metrics and slow-consumer check: the encoder call it makes.
@inline(__always)
func relay(_ escapedText: UnsafeRawBufferPointer, to partner: Partner) {
    ChatEventEncoder.messageFrame(escapedText: escapedText, into: &partner.pending)
}

let benchmarks: @Sendable () -> Void = {
    // Near the longest message allowed: 1989 scalars (Cyrillic, emoji, spaces) in 3800 bytes.
    let longText = Fixtures.mixedText(bytes: 3800)
    precondition(String(decoding: longText, as: UTF8.self).unicodeScalars.count <= maxScalars)
    let longCommand = Fixtures.messageCommand(text: longText)
    let cases: [(name: String, command: [UInt8], expectedOutput: [UInt8])] = [
        ("relay message 100B", Fixtures.messageCommand(totalBytes: 100),
         [0x81, 100] + Fixtures.messageCommand(totalBytes: 100)),
        ("relay message 3800B mixed", longCommand,
         [0x81, 126, UInt8(longCommand.count >> 8), UInt8(longCommand.count & 0xFF)] + longCommand),
        ("relay typing", Fixtures.typingCommand,
         [0x81, 31] + Array(#"{"type":"typing","active":true}"#.utf8)),
    ]

    for (name, command, expectedOutput) in cases {
        Benchmark(name, configuration: .uvchat(allocationFree: true)) { (benchmark: Benchmark, state: RelayState) in
            state.slots.refill()
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                handleRead(state.slots.slot(i), state)
                blackHole(state.partner.pending.count)
                state.partner.pending.removeAll(keepingCapacity: true)
            }
        } setup: {
            let state = RelayState(command: command)
            // The relayed frame is byte for byte what the partner must get.
            handleRead(state.slots.slot(0), state)
            guard state.partner.pending == expectedOutput else {
                fatalError("\(name): relayed \(state.partner.pending.count) bytes, expected \(expectedOutput.count)")
            }
            // Grow the partner's buffer to the frame size once, as a recycled buffer from the server's pool would be.
            state.partner.pending.removeAll(keepingCapacity: true)
            state.slots.refill()
            return state
        }
    }
}
