/// The rules of one open WebSocket after the handshake (RFC 6455 sections 5.5 and 7): what to answer, when to
/// ping, when to give up on a quiet peer, and when a close frame is sent. A sans-IO value in the manner of
/// swift-websocket's `WebSocketStateMachine`: bytes and the time go in, an action comes out, the shell performs it.
/// Every close frame the server sends is decided here, once: `open` can become `closing` or `closed` only here.
public struct WebSocketSession {
    public enum State: UInt8 {
        /// Data flows both ways.
        case open
        /// We sent our close frame and wait for the peer's; data from the peer is ignored.
        case closing
        /// The closing handshake is over (or failed); input is ignored.
        case closed
    }

    /// What the shell does with what arrived.
    public enum Action {
        /// A whole text message (reassembled, valid UTF-8), for the application. Only while open.
        case text(UnsafeRawBufferPointer)
        /// A whole binary message, for the application. Only while open. The bytes are the shell's (its input
        /// buffer or the parser's), lent until the next call: the application may rewrite them in place.
        case binary(UnsafeMutableRawBufferPointer)
        /// A binary message the application had not allowed, dropped unbuffered (`allowBinary`). Only while open.
        case skippedBinary
        /// Answer a ping with a pong carrying the same payload (5.5.3).
        case sendPong(UnsafeRawBufferPointer)
        /// The peer's close frame while open: send `reply` as our close (its code echoed, 5.5.1; an empty close when
        /// it had none), then finish. `received` is the code for the counters (nil: none).
        case closeReceived(received: UInt16?, reply: WebSocketCloseCode?)
        /// The peer broke the protocol while open: send a close with this code, then finish.
        case failed(WebSocketCloseCode)
        /// The peer answered our close: the closing handshake is complete; close TCP once our output is written
        /// (the server closes first, 7.1.1), sending nothing more.
        case closeAnswered
        /// The peer broke off after our close (a protocol error): finish, sending nothing more.
        case finish
    }

    /// What the periodic check found.
    public enum TimerAction: Equatable {
        /// Nothing due.
        case none
        /// Quiet for a ping interval: send a ping (one at a time).
        case sendPing
        /// Quiet for two intervals: close with 1008 (`close(_:)` sends it).
        case idleTimeout
    }

    /// ms, the shell's clock: the last complete frame from the peer (a trickled frame is not a sign of life).
    public private(set) var lastSeen: UInt64
    private var parser: WebSocketParser
    public private(set) var state = State.open
    public private(set) var pingOutstanding = false

    /// A ping with no payload, the same bytes every time.
    public static let pingFrame: [UInt8] = {
        var p: [UInt8] = []
        WebSocketFrameEncoder.appendFrame(opcode: .ping, payload: UnsafeRawBufferPointer(start: nil, count: 0), into: &p)
        return p
    }()

    /// `maxBinaryBytes` (default: `maxMessageBytes`) bounds a binary message; over it, the peer is closed 1009.
    /// `binaryAllowance` (default: all of it) is what the application takes now; a binary message over it is
    /// skipped unbuffered (`skippedBinary`), and the session stays open.
    public init(maxMessageBytes: Int, maxBinaryBytes: Int? = nil, binaryAllowance: Int? = nil, now: UInt64) {
        parser = WebSocketParser(maxMessageBytes: maxMessageBytes, maxBinaryBytes: maxBinaryBytes)
        if let binaryAllowance { parser.binaryAllowance = binaryAllowance }
        lastSeen = now
    }

    /// The binary bytes the application takes in one message from now on (clamped to `maxBinaryBytes`).
    public mutating func allowBinary(_ bytes: Int) {
        parser.binaryAllowance = bytes
    }

    public var isOpen: Bool { state == .open }

    /// Parses `input[offset...]` and returns the next action with `offset` moved past its bytes, or nil once all
    /// input is taken. Pointers in the action are valid until the next call.
    @inline(__always)
    public mutating func next(_ input: UnsafeMutableRawBufferPointer, offset: inout Int, now: UInt64) -> Action? {
        while let event = parser.next(input, offset: &offset) {
            guard state != .closed else { break }
            lastSeen = now
            if state == .closing {
                // We sent our close frame: only the peer's close (or its failure) matters now.
                switch event {
                case .close:
                    state = .closed
                    return .closeAnswered
                case .fail:
                    state = .closed
                    return .finish
                default:
                    continue
                }
            }
            switch event {
            case .text(let payload):
                return .text(payload)
            case .binary(let payload):
                // The parser lends either the caller's mutable input or its own buffer.
                return .binary(UnsafeMutableRawBufferPointer(mutating: payload))
            case .skippedBinary:
                return .skippedBinary
            case .ping(let payload):
                return .sendPong(payload)
            case .pong:
                pingOutstanding = false
            case .close(let code, _):
                state = .closed
                return .closeReceived(received: code, reply: code.map { WebSocketCloseCode(rawValue: $0) })
            case .fail(let code):
                state = .closed
                return .failed(code)
            }
        }
        if state == .closed { offset = input.count }   // nothing more is read
        return nil
    }

    /// The server ends the session (shutdown, idle, slow consumer): the close frame to send now, after which the
    /// shell waits for the peer's close up to its deadline; nil when a close frame was already sent.
    public mutating func close(_ code: WebSocketCloseCode) -> WebSocketCloseCode? {
        guard state == .open else { return nil }
        state = .closing
        return code
    }

    /// The application refuses what the peer sent (binary data from a version 1 client on the chat endpoint): like
    /// `close(_:)`, but nothing more is read, so the shell finishes at once after the close frame.
    public mutating func refuse(_ code: WebSocketCloseCode) -> WebSocketCloseCode? {
        guard state == .open else { return nil }
        state = .closed
        return code
    }

    /// The ping and idle rules, checked by a periodic sweep rather than a timer per connection.
    public mutating func tick(now: UInt64, pingInterval: UInt64) -> TimerAction {
        guard state == .open else { return .none }
        let quiet = now &- lastSeen
        if quiet >= 2 * pingInterval { return .idleTimeout }
        if quiet >= pingInterval && !pingOutstanding {
            pingOutstanding = true
            return .sendPing
        }
        return .none
    }

    /// Reassembly buffers go back to the allocator unless a message is half read. Invalidates action pointers.
    public mutating func releaseIdleBuffers() {
        parser.shrinkIfIdle()
    }
}
