/// Chat events whose bytes never change, framed once at start-up so that sending one is a single append.
@usableFromInline
struct ChatFrames {
    let waiting: [UInt8]
    let partnerLeft: [UInt8]
    let partnerBack: [UInt8]
    @usableFromInline let pong: [UInt8]
    @usableFromInline let typingOn: [UInt8]
    @usableFromInline let typingOff: [UInt8]
    /// By `ChatErrorCode.index`.
    @usableFromInline let errors: [[UInt8]]
    // Calls (B.4).
    let callRequestVoice: [UInt8]
    let callRequestVideo: [UInt8]
    let callDecline: [UInt8]
    let callEnd: [UInt8]
    // Reports and blocks (B.5).
    let reported: [UInt8]
    let blocked: [UInt8]

    init() {
        waiting = ChatFrames.text { ChatEventEncoder.waiting(into: &$0) }
        partnerLeft = ChatFrames.text { ChatEventEncoder.partnerLeft(into: &$0) }
        partnerBack = ChatFrames.text { ChatEventEncoder.partnerBack(into: &$0) }
        pong = ChatFrames.text { ChatEventEncoder.pong(into: &$0) }
        typingOn = ChatFrames.text { ChatEventEncoder.typing(true, into: &$0) }
        typingOff = ChatFrames.text { ChatEventEncoder.typing(false, into: &$0) }
        callRequestVoice = ChatFrames.text { ChatEventEncoder.callRequest(video: false, into: &$0) }
        callRequestVideo = ChatFrames.text { ChatEventEncoder.callRequest(video: true, into: &$0) }
        callDecline = ChatFrames.text { ChatEventEncoder.callDecline(into: &$0) }
        callEnd = ChatFrames.text { ChatEventEncoder.callEnd(into: &$0) }
        reported = ChatFrames.text { ChatEventEncoder.reported(into: &$0) }
        blocked = ChatFrames.text { ChatEventEncoder.blocked(into: &$0) }
        errors = ChatErrorCode.allCases.map { code in
            ChatFrames.text { ChatEventEncoder.error(code, message: code.defaultMessage, into: &$0) }
        }
    }

    @inlinable func error(_ code: ChatErrorCode) -> [UInt8] { errors[code.index] }

    static func online(_ count: Int) -> [UInt8] {
        text { ChatEventEncoder.online(count: count, into: &$0) }
    }

    static func partnerAway(grace seconds: Int) -> [UInt8] {
        text { ChatEventEncoder.partnerAway(grace: seconds, into: &$0) }
    }

    /// A text frame around the payload that `build` appends.
    static func text(_ build: (inout [UInt8]) -> Void) -> [UInt8] {
        var payload: [UInt8] = []
        build(&payload)
        var frame: [UInt8] = []
        payload.withUnsafeBytes { WebSocketFrameEncoder.appendFrame(opcode: .text, payload: $0, into: &frame) }
        return frame
    }
}
