import Benchmark

// Shared by the benchmark targets: the inputs (built once, outside any measurement) and the configuration.

public extension Benchmark.Configuration {
    /// The metrics every uvchat benchmark records, 1000 units of work per measured iteration (`scaledIterations`),
    /// so the starred columns of the output are per message. `instructions` needs hardware performance counters
    /// (perf_event_open); where there are none (most VMs) the benchmark leaves that row out.
    ///
    /// `allocationFree`: the benchmark is a per-message path that must not touch the heap. Its tolerance for
    /// `mallocCountTotal` is then 0, and a `Thresholds/<Target>.<name>.p90.json` holding `{"mallocCountTotal": 0}`
    /// makes `swift package benchmark thresholds check` (run.sh) exit nonzero as soon as the p90 of the mallocs per
    /// measured iteration (per 1000 messages, not rounded per message) is above 0.
    static func uvchat(allocationFree: Bool) -> Benchmark.Configuration {
        .init(
            metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput, .instructions],
            timeUnits: .nanoseconds,
            warmupIterations: 10,
            scalingFactor: .kilo,
            maxDuration: .seconds(1),
            maxIterations: 10_000,
            thresholds: allocationFree ? [.mallocCountTotal: .init(absolute: [.p90: 0])] : nil
        )
    }
}

public enum Fixtures {
    /// The masking key of RFC 6455's example (5.7). The key's value does not change the parser's work.
    public static let maskKey: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    /// `{"type":"message","text":"` + text + `"}` (PROTOCOL.md, "Client to server"), as `JSON.stringify` writes it.
    /// `text` must already be a valid JSON string body (escaped).
    public static func messageCommand(text: [UInt8]) -> [UInt8] {
        Array(#"{"type":"message","text":""#.utf8) + text + Array(#""}"#.utf8)
    }

    /// A message command of exactly `totalBytes` bytes whose text is plain ASCII chat.
    public static func messageCommand(totalBytes: Int) -> [UInt8] {
        let overhead = messageCommand(text: []).count
        precondition(totalBytes > overhead)
        return messageCommand(text: asciiText(bytes: totalBytes - overhead))
    }

    public static let typingCommand: [UInt8] = Array(#"{"type":"typing","active":true}"#.utf8)

    /// `count` bytes of ordinary English chat text (ASCII, no characters JSON must escape).
    public static func asciiText(bytes count: Int) -> [UInt8] {
        let sentence = Array("hey, how is it going? just got back from a long walk by the river, the weather was nice. ".utf8)
        return (0..<count).map { sentence[$0 % sentence.count] }
    }

    /// `count` bytes of Cyrillic text with emoji and ASCII spaces and punctuation: 2- and 4-byte sequences, a
    /// character boundary at the end (padded with ASCII spaces when the last character would not fit).
    public static func mixedText(bytes count: Int) -> [UInt8] {
        let pieces = ["Привет", " ", "как", " ", "дела", "? ", "😀", " ", "Всё", " ", "хорошо", "! ", "🎉🙂", " "]
            .map { Array($0.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var i = 0
        while true {
            let piece = pieces[i % pieces.count]
            if out.count + piece.count > count { break }
            out += piece
            i += 1
        }
        while out.count < count { out.append(UInt8(ascii: " ")) }
        return out
    }

    /// A client-to-server frame as a browser sends it: FIN, `opcode`, MASK, the shortest length form, the key, the
    /// payload XORed with the key (RFC 6455 5.2, 5.3).
    public static func maskedFrame(opcode: UInt8 = 0x1, payload: [UInt8], key: [UInt8] = maskKey) -> [UInt8] {
        var frame: [UInt8] = [0x80 | opcode]
        let n = payload.count
        if n < 126 {
            frame.append(0x80 | UInt8(n))
        } else if n <= 0xFFFF {
            frame += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((n >> shift) & 0xFF)) }
        }
        frame += key
        for (i, byte) in payload.enumerated() { frame.append(byte ^ key[i % 4]) }
        return frame
    }
}

/// `count` copies of one frame in separate slots of one allocation: each slot stands for one socket read holding
/// one frame, which is how chat messages arrive. The parser unmasks in place, so `refill()` restores every slot
/// before a measured iteration (outside the measurement).
public final class FrameSlots {
    public let slotSize: Int
    public let count: Int
    private let pristine: UnsafeMutableRawBufferPointer
    @usableFromInline let storage: UnsafeMutableRawBufferPointer

    public init(frame: [UInt8], count: Int) {
        slotSize = frame.count
        self.count = count
        pristine = .allocate(byteCount: frame.count * count, alignment: 16)
        storage = .allocate(byteCount: frame.count * count, alignment: 16)
        frame.withUnsafeBytes { f in
            for i in 0..<count {
                UnsafeMutableRawBufferPointer(rebasing: pristine[(i * slotSize)..<((i + 1) * slotSize)]).copyMemory(from: f)
            }
        }
        refill()
    }

    public func refill() {
        storage.copyMemory(from: UnsafeRawBufferPointer(pristine))
    }

    @inlinable @inline(__always)
    public func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: storage[(i * slotSize)..<((i + 1) * slotSize)])
    }

    deinit {
        pristine.deallocate()
        storage.deallocate()
    }
}

/// Bytes kept in one allocation for the whole run, so the measured loop touches no Array.
public final class ByteBuffer {
    public let bytes: UnsafeMutableRawBufferPointer

    public init(_ contents: [UInt8]) {
        bytes = .allocate(byteCount: contents.count, alignment: 16)
        contents.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    public var raw: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }

    deinit { bytes.deallocate() }
}
