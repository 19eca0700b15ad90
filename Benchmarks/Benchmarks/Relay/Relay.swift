import Benchmark
import UVChat
import UVChatBenchSupport

// The server's whole per-message path from a read to the partner's output buffer, one chat message per unit of work
// (1000 per measured iteration), through the real code the server runs:
//   WebSocketSession.next      the parser on the read: header, unmask in place, UTF-8 check, the session's rules
//   ChatService.receive        ChatCommandDecoder.decode, the routing's partner lookup, both rate buckets
//   ChatOutbox.relay           ChatEventEncoder.messageFrame into the partner's output (what ConnectionOutbox does)
//   (typing)                   ChatOutbox.send of the prebuilt typing frame
// Only the outbox is the benchmark's own: an output buffer with the 2048-byte capacity that the loop's output pool
// lends, emptied after each message the way a written-out buffer is recycled. Not included: the socket write and
// the connection's metrics counters.
//
// These are the benchmarks behind "no heap allocation per relayed message": their mallocCountTotal tolerance is 0.

let maxMessageBytes = 16 * 1024     // ServerConfiguration.maxMessageBytes
let frameCount = 1000

/// The receiving side of a pairing: what the server's outbox writes into.
final class Partner {
    var pending: [UInt8] = []

    init() { pending.reserveCapacity(2048) }
}

struct BufferOutbox: ChatOutbox {
    let partner: Partner

    func send(_ frame: [UInt8], to peer: PeerID) -> Int {
        partner.pending.append(contentsOf: frame)
        return partner.pending.count
    }

    func sendText(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        WebSocketFrameEncoder.appendFrame(opcode: .text, payload: payload, into: &partner.pending)
        return partner.pending.count
    }

    func relay(escapedText: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        ChatEventEncoder.messageFrame(escapedText: escapedText, into: &partner.pending)
        return partner.pending.count
    }

    func relay(escapedText: UnsafeRawBufferPointer, seq: UInt64, to peer: PeerID) -> Int {
        ChatEventEncoder.messageFrame(escapedText: escapedText, seq: seq, into: &partner.pending)
        return partner.pending.count
    }

    func sendBinary(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        WebSocketFrameEncoder.appendFrame(opcode: .binary, payload: payload, into: &partner.pending)
        return partner.pending.count
    }

    func allowBinary(_ bytes: Int, from peer: PeerID) {}

    func release(_ peer: PeerID) {}

    func close(_ peer: PeerID, _ reason: ChatCloseReason) { fatalError("the partner reads everything") }
}

let sender = PeerID(rawValue: 0)
let receiver = PeerID(rawValue: 1)

final class RelayState {
    let slots: FrameSlots
    let partner = Partner()
    var session = WebSocketSession(maxMessageBytes: maxMessageBytes, now: 0)
    var chat: ChatService<BufferOutbox, LocalRouting>
    /// The clock, in milliseconds: 250 ms per command keeps every bucket full (typing refills 5 per second, the
    /// slowest), as a person's pace would, so that no command is refused for its rate.
    var now: UInt64 = 0
    let version: ProtocolVersion
    /// Version 2: messages relayed so far, and the receiver's `ack` command, rebuilt in place every 16 messages as
    /// a client acks (its capacity is kept, so it does not allocate).
    var relayed: UInt64 = 0
    var ack: [UInt8] = []

    init(command: [UInt8], version: ProtocolVersion = .v1) {
        self.version = version
        ack.reserveCapacity(64)
        slots = FrameSlots(frame: Fixtures.maskedFrame(payload: command), count: frameCount)
        chat = ChatService(settings: ChatSettings(), outbox: BufferOutbox(partner: partner),
                           routing: LocalRouting(interestTimeoutNanos: 5_000_000_000))
        let address = ClientAddress(text: "192.0.2.1")!
        chat.join(sender, address: address, interests: [], version: version, now: 0)
        chat.join(receiver, address: address, interests: [], version: version, now: 0)
        if version == .v2 {
            let start = Array(#"{"type":"start"}"#.utf8)
            start.withUnsafeBytes { chat.receive($0, from: sender, now: 0) }
            start.withUnsafeBytes { chat.receive($0, from: receiver, now: 0) }
        }
        precondition(chat.routing.partner(of: sender) == receiver)
        partner.pending.removeAll(keepingCapacity: true)
    }
}

/// One read holding one frame, handled as `Connection.handleFrames` handles it.
@inline(__always)
func handleRead(_ input: UnsafeMutableRawBufferPointer, _ state: RelayState) {
    var offset = 0
    state.now &+= 250
    while let action = state.session.next(input, offset: &offset, now: state.now) {
        guard case .text(let payload) = action else { fatalError("not a text message: \(action)") }
        state.chat.receive(payload, from: sender, now: state.now)
    }
    if state.version == .v2 {
        state.relayed &+= 1
        if state.relayed % 16 == 0 { acknowledge(state) }
    }
}

/// The receiver acks everything so far, as the page does every 16 messages.
func acknowledge(_ state: RelayState) {
    state.ack.removeAll(keepingCapacity: true)
    state.ack.append(contentsOf: #"{"type":"ack","seq":"#.utf8)
    var digits: UInt64 = 1
    while digits * 10 <= state.relayed { digits *= 10 }
    var rest = state.relayed
    while digits > 0 {
        state.ack.append(UInt8(ascii: "0") + UInt8(rest / digits))
        rest %= digits
        digits /= 10
    }
    state.ack.append(UInt8(ascii: "}"))
    state.ack.withUnsafeBytes { state.chat.receive($0, from: receiver, now: state.now) }
}

let benchmarks: @Sendable () -> Void = {
    // Near the longest message allowed: 1989 scalars (Cyrillic, emoji, spaces) in 3800 bytes.
    let longText = Fixtures.mixedText(bytes: 3800)
    precondition(String(decoding: longText, as: UTF8.self).unicodeScalars.count <= ChatSettings().maxTextScalars)
    let longCommand = Fixtures.messageCommand(text: longText)
    let v2Command = Fixtures.messageCommand(totalBytes: 100)
    let v2Output = Array(v2Command.dropLast(2)) + Array(#"","seq":1}"#.utf8)
    let cases: [(name: String, command: [UInt8], version: ProtocolVersion, expectedOutput: [UInt8])] = [
        ("relay message 100B", Fixtures.messageCommand(totalBytes: 100), .v1,
         [0x81, 100] + Fixtures.messageCommand(totalBytes: 100)),
        ("relay message 3800B mixed", longCommand, .v1,
         [0x81, 126, UInt8(longCommand.count >> 8), UInt8(longCommand.count & 0xFF)] + longCommand),
        ("relay typing", Fixtures.typingCommand, .v1,
         [0x81, 31] + Array(#"{"type":"typing","active":true}"#.utf8)),
        // Version 2 on both sides: the copy carries its seq and is kept in the receiver's replay ring until the
        // receiver acks, every 16 messages (the ack is part of the measured cost).
        ("relay message 100B v2", v2Command, .v2, [0x81, UInt8(v2Output.count)] + v2Output),
    ]

    for (name, command, version, expectedOutput) in cases {
        Benchmark(name, configuration: .uvchat(allocationFree: true)) { (benchmark: Benchmark, state: RelayState) in
            state.slots.refill()
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                handleRead(state.slots.slot(i), state)
                blackHole(state.partner.pending.count)
                state.partner.pending.removeAll(keepingCapacity: true)
            }
        } setup: {
            let state = RelayState(command: command, version: version)
            // The relayed frame is byte for byte what the partner must get.
            handleRead(state.slots.slot(0), state)
            guard state.partner.pending == expectedOutput else {
                fatalError("\(name): relayed \(state.partner.pending.count) bytes, expected \(expectedOutput.count)")
            }
            // A measured run is many times the buckets' burst: none of it may be refused (a refusal is an error
            // frame to the sender, not the relay this measures).
            state.slots.refill()
            for i in 1..<frameCount {
                handleRead(state.slots.slot(i), state)
                state.partner.pending.removeAll(keepingCapacity: true)
            }
            guard state.chat.counters.rateLimitHits == 0 else { fatalError("\(name): refused for its rate") }
            // Grow the partner's buffer to the frame size once, as a recycled buffer from the loop's pool would be.
            state.partner.pending.removeAll(keepingCapacity: true)
            state.slots.refill()
            return state
        }
    }
}
