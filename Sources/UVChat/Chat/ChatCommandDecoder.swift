/// Strict RFC 8259 decoding of one command object (PROTOCOL.md, "Client to server", and Part B for version 2).
///
/// It scans the bytes in place and allocates nothing: it runs once per chat message, and the text it accepts is
/// relayed as the very bytes it checked. The input is one whole text message that the WebSocket layer has already
/// validated as UTF-8, so raw multi-byte sequences need no second check here. Only a version 2 `start` allocates:
/// its interests become Strings (docs/protocol-v2.md).
///
/// Choices the protocol leaves open: a lone surrogate escape is refused in every string, not only in `text` (such a
/// string has no Unicode meaning, RFC 7493 2.1); command names are compared after unescaping, like keys. Version 2's
/// integers (`id`, `seq`) are JSON numbers written as plain digits: no sign, fraction or exponent, so `1.0` and `1e0`
/// are refused although they mean 1 (a client that writes them is not counting messages).
public enum ChatCommandDecoder {
    /// Containers nested deeper than this are refused; the command object itself is level 1.
    static let maxDepth = 32

    /// The largest `id` or `seq`: 2^53 - 1, the largest integer a JavaScript client counts exactly.
    static let maxInteger: UInt64 = 1 << 53 - 1

    /// A `start`'s `interests` array: only its first 64 elements are unescaped and weighed as tags (the rest are
    /// still checked to be strings), so a hostile array costs at most 64 small Strings.
    static let maxInterestElements = 64

    /// Version 1 is exactly the protocol of Part A: the version 2 command types are unknown (`bad_request`) and a
    /// `message`'s `id` is an unknown field, ignored.
    public static func decode(_ input: UnsafeRawBufferPointer, maxScalars: Int,
                              version: ProtocolVersion = .v1) -> Result<ChatCommand, ChatErrorCode> {
        var scanner = Scanner(input)
        if let result = scanner.fastMessage(maxScalars: maxScalars, version: version) { return result }
        scanner.position = 0
        return scanner.command(maxScalars: maxScalars, version: version)
    }

    /// The general path alone, for the tests and the fuzzer: every fast path must give the verdict this gives.
    static func decodeWithoutFastPath(_ input: UnsafeRawBufferPointer, maxScalars: Int,
                                      version: ProtocolVersion = .v1) -> Result<ChatCommand, ChatErrorCode> {
        var scanner = Scanner(input)
        return scanner.command(maxScalars: maxScalars, version: version)
    }

    /// What the common message looks like byte for byte (browsers send JSON.stringify output, keys in this order).
    fileprivate static let messagePrefix: StaticString = #"{"type":"message","text":""#
    /// What follows the text in the version 2 page's message, before the digits of its id and the closing brace.
    fileprivate static let idInfix: StaticString = #","id":"#
}

private enum CommandKind {
    case message, typing, next, stop, start, ack, resume, ping, imageOffer, imageAccept, imageDecline, call, signal
    case report, block
    case unknown
}

/// The last value seen for each field the decoder reads (duplicate keys: the last one wins).
private enum TypeField { case missing, notString, kind(CommandKind) }
private enum TextField { case missing, notString, string(Range<Int>, scalars: Int) }
private enum BooleanField { case missing, notBoolean, value(Bool) }
/// `id` and `seq`: `invalid` is any other JSON value, a number with a sign, fraction or exponent, or one above 2^53 - 1.
private enum IntegerField { case missing, invalid, value(UInt64) }
private enum TokenField { case missing, notString, string(Range<Int>) }
/// `interests`: `strings` holds where the array's `[` is; its elements are only unescaped once the type is known.
private enum InterestsField { case missing, invalid, strings(at: Int) }
/// `mime`: one of the four image types, or anything else.
private enum MIMEField { case missing, invalid, type(ImageType) }
/// A `call`'s `action`: one a client may send (`start` is the server's), or anything else.
private enum ActionField { case missing, invalid, request, accept, decline, end }
/// A `signal`'s `data`: where the object's bytes are, or any other value.
private enum DataField { case missing, notObject, object(Range<Int>) }
/// A `report`'s `reason`: one of the four, or anything else.
private enum ReasonField { case missing, invalid, reason(ReportReason) }

/// The fields only version 2 reads, kept apart from version 1's.
private struct Version2Fields {
    var id = IntegerField.missing
    var seq = IntegerField.missing
    var token = TokenField.missing
    var interests = InterestsField.missing
    var images = BooleanField.missing
    var mime = MIMEField.missing
    var bytes = IntegerField.missing
    var action = ActionField.missing
    var video = BooleanField.missing
    var data = DataField.missing
    var reason = ReasonField.missing
}

/// A scanned string literal.
private struct StringToken {
    var contents: Range<Int>
    var scalars: Int
    var escaped: Bool
}

private enum Byte {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
}

private struct Scanner {
    let p: UnsafeRawBufferPointer
    let count: Int
    var position = 0

    init(_ p: UnsafeRawBufferPointer) {
        self.p = p
        self.count = p.count
    }

    // MARK: - The command object

    /// `{"type":"message","text":"..."}` exactly, with nothing around it: no key lookups, one pass over the text.
    /// On version 2 also `{"type":"message","text":"...","id":N}` exactly, the page's message. nil sends anything else
    /// (or anything wrong) to the general path, which gives the verdict.
    mutating func fastMessage(maxScalars: Int, version: ProtocolVersion) -> Result<ChatCommand, ChatErrorCode>? {
        let prefix = ChatCommandDecoder.messagePrefix
        let k = prefix.utf8CodeUnitCount
        guard count >= k + 2 else { return nil }
        let bytes = prefix.utf8Start
        for j in 0..<k where p[j] != bytes[j] { return nil }
        position = k - 1
        guard let text = string() else { return nil }
        if position + 1 == count && p[position] == Byte.closeBrace {
            return Scanner.message(.string(text.contents, scalars: text.scalars), id: .missing, maxScalars: maxScalars)
        }
        // Only after the version 1 shape has failed, so the common message pays nothing for this.
        guard version == .v2, let id = fastID() else { return nil }
        return Scanner.message(.string(text.contents, scalars: text.scalars), id: .value(id), maxScalars: maxScalars)
    }

    /// `,"id":N}` up to the end of the input, N written as plain digits without a leading zero; nil otherwise (a zero,
    /// an id out of range or anything unusual is left to the general path).
    private mutating func fastID() -> UInt64? {
        guard takeLiteral(ChatCommandDecoder.idInfix), position < count, p[position] != Byte.zero else { return nil }
        let start = position
        skipDigits()
        guard position + 1 == count, p[position] == Byte.closeBrace else { return nil }
        return integer(in: start..<position)
    }

    mutating func command(maxScalars: Int, version: ProtocolVersion) -> Result<ChatCommand, ChatErrorCode> {
        var type = TypeField.missing
        var text = TextField.missing
        var active = BooleanField.missing
        // On version 1 the version 2 keys are unknown and never compared.
        let v2 = version == .v2
        var fields = Version2Fields()
        skipSpace()
        guard take(Byte.openBrace) else { return .failure(.badRequest) }
        skipSpace()
        if !take(Byte.closeBrace) {
            while true {
                skipSpace()
                guard let key = string() else { return .failure(.badRequest) }
                skipSpace()
                guard take(Byte.colon) else { return .failure(.badRequest) }
                skipSpace()
                if equals(key, "type") {
                    guard let value = stringField() else { return .failure(.badRequest) }
                    type = value.map { .kind(kind(of: $0, version: version)) } ?? .notString
                } else if equals(key, "text") {
                    guard let value = stringField() else { return .failure(.badRequest) }
                    text = value.map { .string($0.contents, scalars: $0.scalars) } ?? .notString
                } else if equals(key, "active") {
                    guard let value = booleanField() else { return .failure(.badRequest) }
                    active = value
                } else if v2 {
                    guard version2Field(key, into: &fields) else { return .failure(.badRequest) }
                } else {
                    guard skipValue(depth: 1) else { return .failure(.badRequest) }
                }
                skipSpace()
                if take(Byte.comma) { continue }
                if take(Byte.closeBrace) { break }
                return .failure(.badRequest)
            }
        }
        skipSpace()
        guard position == count else { return .failure(.badRequest) }

        guard case .kind(let kind) = type else { return .failure(.badRequest) }
        switch kind {
        case .message:
            return Scanner.message(text, id: fields.id, maxScalars: maxScalars)
        case .typing:
            guard case .value(let on) = active else { return .failure(.badRequest) }
            return .success(.typing(on))
        case .next:
            return .success(.next)
        case .stop:
            return .success(.stop)
        case .start, .ack, .resume, .ping, .imageOffer, .imageAccept, .imageDecline, .call, .signal, .report, .block:
            return version2Command(kind, fields)
        case .unknown:
            return .failure(.badRequest)
        }
    }

    /// The value of a key other than `type`, `text` and `active` on version 2: read when it is a version 2 field,
    /// else skipped. false when it is not valid JSON. Out of line, like `version2Command`, so that the loop every
    /// version 1 command runs stays as small as it was.
    @inline(never)
    private mutating func version2Field(_ key: StringToken, into fields: inout Version2Fields) -> Bool {
        if equals(key, "id") {
            guard let value = integerField() else { return false }
            fields.id = value
        } else if equals(key, "seq") {
            guard let value = integerField() else { return false }
            fields.seq = value
        } else if equals(key, "token") {
            guard let value = stringField() else { return false }
            fields.token = value.map { .string($0.contents) } ?? .notString
        } else if equals(key, "interests") {
            guard let value = interestsField() else { return false }
            fields.interests = value
        } else if equals(key, "images") {
            guard let value = booleanField() else { return false }
            fields.images = value
        } else if equals(key, "mime") {
            guard let value = stringField() else { return false }
            fields.mime = value.flatMap(imageType).map { .type($0) } ?? .invalid
        } else if equals(key, "bytes") {
            guard let value = integerField() else { return false }
            fields.bytes = value
        } else if equals(key, "action") {
            guard let value = stringField() else { return false }
            fields.action = value.map(callAction) ?? .invalid
        } else if equals(key, "video") {
            guard let value = booleanField() else { return false }
            fields.video = value
        } else if equals(key, "data") {
            let start = position
            guard skipValue(depth: 1) else { return false }
            fields.data = p[start] == Byte.openBrace ? .object(start..<position) : .notObject
        } else if equals(key, "reason") {
            guard let value = stringField() else { return false }
            fields.reason = value.flatMap(reportReason).map { .reason($0) } ?? .invalid
        } else {
            return skipValue(depth: 1)
        }
        return true
    }

    /// The commands only version 2 has, once the whole object has been read.
    @inline(never)
    private func version2Command(_ kind: CommandKind, _ fields: Version2Fields) -> Result<ChatCommand, ChatErrorCode> {
        switch kind {
        case .start:
            let accepts: Bool
            switch fields.images {
            case .missing: accepts = false
            case .notBoolean: return .failure(.badRequest)
            case .value(let on): accepts = on
            }
            switch fields.interests {
            case .missing:
                return .success(.start(interests: nil, images: accepts))
            case .invalid:
                return .failure(.badRequest)
            case .strings(let at):
                // Lazily, so that unescaping stops as soon as the rules have kept their five tags.
                let raw = ArrayStrings(scanner: self, at: at, limit: ChatCommandDecoder.maxInterestElements)
                return .success(.start(interests: Interests.normalize(raw), images: accepts))
            }
        case .ack:
            guard case .value(let n) = fields.seq else { return .failure(.badRequest) }
            return .success(.ack(seq: n))
        case .resume:
            guard case .string(let range) = fields.token, case .value(let n) = fields.seq else { return .failure(.badRequest) }
            return .success(.resume(token: range, seq: n))
        case .ping:
            return .success(.ping)
        case .imageOffer:
            guard let id = Scanner.offerID(fields.id), case .type(let type) = fields.mime,
                  case .value(let bytes) = fields.bytes, bytes > 0 else { return .failure(.badRequest) }
            return .success(.imageOffer(id: id, type: type, bytes: bytes))
        case .imageAccept, .imageDecline:
            guard let id = Scanner.offerID(fields.id) else { return .failure(.badRequest) }
            return .success(.imageAnswer(id: id, accept: kind == .imageAccept))
        case .call:
            switch fields.action {
            case .request:
                switch fields.video {
                case .missing: return .success(.call(.request(video: false)))
                case .notBoolean: return .failure(.badRequest)
                case .value(let on): return .success(.call(.request(video: on)))
                }
            case .accept: return .success(.call(.accept))
            case .decline: return .success(.call(.decline))
            case .end: return .success(.call(.end))
            case .missing, .invalid: return .failure(.badRequest)
            }
        case .signal:
            guard case .object(let range) = fields.data else { return .failure(.badRequest) }
            return .success(.signal(data: range))
        case .report:
            switch fields.reason {
            // A report without a reason is still a report: "other" (README, protocol readings).
            case .missing: return .success(.report(.other))
            case .invalid: return .failure(.badRequest)
            case .reason(let reason): return .success(.report(reason))
            }
        case .block:
            return .success(.block)
        case .message, .typing, .next, .stop, .unknown:
            return .failure(.badRequest)   // not reached: the caller handles these
        }
    }

    /// An image offer's `id`: 1 ... 2^32 - 1, since it prefixes the image's binary message as 4 bytes.
    private static func offerID(_ field: IntegerField) -> UInt32? {
        guard case .value(let n) = field, n > 0, n <= UInt64(UInt32.max) else { return nil }
        return UInt32(n)
    }

    private func callAction(_ value: StringToken) -> ActionField {
        if equals(value, "request") { return .request }
        if equals(value, "accept") { return .accept }
        if equals(value, "decline") { return .decline }
        if equals(value, "end") { return .end }
        return .invalid
    }

    private func reportReason(_ value: StringToken) -> ReportReason? {
        for reason in ReportReason.allCases where equals(value, reason.wireName) { return reason }
        return nil
    }

    private func imageType(_ value: StringToken) -> ImageType? {
        if equals(value, "image/jpeg") { return .jpeg }
        if equals(value, "image/png") { return .png }
        if equals(value, "image/webp") { return .webp }
        if equals(value, "image/gif") { return .gif }
        return nil
    }

    /// Every `bad_request` reason comes before `too_long`: a message that is wrong in two ways is wrong first.
    private static func message(_ text: TextField, id: IntegerField, maxScalars: Int) -> Result<ChatCommand, ChatErrorCode> {
        guard case .string(let range, let scalars) = text, scalars > 0 else { return .failure(.badRequest) }
        let number: UInt64?
        switch id {
        case .missing: number = nil
        case .invalid: return .failure(.badRequest)
        case .value(let n):
            guard n > 0 else { return .failure(.badRequest) }   // ids start at 1; `seq` may be 0
            number = n
        }
        guard scalars <= maxScalars else { return .failure(.tooLong) }
        return .success(.message(text: range, scalars: scalars, id: number))
    }

    private func kind(of value: StringToken, version: ProtocolVersion) -> CommandKind {
        if equals(value, "message") { return .message }
        if equals(value, "typing") { return .typing }
        if equals(value, "next") { return .next }
        if equals(value, "stop") { return .stop }
        guard version == .v2 else { return .unknown }
        if equals(value, "start") { return .start }
        if equals(value, "ack") { return .ack }
        if equals(value, "resume") { return .resume }
        if equals(value, "ping") { return .ping }
        if equals(value, "image_offer") { return .imageOffer }
        if equals(value, "image_accept") { return .imageAccept }
        if equals(value, "image_decline") { return .imageDecline }
        if equals(value, "call") { return .call }
        if equals(value, "signal") { return .signal }
        if equals(value, "report") { return .report }
        if equals(value, "block") { return .block }
        return .unknown
    }

    // MARK: - Field values

    /// A string literal (`.some(token)`) or any other valid value (`.some(nil)`); nil when the value is not valid JSON.
    @inline(__always)
    private mutating func stringField() -> StringToken?? {
        guard peek == Byte.quote else { return skipValue(depth: 1) ? .some(nil) : nil }
        guard let value = string() else { return nil }
        return .some(value)
    }

    /// `true` or `false`; any other valid value is `notBoolean`. nil when the value is not valid JSON.
    private mutating func booleanField() -> BooleanField? {
        if takeLiteral("true") { return .value(true) }
        if takeLiteral("false") { return .value(false) }
        guard skipValue(depth: 1) else { return nil }
        return .notBoolean
    }

    /// Any valid value, then a look at the bytes it took: an integer in range is digits only. nil when not valid JSON.
    private mutating func integerField() -> IntegerField? {
        let start = position
        guard skipValue(depth: 1) else { return nil }
        guard let n = integer(in: start..<position) else { return .invalid }
        return .value(n)
    }

    /// The value of digits-only bytes when it is at most 2^53 - 1, else nil (also for any other byte, so a sign, a
    /// fraction, an exponent or a value of another type is nil). The caller has refused leading zeros.
    private func integer(in range: Range<Int>) -> UInt64? {
        // 2^53 - 1 has 16 digits, and 16 digits cannot overflow a UInt64.
        guard !range.isEmpty, range.count <= 16 else { return nil }
        var n: UInt64 = 0
        for k in range {
            let b = p[k]
            guard isDigit(b) else { return nil }
            n = n * 10 + UInt64(b - Byte.zero)
        }
        return n <= ChatCommandDecoder.maxInteger ? n : nil
    }

    /// An array of strings, grammar-checked to its end; `invalid` when it is not an array or one element is not a
    /// string. nil when the value is not valid JSON. Nothing is unescaped here: the type may not be `start`.
    private mutating func interestsField() -> InterestsField? {
        guard peek == Byte.openBracket else {
            guard skipValue(depth: 1) else { return nil }
            return .invalid
        }
        let at = position
        position += 1
        skipSpace()
        if take(Byte.closeBracket) { return .strings(at: at) }
        var allStrings = true
        while true {
            skipSpace()
            if peek == Byte.quote {
                guard string() != nil else { return nil }
            } else {
                guard skipValue(depth: 2) else { return nil }   // the array is level 2
                allStrings = false
            }
            skipSpace()
            if take(Byte.comma) { continue }
            if take(Byte.closeBracket) { break }
            return nil
        }
        return allStrings ? .strings(at: at) : .invalid
    }

    /// The contents of a literal that `string()` accepted, with its escapes decoded (a surrogate pair becomes its one
    /// scalar). Allocates; only `start` calls it.
    func unescaped(_ token: StringToken) -> String {
        let range = token.contents
        if !token.escaped { return String(decoding: UnsafeRawBufferPointer(rebasing: p[range]), as: UTF8.self) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(range.count)
        var k = range.lowerBound
        while k < range.upperBound {
            let b = p[k]
            guard b == Byte.backslash else {
                bytes.append(b)
                k += 1
                continue
            }
            var (scalar, length) = escape(at: k)
            k += length
            if scalar >= 0xD800 && scalar <= 0xDBFF {
                // `string()` has checked that a high surrogate is followed by a low one.
                let low = escape(at: k)
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low.unit - 0xDC00)
                k += low.length
            }
            UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}") { bytes.append($0) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Tokens

    var peek: UInt8 { position < count ? p[position] : 0 }

    mutating func skipSpace() {
        while position < count {
            switch p[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    mutating func take(_ b: UInt8) -> Bool {
        guard position < count, p[position] == b else { return false }
        position += 1
        return true
    }

    mutating func takeLiteral(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard count - position >= n else { return false }
        let bytes = literal.utf8Start
        for j in 0..<n where p[position + j] != bytes[j] { return false }
        position += n
        return true
    }

    /// A string literal at `position`, fully checked: legal escapes only, no raw control characters, surrogate
    /// escapes only as high-low pairs. Counts the Unicode scalars it stands for; nil when it is not valid.
    mutating func string() -> StringToken? {
        guard take(Byte.quote) else { return nil }
        let start = position
        var scalars = 0
        var escaped = false
        while position < count {
            // Eight bytes at a time while none of them is a quote, a backslash or a control character: the
            // common case, where the only work is counting the bytes that start a scalar.
            if let base = p.baseAddress {
                while count - position >= 8 {
                    let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                    if Scanner.hasSpecialByte(w) { break }
                    // ASCII (no high bit) is eight scalars without a population count, which x86-64's baseline
                    // has no instruction for.
                    scalars += w & Scanner.highBits == 0 ? 8 : 8 - Scanner.continuationBytes(w)
                    position += 8
                }
                if position == count { break }
            }
            let b = p[position]
            if b == Byte.quote {
                let contents = start..<position
                position += 1
                return StringToken(contents: contents, scalars: scalars, escaped: escaped)
            }
            if b == Byte.backslash {
                escaped = true
                guard position + 1 < count else { return nil }
                switch p[position + 1] {
                case Byte.quote, Byte.backslash, UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    position += 2
                case UInt8(ascii: "u"):
                    guard let unit = hex4(at: position + 2) else { return nil }
                    position += 6
                    if unit >= 0xD800 && unit <= 0xDBFF {
                        guard position + 1 < count, p[position] == Byte.backslash, p[position + 1] == UInt8(ascii: "u"),
                              let low = hex4(at: position + 2), low >= 0xDC00 && low <= 0xDFFF else { return nil }
                        position += 6
                    } else if unit >= 0xDC00 && unit <= 0xDFFF {
                        return nil
                    }
                default:
                    return nil
                }
                scalars += 1
                continue
            }
            if b < 0x20 { return nil }
            // Valid UTF-8: every byte that is not a continuation byte starts a scalar.
            if b & 0xC0 != 0x80 { scalars += 1 }
            position += 1
        }
        return nil
    }

    private static let lanes: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// Does `w` hold a `"`, a `\\` or a byte below 0x20 (those are the bytes whose top three bits are clear)?
    /// Each is a zero byte of a transformed word, found by the borrow trick (`(x - 0x01…) & ~x & 0x80…` is non-zero
    /// exactly when `x` has a zero byte); the three are joined before the one branch.
    @inline(__always)
    static func hasSpecialByte(_ w: UInt64) -> Bool {
        let control = w & (lanes &* 0xE0), quote = w ^ (lanes &* 0x22), backslash = w ^ (lanes &* 0x5C)
        return ((control &- lanes) & ~control | (quote &- lanes) & ~quote | (backslash &- lanes) & ~backslash) & highBits != 0
    }

    /// How many bytes of `w` are UTF-8 continuation bytes (10xxxxxx)?
    @inline(__always)
    static func continuationBytes(_ w: UInt64) -> Int {
        (w & ~(w << 1) & highBits).nonzeroBitCount
    }

    private func hex4(at k: Int) -> UInt32? {
        guard k + 4 <= count else { return nil }
        var v: UInt32 = 0
        for j in k..<(k + 4) {
            let c = p[j]
            let d: UInt8
            switch c {
            case Byte.zero...Byte.nine: d = c - Byte.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// Does the literal, once unescaped, equal the ASCII `name`? The literal has been validated by `string()`.
    /// The common case (no escapes) is inlined where `name` is a constant, so it folds to a few byte compares;
    /// left to the optimiser, it stopped doing that once the decoder grew version 2 (10% more per command).
    @inline(__always)
    func equals(_ token: StringToken, _ name: StaticString) -> Bool {
        guard token.escaped else {
            let n = name.utf8CodeUnitCount
            let bytes = name.utf8Start
            let range = token.contents
            guard range.count == n else { return false }
            for j in 0..<n where p[range.lowerBound + j] != bytes[j] { return false }
            return true
        }
        return equalsUnescaping(token, name)
    }

    /// The escape at `k` (a backslash) in a literal `string()` accepted: the code unit it stands for (a `\u`
    /// escape gives its 16-bit unit, so a surrogate pair is two escapes) and its length in bytes.
    private func escape(at k: Int) -> (unit: UInt32, length: Int) {
        switch p[k + 1] {
        case UInt8(ascii: "u"): return (hex4(at: k + 2) ?? 0xFFFD, 6)   // `string()` has checked the digits
        case UInt8(ascii: "b"): return (0x08, 2)
        case UInt8(ascii: "f"): return (0x0C, 2)
        case UInt8(ascii: "n"): return (0x0A, 2)
        case UInt8(ascii: "r"): return (0x0D, 2)
        case UInt8(ascii: "t"): return (0x09, 2)
        case let e: return (UInt32(e), 2)   // `"`, `\` and `/` stand for themselves
        }
    }

    @inline(never)
    private func equalsUnescaping(_ token: StringToken, _ name: StaticString) -> Bool {
        let n = name.utf8CodeUnitCount
        let bytes = name.utf8Start
        let range = token.contents
        var k = range.lowerBound
        var j = 0
        while k < range.upperBound {
            guard j < n else { return false }
            let c: UInt32
            if p[k] == Byte.backslash {
                // A surrogate pair yields its high half here, which never equals an ASCII name byte.
                let (unit, length) = escape(at: k)
                c = unit
                k += length
            } else {
                c = UInt32(p[k])
                k += 1
            }
            guard c == UInt32(bytes[j]) else { return false }
            j += 1
        }
        return j == n
    }

    // MARK: - Values the decoder does not read

    /// Skips one JSON value of any kind, checking its grammar. `depth` is the nesting level of the container the value
    /// sits in. Iterative, with the open containers kept as bits, so hostile nesting costs no stack and no memory.
    mutating func skipValue(depth: Int) -> Bool {
        var objects: UInt64 = 0   // bit 0 is the innermost open container: 1 for an object, 0 for an array
        var level = 0
        value: while true {
            skipSpace()
            guard position < count else { return false }
            switch p[position] {
            case Byte.openBrace, Byte.openBracket:
                let isObject = p[position] == Byte.openBrace
                level += 1
                guard depth + level <= ChatCommandDecoder.maxDepth else { return false }
                objects = objects << 1 | (isObject ? 1 : 0)
                position += 1
                skipSpace()
                if take(isObject ? Byte.closeBrace : Byte.closeBracket) {
                    level -= 1
                    objects >>= 1
                } else {
                    if isObject { guard memberKey() else { return false } }
                    continue value
                }
            case Byte.quote:
                guard string() != nil else { return false }
            case UInt8(ascii: "t"):
                guard takeLiteral("true") else { return false }
            case UInt8(ascii: "f"):
                guard takeLiteral("false") else { return false }
            case UInt8(ascii: "n"):
                guard takeLiteral("null") else { return false }
            default:
                guard number() else { return false }
            }
            // A value is complete: close containers until one takes a next element.
            while level > 0 {
                skipSpace()
                let inObject = objects & 1 == 1
                if take(Byte.comma) {
                    if inObject {
                        skipSpace()
                        guard memberKey() else { return false }
                    }
                    continue value
                }
                guard take(inObject ? Byte.closeBrace : Byte.closeBracket) else { return false }
                level -= 1
                objects >>= 1
            }
            return true
        }
    }

    /// `"key" :` inside an object being skipped.
    private mutating func memberKey() -> Bool {
        guard string() != nil else { return false }
        skipSpace()
        return take(Byte.colon)
    }

    /// RFC 8259 section 6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. A leading zero followed by a
    /// digit is caught by the caller, which then finds a digit where a separator must be.
    private mutating func number() -> Bool {
        _ = take(Byte.minus)
        guard position < count else { return false }
        if p[position] == Byte.zero {
            position += 1
        } else if isDigit(p[position]) {
            skipDigits()
        } else {
            return false
        }
        if take(Byte.dot) {
            guard position < count, isDigit(p[position]) else { return false }
            skipDigits()
        }
        if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
            if !take(Byte.plus) { _ = take(Byte.minus) }
            guard position < count, isDigit(p[position]) else { return false }
            skipDigits()
        }
        return true
    }

    private mutating func skipDigits() {
        while position < count && isDigit(p[position]) { position += 1 }
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= Byte.zero && b <= Byte.nine }
}

/// The strings of an array that `interestsField` accepted, unescaped one at a time, at most `limit` of them.
private struct ArrayStrings: Sequence, IteratorProtocol {
    var scanner: Scanner
    var remaining: Int

    init(scanner: Scanner, at start: Int, limit: Int) {
        self.scanner = scanner
        self.scanner.position = start + 1   // after the `[`
        self.remaining = limit
    }

    mutating func next() -> String? {
        guard remaining > 0 else { return nil }
        remaining -= 1
        scanner.skipSpace()
        // A `]` where an element would start ends the (already validated) array.
        guard let token = scanner.string() else { return nil }
        scanner.skipSpace()
        if !scanner.take(Byte.comma) { remaining = 0 }
        return scanner.unescaped(token)
    }
}
