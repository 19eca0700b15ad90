/// A command from a client.
enum ChatCommand: Equatable {
    /// `text` is the byte range of the JSON string literal's contents (between the quotes, still escaped). It has
    /// been fully validated, so the server relays it by copying these bytes: one parse, one write, no String.
    case message(text: Range<Int>, scalars: Int)
    case typing(Bool)
    case next
    case stop
}

enum ChatErrorCode: Equatable, Error {
    case badRequest, notPaired, tooLong, rateLimited

    var wireName: StaticString {
        switch self {
        case .badRequest: "bad_request"
        case .notPaired: "not_paired"
        case .tooLong: "too_long"
        case .rateLimited: "rate_limited"
        }
    }

    var defaultMessage: StaticString {
        switch self {
        case .badRequest: "The command was not understood."
        case .notPaired: "You are not chatting with anyone right now."
        case .tooLong: "That message is too long."
        case .rateLimited: "You are sending messages too fast. Wait a moment."
        }
    }
}

/// Strict RFC 8259 decoding of one command object, scanning bytes without allocating.
enum ChatCommandDecoder {
    static let maxDepth = 32

    fileprivate enum Kind { case none, message, typing, next, stop, unknown }

    static func decode(_ input: UnsafeRawBufferPointer, maxScalars: Int) -> Result<ChatCommand, ChatErrorCode> {
        var s = Scanner(input)
        s.skipSpace()
        guard s.take(UInt8(ascii: "{")) else { return .failure(.badRequest) }
        var kind = Kind.none
        var typeIsString = false
        var typeSeen = false
        // Last value of each field we care about (duplicates: the last one wins).
        var text: Range<Int>? = nil
        var textScalars = 0
        var textSeen = false
        var textError: ChatErrorCode? = nil
        var active: Bool? = nil
        var activeSeen = false

        s.skipSpace()
        if !s.take(UInt8(ascii: "}")) {
            while true {
                s.skipSpace()
                guard let key = s.string(maxScalars: Int.max) else { return .failure(.badRequest) }
                s.skipSpace()
                guard s.take(UInt8(ascii: ":")) else { return .failure(.badRequest) }
                s.skipSpace()
                switch s.keyName(key.range) {
                case .type:
                    typeSeen = true
                    if s.peek == UInt8(ascii: "\"") {
                        guard let v = s.string(maxScalars: 16) else {
                            // A valid string that is long is just an unknown type; an invalid one is a bad request.
                            guard s.skipValue(depth: 0) else { return .failure(.badRequest) }
                            typeIsString = true
                            kind = .unknown
                            break
                        }
                        typeIsString = true
                        kind = s.commandKind(v.range, escaped: v.escaped)
                    } else {
                        guard s.skipValue(depth: 0) else { return .failure(.badRequest) }
                        typeIsString = false
                    }
                case .text:
                    textSeen = true
                    if s.peek == UInt8(ascii: "\"") {
                        let start = s.position
                        switch s.stringCountingScalars(limit: maxScalars) {
                        case .invalid: return .failure(.badRequest)
                        case .tooLong(let end):
                            _ = end
                            text = nil
                            textError = .tooLong
                        case .ok(let range, let scalars):
                            _ = start
                            text = range
                            textScalars = scalars
                            textError = scalars == 0 ? .badRequest : nil
                        }
                    } else {
                        guard s.skipValue(depth: 0) else { return .failure(.badRequest) }
                        text = nil
                        textError = .badRequest
                    }
                case .active:
                    activeSeen = true
                    if s.takeLiteral("true") {
                        active = true
                    } else if s.takeLiteral("false") {
                        active = false
                    } else {
                        guard s.skipValue(depth: 0) else { return .failure(.badRequest) }
                        active = nil
                    }
                case .other:
                    guard s.skipValue(depth: 0) else { return .failure(.badRequest) }
                }
                s.skipSpace()
                if s.take(UInt8(ascii: ",")) { continue }
                if s.take(UInt8(ascii: "}")) { break }
                return .failure(.badRequest)
            }
        }
        s.skipSpace()
        guard s.atEnd else { return .failure(.badRequest) }
        guard typeSeen && typeIsString else { return .failure(.badRequest) }
        switch kind {
        case .message:
            guard textSeen else { return .failure(.badRequest) }
            if let textError { return .failure(textError) }
            guard let text else { return .failure(.badRequest) }
            return .success(.message(text: text, scalars: textScalars))
        case .typing:
            guard activeSeen, let active else { return .failure(.badRequest) }
            return .success(.typing(active))
        case .next: return .success(.next)
        case .stop: return .success(.stop)
        case .none, .unknown: return .failure(.badRequest)
        }
    }

    fileprivate enum Key { case type, text, active, other }

    fileprivate enum StringResult {
        case invalid
        case tooLong(end: Int)
        case ok(Range<Int>, scalars: Int)
    }

    fileprivate struct Scanner {
        let p: UnsafeRawBufferPointer
        var position = 0

        init(_ p: UnsafeRawBufferPointer) { self.p = p }

        var atEnd: Bool { position >= p.count }
        var peek: UInt8 { position < p.count ? p[position] : 0 }

        mutating func skipSpace() {
            while position < p.count {
                switch p[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func take(_ b: UInt8) -> Bool {
            if position < p.count && p[position] == b {
                position += 1
                return true
            }
            return false
        }

        mutating func takeLiteral(_ literal: StaticString) -> Bool {
            let n = literal.utf8CodeUnitCount
            guard position + n <= p.count else { return false }
            let lit = literal.utf8Start
            for i in 0..<n where p[position + i] != lit[i] { return false }
            position += n
            return true
        }

        /// A string whose contents are checked; returns the content range and whether it holds escapes.
        mutating func string(maxScalars: Int) -> (range: Range<Int>, escaped: Bool)? {
            let before = position
            switch stringCountingScalars(limit: maxScalars) {
            case .ok(let r, _):
                var escaped = false
                for i in r where p[i] == UInt8(ascii: "\\") { escaped = true; break }
                return (r, escaped)
            case .tooLong:
                position = before
                return nil
            case .invalid:
                position = before
                return nil
            }
        }

        /// Scans a string literal at `position`: escapes must be valid, no raw control characters, no lone
        /// surrogate escapes. Counts Unicode scalars after unescaping; stops counting past `limit`.
        mutating func stringCountingScalars(limit: Int) -> StringResult {
            guard take(UInt8(ascii: "\"")) else { return .invalid }
            let start = position
            var scalars = 0
            while position < p.count {
                let b = p[position]
                if b == UInt8(ascii: "\"") {
                    let range = start..<position
                    position += 1
                    return scalars > limit ? .tooLong(end: position) : .ok(range, scalars: scalars)
                }
                if b < 0x20 { return .invalid }
                if b == UInt8(ascii: "\\") {
                    position += 1
                    guard position < p.count else { return .invalid }
                    switch p[position] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                         UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        position += 1
                    case UInt8(ascii: "u"):
                        position += 1
                        guard let unit = hex4() else { return .invalid }
                        if unit >= 0xD800 && unit <= 0xDBFF {
                            // A high surrogate must be followed by an escaped low surrogate.
                            guard position + 1 < p.count, p[position] == UInt8(ascii: "\\"), p[position + 1] == UInt8(ascii: "u") else {
                                return .invalid
                            }
                            position += 2
                            guard let low = hex4(), low >= 0xDC00 && low <= 0xDFFF else { return .invalid }
                        } else if unit >= 0xDC00 && unit <= 0xDFFF {
                            return .invalid
                        }
                    default:
                        return .invalid
                    }
                    scalars += 1
                    continue
                }
                // A raw UTF-8 sequence (already validated by the WebSocket layer): count lead bytes only.
                if b & 0xC0 != 0x80 { scalars += 1 }
                position += 1
            }
            return .invalid
        }

        private mutating func hex4() -> UInt32? {
            guard position + 4 <= p.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = p[position]
                let d: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
                default: return nil
                }
                v = v << 4 | UInt32(d)
                position += 1
            }
            return v
        }

        /// Skips any JSON value, checking its grammar.
        mutating func skipValue(depth: Int) -> Bool {
            guard depth < ChatCommandDecoder.maxDepth else { return false }
            skipSpace()
            guard position < p.count else { return false }
            switch p[position] {
            case UInt8(ascii: "\""):
                if case .invalid = stringCountingScalars(limit: Int.max) { return false }
                return true
            case UInt8(ascii: "{"):
                position += 1
                skipSpace()
                if take(UInt8(ascii: "}")) { return true }
                while true {
                    skipSpace()
                    guard peek == UInt8(ascii: "\"") else { return false }
                    if case .invalid = stringCountingScalars(limit: Int.max) { return false }
                    skipSpace()
                    guard take(UInt8(ascii: ":")) else { return false }
                    guard skipValue(depth: depth + 1) else { return false }
                    skipSpace()
                    if take(UInt8(ascii: ",")) { continue }
                    return take(UInt8(ascii: "}"))
                }
            case UInt8(ascii: "["):
                position += 1
                skipSpace()
                if take(UInt8(ascii: "]")) { return true }
                while true {
                    guard skipValue(depth: depth + 1) else { return false }
                    skipSpace()
                    if take(UInt8(ascii: ",")) { continue }
                    return take(UInt8(ascii: "]"))
                }
            case UInt8(ascii: "t"): return takeLiteral("true")
            case UInt8(ascii: "f"): return takeLiteral("false")
            case UInt8(ascii: "n"): return takeLiteral("null")
            default: return number()
            }
        }

        /// RFC 8259 number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
        private mutating func number() -> Bool {
            _ = take(UInt8(ascii: "-"))
            guard position < p.count else { return false }
            if p[position] == UInt8(ascii: "0") {
                position += 1
            } else if isDigit(p[position]) {
                while position < p.count && isDigit(p[position]) { position += 1 }
            } else {
                return false
            }
            if take(UInt8(ascii: ".")) {
                guard position < p.count && isDigit(p[position]) else { return false }
                while position < p.count && isDigit(p[position]) { position += 1 }
            }
            if position < p.count && (p[position] == UInt8(ascii: "e") || p[position] == UInt8(ascii: "E")) {
                position += 1
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard position < p.count && isDigit(p[position]) else { return false }
                while position < p.count && isDigit(p[position]) { position += 1 }
            }
            return true
        }

        private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

        /// Compares a key's contents (escapes decoded) with the three names the decoder cares about.
        func keyName(_ range: Range<Int>) -> Key {
            if matches(range, "type") { return .type }
            if matches(range, "text") { return .text }
            if matches(range, "active") { return .active }
            return .other
        }

        func commandKind(_ range: Range<Int>, escaped: Bool) -> Kind {
            if matches(range, "message") { return .message }
            if matches(range, "typing") { return .typing }
            if matches(range, "next") { return .next }
            if matches(range, "stop") { return .stop }
            return .unknown
        }

        /// Does the string literal contents in `range`, once unescaped, equal the ASCII `name`?
        func matches(_ range: Range<Int>, _ name: StaticString) -> Bool {
            let n = name.utf8CodeUnitCount
            let lit = name.utf8Start
            var i = range.lowerBound
            var k = 0
            while i < range.upperBound {
                guard k < n else { return false }
                var c = UInt32(p[i])
                if c == UInt32(UInt8(ascii: "\\")) {
                    let e = p[i + 1]
                    switch e {
                    case UInt8(ascii: "u"):
                        var v: UInt32 = 0
                        for j in 0..<4 {
                            let h = p[i + 2 + j]
                            let d: UInt32 = h <= UInt8(ascii: "9") ? UInt32(h - UInt8(ascii: "0"))
                                : (h <= UInt8(ascii: "F") ? UInt32(h - UInt8(ascii: "A") + 10) : UInt32(h - UInt8(ascii: "a") + 10))
                            v = v << 4 | d
                        }
                        c = v
                        i += 6
                    case UInt8(ascii: "/"): c = 0x2F; i += 2
                    case UInt8(ascii: "\\"): c = 0x5C; i += 2
                    case UInt8(ascii: "\""): c = 0x22; i += 2
                    default: return false   // \b \f \n \r \t never occur in our names
                    }
                } else {
                    i += 1
                }
                if c != UInt32(lit[k]) { return false }
                k += 1
            }
            return k == n
        }
    }
}

