import Testing
@testable import UVChat

/// The chat service driven as plain calls: a recording outbox stands for the sockets, a number for the clock.
final class RecordingOutbox: ChatOutbox {
    /// Every text event each peer was sent, decoded from the frames, in order.
    var sent: [UInt32: [String]] = [:]
    var closed: [(UInt32, ChatCloseReason)] = []
    /// What the outbox reports as waiting for a peer: everything it was sent, as for a receiver that never reads
    /// (a test resets it to stand for one that does).
    var outstanding: [UInt32: Int] = [:]

    func send(_ frame: [UInt8], to peer: PeerID) -> Int {
        record(frame, peer)
        outstanding[peer.rawValue, default: 0] += frame.count
        return outstanding[peer.rawValue, default: 0]
    }

    func sendText(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        sent[peer.rawValue, default: []].append(String(decoding: payload, as: UTF8.self))
        outstanding[peer.rawValue, default: 0] += payload.count + 2
        return outstanding[peer.rawValue, default: 0]
    }

    func relay(escapedText: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        var frame: [UInt8] = []
        ChatEventEncoder.messageFrame(escapedText: escapedText, into: &frame)
        record(frame, peer)
        outstanding[peer.rawValue, default: 0] += frame.count
        return outstanding[peer.rawValue, default: 0]
    }

    func relay(escapedText: UnsafeRawBufferPointer, seq: UInt64, to peer: PeerID) -> Int {
        var frame: [UInt8] = []
        ChatEventEncoder.messageFrame(escapedText: escapedText, seq: seq, into: &frame)
        record(frame, peer)
        outstanding[peer.rawValue, default: 0] += frame.count
        return outstanding[peer.rawValue, default: 0]
    }

    /// Binary messages each peer was sent, and the binary allowance each was last given.
    var binary: [UInt32: [[UInt8]]] = [:]
    var allowance: [UInt32: Int] = [:]

    func sendBinary(_ payload: UnsafeRawBufferPointer, to peer: PeerID) -> Int {
        binary[peer.rawValue, default: []].append(Array(payload))
        outstanding[peer.rawValue, default: 0] += payload.count + WebSocketFrameEncoder.headerSize(payloadLength: payload.count)
        return outstanding[peer.rawValue, default: 0]
    }

    func allowBinary(_ bytes: Int, from peer: PeerID) { allowance[peer.rawValue] = bytes }

    var released: [UInt32] = []
    func release(_ peer: PeerID) { released.append(peer.rawValue) }

    func close(_ peer: PeerID, _ reason: ChatCloseReason) { closed.append((peer.rawValue, reason)) }

    /// Stubs handed back to their node (a cluster).
    var handedBack: [(peer: UInt32, interests: [String], images: Bool, recent: [UInt32])] = []
    func handBack(_ peer: PeerID, interests: [String], images: Bool, recent: [UInt32]) {
        handedBack.append((peer.rawValue, interests, images, recent))
    }

    private func record(_ frame: [UInt8], _ peer: PeerID) {
        // Server frames are unmasked text frames: FIN|text, then the shortest length form.
        #expect(frame[0] == 0x81)
        let (start, length): (Int, Int) = frame[1] < 126 ? (2, Int(frame[1])) : (4, Int(frame[2]) << 8 | Int(frame[3]))
        #expect(frame.count == start + length)
        sent[peer.rawValue, default: []].append(String(decoding: frame[start...], as: UTF8.self))
    }

    /// What `peer` was sent since the last call.
    func take(_ peer: UInt32) -> [String] {
        defer { sent[peer] = [] }
        return sent[peer] ?? []
    }
}

typealias Service = ChatService<RecordingOutbox, LocalRouting>

func peer(_ n: UInt32) -> PeerID { PeerID(rawValue: n) }
let home = ClientAddress(text: "192.0.2.1")!

func service(_ configure: (inout ChatSettings) -> Void = { _ in }, interestTimeoutMillis: UInt64 = 5000)
    -> (Service, RecordingOutbox) {
    var settings = ChatSettings()
    configure(&settings)
    let outbox = RecordingOutbox()
    return (Service(settings: settings, outbox: outbox,
                    routing: LocalRouting(interestTimeoutNanos: interestTimeoutMillis * 1_000_000),
                    entropy: SplitMix64(seed: 42)), outbox)
}

/// A seeded generator, so that a test's tokens are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension ChatService {
    mutating func command(_ json: String, from n: UInt32, now: UInt64 = 0) {
        var bytes = Array(json.utf8)
        bytes.withUnsafeBytes { receive($0, from: peer(n), now: now) }
    }
}

