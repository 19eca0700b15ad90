import Benchmark
import UVChat
import UVChatBenchSupport

// RFC 6455 framing, one chat message per unit of work (1000 per measured iteration).
//
// parse: a browser's frame for a 100-byte command, FIN + text + MASK + 100-byte payload (106 bytes), lying whole in
// one read, as it does on the server: `WebSocketParser.next` checks the header, unmasks in place, validates the
// UTF-8 and lends the payload out; the loop calls `next` again until it returns nil, like
// `Connection.handleFrames`. Every frame has a slot of its own, restored outside the measurement, because the
// parser unmasks the caller's buffer.
//
// encode: a 100-byte server-to-client text frame appended to a reused output buffer (capacity 2048, what
// `Server.lendOutputBuffer` hands out) with `appendFrame`, as `Connection.sendFrame` does, emptied after each
// frame the way a flushed buffer is recycled.

/// `ServerConfiguration.maxMessageBytes`, the limit the server gives `/ws` parsers.
let maxMessageBytes = 16 * 1024
let frameCount = 1000

let benchmarks: @Sendable () -> Void = {
    let command = Fixtures.messageCommand(totalBytes: 100)
    precondition(command.count == 100)

    Benchmark("parse masked text 100B", configuration: .uvchat(allocationFree: true)) { (benchmark: Benchmark, slots: FrameSlots) in
        slots.refill()
        var parser = WebSocketParser(maxMessageBytes: maxMessageBytes)
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            let input = slots.slot(i)
            var offset = 0
            while let event = parser.next(input, offset: &offset) {
                guard case .text(let payload) = event else { fatalError("not a text event: \(event)") }
                blackHole(payload.count)
            }
        }
    } setup: {
        let slots = FrameSlots(frame: Fixtures.maskedFrame(payload: command), count: frameCount)
        // Check once that the loop measures what it claims: one text event carrying the command.
        var parser = WebSocketParser(maxMessageBytes: maxMessageBytes)
        var offset = 0
        guard case .text(let payload)? = parser.next(slots.slot(0), offset: &offset), Array(payload) == command,
              parser.next(slots.slot(0), offset: &offset) == nil else { fatalError("parse fixture") }
        slots.refill()
        return slots
    }

    Benchmark("encode text 100B appendFrame", configuration: .uvchat(allocationFree: true)) { (benchmark: Benchmark, payload: ByteBuffer) in
        var out: [UInt8] = []
        out.reserveCapacity(2048)
        let p = payload.raw
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            WebSocketFrameEncoder.appendFrame(opcode: .text, payload: p, into: &out)
            blackHole(out.count)
            out.removeAll(keepingCapacity: true)
        }
    } setup: {
        var check: [UInt8] = []
        command.withUnsafeBytes { WebSocketFrameEncoder.appendFrame(opcode: .text, payload: $0, into: &check) }
        guard check == [0x81, 100] + command else { fatalError("encode fixture") }
        return ByteBuffer(command)
    }
}
