import Foundation
import Testing
@testable import UVChat

// Images (PROTOCOL.md B.3) in the chat service as plain calls: every refusal, the offer's life (answer, 60 s,
// chat end, drop, resume), the binary allowance the shell is given, the relay of the cleaned bytes and the cap.

private func event(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

private func codes(_ events: [String]) -> [String] {
    events.map(event).compactMap { $0["type"] as? String == "error" ? $0["code"] as? String : nil }
}

/// A 1x1 GIF with a global colour table, a graphic control extension and a comment ("hello") the cleaner removes.
let gifWithComment: [UInt8] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
    0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00,
    0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x21, 0xFE, 0x05, 0x68, 0x65, 0x6C, 0x6C, 0x6F, 0x00,
    0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
    0x02, 0x02, 0x44, 0x01, 0x00,
    0x3B,
]

/// A 1x1 GIF with a 256-colour local table: 819 bytes that no cleaner makes smaller.
let gifWithLocalTable: [UInt8] = {
    var g: [UInt8] = [0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
    g += [0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x87]
    for i in 0..<256 { g += [UInt8(i), UInt8(255 - i), UInt8(i / 2)] }
    // LZW, 8-bit minimum code size: clear (256), index 0, end (257) as 9-bit codes, least significant bit first.
    g += [0x08, 0x04, 0x00, 0x01, 0x04, 0x04, 0x00, 0x3B]
    return g
}()

private extension Service {
    mutating func joinV2(_ n: UInt32, now: UInt64 = 0) {
        join(peer(n), address: home, interests: [], version: .v2, now: now)
    }
    mutating func offer(_ id: Int, bytes: Int, mime: String = "image/gif", from n: UInt32, now: UInt64 = 0) {
        command(#"{"type":"image_offer","id":\#(id),"mime":"\#(mime)","bytes":\#(bytes)}"#, from: n, now: now)
    }
    mutating func answer(_ id: Int, accept: Bool, from n: UInt32, now: UInt64 = 0) {
        command(#"{"type":"\#(accept ? "image_accept" : "image_decline")","id":\#(id)}"#, from: n, now: now)
    }
    mutating func image(_ id: UInt32, _ bytes: [UInt8], from n: UInt32, now: UInt64 = 0) {
        var message = withUnsafeBytes(of: id.bigEndian, Array.init) + bytes
        message.withUnsafeMutableBytes { receiveBinary($0, from: peer(n), now: now) }
    }
}

/// Peers 0 and 1 in a version 2 chat, with images on for each as asked; their first events are taken.
private func imageChat(_ images0: Bool = true, _ images1: Bool = true,
                       configure: (inout ChatSettings) -> Void = { _ in }) -> (Service, RecordingOutbox) {
    let (chat, out, _) = imageChatWithToken(images0, images1, configure)
    return (chat, out)
}

/// The same, with peer 0's resume token.
private func imageChatWithToken(_ images0: Bool = true, _ images1: Bool = true,
                                _ configure: (inout ChatSettings) -> Void = { _ in }) -> (Service, RecordingOutbox, String) {
    var (chat, out) = service(configure)
    chat.joinV2(0)
    chat.joinV2(1)
    chat.command(#"{"type":"start","images":\#(images0)}"#, from: 0)
    chat.command(#"{"type":"start","images":\#(images1)}"#, from: 1)
    let p0 = out.take(0).map(event).first { $0["type"] as? String == "paired" }
    let p1 = out.take(1).map(event).first { $0["type"] as? String == "paired" }
    #expect((p0?["partner"] as? [String: Any])?["images"] as? Bool == images1)
    #expect((p1?["partner"] as? [String: Any])?["images"] as? Bool == images0)
    return (chat, out, p0?["token"] as? String ?? "")
}

@Suite struct ImageOfferTests {
    @Test func anOfferIsForwardedAcceptedAndItsImageRelayedCleaned() {
        var (chat, out) = imageChat()
        chat.offer(7, bytes: gifWithComment.count, from: 0)
        #expect(out.take(1) == [#"{"type":"image_offer","id":7,"mime":"image/gif","bytes":\#(gifWithComment.count)}"#])
        #expect(out.allowance[0] == nil, "no binary before the accept")
        chat.answer(7, accept: true, from: 1)
        #expect(out.take(0) == [#"{"type":"image_accept","id":7}"#])
        #expect(out.allowance[0] == 4 + gifWithComment.count)
        chat.image(7, gifWithComment, from: 0)
        let sent = out.binary[1] ?? []
        #expect(sent.count == 1)
        #expect(sent.first.map { Array($0[..<4]) } == [0, 0, 0, 7])
        var cleaned = sent.first.map { Array($0[4...]) } ?? []
        #expect(cleaned.count <= gifWithComment.count)
        let count = cleaned.count
        let again = cleaned.withUnsafeMutableBytes { ImageCleaner.clean($0, as: .gif) }
        #expect(again == count, "what the receiver gets is a well-formed GIF")
        #expect(out.allowance[0] == 0, "the allowance is spent with the image")
        #expect(out.take(0) == [] && out.take(1) == [])
        #expect(chat.counters.imageOffers == 1 && chat.counters.imageAccepts == 1 && chat.counters.imagesRelayed == 1)
        #expect(chat.counters.imageBytesRelayed == UInt64(cleaned.count))
        #expect(chat.counters.imageBytesRemoved == UInt64(gifWithComment.count - cleaned.count))
        // The same image again matches no offer.
        chat.image(7, gifWithComment, from: 0)
        #expect(codes(out.take(0)) == ["bad_request"])
    }

    @Test func everyRefusalOfAnOffer() {
        // Not paired.
        var (lone, loneOut) = service()
        lone.joinV2(0)
        _ = loneOut.take(0)
        lone.offer(1, bytes: 10, from: 0)
        lone.answer(1, accept: true, from: 0)
        #expect(codes(loneOut.take(0)) == ["not_paired", "not_paired"])

        // The partner takes no images.
        var (chat, out) = imageChat(true, false)
        chat.offer(1, bytes: 10, from: 0)
        #expect(codes(out.take(0)) == ["images_off"])
        #expect(out.take(1) == [])
        // Too large (the limit itself is fine).
        chat.offer(1, bytes: 1024 * 1024 + 1, from: 1)
        #expect(codes(out.take(1)) == ["too_large"])
        chat.offer(1, bytes: 1024 * 1024, from: 1)
        #expect(out.take(0).count == 1)
        // Busy while open, answered-and-accepted included.
        chat.offer(2, bytes: 10, from: 1)
        #expect(codes(out.take(1)) == ["busy"])
        chat.answer(1, accept: true, from: 0)
        _ = out.take(1)
        chat.offer(2, bytes: 10, from: 1)
        #expect(codes(out.take(1)) == ["busy"])
        #expect(chat.counters.refused[ChatErrorCode.busy.index] == 2)
        #expect(chat.counters.refused[ChatErrorCode.imagesOff.index] == 1)
        #expect(chat.counters.refused[ChatErrorCode.tooLarge.index] == 1)
    }

    @Test func offersAreBucketedOnePerFiveSecondsBurstThree() {
        var (chat, out) = imageChat()
        for id in 1...3 {
            chat.offer(id, bytes: 10, from: 0, now: 0)
            chat.answer(id, accept: false, from: 1, now: 0)
        }
        #expect(out.take(0) == (1...3).map { #"{"type":"image_decline","id":\#($0)}"# })
        chat.offer(4, bytes: 10, from: 0, now: 0)
        #expect(codes(out.take(0)) == ["rate_limited"])
        chat.offer(4, bytes: 10, from: 0, now: 4_900)
        #expect(codes(out.take(0)) == ["rate_limited"])
        chat.offer(4, bytes: 10, from: 0, now: 10_100)
        #expect(out.take(1).count == 3 + 1)
        #expect(codes(out.take(0)) == [])
    }

    @Test func answersMustNameThePartnersOpenOfferToThisReceiver() {
        var (chat, out) = imageChat()
        chat.answer(1, accept: true, from: 1)
        #expect(codes(out.take(1)) == ["bad_request"])
        chat.offer(5, bytes: 10, from: 0)
        _ = out.take(1)
        chat.answer(6, accept: true, from: 1)   // another id
        chat.answer(5, accept: true, from: 0)   // the sender cannot answer its own offer
        #expect(codes(out.take(1)) == ["bad_request"])
        #expect(codes(out.take(0)) == ["bad_request"])
        chat.answer(5, accept: true, from: 1)
        chat.answer(5, accept: true, from: 1)   // answered already
        chat.answer(5, accept: false, from: 1)
        #expect(codes(out.take(1)) == ["bad_request", "bad_request"])
    }

    @Test func anUnansweredOfferDiesAfter60SecondsAndAnAcceptedOneWaits60ForItsImage() {
        var (chat, out) = imageChat(configure: { $0.rateLimitsEnabled = false })
        chat.offer(1, bytes: gifWithComment.count, from: 0, now: 0)
        chat.offer(2, bytes: 10, from: 0, now: 59_999)
        #expect(codes(out.take(0)) == ["busy"])
        chat.answer(1, accept: true, from: 1, now: 60_000)
        #expect(codes(out.take(1)).suffix(1) == ["bad_request"])
        // Dead: a new offer is no longer busy.
        chat.offer(2, bytes: gifWithComment.count, from: 0, now: 60_000)
        chat.answer(2, accept: true, from: 1, now: 70_000)
        #expect(out.take(0) == [#"{"type":"image_accept","id":2}"#])
        chat.image(2, gifWithComment, from: 0, now: 130_000)
        #expect(codes(out.take(0)) == ["bad_request"], "the accepted offer waited 60 s for its image")
        // Found dead by the next offer, which takes the connection's allowance back.
        #expect(out.allowance[0] == 4 + gifWithComment.count)
        chat.offer(3, bytes: 10, from: 0, now: 130_000)
        #expect(out.allowance[0] == 0)
        #expect(codes(out.take(0)) == [])
    }

    @Test func offersDieWithTheirChat() {
        var (chat, out) = imageChat(configure: { $0.rateLimitsEnabled = false })
        chat.offer(1, bytes: gifWithComment.count, from: 0)
        chat.answer(1, accept: true, from: 1)
        chat.offer(2, bytes: 10, from: 1)
        #expect(out.allowance[0] == 4 + gifWithComment.count)
        chat.command(#"{"type":"next"}"#, from: 1)
        #expect(out.allowance[0] == 0, "the accepted offer died with the chat")
        // A new partner for 1 cannot accept 0's old offer... and 0's image is refused.
        chat.joinV2(2)
        chat.command(#"{"type":"start","images":true}"#, from: 2)
        _ = out.take(0); _ = out.take(1); _ = out.take(2)
        chat.image(1, gifWithComment, from: 0)
        #expect(codes(out.take(0)) == ["bad_request"])
        chat.answer(2, accept: true, from: 2)
        #expect(codes(out.take(2)) == ["bad_request"])
        // And 1 is not busy with the dead offer in its new chat.
        chat.offer(3, bytes: 10, from: 1)
        #expect(out.take(2).map(event).first?["type"] as? String == "image_offer")
        // Leaving ends them too.
        chat.leave(peer(1), now: 0)
        chat.answer(3, accept: true, from: 2)
        #expect(codes(out.take(2)) == ["not_paired"])
    }

    @Test func aDropKillsTheChatsOffersAndAnAwayPartnerTakesNone() {
        var (chat, out) = imageChat(configure: { $0.rateLimitsEnabled = false })
        chat.offer(1, bytes: gifWithComment.count, from: 0)
        chat.answer(1, accept: true, from: 1)
        chat.drop(peer(1), now: 10)
        #expect(out.allowance[0] == 0)
        chat.image(1, gifWithComment, from: 0, now: 20)
        chat.offer(2, bytes: 10, from: 0, now: 20)
        #expect(codes(out.take(0)) == ["bad_request", "partner_away"])
        #expect(out.binary[1] == nil)
    }

    @Test func aVersion1PartnerTakesNoImages() {
        var (chat, out) = service()
        chat.join(peer(0), address: home, interests: [], version: .v1, now: 0)
        chat.joinV2(1)
        chat.command(#"{"type":"start","images":true}"#, from: 1)
        _ = out.take(0); _ = out.take(1)
        chat.offer(1, bytes: 10, from: 1)
        #expect(codes(out.take(1)) == ["images_off"])
        #expect(out.take(0) == [])
        // On version 1 the image commands are unknown types.
        chat.offer(1, bytes: 10, from: 0)
        chat.answer(1, accept: true, from: 0)
        #expect(codes(out.take(0)) == ["bad_request", "bad_request"])
    }

    @Test func badImagesAreRefusedAndSpendTheOffer() {
        var (chat, out) = imageChat(configure: { $0.rateLimitsEnabled = false })
        let notAGIF = [UInt8]("this is not an image".utf8)
        chat.offer(1, bytes: notAGIF.count, from: 0)
        chat.answer(1, accept: true, from: 1)
        _ = out.take(0)
        chat.image(1, notAGIF, from: 0)
        #expect(codes(out.take(0)) == ["bad_image"])
        #expect(out.allowance[0] == 0)
        chat.image(1, notAGIF, from: 0)
        #expect(codes(out.take(0)) == ["bad_request"])
        #expect(out.binary[1] == nil)
        // Wrong id or size keeps the offer for the right message.
        chat.offer(2, bytes: gifWithComment.count, from: 0)
        chat.answer(2, accept: true, from: 1)
        _ = out.take(0)
        chat.image(3, gifWithComment, from: 0)
        chat.image(2, Array(gifWithComment.dropLast()), from: 0)
        chat.refuseBinary(from: peer(0), now: 0)
        #expect(codes(out.take(0)) == ["bad_request", "bad_request", "bad_request"])
        chat.image(2, gifWithComment, from: 0)
        #expect(out.binary[1]?.count == 1)
    }

    @Test func anImageCountsAgainstTheReceiversCapButOneImageMayPassIt() {
        let image = gifWithLocalTable
        var (chat, out) = imageChat(configure: {
            $0.rateLimitsEnabled = false
            $0.outgoingCap = 250
        })
        chat.offer(1, bytes: image.count, from: 0)
        chat.answer(1, accept: true, from: 1)
        out.outstanding = [:]
        // An image larger than the cap into an empty buffer: delivered, the receiver stays.
        chat.image(1, image, from: 0)
        #expect(out.binary[1]?.count == 1 && out.closed.isEmpty)
        #expect(out.binary[1]?.first?.count == 4 + image.count)
        // Anything more while the image is still unread takes it over: closed as a slow consumer.
        chat.offer(2, bytes: image.count, from: 0)
        #expect(out.closed.map(\.0) == [1])
        #expect(chat.counters.slowConsumerCloses == 1)
    }

    @Test func aResumeKeepsTheOfferBucketAndTheNewConnectionSendsTheImages() {
        var (chat, out, token) = imageChatWithToken()
        for id in 1...3 {
            chat.offer(id, bytes: gifWithComment.count, from: 0)
            chat.answer(id, accept: false, from: 1)
        }
        chat.drop(peer(0), now: 100)
        chat.joinV2(2, now: 200)
        chat.command(#"{"type":"resume","token":"\#(token)","seq":0}"#, from: 2, now: 200)
        #expect(out.take(2).map { event($0)["type"] as? String } == ["online", "resumed"])
        chat.offer(4, bytes: gifWithComment.count, from: 2, now: 300)
        #expect(codes(out.take(2)) == ["rate_limited"], "a resume does not refill the bucket")
        chat.offer(4, bytes: gifWithComment.count, from: 2, now: 5_300)
        chat.answer(4, accept: true, from: 1, now: 5_300)
        #expect(out.allowance[2] == 4 + gifWithComment.count)
        chat.image(4, gifWithComment, from: 2, now: 5_400)
        #expect(out.binary[1]?.count == 1)
    }
}
