// libFuzzer targets for the sans-IO cores. One binary holds them all (the sources compile once, which keeps
// `make test` quick on two cores); UVCHAT_FUZZ_TARGET picks the target, each with its own corpus folder.
// Every target checks invariants, not only "does not crash".
#if canImport(Glibc)
import Glibc
#endif

enum FuzzTarget: String {
    case http, websocket, command, path, matchmaker, image, jwt, cluster
}

// Read once; libFuzzer calls the entry point from one thread.
nonisolated(unsafe) var selectedTarget: FuzzTarget? = nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if selectedTarget == nil {
        let name = getenv("UVCHAT_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        guard let t = FuzzTarget(rawValue: name) else {
            print("set UVCHAT_FUZZ_TARGET to http, websocket, command, path, matchmaker, image, jwt or cluster")
            exit(2)
        }
        selectedTarget = t
    }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    switch selectedTarget! {
    case .http: fuzzHTTP(input)
    case .cluster: fuzzCluster(input)
    case .websocket: fuzzWebSocket(input)
    case .command: fuzzCommand(input)
    case .path: fuzzPath(input)
    case .matchmaker: fuzzMatchmaker(input)
    case .image: fuzzImage(input)
    case .jwt: fuzzJWT(input)
    }
    return 0
}

func check(_ condition: Bool, _ what: String) {
    if !condition {
        var line = "invariant broken: \(what)\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        abort()
    }
}

/// The head parser: whole input and the same input split in two must agree; `consumed` stays in range.
func fuzzHTTP(_ input: UnsafeRawBufferPointer) {
    var whole = HTTPRequestParser(limits: HTTPLimits(maxHeadBytes: 2048, maxTargetBytes: 512, maxHeaderCount: 16))
    let first = whole.parse(input)
    if case .head(_, let consumed) = first { check(consumed > 0 && consumed <= input.count, "consumed in range") }
    guard input.count > 1 else { return }
    let cut = Int(input[0]) % input.count
    var split = HTTPRequestParser(limits: HTTPLimits(maxHeadBytes: 2048, maxTargetBytes: 512, maxHeaderCount: 16))
    var second = split.parse(UnsafeRawBufferPointer(rebasing: input[0..<cut]))
    if case .needMore = second { second = split.parse(UnsafeRawBufferPointer(rebasing: input[cut...])) }
    switch (first, second) {
    case (.head(let a, _), .head(let b, _)):
        check(a.path == b.path && a.headers.count == b.headers.count, "split head equals whole head")
    case (.error(let a), .error(let b)):
        _ = (a, b)   // the status may differ when a limit is seen earlier in one of the two; both refused is what matters
    case (.needMore, .needMore):
        break
    default:
        // A head that completes in the first part of the split is fine (trailing bytes are the next request).
        if case .head = second { break }
        if case .error = second, case .needMore = first { break }
        if case .error = first, case .needMore = second { break }
        check(false, "whole and split parses disagree")
    }
}

/// The frame parser with UTF-8 validation: every text event is valid UTF-8, every event's payload is within limits.
func fuzzWebSocket(_ input: UnsafeRawBufferPointer) {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, input.count), alignment: 8)
    defer { copy.deallocate() }
    if input.count > 0 { copy.copyMemory(from: input) }
    let buffer = UnsafeMutableRawBufferPointer(rebasing: copy[0..<input.count])
    // Binary messages have a larger limit than text and, under it, an allowance: both paths are exercised.
    var parser = WebSocketParser(maxMessageBytes: 4096, maxBinaryBytes: 8192)
    parser.binaryAllowance = 1024
    var offset = 0
    var events = 0
    while let event = parser.next(buffer, offset: &offset) {
        events += 1
        check(events < 100_000, "parser makes progress")
        check(offset <= input.count, "offset in range")
        switch event {
        case .text(let p):
            check(p.count <= 4096, "text within cap")
            check(String(validating: p, as: UTF8.self) != nil, "text is valid UTF-8")
        case .binary(let p):
            check(p.count <= 1024, "binary within the allowance")
        case .skippedBinary:
            break
        case .ping(let p), .pong(let p):
            check(p.count <= 125, "control payload at most 125")
        case .close(let code, let reason):
            if let code { check(WebSocketCloseCode.isValidReceived(code), "close code valid") }
            check(String(validating: reason, as: UTF8.self) != nil, "close reason valid UTF-8")
            return
        case .fail:
            return
        }
    }
}

/// The command decoder: an accepted message's literal re-parses as a JSON string and never exceeds the cap; the fast
/// paths give the general path's verdict; version 1 never yields a version 2 command or an id. Version 2 decodes the
/// same input too: it agrees with version 1 on the version 1 commands, and each of its fields keeps its rules.
func fuzzCommand(_ input: UnsafeRawBufferPointer) {
    guard String(validating: input, as: UTF8.self) != nil else { return }   // the server validates UTF-8 first
    let v1 = ChatCommandDecoder.decode(input, maxScalars: 64)
    check(v1 == ChatCommandDecoder.decodeWithoutFastPath(input, maxScalars: 64), "v1 fast path agrees")
    switch v1 {
    case .success(.message(let range, let scalars, let id)):
        check(id == nil, "v1 message has no id")
        check(range.lowerBound >= 0 && range.upperBound <= input.count, "range in input")
        check(scalars >= 1 && scalars <= 64, "scalar count within limits")
        // The relayed event must itself decode back to the same literal.
        var event: [UInt8] = []
        ChatEventEncoder.message(escapedText: UnsafeRawBufferPointer(rebasing: input[range]), into: &event)
        let back = event.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: 64) }
        if case .success(.message(_, let again, _)) = back { check(again == scalars, "relay keeps the text") } else {
            check(false, "relayed event decodes")
        }
    case .success(.start), .success(.ack), .success(.resume), .success(.ping), .success(.imageOffer),
         .success(.imageAnswer), .success(.call), .success(.signal), .success(.report), .success(.block):
        check(false, "v1 knows no v2 command")
    default:
        break
    }

    let v2 = ChatCommandDecoder.decode(input, maxScalars: 64, version: .v2)
    check(v2 == ChatCommandDecoder.decodeWithoutFastPath(input, maxScalars: 64, version: .v2), "v2 fast path agrees")
    let maxInteger: UInt64 = 1 << 53 - 1
    switch v2 {
    case .success(.message(let range, let scalars, let id)):
        // The same text as version 1 sees; only the id may refuse more.
        check(v1 == .success(.message(text: range, scalars: scalars, id: nil)), "v2 message is the v1 message")
        if let id { check(id >= 1 && id <= maxInteger, "id in range") }
    case .success(.typing), .success(.next), .success(.stop):
        check(v2 == v1, "v1 commands agree")
    case .success(.start(let interests, _)):
        guard let interests else { break }
        check(interests.count <= Interests.maxTags, "at most five tags")
        check(Set(interests).count == interests.count, "no duplicate tags")
        for tag in interests {
            check((1...Interests.maxTagLength).contains(tag.count), "tag length")
            check(tag == tag.lowercased(), "tag lower-cased")
            check(tag.first?.isWhitespace != true && tag.last?.isWhitespace != true, "tag trimmed")
            check(!tag.unicodeScalars.contains { $0.properties.generalCategory == .control }, "no control in tag")
        }
        check(Interests.normalize(interests) == interests, "tags pass the rules again unchanged")
    case .success(.ack(let seq)):
        check(seq <= maxInteger, "ack seq in range")
    case .success(.resume(let token, let seq)):
        check(token.lowerBound >= 1 && token.upperBound < input.count, "token range in input")
        check(input[token.lowerBound - 1] == UInt8(ascii: "\"") && input[token.upperBound] == UInt8(ascii: "\""),
              "token range is a literal's contents")
        check(seq <= maxInteger, "resume seq in range")
    case .success(.ping):
        break
    case .success(.imageOffer(let id, _, let bytes)):
        check(id >= 1 && bytes >= 1 && bytes <= maxInteger, "offer id and size in range")
    case .success(.imageAnswer(let id, _)):
        check(id >= 1, "answer id in range")
    case .success(.call), .success(.report), .success(.block):
        break
    case .success(.signal(let data)):
        check(data.lowerBound >= 0 && data.upperBound <= input.count, "data range in input")
        check(input[data.lowerBound] == UInt8(ascii: "{") && input[data.upperBound - 1] == UInt8(ascii: "}"),
              "data is an object")
        // The relayed event is itself a valid signal carrying the same bytes.
        var event: [UInt8] = []
        ChatEventEncoder.signal(data: UnsafeRawBufferPointer(rebasing: input[data]), into: &event)
        let back = event.withUnsafeBytes { ChatCommandDecoder.decode($0, maxScalars: 64, version: .v2) }
        if case .success(.signal(let again)) = back { check(again.count == data.count, "relay keeps the data") } else {
            check(false, "relayed signal decodes")
        }
    case .failure(let code):
        // Version 1's commands are refused on version 2 only for a bad id.
        switch v1 {
        case .success(.message): check(code == .badRequest, "v2 refuses a v1 message only for its id")
        case .success: check(false, "v2 refuses a command v1 accepts")
        case .failure(let code1): check(code == code1 || code == .badRequest, "v2 refuses like v1")
        }
    }
}

/// Operator tokens and identity cookies (B.5): arbitrary bytes as a token and as a cookie never verify; the same
/// bytes signed as a token's claims verify exactly when they are claims uvchat takes, and never once a byte of the
/// signature changes; the claims reader agrees with itself.
let fuzzSecret = Secret(Array("the fuzz target's HS256 secret, 32+".utf8))
let fuzzVerifier: JWTVerifier = {
    var keys = JWTKeys()
    keys.hmacSecrets = [fuzzSecret]
    keys.ed25519PublicKeys = [[UInt8](repeating: 7, count: 32)]
    return JWTVerifier(keys: keys)
}()
let fuzzCookies = IdentityCookies(keys: [fuzzSecret], lifetimeSeconds: 86_400)

func fuzzJWT(_ input: UnsafeRawBufferPointer) {
    let bytes = Array(input)
    let text = String(decoding: bytes, as: UTF8.self)
    if case .success = fuzzVerifier.verify(Substring(text), now: 1_800_000_000) { check(false, "a random token verified") }
    check(fuzzCookies.verify(Substring(text), now: 1_000) == nil, "a random cookie verified")
    check((JSONObject(bytes) == nil) == (JSONObject(bytes) == nil), "the reader is deterministic")

    var token: [UInt8] = []
    Base64.encode(Array(#"{"alg":"HS256"}"#.utf8), url: true, into: &token)
    token.append(UInt8(ascii: "."))
    Base64.encode(bytes, url: true, into: &token)
    let signature = HMAC.sha256(key: fuzzSecret.bytes, message: token)
    token.append(UInt8(ascii: "."))
    var signed = token
    Base64.encode(signature, url: true, into: &signed)
    let result = fuzzVerifier.verify(Substring(String(decoding: signed, as: UTF8.self)), now: 1_800_000_000)
    if case .success(let claims) = result {
        check(JSONObject(bytes) != nil, "only a JSON object is claims")
        check(!claims.subject.isEmpty && claims.subject.utf8.count <= 256, "sub within bounds")
        check(claims.expires + 60 > 1_800_000_000, "an expired token is refused")
        if let g = claims.group { check(!g.isEmpty && g.utf8.count <= 64, "grp within bounds") }
    } else if case .failure(let why) = result {
        check(why != .badSignature && why != .unsupportedAlgorithm, "a correct signature is not refused as one")
    }
    var forged = signature
    forged[Int(bytes.count % 32)] ^= 0x40
    var bad = token
    Base64.encode(forged, url: true, into: &bad)
    if case .success = fuzzVerifier.verify(Substring(String(decoding: bad, as: UTF8.self)), now: 1_800_000_000) {
        check(false, "a changed signature verified")
    }
}

/// The static path resolver never yields a path that can leave the root.
func fuzzPath(_ input: UnsafeRawBufferPointer) {
    guard let raw = String(validating: input, as: UTF8.self) else { return }
    guard let key = StaticPath.normalize(raw) else { return }
    // Bytes, not Characters: a combining mark after "/" would otherwise merge with it.
    check(key.utf8.first == UInt8(ascii: "/"), "normalized path is absolute")
    for segment in key.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst() {
        check(!segment.isEmpty && segment.first != UInt8(ascii: "."), "no dot or empty segments")
        check(!segment.contains(0) && !segment.contains(UInt8(ascii: "\\")), "no NUL or backslash")
    }
}

/// The matchmaker under random operations: never a self-pair, never a pair with someone not waiting, each client
/// in at most one pairing, and the queue count matches a model.
func fuzzMatchmaker(_ input: UnsafeRawBufferPointer) {
    let tags = ["a", "b", "c", "d"]
    let mm = Matchmaker(interestTimeoutNanos: 1000)
    var waiting = Set<UInt32>()
    var now: UInt64 = 0
    func record(_ p: Pairing) {
        check(p.a != p.b, "no self pair")
        check(waiting.contains(p.a.rawValue), "a was waiting")
        waiting.remove(p.a.rawValue)
        waiting.remove(p.b.rawValue)
    }
    var i = 0
    while i + 1 < input.count {
        let op = input[i], arg = input[i + 1]
        i += 2
        let id = PeerID(rawValue: UInt32(arg & 0x1f))
        switch op % 4 {
        case 0, 1:
            let interests = tags.enumerated().filter { (arg >> 5) & (1 << $0.offset) != 0 }.map(\.element)
            mm.remove(id)
            waiting.remove(id.rawValue)
            if let p = mm.enqueue(id, interests: interests, now: now) {
                check(p.b == id && p.a != id, "newcomer is b")
                check(waiting.contains(p.a.rawValue), "partner was waiting")
                waiting.remove(p.a.rawValue)
            } else {
                waiting.insert(id.rawValue)
            }
        case 2:
            mm.remove(id)
            waiting.remove(id.rawValue)
        default:
            now += UInt64(arg) * 10
            for p in mm.expire(now: now) { record(p) }
        }
        check(mm.count == waiting.count, "count matches the model")
        for w in waiting { check(mm.isQueued(PeerID(rawValue: w)), "model's waiting are queued") }
    }
}

/// The image cleaner: the first byte picks the type, the rest is cleaned in a copy. A cleaned image is never longer
/// than the input, is itself accepted, and cleaning it again changes nothing (same length, same bytes).
func fuzzImage(_ input: UnsafeRawBufferPointer) {
    guard let first = input.first, let type = ImageType(rawValue: first % 4) else { return }
    let body = UnsafeRawBufferPointer(rebasing: input[1...])
    // Exactly the body's size, so ASan sees any read or write past it.
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, body.count), alignment: 1)
    defer { copy.deallocate() }
    if body.count > 0 { copy.copyMemory(from: body) }
    guard let count = ImageCleaner.clean(UnsafeMutableRawBufferPointer(rebasing: copy[0..<body.count]), as: type) else {
        return
    }
    check(count > 0 && count <= body.count, "cleaned image within the input")
    let again = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
    defer { again.deallocate() }
    again.copyMemory(from: UnsafeRawBufferPointer(rebasing: copy[0..<count]))
    let second = ImageCleaner.clean(again, as: type)
    check(second == count, "a cleaned image cleans to the same length")
    check(memcmp(again.baseAddress!, copy.baseAddress!, count) == 0, "cleaning is idempotent")
}

/// A channel message from another node (a node of another version, or a corrupted one): decoded whole or refused
/// whole, never a crash; and once decoded (bytes that are not UTF-8 become U+FFFD, empty interest lines go), it
/// encodes and decodes to the same records.
func fuzzCluster(_ input: UnsafeRawBufferPointer) {
    guard let first = ClusterWire.decode(input) else { return }
    func roundTrip(_ m: (from: String, records: [ClusterEnvelope])) -> (from: String, records: [ClusterEnvelope])? {
        var bytes: [UInt8] = []
        ClusterWire.begin(from: m.from, into: &bytes)
        for r in m.records { ClusterWire.append(r, into: &bytes) }
        return bytes.withUnsafeBytes { ClusterWire.decode($0) }
    }
    guard let second = roundTrip(first), let third = roundTrip(second), second.from == third.from,
          second.records == third.records, second.records.count == first.records.count
    else { fatalError("a decoded cluster message does not survive a round trip") }
}
