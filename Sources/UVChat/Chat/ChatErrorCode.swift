/// Why a command was refused; sent back as `{"type":"error","code":...}`. The connection stays open.
public enum ChatErrorCode: Int, Equatable, Error, CaseIterable, Sendable {
    case badRequest, notPaired, tooLong, rateLimited
    // Version 2 (PROTOCOL.md B.6).
    case partnerAway, resumeFailed
    case imagesOff, tooLarge, badImage, busy
    case noCall
    case nothingToReport

    /// The position in `allCases`: the index of the code's prebuilt frame and of its refusal counter.
    @inlinable var index: Int { rawValue }

    var wireName: StaticString {
        switch self {
        case .badRequest: "bad_request"
        case .notPaired: "not_paired"
        case .tooLong: "too_long"
        case .rateLimited: "rate_limited"
        case .partnerAway: "partner_away"
        case .resumeFailed: "resume_failed"
        case .imagesOff: "images_off"
        case .tooLarge: "too_large"
        case .badImage: "bad_image"
        case .busy: "busy"
        case .noCall: "no_call"
        case .nothingToReport: "nothing_to_report"
        }
    }

    /// The `message` the server sends with each code. StaticString so the error frames can be built once at start-up.
    var defaultMessage: StaticString {
        switch self {
        case .badRequest: "The command was not understood."
        case .notPaired: "You are not chatting with anyone right now."
        case .tooLong: "That message is too long."
        case .rateLimited: "You are sending messages too fast. Wait a moment."
        case .partnerAway: "The stranger is away and cannot take more messages now."
        case .resumeFailed: "That chat cannot be resumed. Start a new one."
        case .imagesOff: "The stranger does not accept images."
        case .tooLarge: "That image is too large."
        case .badImage: "That file is not a valid image of the type offered."
        case .busy: "Wait: your last image offer, or a call, is still open."
        case .noCall: "There is no call to answer or end."
        case .nothingToReport: "There is no stranger to report or block: your last chat ended too long ago."
        }
    }
}
