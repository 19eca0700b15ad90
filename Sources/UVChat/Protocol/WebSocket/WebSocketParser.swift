/// The server side of RFC 6455 framing as a sans-IO value: bytes in, `WebSocketEvent`s out, no socket, no clock.
///
/// It checks every rule of section 5 as soon as the bytes that break it arrive (a frame that will be refused is
/// never buffered), reassembles fragmented messages, validates text as UTF-8 incrementally, and unmasks in place.
/// A data frame that is a whole message and lies complete in the caller's input is handed back where it lies, so the
/// common chat message costs no copy and no allocation; only frames split across reads, and fragmented messages,
/// are copied into the parser's message buffer, whose capacity is reused until `shrinkIfIdle`.
///
/// Binary messages have a limit of their own (`maxBinaryBytes`: a chat image is far larger than a chat text) and,
/// under it, an allowance the application moves (`binaryAllowance`): a binary message that would pass the allowance
/// is read off the wire and discarded, never buffered, and reported as `skippedBinary`. So a client holds the
/// memory of a large binary message only when the application has said that one is due (an accepted image offer).
public struct WebSocketParser {
    private enum State: UInt8 {
        /// `skip`: the payload of a frame of a skipped binary message (a state of its own, so that the payload path
        /// every chat message takes checks nothing for it).
        case header, payload, skip, closed, failed
    }

    // Every open WebSocket carries one parser, so its fields are stored as narrow as their ranges allow (limits
    // and frame lengths fit 32 bits: a frame over the limit is refused from its header) and read back as `Int`.
    // 63 bytes in all (the pointer placed where it needs no padding), and no heap until a message or control frame
    // arrives in pieces.

    // The frame whose payload is being read.
    private var _frameLength: UInt32 = 0
    private var _remaining: UInt32 = 0
    /// Key byte 0 in the low bits, whatever the machine's byte order.
    private var key: UInt32 = 0

    // A header split across reads, kept as its parts rather than raw bytes: the first two bytes, then the extended
    // length and the masking key accumulated byte by byte.
    private var partialKey: UInt32 = 0
    private var partialLength: UInt64 = 0

    /// Created on the first message or control frame that does not arrive whole in one read.
    private var buffers: Buffers?

    private let _maxMessageBytes: UInt32
    private let _maxFrameBytes: UInt32
    private let _maxBinaryBytes: UInt32
    private var _binaryAllowance: UInt32
    private var _skippedCount: UInt32 = 0

    private var _headerCount: UInt8 = 0
    private var _headerSize: UInt8 = 2      // known once the second byte is in: 2 + 0, 2 or 8 + 4
    private var firstByte: UInt8 = 0
    private var opcode: UInt8 = 0
    private var fin = false
    /// The data opcode (1 or 2) of the message being assembled; 0 between messages.
    private var messageOpcode: UInt8 = 0
    private var state = State.header
    /// The binary message being read passed the allowance: its bytes are taken and dropped.
    private var skipping = false
    private var utf8 = UTF8Validator()

    var maxMessageBytes: Int { Int(_maxMessageBytes) }
    var maxFrameBytes: Int { Int(_maxFrameBytes) }
    var maxBinaryBytes: Int { Int(_maxBinaryBytes) }
    /// Binary bytes a message may bring into the buffer now (at most `maxBinaryBytes`); a binary message over it is
    /// skipped. Checked at each frame header: a message already past its first frames keeps the verdict it had.
    public var binaryAllowance: Int {
        get { Int(_binaryAllowance) }
        set { _binaryAllowance = UInt32(clamping: min(max(newValue, 0), maxBinaryBytes)) }
    }
    private var frameLength: Int {
        get { Int(_frameLength) }
        set { _frameLength = UInt32(newValue) }
    }
    private var remaining: Int {
        get { Int(_remaining) }
        set { _remaining = UInt32(newValue) }
    }
    private var skippedCount: Int {
        get { Int(_skippedCount) }
        set { _skippedCount = UInt32(truncatingIfNeeded: newValue) }
    }
    private var headerCount: Int {
        get { Int(_headerCount) }
        set { _headerCount = UInt8(newValue) }
    }
    private var headerSize: Int {
        get { Int(_headerSize) }
        set { _headerSize = UInt8(newValue) }
    }

    /// Limits above 4 GiB are taken as 4 GiB. `maxMessageBytes` bounds text messages, `maxBinaryBytes` (by default
    /// the same) binary ones, and `maxFrameBytes` (by default the larger of the two) any one data frame. The binary
    /// allowance starts at `maxBinaryBytes`.
    public init(maxMessageBytes: Int, maxFrameBytes: Int? = nil, maxBinaryBytes: Int? = nil) {
        precondition(maxMessageBytes >= 0)
        let binary = maxBinaryBytes ?? maxMessageBytes
        _maxMessageBytes = UInt32(clamping: maxMessageBytes)
        _maxBinaryBytes = UInt32(clamping: binary)
        _maxFrameBytes = UInt32(clamping: maxFrameBytes ?? max(maxMessageBytes, binary))
        _binaryAllowance = _maxBinaryBytes
    }

    var isFailed: Bool { state == .failed }
    /// Whether any reassembly memory is held (for the tests).
    var holdsBuffers: Bool { buffers != nil }

    /// Frees the reassembly buffers unless a message or frame is half read. Invalidates event pointers.
    mutating func shrinkIfIdle() {
        if state != .payload && messageOpcode == 0 { buffers = nil }
    }

    private mutating func heapBuffers() -> Buffers {
        if let buffers { return buffers }
        let created = Buffers()
        buffers = created
        return created
    }

    /// Parses `input[offset...]`. Returns the next event with `offset` moved past the bytes it used, or nil once every
    /// remaining byte has been taken into the parser's state. After a close or a failure all input is ignored.
    public mutating func next(_ input: UnsafeMutableRawBufferPointer, offset: inout Int) -> WebSocketEvent? {
        precondition(offset >= 0 && offset <= input.count, "offset outside the input")
        while true {
            let event: WebSocketEvent?
            switch state {
            case .closed, .failed:
                offset = input.count
                return nil
            case .header:
                event = readHeader(input, &offset)
                if event == nil && state == .header { return nil }
            case .payload:
                event = readPayload(input, &offset)
                if event == nil && state == .payload { return nil }
            case .skip:
                event = skipPayload(input, &offset)
                if event == nil && state == .skip { return nil }
            }
            if let event {
                if state == .failed { offset = input.count }
                return event
            }
        }
    }

    // MARK: - Header

    /// Reads header bytes. Returns a failure event, or nil: either the header is complete and the state is `.payload`,
    /// or all input was taken and the state is still `.header`.
    private mutating func readHeader(_ input: UnsafeMutableRawBufferPointer, _ offset: inout Int) -> WebSocketEvent? {
        let available = input.count - offset
        guard available > 0, let base = input.baseAddress else { return nil }
        if headerCount == 0 && available >= 2 {
            // Whole header in the input: read it in place, which is the steady state.
            let b0 = base.load(fromByteOffset: offset, as: UInt8.self)
            let b1 = base.load(fromByteOffset: offset + 1, as: UInt8.self)
            let lengthField = Self.lengthFieldSize(b1)
            let size = 2 + lengthField + 4
            if available >= size {
                if let code = checkFirstByte(b0) ?? checkSecondByte(b0, b1) { return fail(code) }
                var length = UInt64(b1 & 0x7F)
                if lengthField == 2 {
                    length = UInt64(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)))
                } else if lengthField == 8 {
                    length = UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset + 2, as: UInt64.self))
                }
                if lengthField > 0, let code = checkExtendedLength(b0, length, field: lengthField) { return fail(code) }
                let key = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset + 2 + lengthField, as: UInt32.self))
                offset += size
                beginFrame(b0, length: Int(truncatingIfNeeded: length), key: key)
                return nil
            }
        }
        // The header is split across reads: take it byte by byte, checking each part the moment it is complete.
        while offset < input.count {
            let byte = base.load(fromByteOffset: offset, as: UInt8.self)
            offset += 1
            let index = headerCount
            headerCount += 1
            if index == 0 {
                firstByte = byte
                if let code = checkFirstByte(byte) { return fail(code) }
            } else if index == 1 {
                if let code = checkSecondByte(firstByte, byte) { return fail(code) }
                let lengthField = Self.lengthFieldSize(byte)
                headerSize = 2 + lengthField + 4
                partialLength = lengthField == 0 ? UInt64(byte & 0x7F) : 0
            } else {
                let lengthField = headerSize - 6
                if index < 2 + lengthField {
                    // The top bit of a 64-bit length is in the first length byte: refuse it there.
                    if lengthField == 8 && index == 2 && byte & 0x80 != 0 { return fail(.protocolError) }
                    partialLength = partialLength << 8 | UInt64(byte)
                    if index == 1 + lengthField,
                       let code = checkExtendedLength(firstByte, partialLength, field: lengthField) {
                        return fail(code)
                    }
                } else {
                    partialKey |= UInt32(byte) << (8 * UInt32(index - 2 - lengthField))
                }
            }
            if headerCount == headerSize {
                let length = Int(truncatingIfNeeded: partialLength)
                let key = partialKey
                headerCount = 0
                headerSize = 2
                partialLength = 0
                partialKey = 0
                beginFrame(firstByte, length: length, key: key)
                return nil
            }
        }
        return nil
    }

    @inline(__always)
    private static func lengthFieldSize(_ secondByte: UInt8) -> Int {
        switch secondByte & 0x7F {
        case 126: return 2
        case 127: return 8
        default: return 0
        }
    }

    /// FIN, RSV and opcode, checked against the message in progress.
    private func checkFirstByte(_ b0: UInt8) -> WebSocketCloseCode? {
        if b0 & 0x70 != 0 { return .protocolError }                 // no extension was negotiated (5.2)
        switch b0 & 0x0F {
        case WebSocketOpcode.continuation.rawValue:
            return messageOpcode == 0 ? .protocolError : nil        // nothing to continue (5.4)
        case WebSocketOpcode.text.rawValue, WebSocketOpcode.binary.rawValue:
            return messageOpcode != 0 ? .protocolError : nil        // messages may not interleave (5.4)
        case WebSocketOpcode.close.rawValue, WebSocketOpcode.ping.rawValue, WebSocketOpcode.pong.rawValue:
            return b0 & 0x80 == 0 ? .protocolError : nil            // control frames are never fragmented (5.5)
        default:
            return .protocolError                                   // reserved opcode
        }
    }

    /// MASK bit and the 7-bit length.
    private func checkSecondByte(_ b0: UInt8, _ b1: UInt8) -> WebSocketCloseCode? {
        if b1 & 0x80 == 0 { return .protocolError }                 // a client must mask every frame (5.1)
        let length = b1 & 0x7F
        let op = b0 & 0x0F
        if op & 0x08 != 0 {
            if length > 125 { return .protocolError }               // control payloads fit in 125 bytes (5.5)
            if op == WebSocketOpcode.close.rawValue && length == 1 { return .protocolError }   // half a code (5.5.1)
            return nil
        }
        return length < 126 ? checkSize(op, Int(length)) : nil
    }

    /// A 16- or 64-bit length, which must use the shortest form (5.2) and keep the 64-bit top bit clear.
    private func checkExtendedLength(_ b0: UInt8, _ length: UInt64, field: Int) -> WebSocketCloseCode? {
        if field == 2 && length < 126 { return .protocolError }
        if field == 8 && (length >> 63 != 0 || length <= 0xFFFF) { return .protocolError }
        return checkSize(b0 & 0x0F, Int(truncatingIfNeeded: length))
    }

    /// Refuses a data frame that would take the frame or the reassembled message over its limit, from its header.
    /// (A skipped binary message is held to its limit too, although nothing of it is kept: the limit is the
    /// protocol's, the allowance the application's.)
    private func checkSize(_ op: UInt8, _ length: Int) -> WebSocketCloseCode? {
        if length > maxFrameBytes { return .messageTooBig }
        let continued = op == WebSocketOpcode.continuation.rawValue
        let assembled = continued ? assembledCount : 0
        let message = continued ? messageOpcode : op
        let limit = message == WebSocketOpcode.binary.rawValue ? maxBinaryBytes : maxMessageBytes
        return length > limit - assembled ? .messageTooBig : nil
    }

    /// Bytes of the message in progress so far: the frames kept in the buffer, or the ones skipped.
    private var assembledCount: Int { skipping ? skippedCount : buffers?.messageCount ?? 0 }

    private mutating func beginFrame(_ b0: UInt8, length: Int, key: UInt32) {
        opcode = b0 & 0x0F
        fin = b0 & 0x80 != 0
        frameLength = length
        remaining = length
        self.key = key
        state = .payload
        if opcode == WebSocketOpcode.text.rawValue || opcode == WebSocketOpcode.binary.rawValue {
            // The previous message's bytes were last lent out before this call, so the buffer is free again.
            messageOpcode = opcode
            buffers?.messageCount = 0
            skipping = false
            skippedCount = 0
            if opcode == WebSocketOpcode.text.rawValue { utf8.reset() }
        } else if opcode & 0x08 != 0 {
            buffers?.controlCount = 0
            return
        }
        // A binary message that would pass the allowance is skipped from this frame on, and what was kept of it
        // goes (the verdict is the same for the whole message).
        if messageOpcode == WebSocketOpcode.binary.rawValue {
            if !skipping {
                let kept = buffers?.messageCount ?? 0
                guard length > binaryAllowance - kept else { return }
                skipping = true
                skippedCount = kept
                buffers?.messageCount = 0
            }
            state = .skip
        }
    }

    // MARK: - Payload

    private mutating func readPayload(_ input: UnsafeMutableRawBufferPointer, _ offset: inout Int) -> WebSocketEvent? {
        let take = min(input.count - offset, remaining)
        let isControl = opcode & 0x08 != 0
        let chunk = UnsafeMutableRawBufferPointer(rebasing: input[offset..<(offset + take)])

        if take == frameLength && (isControl || (fin && opcode != WebSocketOpcode.continuation.rawValue)) {
            // The whole frame is here and stands alone: unmask it where it lies and lend it out.
            Self.unmask(chunk, key: key, phase: 0)
            offset += take
            remaining = 0
            state = .header
            let payload = UnsafeRawBufferPointer(chunk)
            if isControl { return controlEvent(payload) }
            messageOpcode = 0
            if opcode == WebSocketOpcode.text.rawValue {
                guard utf8.validate(payload) && utf8.isComplete else { return fail(.invalidPayload) }
                return .text(payload)
            }
            return .binary(payload)
        }

        if take > 0 {
            Self.unmask(chunk, key: key, phase: frameLength - remaining)
            if isControl {
                heapBuffers().appendControl(UnsafeRawBufferPointer(chunk))
            } else {
                // Checked before it is kept, so a bad message fails at its first bad byte, not at its end.
                if messageOpcode == WebSocketOpcode.text.rawValue && !utf8.validate(UnsafeRawBufferPointer(chunk)) {
                    return fail(.invalidPayload)
                }
                heapBuffers().appendMessage(UnsafeRawBufferPointer(chunk), frameRest: remaining, limit: maxMessageBytes)
            }
            offset += take
            remaining -= take
        }
        if remaining > 0 { return nil }

        state = .header
        if isControl { return controlEvent(heapBuffers().controlBytes) }
        guard fin else { return nil }
        let op = messageOpcode
        messageOpcode = 0
        if op == WebSocketOpcode.text.rawValue {
            // A character cut off by the end of the message (Autobahn 6.3.x).
            guard utf8.isComplete else { return fail(.invalidPayload) }
            return .text(heapBuffers().messageBytes)
        }
        return .binary(heapBuffers().messageBytes)
    }

    /// A skipped message's bytes: taken, counted, dropped.
    private mutating func skipPayload(_ input: UnsafeMutableRawBufferPointer, _ offset: inout Int) -> WebSocketEvent? {
        let take = min(input.count - offset, remaining)
        offset += take
        remaining -= take
        skippedCount += take
        guard remaining == 0 else { return nil }
        state = .header
        guard fin else { return nil }
        messageOpcode = 0
        skipping = false
        return .skippedBinary
    }

    private mutating func controlEvent(_ payload: UnsafeRawBufferPointer) -> WebSocketEvent {
        switch opcode {
        case WebSocketOpcode.ping.rawValue:
            return .ping(payload)
        case WebSocketOpcode.pong.rawValue:
            return .pong(payload)
        default:
            if payload.count < 2 {
                if payload.count == 1 { return fail(.protocolError) }
                state = .closed
                return .close(code: nil, reason: payload)
            }
            let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard WebSocketCloseCode.isValidReceived(code) else { return fail(.protocolError) }
            let reason = UnsafeRawBufferPointer(rebasing: payload[2...])
            var validator = UTF8Validator()
            guard validator.validate(reason) && validator.isComplete else { return fail(.invalidPayload) }
            state = .closed
            return .close(code: code, reason: reason)
        }
    }

    private mutating func fail(_ code: WebSocketCloseCode) -> WebSocketEvent {
        state = .failed
        messageOpcode = 0
        skipping = false
        buffers = nil
        return .fail(code)
    }

    /// XORs `bytes` with the key, starting at key byte `phase % 4`, a machine word at a time.
    @inline(__always)
    private static func unmask(_ bytes: UnsafeMutableRawBufferPointer, key: UInt32, phase: Int) {
        guard let p = bytes.baseAddress else { return }
        let n = bytes.count
        let shift = UInt32(phase & 3) &* 8
        let k = shift == 0 ? key : (key >> shift) | (key << (32 &- shift))
        // Repeated twice, in memory order, so it lines up with any 8 bytes starting at a multiple of 4 from `p`.
        let wide = (UInt64(k) | UInt64(k) << 32).littleEndian
        var i = 0
        while n - i >= 32 {
            let a = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let b = p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
            let c = p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)
            let d = p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)
            p.storeBytes(of: a ^ wide, toByteOffset: i, as: UInt64.self)
            p.storeBytes(of: b ^ wide, toByteOffset: i + 8, as: UInt64.self)
            p.storeBytes(of: c ^ wide, toByteOffset: i + 16, as: UInt64.self)
            p.storeBytes(of: d ^ wide, toByteOffset: i + 24, as: UInt64.self)
            i += 32
        }
        while n - i >= 8 {
            p.storeBytes(of: p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ wide, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        var rest = k    // i is a multiple of 8 here, so key byte 0 of `k` comes next
        while i < n {
            p.storeBytes(of: p.load(fromByteOffset: i, as: UInt8.self) ^ UInt8(truncatingIfNeeded: rest),
                         toByteOffset: i, as: UInt8.self)
            rest = rest >> 8 | rest << 24
            i += 1
        }
    }

    // MARK: - Buffers

    /// Heap memory for what does not arrive in one piece: a message assembled from fragments or from a frame split
    /// across reads, and a control frame split across reads (kept apart, since control frames may come between
    /// fragments). A class so the memory has an owner that frees it and lent pointers stay put.
    private final class Buffers {
        private var message: UnsafeMutableRawPointer?
        private var messageCapacity = 0
        var messageCount = 0
        private var control: UnsafeMutableRawPointer?
        var controlCount = 0

        var messageBytes: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: message, count: messageCount)
        }

        var controlBytes: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: control, count: controlCount)
        }

        /// `frameRest` is what is left of the frame, these bytes included: room for all of it is made at once.
        func appendMessage(_ bytes: UnsafeRawBufferPointer, frameRest: Int, limit: Int) {
            let needed = messageCount + frameRest
            if needed > messageCapacity {
                // Doubling keeps many small fragments from growing the buffer each time; the header checks keep
                // `needed` within `limit`.
                let capacity = max(needed, min(messageCapacity * 2, limit))
                let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
                if let message {
                    grown.copyMemory(from: message, byteCount: messageCount)
                    message.deallocate()
                }
                message = grown
                messageCapacity = capacity
            }
            message!.advanced(by: messageCount).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            messageCount += bytes.count
        }

        func appendControl(_ bytes: UnsafeRawBufferPointer) {
            let control = self.control ?? {
                let p = UnsafeMutableRawPointer.allocate(byteCount: 125, alignment: 16)
                self.control = p
                return p
            }()
            control.advanced(by: controlCount).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            controlCount += bytes.count
        }

        func release() {
            message?.deallocate()
            message = nil
            messageCapacity = 0
            messageCount = 0
            control?.deallocate()
            control = nil
            controlCount = 0
        }

        deinit { release() }
    }
}
