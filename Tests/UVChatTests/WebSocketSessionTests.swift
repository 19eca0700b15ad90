import Testing
@testable import UVChat

/// A session action copied out, since the pointers in `WebSocketSession.Action` only live until the next call.
private enum Did: Equatable {
    case text([UInt8]), binary([UInt8]), sendPong([UInt8]), closeReceived(received: UInt16?, reply: UInt16?)
    case failed(UInt16), closeAnswered, finish, skippedBinary

    init(_ action: WebSocketSession.Action) {
        switch action {
        case .text(let p): self = .text(Array(p))
        case .binary(let p): self = .binary(Array(p))
        case .sendPong(let p): self = .sendPong(Array(p))
        case .closeReceived(let received, let reply): self = .closeReceived(received: received, reply: reply?.rawValue)
        case .failed(let code): self = .failed(code.rawValue)
        case .closeAnswered: self = .closeAnswered
        case .finish: self = .finish
        case .skippedBinary: self = .skippedBinary
        }
    }
}

private let maskKey: [UInt8] = [0xA1, 0x5C, 0x03, 0xE7]

/// A single-frame client message built by hand (RFC 6455 5.2): FIN|opcode, MASK|length (7-bit form only), the
/// 4-byte masking key, then the payload XORed with the key (5.3). `masked: false` leaves out the bit and the key.
private func clientFrame(_ opcode: UInt8, _ payload: [UInt8] = [], fin: Bool = true, masked: Bool = true) -> [UInt8] {
    precondition(payload.count < 126, "7-bit lengths only")
    var frame: [UInt8] = [(fin ? 0x80 : 0x00) | opcode, (masked ? 0x80 : 0x00) | UInt8(payload.count)]
    guard masked else { return frame + payload }
    frame += maskKey
    for (i, byte) in payload.enumerated() { frame.append(byte ^ maskKey[i % 4]) }
    return frame
}

private func textFrame(_ s: String) -> [UInt8] { clientFrame(0x1, Array(s.utf8)) }
private func closeFrame(_ code: UInt16, _ reason: String = "") -> [UInt8] {
    clientFrame(0x8, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8))
}

/// Feeds `bytes` as one read and collects every action until the session returns nil.
private func feed(_ session: inout WebSocketSession, _ bytes: [UInt8], now: UInt64) -> [Did] {
    var copy = bytes
    return copy.withUnsafeMutableBytes { buffer in
        var offset = 0
        var did: [Did] = []
        while let action = session.next(buffer, offset: &offset, now: now) {
            did.append(Did(action))
            if did.count > 100 { break }   // a session that never returns nil must not hang the suite
        }
        return did
    }
}

private let interval: UInt64 = 1_000

@Suite struct WebSocketSessionTests {
    // MARK: Data and control frames while open

    @Test func textFrameIsUnmaskedAndRefreshesLastSeen() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 10)
        #expect(session.lastSeen == 10)
        #expect(feed(&session, textFrame("hello, world"), now: 500) == [.text(Array("hello, world".utf8))])
        #expect(session.lastSeen == 500)
        #expect(session.state == .open && session.isOpen)
    }

    @Test func binaryFrameIsBinary() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        let bytes: [UInt8] = [0x00, 0xFF, 0x80, 0x7F, 0x01]
        #expect(feed(&session, clientFrame(0x2, bytes), now: 1) == [.binary(bytes)])
        #expect(session.state == .open)
    }

    @Test func pingIsAnsweredWithAPongOfTheSamePayload() {
        // RFC 6455 5.5.2 and 5.5.3: a Pong in response carries the Ping's application data.
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(feed(&session, clientFrame(0x9, Array("are you there".utf8)), now: 7) == [.sendPong(Array("are you there".utf8))])
        #expect(feed(&session, clientFrame(0x9), now: 8) == [.sendPong([])])
        #expect(session.lastSeen == 8)
        #expect(session.state == .open)
    }

    @Test func pongClearsTheOutstandingPing() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(session.tick(now: interval, pingInterval: interval) == .sendPing)
        #expect(session.pingOutstanding)
        // A pong is for the session alone: nothing for the shell to do.
        #expect(feed(&session, clientFrame(0xA), now: interval + 100) == [])
        #expect(!session.pingOutstanding)
        #expect(session.lastSeen == interval + 100)
        // So the next quiet interval gets a ping of its own.
        #expect(session.tick(now: 2 * interval + 99, pingInterval: interval) == .none)
        #expect(session.tick(now: 2 * interval + 100, pingInterval: interval) == .sendPing)
    }

    @Test func frameSplitAcrossReadsCountsAsLifeOnlyWhenComplete() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        let frame = textFrame("trickled")
        #expect(feed(&session, Array(frame[..<5]), now: 100) == [])
        #expect(session.lastSeen == 0)
        #expect(feed(&session, Array(frame[5...]), now: 200) == [.text(Array("trickled".utf8))])
        #expect(session.lastSeen == 200)
    }

    @Test func releasingIdleBuffersKeepsAHalfReadMessage() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        let frame = textFrame("split across two reads")
        #expect(feed(&session, Array(frame[..<12]), now: 1) == [])
        session.releaseIdleBuffers()
        #expect(feed(&session, Array(frame[12...]), now: 2) == [.text(Array("split across two reads".utf8))])
        session.releaseIdleBuffers()
        // And the session still assembles the next split message after the buffers went back.
        let again = clientFrame(0x2, Array(0..<40))
        #expect(feed(&session, Array(again[..<3]), now: 3) == [])
        #expect(feed(&session, Array(again[3...]), now: 4) == [.binary(Array(0..<40))])
    }

    // MARK: Closing handshake started by the peer (RFC 6455 5.5.1, 7.1.5)

    @Test func peersCloseWhileOpenIsEchoedAndEndsTheSession() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(feed(&session, closeFrame(1000), now: 5) == [.closeReceived(received: 1000, reply: 1000)])
        #expect(session.state == .closed && !session.isOpen)
        // The closing handshake is over: nothing after it counts.
        #expect(feed(&session, textFrame("late"), now: 6) == [])
        #expect(session.close(.goingAway) == nil)
    }

    @Test func peersCloseCodeIsEchoedWhateverItIs() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(feed(&session, closeFrame(4001, "bye"), now: 5) == [.closeReceived(received: 4001, reply: 4001)])
        #expect(session.state == .closed)
    }

    @Test func emptyCloseIsAnsweredWithAnEmptyClose() {
        // 5.5.1: a close frame may have no body; the answer then has none either (1005 must not be sent, 7.4.1).
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(feed(&session, clientFrame(0x8), now: 5) == [.closeReceived(received: nil, reply: nil)])
        #expect(session.state == .closed)
    }

    // MARK: Protocol errors

    @Test func unmaskedClientFrameFailsWithProtocolError() {
        // 5.1: the server MUST close the connection on an unmasked frame from a client.
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(feed(&session, clientFrame(0x1, Array("plain".utf8), masked: false), now: 5)
                == [.failed(WebSocketCloseCode.protocolError.rawValue)])
        #expect(session.state == .closed)
        #expect(feed(&session, textFrame("after"), now: 6) == [])
        #expect(session.tick(now: 10 * interval, pingInterval: interval) == .none)
    }

    @Test func invalidUTF8TextFailsWith1007() {
        // 8.1: text that is not UTF-8 fails the connection with 1007.
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(feed(&session, clientFrame(0x1, [0x68, 0xC3, 0x28]), now: 1) == [.failed(1007)])
        #expect(session.state == .closed)
    }

    // MARK: Closing handshake started by the server

    @Test func serverCloseIsSentOnceThenDataIsIgnoredUntilThePeersClose() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(session.close(.goingAway) == .goingAway)
        #expect(session.close(.goingAway) == nil)
        #expect(session.close(.normal) == nil)
        #expect(session.refuse(.unsupportedData) == nil)
        #expect(session.state == .closing && !session.isOpen)
        // 1.4: after sending a close, the peer's data is not for the application.
        #expect(feed(&session, textFrame("still talking"), now: 10) == [])
        #expect(feed(&session, clientFrame(0x2, [1, 2, 3]), now: 11) == [])
        #expect(session.state == .closing)
        #expect(feed(&session, closeFrame(1001), now: 12) == [.closeAnswered])
        #expect(session.state == .closed)
    }

    @Test func dataAndClosingFramesInOneReadWhileClosingGiveOnlyTheAnswer() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(session.close(.policyViolation) == .policyViolation)
        #expect(feed(&session, textFrame("a") + clientFrame(0x2, [9]) + clientFrame(0x8) + textFrame("b"), now: 1)
                == [.closeAnswered])
        #expect(session.state == .closed)
    }

    @Test func peerBreakingTheProtocolWhileClosingAlsoFinishes() {
        // No second close frame: ours is already sent, so the failure only ends the wait.
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(session.close(.goingAway) == .goingAway)
        #expect(feed(&session, clientFrame(0x1, Array("x".utf8), masked: false), now: 1) == [.finish])
        #expect(session.state == .closed)
    }

    @Test func refusedSessionIsClosedAndReadsNothingMore() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(session.refuse(.unsupportedData) == .unsupportedData)
        #expect(session.state == .closed)
        #expect(session.refuse(.unsupportedData) == nil)
        #expect(session.close(.goingAway) == nil)
        #expect(feed(&session, textFrame("more"), now: 1) == [])
        #expect(feed(&session, clientFrame(0x9, [1]), now: 1) == [])
        #expect(feed(&session, closeFrame(1000), now: 1) == [])
        #expect(feed(&session, clientFrame(0x1, [1], masked: false), now: 1) == [])
        #expect(session.lastSeen == 0)
        #expect(session.state == .closed)
        // Input after the end is taken and dropped: the offset ends past it.
        var bytes = textFrame("more") + textFrame("again")
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            #expect(session.next(buffer, offset: &offset, now: 2).map(Did.init) == nil)
            #expect(offset == buffer.count)
        }
    }

    // MARK: Ping and idle rules

    @Test func quietPeerGetsOnePingAfterOneIntervalAndTimesOutAfterTwo() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(session.tick(now: 0, pingInterval: interval) == .none)
        #expect(session.tick(now: interval - 1, pingInterval: interval) == .none)
        #expect(!session.pingOutstanding)
        #expect(session.tick(now: interval, pingInterval: interval) == .sendPing)
        #expect(session.pingOutstanding)
        // One ping at a time.
        #expect(session.tick(now: interval + 1, pingInterval: interval) == .none)
        #expect(session.tick(now: 2 * interval - 1, pingInterval: interval) == .none)
        #expect(session.tick(now: 2 * interval, pingInterval: interval) == .idleTimeout)
        #expect(session.state == .open)   // the shell closes it, with close(_:)
    }

    @Test func idleTimeoutComesAtTwoIntervalsEvenWithoutAnEarlierTick() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 100)
        #expect(session.tick(now: 100 + 2 * interval, pingInterval: interval) == .idleTimeout)
        #expect(!session.pingOutstanding)
    }

    @Test func aCompleteFramePostponesThePing() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(feed(&session, textFrame("hi"), now: 900) == [.text(Array("hi".utf8))])
        #expect(session.tick(now: interval, pingInterval: interval) == .none)
        #expect(session.tick(now: 900 + interval - 1, pingInterval: interval) == .none)
        #expect(session.tick(now: 900 + interval, pingInterval: interval) == .sendPing)
    }

    @Test func timerDoesNothingOnceTheSessionIsNotOpen() {
        var closing = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(closing.close(.goingAway) == .goingAway)
        #expect(closing.tick(now: interval, pingInterval: interval) == .none)
        #expect(closing.tick(now: 5 * interval, pingInterval: interval) == .none)
        #expect(!closing.pingOutstanding)

        var peerClosed = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        _ = feed(&peerClosed, closeFrame(1000), now: 0)
        #expect(peerClosed.tick(now: 5 * interval, pingInterval: interval) == .none)

        var refused = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        #expect(refused.refuse(.unsupportedData) == .unsupportedData)
        #expect(refused.tick(now: 5 * interval, pingInterval: interval) == .none)
    }

    // MARK: Several frames in one read

    @Test func framesInOneReadComeOutOnePerCallWithTheOffsetPastEach() {
        var session = WebSocketSession(maxMessageBytes: 1 << 16, now: 0)
        let frames = [textFrame("one"), clientFrame(0x9, [0x70]), clientFrame(0x2, [1, 2]), clientFrame(0xA),
                      textFrame("two"), closeFrame(1000)]
        var bytes = frames.flatMap { $0 }
        var ends: [Int] = []
        var total = 0
        for f in frames { total += f.count; ends.append(total) }

        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            func step(_ expected: Did, endingAt end: Int) {
                let got = session.next(buffer, offset: &offset, now: 42).map(Did.init)
                #expect(got == expected)
                #expect(offset == end)
            }
            step(.text(Array("one".utf8)), endingAt: ends[0])
            step(.sendPong([0x70]), endingAt: ends[1])
            step(.binary([1, 2]), endingAt: ends[2])
            // The pong has no action of its own: the call goes on to the next frame.
            step(.text(Array("two".utf8)), endingAt: ends[4])
            step(.closeReceived(received: 1000, reply: 1000), endingAt: ends[5])
            #expect(session.next(buffer, offset: &offset, now: 42) == nil)
        }
        #expect(session.state == .closed)
        #expect(session.lastSeen == 42)
    }

    @Test func pingFrameIsAnEmptyUnmaskedPing() {
        // 5.2: FIN set, opcode 0x9; a server frame is not masked, and the payload is empty.
        #expect(WebSocketSession.pingFrame == [0x89, 0x00])
    }
}
