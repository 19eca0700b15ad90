/// Voice and video calls (PROTOCOL.md B.4), as part of the chat service: who may ask, answer and end a call, and
/// the relay of the browsers' WebRTC signals to the one partner. Media never reaches uvchatd.
///
/// A chat has at most one call. It rings from `request` until the callee's `accept` (then it is started: both hear
/// `start`, with an `ice` object each) or `decline`, or until either side's `end`. It ends with its chat (`next`,
/// `stop`, a leave, the grace expiry: the partner hears only `partner_left`), and when either side's connection
/// drops (B.2): the media path of a dropped side is as good as gone, and the side that comes back has a new page
/// state; the present side hears `partner_away`, then `end`. A version 1 partner cannot take calls (B.7): the
/// server declines for it.
///
/// Both sides of a call hold a `CallLeg` naming the other, set and cleared together. Members that never touch a
/// call hold nothing here.
struct CallMember {
    /// `request`s, kept for the member's life like the image offer bucket, so that `next` does not refill it.
    var requests: TokenBucket
    var signals: TokenBucket
    var call: CallLeg?

    init(settings: ChatSettings, now: UInt64) {
        requests = TokenBucket(tokens: settings.callRequestBurst, at: now)
        signals = TokenBucket(tokens: settings.signalBurst, at: now)
    }
}

struct CallLeg {
    var partner: PeerID
    var isCaller: Bool
    var started = false
}

extension ChatService {
    /// A `call` command: refused `not_paired` first, then as B.4 says for the action.
    @usableFromInline
    mutating func call(_ action: CallAction, from peer: PeerID, now: UInt64) {
        guard let partner = routing.partner(of: peer) else { return refuse(peer, .notPaired, now: now) }
        switch action {
        case .request(let video):
            requestCall(video: video, from: peer, to: partner, now: now)
        case .accept:
            guard let leg = callMembers[peer]?.call, !leg.isCaller, !leg.started else {
                return refuse(peer, .noCall, now: now)
            }
            callMembers[peer]?.call?.started = true
            callMembers[partner]?.call?.started = true
            _counters.callsAccepted &+= 1
            _counters.callsStarted &+= 1
            sendStart(to: peer, initiator: false, now: now)
            // The callee may have been closed for its backlog on that send, which ended the chat and the call.
            if callMembers[partner]?.call?.started == true { sendStart(to: partner, initiator: true, now: now) }
        case .decline:
            guard let leg = callMembers[peer]?.call, !leg.isCaller, !leg.started else {
                return refuse(peer, .noCall, now: now)
            }
            clearCall(peer, partner)
            _counters.callsDeclined &+= 1
            deliver(frames.callDecline, to: partner, now: now)
        case .end:
            guard callMembers[peer]?.call != nil else { return refuse(peer, .noCall, now: now) }
            clearCall(peer, partner)
            _counters.callsEnded &+= 1
            deliver(frames.callEnd, to: partner, now: now)
        }
    }

    /// `request`: refused `partner_away`, `busy` or `rate_limited`, in that order; a version 1 partner's
    /// `decline` comes from the server.
    private mutating func requestCall(video: Bool, from peer: PeerID, to partner: PeerID, now: UInt64) {
        guard isV2(partner) else {
            _counters.callsRequested &+= 1
            _counters.callsDeclined &+= 1
            return deliver(frames.callDecline, to: peer, now: now)
        }
        if members2[partner]?.side?.isAway == true { return refuse(peer, .partnerAway, now: now) }
        var caller = callMembers[peer] ?? CallMember(settings: settings, now: now)
        if caller.call != nil || callMembers[partner]?.call != nil {
            callMembers[peer] = caller
            return refuse(peer, .busy, now: now)
        }
        if settings.rateLimitsEnabled
            && !caller.requests.take(now: now, rate: settings.callRequestRatePerSecond, burst: settings.callRequestBurst) {
            callMembers[peer] = caller
            return refuseRate(peer, now: now)
        }
        caller.call = CallLeg(partner: partner, isCaller: true)
        callMembers[peer] = caller
        var callee = callMembers[partner] ?? CallMember(settings: settings, now: now)
        callee.call = CallLeg(partner: peer, isCaller: false)
        callMembers[partner] = callee
        _counters.callsRequested &+= 1
        deliver(video ? frames.callRequestVideo : frames.callRequestVoice, to: partner, now: now)
    }

    /// A `signal`: during a started call, the `data` object goes to the partner as it came, within the signal
    /// bucket. Outside one: `not_paired` or `no_call`.
    @usableFromInline
    mutating func signal(_ data: UnsafeRawBufferPointer, from peer: PeerID, now: UInt64) {
        guard routing.partner(of: peer) != nil else { return refuse(peer, .notPaired, now: now) }
        guard var member = callMembers[peer], let leg = member.call, leg.started else {
            return refuse(peer, .noCall, now: now)
        }
        if settings.rateLimitsEnabled
            && !member.signals.take(now: now, rate: settings.signalRatePerSecond, burst: settings.signalBurst) {
            callMembers[peer] = member
            return refuseRate(peer, now: now)
        }
        callMembers[peer] = member
        _counters.signalsRelayed &+= 1
        _counters.signalBytesRelayed &+= UInt64(data.count)
        sendEvent(to: leg.partner, now: now) { ChatEventEncoder.signal(data: data, into: &$0) }
    }

    /// The peer's call, if it has one, ends with its chat or its connection; `notify` tells the partner `end`.
    mutating func endCall(of peer: PeerID, notify: Bool, now: UInt64) {
        guard !callMembers.isEmpty, let leg = callMembers[peer]?.call else { return }
        clearCall(peer, leg.partner)
        _counters.callsEnded &+= 1
        if notify { deliver(frames.callEnd, to: leg.partner, now: now) }
    }

    private mutating func clearCall(_ a: PeerID, _ b: PeerID) {
        callMembers[a]?.call = nil
        callMembers[b]?.call = nil
    }

    /// `start`, with this side's own `ice` object (its own TURN credential).
    private mutating func sendStart(to peer: PeerID, initiator: Bool, now: UInt64) {
        let ice = iceServers.object(unixTime: unixTime(), random: entropy.next())
        sendEvent(to: peer, now: now) { ChatEventEncoder.callStart(initiator: initiator, ice: ice, into: &$0) }
    }
}
