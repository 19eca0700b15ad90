/// A strict reader for the small JSON objects of a JWT (its header and its claims, RFC 7519 section 7.2): the
/// top-level object's members, with nested arrays kept (an `aud` may be a list) and nested objects parsed and
/// dropped. Runs once per upgrade on at most a few kilobytes, so plain Strings and arrays are fine here; the chat's
/// per-message decoder is elsewhere and allocates nothing.
enum JSONValue: Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    /// A nested object: valid, not kept.
    case object
}

struct JSONObject {
    /// Duplicate names: the last one wins (as most JWT libraries do).
    private(set) var members: [String: JSONValue] = [:]

    subscript(name: String) -> JSONValue? { members[name] }

    static let maxDepth = 16

    /// nil for anything that is not exactly one JSON object (with optional white space around it).
    init?(_ bytes: [UInt8]) {
        var reader = Reader(bytes: bytes)
        reader.skipSpace()
        guard reader.peek == UInt8(ascii: "{"), let members = reader.object(depth: 1) else { return nil }
        reader.skipSpace()
        guard reader.position == bytes.count else { return nil }
        self.members = members
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipSpace() {
            while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { position += 1 }
        }

        mutating func take(_ c: UInt8) -> Bool {
            guard peek == c else { return false }
            position += 1
            return true
        }

        mutating func object(depth: Int) -> [String: JSONValue]? {
            guard depth <= JSONObject.maxDepth, take(UInt8(ascii: "{")) else { return nil }
            var members: [String: JSONValue] = [:]
            skipSpace()
            if take(UInt8(ascii: "}")) { return members }
            while true {
                skipSpace()
                guard let name = string() else { return nil }
                skipSpace()
                guard take(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                guard let value = value(depth: depth) else { return nil }
                members[name] = value
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                if take(UInt8(ascii: "}")) { return members }
                return nil
            }
        }

        mutating func value(depth: Int) -> JSONValue? {
            switch peek {
            case UInt8(ascii: "\""): return string().map { .string($0) }
            case UInt8(ascii: "{"): return object(depth: depth + 1).map { _ in .object }
            case UInt8(ascii: "["): return array(depth: depth + 1).map { .array($0) }
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            default: return number().map { .number($0) }
            }
        }

        mutating func array(depth: Int) -> [JSONValue]? {
            guard depth <= JSONObject.maxDepth, take(UInt8(ascii: "[")) else { return nil }
            var values: [JSONValue] = []
            skipSpace()
            if take(UInt8(ascii: "]")) { return values }
            while true {
                skipSpace()
                guard let v = value(depth: depth) else { return nil }
                values.append(v)
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                if take(UInt8(ascii: "]")) { return values }
                return nil
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard position + count <= bytes.count else { return false }
            for i in 0..<count where bytes[position + i] != word.utf8Start[i] { return false }
            position += count
            return true
        }

        /// RFC 8259 section 6's grammar, then the standard library's conversion.
        mutating func number() -> Double? {
            let start = position
            _ = take(UInt8(ascii: "-"))
            guard let first = peek, isDigit(first) else { return nil }
            position += 1
            if first != UInt8(ascii: "0") { while let c = peek, isDigit(c) { position += 1 } }
            if take(UInt8(ascii: ".")) {
                guard let c = peek, isDigit(c) else { return nil }
                while let c = peek, isDigit(c) { position += 1 }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                position += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { position += 1 }
                guard let c = peek, isDigit(c) else { return nil }
                while let c = peek, isDigit(c) { position += 1 }
            }
            return Double(String(decoding: bytes[start..<position], as: UTF8.self))
        }

        private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

        /// A string literal: escapes decoded (a lone surrogate is an error), control characters refused, UTF-8
        /// checked.
        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var out: [UInt8] = []
            while let c = peek {
                position += 1
                switch c {
                case UInt8(ascii: "\""):
                    return String(validating: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let e = peek else { return nil }
                    position += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(),
                                  (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            return nil
                        }
                        guard let u = Unicode.Scalar(scalar) else { return nil }
                        out.append(contentsOf: String(Character(u)).utf8)
                    default:
                        return nil
                    }
                default:
                    guard c >= 0x20 else { return nil }
                    out.append(c)
                }
            }
            return nil
        }

        private mutating func hex4() -> UInt32? {
            guard position + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[position]
                position += 1
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: return nil
                }
                v = v << 4 | d
            }
            return v
        }
    }
}
