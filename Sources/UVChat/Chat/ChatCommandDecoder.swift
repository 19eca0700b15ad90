/// Strict RFC 8259 decoding of one command object (PROTOCOL.md, "Client to server").
///
/// It scans the bytes in place and allocates nothing: it runs once per chat message, and the text it accepts is
/// relayed as the very bytes it checked. The input is one whole text message that the WebSocket layer has already
/// validated as UTF-8, so raw multi-byte sequences need no second check here.
///
/// Choices the protocol leaves open: a lone surrogate escape is refused in every string, not only in `text` (such a
/// string has no Unicode meaning, RFC 7493 2.1); command names are compared after unescaping, like keys.
public enum ChatCommandDecoder {
    /// Containers nested deeper than this are refused; the command object itself is level 1.
    static let maxDepth = 32

    public static func decode(_ input: UnsafeRawBufferPointer, maxScalars: Int) -> Result<ChatCommand, ChatErrorCode> {
        var scanner = Scanner(input)
        if let result = scanner.fastMessage(maxScalars: maxScalars) { return result }
        scanner.position = 0
        return scanner.command(maxScalars: maxScalars)
    }

    /// What the common message looks like byte for byte (browsers send JSON.stringify output, keys in this order).
    fileprivate static let messagePrefix: StaticString = #"{"type":"message","text":""#
}

private enum CommandKind { case message, typing, next, stop, unknown }

/// The last value seen for each field the decoder reads (duplicate keys: the last one wins).
private enum TypeField { case missing, notString, kind(CommandKind) }
private enum TextField { case missing, notString, string(Range<Int>, scalars: Int) }
private enum ActiveField { case missing, notBoolean, value(Bool) }

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
    /// nil sends anything else (or anything wrong) to the general path, which gives the verdict.
    mutating func fastMessage(maxScalars: Int) -> Result<ChatCommand, ChatErrorCode>? {
        let prefix = ChatCommandDecoder.messagePrefix
        let k = prefix.utf8CodeUnitCount
        guard count >= k + 2 else { return nil }
        let bytes = prefix.utf8Start
        for j in 0..<k where p[j] != bytes[j] { return nil }
        position = k - 1
        guard let text = string(), position + 1 == count, p[position] == Byte.closeBrace else { return nil }
        return Scanner.message(.string(text.contents, scalars: text.scalars), maxScalars: maxScalars)
    }

    mutating func command(maxScalars: Int) -> Result<ChatCommand, ChatErrorCode> {
        var type = TypeField.missing
        var text = TextField.missing
        var active = ActiveField.missing
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
                    if peek == Byte.quote {
                        guard let value = string() else { return .failure(.badRequest) }
                        type = .kind(kind(of: value))
                    } else {
                        guard skipValue(depth: 1) else { return .failure(.badRequest) }
                        type = .notString
                    }
                } else if equals(key, "text") {
                    if peek == Byte.quote {
                        guard let value = string() else { return .failure(.badRequest) }
                        text = .string(value.contents, scalars: value.scalars)
                    } else {
                        guard skipValue(depth: 1) else { return .failure(.badRequest) }
                        text = .notString
                    }
                } else if equals(key, "active") {
                    if takeLiteral("true") {
                        active = .value(true)
                    } else if takeLiteral("false") {
                        active = .value(false)
                    } else {
                        guard skipValue(depth: 1) else { return .failure(.badRequest) }
                        active = .notBoolean
                    }
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
            return Scanner.message(text, maxScalars: maxScalars)
        case .typing:
            guard case .value(let on) = active else { return .failure(.badRequest) }
            return .success(.typing(on))
        case .next:
            return .success(.next)
        case .stop:
            return .success(.stop)
        case .unknown:
            return .failure(.badRequest)
        }
    }

    private static func message(_ text: TextField, maxScalars: Int) -> Result<ChatCommand, ChatErrorCode> {
        guard case .string(let range, let scalars) = text, scalars > 0 else { return .failure(.badRequest) }
        guard scalars <= maxScalars else { return .failure(.tooLong) }
        return .success(.message(text: range, scalars: scalars))
    }

    private func kind(of value: StringToken) -> CommandKind {
        if equals(value, "message") { return .message }
        if equals(value, "typing") { return .typing }
        if equals(value, "next") { return .next }
        if equals(value, "stop") { return .stop }
        return .unknown
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
                    scalars += 8 - Scanner.continuationBytes(w)
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

    /// Is any byte of `w` zero? (Exact as to whether one is; the classic borrow trick.)
    @inline(__always)
    private static func hasZeroByte(_ w: UInt64) -> Bool {
        (w &- lanes) & ~w & highBits != 0
    }

    /// Does `w` hold a `"`, a `\\` or a byte below 0x20 (those are the bytes whose top three bits are clear)?
    @inline(__always)
    static func hasSpecialByte(_ w: UInt64) -> Bool {
        hasZeroByte(w & (lanes &* 0xE0)) || hasZeroByte(w ^ (lanes &* 0x22)) || hasZeroByte(w ^ (lanes &* 0x5C))
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
    func equals(_ token: StringToken, _ name: StaticString) -> Bool {
        let n = name.utf8CodeUnitCount
        let bytes = name.utf8Start
        let range = token.contents
        if !token.escaped {
            guard range.count == n else { return false }
            for j in 0..<n where p[range.lowerBound + j] != bytes[j] { return false }
            return true
        }
        var k = range.lowerBound
        var j = 0
        while k < range.upperBound {
            guard j < n else { return false }
            let c: UInt32
            if p[k] == Byte.backslash {
                let e = p[k + 1]
                switch e {
                case UInt8(ascii: "u"):
                    // A surrogate pair yields its high half here, which never equals an ASCII name byte.
                    c = hex4(at: k + 2) ?? 0xFFFF_FFFF
                    k += 6
                case UInt8(ascii: "b"): c = 0x08; k += 2
                case UInt8(ascii: "f"): c = 0x0C; k += 2
                case UInt8(ascii: "n"): c = 0x0A; k += 2
                case UInt8(ascii: "r"): c = 0x0D; k += 2
                case UInt8(ascii: "t"): c = 0x09; k += 2
                default: c = UInt32(e); k += 2
                }
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
