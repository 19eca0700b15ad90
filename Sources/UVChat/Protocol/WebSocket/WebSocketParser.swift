/// Sans-IO RFC 6455 frame parser for the server side, with message reassembly and incremental UTF-8 validation.
struct WebSocketParser {
    private enum State {
        case header
        case payload
        case failed
        case closed
    }

    let maxMessageBytes: Int
    let maxFrameBytes: Int

    private var state: State = .header
    // Partial header bytes (at most 14: 2 + 8 length + 4 mask).
    private var headerBytes: (UInt64, UInt64) = (0, 0)
    private var headerCount = 0

    // Current frame
    private var opcode: UInt8 = 0
    private var fin = false
    private var mask: UInt32 = 0
    private var remaining = 0
    private var frameLength = 0
    private var maskOffset = 0

    // Current message (data frames) and control payload
    private var messageOpcode: UInt8 = 0      // 0 when no message in progress
    private var message: [UInt8] = []
    private var control: [UInt8] = []
    private var utf8 = UTF8Validator()

    init(maxMessageBytes: Int, maxFrameBytes: Int? = nil) {
        self.maxMessageBytes = maxMessageBytes
        self.maxFrameBytes = maxFrameBytes ?? maxMessageBytes
    }

    var isFailed: Bool { if case .failed = state { return true } else { return false } }

    mutating func shrinkIfIdle() {
        if messageOpcode == 0 && message.capacity > 0 { message = [] }
        if control.capacity > 0 && state == .header { control = [] }
    }

    private mutating func fail(_ code: WebSocketCloseCode) -> WebSocketEvent {
        state = .failed
        message = []
        control = []
        return .fail(code)
    }

    mutating func next(_ input: UnsafeMutableRawBufferPointer, offset: inout Int) -> WebSocketEvent? {
        if pendingClear {
            message.removeAll(keepingCapacity: true)
            pendingClear = false
        }
        while true {
            switch state {
            case .failed, .closed:
                offset = input.count
                return nil
            case .header:
                if offset >= input.count { return nil }
                if let event = parseHeader(input, &offset) { return event }
                if state == .header { return nil }   // need more header bytes
            case .payload:
                let available = input.count - offset
                if available <= 0 && remaining > 0 { return nil }
                let take = min(max(0, available), remaining)
                let start = offset
                let chunk = UnsafeMutableRawBufferPointer(rebasing: input[start..<(start + take)])
                unmask(chunk)
                offset += take
                remaining -= take
                // Zero copy: the whole frame is in this input and it is a complete message by itself.
                let whole = take == frameLength && remaining == 0
                if isControl(opcode) {
                    if !whole { control.append(contentsOf: UnsafeRawBufferPointer(chunk)) }
                    if remaining == 0, let event = finishFrame(input, start: start, count: take, inPlace: whole) { return event }
                    continue
                }
                if opcode == WebSocketOpcode.text.rawValue || (opcode == 0 && messageOpcode == WebSocketOpcode.text.rawValue) {
                    if !utf8.validate(UnsafeRawBufferPointer(chunk)) { return fail(.invalidPayload) }
                }
                let single = whole && fin && opcode != 0 && message.isEmpty
                if !single { message.append(contentsOf: UnsafeRawBufferPointer(chunk)) }
                if remaining == 0, let event = finishFrame(input, start: start, count: take, inPlace: single) { return event }
            }
        }
    }

    @inline(__always)
    private func isControl(_ op: UInt8) -> Bool { op & 0x08 != 0 }

    /// Collects header bytes; when complete, validates and moves to `.payload`. Returns an event only on failure.
    private mutating func parseHeader(_ input: UnsafeMutableRawBufferPointer, _ offset: inout Int) -> WebSocketEvent? {
        var local = headerBytes
        defer { headerBytes = local }
        return withUnsafeMutableBytes(of: &local) { h -> WebSocketEvent? in
            while offset < input.count {
                h[headerCount] = input[offset]
                headerCount += 1
                offset += 1
                if headerCount == 1 {
                    let b0 = h[0]
                    if b0 & 0x70 != 0 { return fail(.protocolError) }
                    let op = b0 & 0x0f
                    switch op {
                    case 0, 1, 2, 8, 9, 10: break
                    default: return fail(.protocolError)
                    }
                    let isFin = b0 & 0x80 != 0
                    if isControl(op) {
                        if !isFin { return fail(.protocolError) }
                    } else if op == 0 {
                        if messageOpcode == 0 { return fail(.protocolError) }
                    } else if messageOpcode != 0 {
                        return fail(.protocolError)
                    }
                    continue
                }
                if headerCount == 2 {
                    if h[1] & 0x80 == 0 { return fail(.protocolError) }   // client frames must be masked
                    let len7 = h[1] & 0x7f
                    if isControl(h[0] & 0x0f) && len7 > 125 { return fail(.protocolError) }
                }
                let len7 = Int(h[1] & 0x7f)
                let lengthBytes = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0)
                let needed = 2 + lengthBytes + 4
                if headerCount == 2 + lengthBytes && lengthBytes > 0 {
                    // Length complete: check it before any payload arrives.
                    var length: UInt64 = 0
                    for i in 0..<lengthBytes { length = length << 8 | UInt64(h[2 + i]) }
                    if lengthBytes == 2 && length < 126 { return fail(.protocolError) }
                    if lengthBytes == 8 && (length < 65536 || length >> 63 != 0) { return fail(.protocolError) }
                    if let event = checkSize(Int(clamping: length), opcode: h[0] & 0x0f) { return event }
                } else if headerCount == 2 && lengthBytes == 0 {
                    if let event = checkSize(len7, opcode: h[0] & 0x0f) { return event }
                }
                if headerCount == needed {
                    var length = len7
                    if lengthBytes > 0 {
                        var l: UInt64 = 0
                        for i in 0..<lengthBytes { l = l << 8 | UInt64(h[2 + i]) }
                        length = Int(l)
                    }
                    var m: UInt32 = 0
                    for i in 0..<4 { m |= UInt32(h[2 + lengthBytes + i]) << (8 * UInt32(i)) }
                    opcode = h[0] & 0x0f
                    fin = h[0] & 0x80 != 0
                    mask = m
                    maskOffset = 0
                    frameLength = length
                    remaining = length
                    headerCount = 0
                    if opcode == 1 || opcode == 2 {
                        messageOpcode = opcode
                        if opcode == 1 { utf8.reset() }
                    }
                    if isControl(opcode) { control.removeAll(keepingCapacity: true) }
                    state = .payload
                    return nil
                }
            }
            return nil
        }
    }

    private mutating func checkSize(_ length: Int, opcode op: UInt8) -> WebSocketEvent? {
        if isControl(op) { return nil }
        if length > maxFrameBytes { return fail(.messageTooBig) }
        let already = op == 0 ? message.count : 0
        if length > maxMessageBytes - already { return fail(.messageTooBig) }
        return nil
    }

    /// Unmasks in place, 8 bytes at a time where it can.
    private mutating func unmask(_ chunk: UnsafeMutableRawBufferPointer) {
        guard chunk.count > 0, let base = chunk.baseAddress else { return }
        // Rotate the mask so that byte 0 of `chunk` lines up with mask byte `maskOffset`.
        let shift = UInt32(maskOffset & 3) * 8
        let rotated = shift == 0 ? mask : (mask >> shift) | (mask << (32 - shift))
        let wide = UInt64(rotated) | UInt64(rotated) << 32
        var i = 0
        let n = chunk.count
        while i + 8 <= n {
            let v = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            base.storeBytes(of: v ^ wide, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < n {
            let k = UInt8(truncatingIfNeeded: rotated >> (UInt32(i & 3) * 8))
            base.storeBytes(of: base.load(fromByteOffset: i, as: UInt8.self) ^ k, toByteOffset: i, as: UInt8.self)
            i += 1
        }
        maskOffset = (maskOffset + n) & 3
    }

    /// The frame's payload is complete.
    private mutating func finishFrame(_ input: UnsafeMutableRawBufferPointer, start: Int, count: Int, inPlace: Bool) -> WebSocketEvent? {
        state = .header
        if isControl(opcode) {
            let payload: UnsafeRawBufferPointer = inPlace
                ? UnsafeRawBufferPointer(rebasing: input[start..<(start + count)])
                : control.withUnsafeBytes { $0 }
            switch opcode {
            case WebSocketOpcode.ping.rawValue: return .ping(payload)
            case WebSocketOpcode.pong.rawValue: return .pong(payload)
            default: return closeEvent(payload)
            }
        }
        guard fin else { return nil }
        let op = messageOpcode
        messageOpcode = 0
        if op == WebSocketOpcode.text.rawValue && !utf8.isComplete { return fail(.invalidPayload) }
        let payload: UnsafeRawBufferPointer = inPlace
            ? UnsafeRawBufferPointer(rebasing: input[start..<(start + count)])
            : message.withUnsafeBytes { $0 }
        // The message buffer is reused for the next message; its bytes stay valid until the next call.
        pendingClear = !inPlace
        return op == WebSocketOpcode.text.rawValue ? .text(payload) : .binary(payload)
    }

    private var pendingClear = false

    private mutating func closeEvent(_ payload: UnsafeRawBufferPointer) -> WebSocketEvent {
        if payload.count == 1 { return fail(.protocolError) }
        if payload.count == 0 {
            state = .closed
            return .close(code: nil, reason: payload)
        }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        if !WebSocketCloseCode.isValidReceived(code) { return fail(.protocolError) }
        let reason = UnsafeRawBufferPointer(rebasing: payload[2...])
        var v = UTF8Validator()
        if !v.validate(reason) || !v.isComplete { return fail(.invalidPayload) }
        state = .closed
        return .close(code: code, reason: reason)
    }
}
