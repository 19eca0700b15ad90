/// Server frames whose bytes never change, encoded once at start-up so that sending one is a single append.
struct PrebuiltFrames {
    let waiting: [UInt8]
    let partnerLeft: [UInt8]
    let typingOn: [UInt8]
    let typingOff: [UInt8]
    let ping: [UInt8]
    private let errors: [[UInt8]]

    init() {
        waiting = PrebuiltFrames.text { ChatEventEncoder.waiting(into: &$0) }
        partnerLeft = PrebuiltFrames.text { ChatEventEncoder.partnerLeft(into: &$0) }
        typingOn = PrebuiltFrames.text { ChatEventEncoder.typing(true, into: &$0) }
        typingOff = PrebuiltFrames.text { ChatEventEncoder.typing(false, into: &$0) }
        var p: [UInt8] = []
        WebSocketFrameEncoder.appendFrame(opcode: .ping, payload: UnsafeRawBufferPointer(start: nil, count: 0), into: &p)
        ping = p
        errors = [ChatErrorCode.badRequest, .notPaired, .tooLong, .rateLimited].map { code in
            PrebuiltFrames.text { ChatEventEncoder.error(code, message: code.defaultMessage, into: &$0) }
        }
    }

    func error(_ code: ChatErrorCode) -> [UInt8] {
        switch code {
        case .badRequest: errors[0]
        case .notPaired: errors[1]
        case .tooLong: errors[2]
        case .rateLimited: errors[3]
        }
    }

    func online(_ count: Int) -> [UInt8] {
        PrebuiltFrames.text { ChatEventEncoder.online(count: count, into: &$0) }
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

extension HTTPStatus {
    static let requestTimeout = HTTPStatus(code: 408, reason: "Request Timeout")
}
