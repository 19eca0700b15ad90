/// Base64 with the standard alphabet (RFC 4648 section 4) for the handshake, and base64url without padding
/// (section 5) for resume tokens. Decoding is strict, because its inputs are the Sec-WebSocket-Key, which a
/// conforming client always sends canonically encoded (padding required), and tokens we wrote ourselves:
/// whitespace, other characters and non-zero spare bits are refused.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { encode($0) }
    }

    /// The standard encoding as a String, built in place (one allocation, none for up to 15 characters).
    static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: (bytes.count + 2) / 3 * 4) { out in
            var o = 0
            forEachEncoded(bytes, url: false) { out[o] = $0; o += 1 }
            return o
        }
    }

    /// Appends the encoding: the standard alphabet with padding, or (`url`) base64url without padding (RFC 4648
    /// section 5), for tokens that travel in JSON and URLs.
    static func encode(_ bytes: [UInt8], url: Bool, into out: inout [UInt8]) {
        bytes.withUnsafeBytes { raw in forEachEncoded(raw, url: url) { out.append($0) } }
    }

    private static func forEachEncoded(_ bytes: UnsafeRawBufferPointer, url: Bool, _ emit: (UInt8) -> Void) {
        let table = url ? urlAlphabet : alphabet
        var i = 0
        while i < bytes.count {
            let rest = min(3, bytes.count - i)
            var n: UInt32 = 0
            for k in 0..<3 { n = n << 8 | (k < rest ? UInt32(bytes[i + k]) : 0) }
            for k in 0..<(rest + 1) { emit(table[Int(n >> UInt32(18 - 6 * k) & 63)]) }
            if !url { for _ in rest..<3 { emit(UInt8(ascii: "=")) } }
            i += 3
        }
    }

    /// Base64url without padding, strictly: only the url alphabet, and zero bits where the last character has
    /// spare ones.
    static func decodeURL(_ text: UnsafeRawBufferPointer) -> [UInt8]? {
        guard text.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in text {
            guard let v = value(c, url: true) else { return nil }
            acc = acc << 6 | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        guard acc == 0 else { return nil }
        return out
    }

    static func decode(_ text: String) -> [UInt8]? {
        decode(Array(text.utf8)[...])
    }

    /// The same, from the bytes of a field value where they lie.
    static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        let count = text.count, first = text.startIndex
        guard count % 4 == 0 else { return nil }
        var padding = 0
        if text.last == UInt8(ascii: "=") { padding += 1 }
        if count >= 2 && text[first + count - 2] == UInt8(ascii: "=") { padding += 1 }
        var out: [UInt8] = []
        out.reserveCapacity(count / 4 * 3)
        var i = 0
        while i < count {
            let isLast = i + 4 == count
            let pad = isLast ? padding : 0
            var n: UInt32 = 0
            for k in 0..<4 {
                let c = text[first + i + k]
                if k >= 4 - pad {
                    n <<= 6
                    continue
                }
                guard let v = value(c) else { return nil }
                n = n << 6 | v
            }
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            if pad < 2 { out.append(UInt8(truncatingIfNeeded: n >> 8)) }
            if pad < 1 { out.append(UInt8(truncatingIfNeeded: n)) }
            // Bits that fall into the padding must be zero, otherwise two texts would decode to the same bytes.
            if pad == 1 && n & 0xFF != 0 || pad == 2 && n & 0xFFFF != 0 { return nil }
            i += 4
        }
        return out
    }

    private static func value(_ c: UInt8, url: Bool = false) -> UInt32? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(c - UInt8(ascii: "a") + 26)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0") + 52)
        case UInt8(ascii: url ? "-" : "+"): return 62
        case UInt8(ascii: url ? "_" : "/"): return 63
        default: return nil
        }
    }
}
