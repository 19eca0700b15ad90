/// What nodes tell each other about a chat whose two people are on different nodes, over Redis pub/sub (one channel
/// per node, `uvchat:n:<node>`).
///
/// A cross-node chat lives on one node, its *home* (the node whose queue call made the pair): there the chat
/// service holds both sides, the remote person as a *stub* member with a slot of its own. The other node, the
/// person's *owner*, keeps the socket: it sends the person's frames' payloads to the home and writes the frames
/// the home built. So every rule of the chat (sequence numbers, the replay ring, image offers, calls, rate limits)
/// runs in one service exactly as on one node, and the records here carry only bytes and who they are for.
///
/// A stub is named by its owner's slot and the queue entry that was paired (`entry`, never reused by a node), so a
/// record for a connection that has since gone (its slot taken by someone else) is recognised and dropped.
///
/// A channel message is the sender's node name, then records, each `kind, slot (u32), entry (u64), length (u32),
/// bytes`, little-endian: every record a loop iteration made for one node goes out as one PUBLISH.
public enum ClusterRecord: Equatable, Sendable {
    // Home to owner.
    /// Your waiting client (`entry`) is paired and its chat is here: send me its messages.
    case adopt
    /// WebSocket frames, ready to write to the client's socket.
    case frames([UInt8])
    /// The client may send one binary message of at most this many bytes (an accepted image, B.3).
    case allowBinary(Int)
    /// The chat is over for the client and it queues again (`next`, `start`): the home forgot its stub.
    case handBack(interests: [String], images: Bool, recent: [UInt32])
    /// The home closed the client (slow consumer at the home, banned, resumed elsewhere): close code and reason.
    case close(code: UInt16, reason: String)
    // Owner to home.
    /// A text message's payload, as the client sent it.
    case text([UInt8])
    /// A binary message's payload (an image).
    case binary([UInt8])
    /// A binary message that was over its allowance and was dropped unread.
    case skippedBinary
    /// The client's connection ended: dropped (no close frame: a version 2 side may resume) or left.
    case gone(dropped: Bool)
    /// A new connection on the owner sent `resume` with a token of the home's: it becomes a stub there. The payload
    /// is the `resume` command; `version2` and the address come with it.
    case attach(address: ClientAddress, command: [UInt8])
    /// The home drains: the client's chat was exported for resumes (its token: node number and slot there); its
    /// node takes it up at once, under the connected client.
    case moved(node: UInt32, slot: UInt32)
    // Either way.
    /// The pairing could not be used (the client that made it left first): queue this one again.
    case requeue

    var kind: UInt8 {
        switch self {
        case .adopt: 1
        case .frames: 2
        case .allowBinary: 3
        case .handBack: 4
        case .close: 5
        case .text: 6
        case .binary: 7
        case .skippedBinary: 8
        case .gone: 9
        case .attach: 10
        case .requeue: 11
        case .moved: 12
        }
    }
}

/// One record and whom it is about.
public struct ClusterEnvelope: Equatable, Sendable {
    public var slot: UInt32
    public var entry: UInt64
    public var record: ClusterRecord

    public init(slot: UInt32, entry: UInt64, _ record: ClusterRecord) {
        self.slot = slot
        self.entry = entry
        self.record = record
    }
}

public enum ClusterWire {
    /// A record's payload is at most this long (a frame batch for one client is split below it).
    static let maxRecordBytes = 1 << 24
    static let headerBytes = 17

    /// Starts a channel message: the sender's name.
    public static func begin(from node: String, into out: inout [UInt8]) {
        let name = Array(node.utf8.prefix(255))
        out.append(UInt8(name.count))
        out.append(contentsOf: name)
    }

    public static func append(_ envelope: ClusterEnvelope, into out: inout [UInt8]) {
        switch envelope.record {
        case .adopt, .skippedBinary, .requeue:
            header(envelope, length: 0, into: &out)
        case .frames(let bytes), .text(let bytes), .binary(let bytes):
            header(envelope, length: bytes.count, into: &out)
            out.append(contentsOf: bytes)
        case .allowBinary(let n):
            header(envelope, length: 8, into: &out)
            put(UInt64(n), into: &out)
        case .handBack(let interests, let images, let recent):
            var body: [UInt8] = [images ? 1 : 0, UInt8(min(recent.count, 255))]
            for s in recent.prefix(255) { put32(s, into: &body) }
            body.append(contentsOf: interests.joined(separator: "\n").utf8)
            header(envelope, length: body.count, into: &out)
            out.append(contentsOf: body)
        case .close(let code, let reason):
            let r = Array(reason.utf8.prefix(123))
            header(envelope, length: 2 + r.count, into: &out)
            out.append(UInt8(code >> 8))
            out.append(UInt8(code & 0xff))
            out.append(contentsOf: r)
        case .moved(let node, let slot):
            header(envelope, length: 8, into: &out)
            put32(node, into: &out)
            put32(slot, into: &out)
        case .gone(let dropped):
            header(envelope, length: 1, into: &out)
            out.append(dropped ? 1 : 0)
        case .attach(let address, let command):
            header(envelope, length: 16 + command.count, into: &out)
            put(address.high, into: &out)
            put(address.low, into: &out)
            out.append(contentsOf: command)
        }
    }

    /// Appends frame bytes for `slot` to a message being built: a `frames` record, or the tail of the last record
    /// when it is already a `frames` record for the same client (so a burst of frames is one record).
    public static func appendFrames(slot: UInt32, entry: UInt64, _ bytes: UnsafeRawBufferPointer,
                                    lastRecordAt last: inout Int, into out: inout [UInt8]) {
        if last >= 0, out[last] == 2, load32(out, last + 1) == slot, load64(out, last + 5) == entry {
            let length = Int(load32(out, last + 13))
            if length + bytes.count <= maxRecordBytes {
                store32(UInt32(length + bytes.count), at: last + 13, in: &out)
                out.append(contentsOf: bytes)
                return
            }
        }
        last = out.count
        header(ClusterEnvelope(slot: slot, entry: entry, .adopt), kind: 2, length: bytes.count, into: &out)
        out.append(contentsOf: bytes)
    }

    /// The sender and the records of one channel message; nil when it is malformed (a node of another version).
    public static func decode(_ message: UnsafeRawBufferPointer) -> (from: String, records: [ClusterEnvelope])? {
        var records: [ClusterEnvelope] = []
        let from = walk(message) { raw in
            guard let record = record(kind: raw.kind, Array(raw.body)) else { return false }
            records.append(ClusterEnvelope(slot: raw.slot, entry: raw.entry, record))
            return true
        }
        guard let from else { return nil }
        return (from, records)
    }

    /// The record kinds that come once per message (frames to an owner, a text to the home): received, they are
    /// used where they lie in the channel message rather than copied into a `ClusterRecord`.
    public static let framesKind: UInt8 = 2
    public static let textKind: UInt8 = 6

    /// A received record where it lies: `body` points into the channel message and lives as long as it does.
    public struct RawRecord {
        public let kind: UInt8
        public let slot: UInt32
        public let entry: UInt64
        public let body: UnsafeRawBufferPointer
    }

    /// A record of a received message: frames or a text where they lie in it, or any other kind decoded.
    public enum Received {
        case inPlace(RawRecord)
        case decoded(ClusterEnvelope)
    }

    /// The sender and the records of one channel message, as `decode` gives them but with frames and texts left
    /// where they lie (valid as long as `message` is); nil when it is malformed. The whole message is checked
    /// before the caller acts on any record, so that a bad message changes nothing.
    public static func receive(_ message: UnsafeRawBufferPointer) -> (from: String, records: [Received])? {
        var records: [Received] = []
        let from = walk(message) { raw in
            if raw.kind == framesKind || raw.kind == textKind {
                records.append(.inPlace(raw))
                return true
            }
            guard let record = record(kind: raw.kind, Array(raw.body)) else { return false }
            records.append(.decoded(ClusterEnvelope(slot: raw.slot, entry: raw.entry, record)))
            return true
        }
        guard let from else { return nil }
        return (from, records)
    }

    /// The sender's name, then each record's header and body, to `visit` until it returns false; nil when the
    /// framing is broken or `visit` refused a record.
    private static func walk(_ message: UnsafeRawBufferPointer, _ visit: (RawRecord) -> Bool) -> String? {
        guard message.count >= 1 else { return nil }
        let nameLength = Int(message[0])
        guard message.count >= 1 + nameLength else { return nil }
        var i = 1 + nameLength
        while i < message.count {
            guard message.count - i >= headerBytes else { return nil }
            let kind = message[i]
            let slot = message.loadUnaligned(fromByteOffset: i + 1, as: UInt32.self).littleEndian
            let entry = message.loadUnaligned(fromByteOffset: i + 5, as: UInt64.self).littleEndian
            let length = Int(message.loadUnaligned(fromByteOffset: i + 13, as: UInt32.self).littleEndian)
            i += headerBytes
            guard length <= message.count - i else { return nil }
            let body = UnsafeRawBufferPointer(rebasing: message[i..<(i + length)])
            i += length
            guard visit(RawRecord(kind: kind, slot: slot, entry: entry, body: body)) else { return nil }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: message[1..<(1 + nameLength)]), as: UTF8.self)
    }

    /// Appends a text record from the payload where it lies (the owner's per-message path: no `ClusterRecord`).
    public static func appendText(slot: UInt32, entry: UInt64, _ payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        header(ClusterEnvelope(slot: slot, entry: entry, .adopt), kind: textKind, length: payload.count, into: &out)
        out.append(contentsOf: payload)
    }

    private static func record(kind: UInt8, _ body: [UInt8]) -> ClusterRecord? {
        switch kind {
        case 1: return body.isEmpty ? .adopt : nil
        case 2: return .frames(body)
        case 3: return body.count == 8 ? .allowBinary(Int(clamping: load64(body, 0))) : nil
        case 4:
            guard body.count >= 2, body.count >= 2 + 4 * Int(body[1]) else { return nil }
            let n = Int(body[1])
            let recent = (0..<n).map { load32(body, 2 + 4 * $0) }
            let text = String(decoding: body[(2 + 4 * n)...], as: UTF8.self)
            let interests = text.isEmpty ? [] : text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            return .handBack(interests: interests, images: body[0] == 1, recent: recent)
        case 5:
            guard body.count >= 2 else { return nil }
            return .close(code: UInt16(body[0]) << 8 | UInt16(body[1]), reason: String(decoding: body[2...], as: UTF8.self))
        case 6: return .text(body)
        case 7: return .binary(body)
        case 8: return body.isEmpty ? .skippedBinary : nil
        case 9: return body.count == 1 ? .gone(dropped: body[0] == 1) : nil
        case 10:
            guard body.count >= 16 else { return nil }
            return .attach(address: ClientAddress(high: load64(body, 0), low: load64(body, 8)), command: Array(body[16...]))
        case 11: return body.isEmpty ? .requeue : nil
        case 12: return body.count == 8 ? .moved(node: load32(body, 0), slot: load32(body, 4)) : nil
        default: return nil
        }
    }

    private static func header(_ e: ClusterEnvelope, kind: UInt8? = nil, length: Int, into out: inout [UInt8]) {
        out.append(kind ?? e.record.kind)
        put32(e.slot, into: &out)
        put(e.entry, into: &out)
        put32(UInt32(length), into: &out)
    }

    private static func put(_ v: UInt64, into out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func put32(_ v: UInt32, into out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func load32(_ b: [UInt8], _ at: Int) -> UInt32 {
        b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian }
    }

    private static func load64(_ b: [UInt8], _ at: Int) -> UInt64 {
        b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian }
    }

    private static func store32(_ v: UInt32, at: Int, in b: inout [UInt8]) {
        b.withUnsafeMutableBytes { $0.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt32.self) }
    }
}
