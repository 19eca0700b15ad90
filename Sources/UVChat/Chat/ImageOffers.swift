/// Images with the receiver's consent (PROTOCOL.md B.3), as part of the chat service.
///
/// A sender has at most one offer open. Offered, it waits for the receiver's answer; accepted, it waits for the
/// sender's one binary message, and only then does the shell let that connection's parser take a binary message
/// of the offered size (`ChatOutbox.allowBinary`); any other binary message is dropped unread by the parser and
/// refused here. An offer dies 60 s after it was made (or accepted) without the next step, when its chat ends, and
/// when either side drops out (B.2: a side that comes back has a new connection and no memory of the offer).
/// Expiry is lazy: an offer is found dead when something touches it, so it needs no timer of its own.
///
/// The image bytes are cleaned in place in the sender's receive buffer (`ImageCleaner`) and copied once, into the
/// receiver's output; nothing else holds them.
struct ImageSender {
    /// `image_offer`: one every 5 s, burst 3 (B.3). Kept for the member's life, so `next` does not refill it.
    var bucket: TokenBucket
    var offer: ImageOffer?
}

struct ImageOffer {
    var id: UInt32
    var type: ImageType
    var bytes: UInt64
    /// The partner it was made to; the offer is only good in this chat.
    var receiver: PeerID
    var accepted = false
    /// ms: the answer (or, once accepted, the image) must come before this.
    var deadline: UInt64
}

extension ChatService {
    /// An offer waits this long for its answer, and an accepted one for its image.
    static var offerLifetimeMillis: UInt64 { 60_000 }

    /// `image_offer`: refused `not_paired`, `images_off` (the partner takes none, or speaks version 1: B.7),
    /// `partner_away`, `too_large`, `busy` or `rate_limited`, in that order; else forwarded to the partner.
    @usableFromInline
    mutating func offerImage(_ peer: PeerID, id: UInt32, type: ImageType, bytes: UInt64, now: UInt64) {
        guard let partner = routing.partner(of: peer) else { return refuse(peer, .notPaired, now: now) }
        guard isV2(partner), let receiver = members2[partner], receiver.images, let side = receiver.side else {
            return refuse(peer, .imagesOff, now: now)
        }
        if side.isAway { return refuse(peer, .partnerAway, now: now) }
        if bytes > UInt64(settings.maxImageBytes) { return refuse(peer, .tooLarge, now: now) }
        var sender = imageSenders[peer]
            ?? ImageSender(bucket: TokenBucket(tokens: settings.imageOfferBurst, at: now), offer: nil)
        if let open = sender.offer, open.deadline > now {
            imageSenders[peer] = sender
            return refuse(peer, .busy, now: now)
        }
        if sender.offer != nil { endOffer(of: peer, &sender) }   // expired unanswered, or accepted and never sent
        if settings.rateLimitsEnabled
            && !sender.bucket.take(now: now, rate: settings.imageOfferRatePerSecond, burst: settings.imageOfferBurst) {
            imageSenders[peer] = sender
            return refuseRate(peer, now: now)
        }
        sender.offer = ImageOffer(id: id, type: type, bytes: bytes, receiver: partner,
                                  deadline: now + ChatService.offerLifetimeMillis)
        imageSenders[peer] = sender
        _counters.imageOffers &+= 1
        sendEvent(to: partner, now: now) { ChatEventEncoder.imageOffer(id: id, type: type, bytes: bytes, into: &$0) }
    }

    /// `image_accept` / `image_decline` from the receiver: it must name the partner's open, unanswered offer to it
    /// (`bad_request` otherwise). The sender hears the same event; accepted, its connection may now send the image.
    @usableFromInline
    mutating func answerImage(_ peer: PeerID, id: UInt32, accept: Bool, now: UInt64) {
        guard let partner = routing.partner(of: peer) else { return refuse(peer, .notPaired, now: now) }
        guard var sender = imageSenders[partner], var offer = sender.offer, offer.receiver == peer, offer.id == id,
              !offer.accepted, offer.deadline > now else { return refuse(peer, .badRequest, now: now) }
        if accept {
            offer.accepted = true
            offer.deadline = now + ChatService.offerLifetimeMillis
            sender.offer = offer
            _counters.imageAccepts &+= 1
            // The 4-byte id, then exactly the offered bytes.
            outbox.allowBinary(4 + Int(offer.bytes), from: partner)
        } else {
            sender.offer = nil
            _counters.imageDeclines &+= 1
        }
        imageSenders[partner] = sender
        sendEvent(to: partner, now: now) { ChatEventEncoder.imageAnswer(id: id, accept: accept, into: &$0) }
    }

    /// A binary message from a version 2 member: the image of its accepted offer (the offer id as 4 bytes
    /// big-endian, then exactly the offered bytes), checked and cleaned in place, then sent to the partner as the
    /// id and the cleaned bytes. Anything else is `bad_request` (the offer stays, for a right message before its
    /// deadline); bytes that are not a well-formed image of the offered type are `bad_image` (the offer is spent).
    public mutating func receiveBinary(_ payload: UnsafeMutableRawBufferPointer, from peer: PeerID, now: UInt64) {
        guard payload.count >= 4, let partner = routing.partner(of: peer), var sender = imageSenders[peer],
              let offer = sender.offer, offer.accepted, offer.receiver == partner, offer.deadline > now,
              UInt32(bigEndian: payload.loadUnaligned(as: UInt32.self)) == offer.id, UInt64(payload.count - 4) == offer.bytes
        else { return refuse(peer, .badRequest, now: now) }
        endOffer(of: peer, &sender)
        imageSenders[peer] = sender
        let image = UnsafeMutableRawBufferPointer(rebasing: payload[4...])
        guard let cleaned = ImageCleaner.clean(image, as: offer.type) else { return refuse(peer, .badImage, now: now) }
        _counters.imagesRelayed &+= 1
        _counters.imageBytesRelayed &+= UInt64(cleaned)
        _counters.imageBytesRemoved &+= UInt64(image.count - cleaned)
        let message = UnsafeRawBufferPointer(rebasing: payload[0..<(4 + cleaned)])
        let outstanding = outbox.sendBinary(message, to: partner)
        // The image counts against the receiver's cap, but a receiver that has read everything before it is not
        // closed for one image larger than the cap (the default cap and image limit are both 1 MiB): it may pass
        // the cap by at most the image it just took.
        let frame = message.count + WebSocketFrameEncoder.headerSize(payloadLength: message.count)
        if outstanding - frame > settings.outgoingCap { dropSlowConsumer(partner, now: now) }
    }

    /// A binary message the parser dropped unread: no offer of this size was accepted.
    public mutating func refuseBinary(from peer: PeerID, now: UInt64) {
        refuse(peer, .badRequest, now: now)
    }

    /// The chat of `a` (and `b`) ends or is interrupted: their open offers die.
    mutating func endOffers(_ a: PeerID, _ b: PeerID?) {
        guard !imageSenders.isEmpty else { return }
        for p in [a, b] {
            guard let p, var sender = imageSenders[p], sender.offer != nil else { continue }
            endOffer(of: p, &sender)
            imageSenders[p] = sender
        }
    }

    /// The offer goes; a connection that was allowed its image is allowed no more binary (if it is still open).
    private mutating func endOffer(of peer: PeerID, _ sender: inout ImageSender) {
        if sender.offer?.accepted == true && isMember(peer) { outbox.allowBinary(0, from: peer) }
        sender.offer = nil
    }
}
