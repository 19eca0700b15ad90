/// Incremental UTF-8 validation (RFC 3629, the well-formed table of Unicode 3.9) that keeps its state between calls,
/// so a text message can be checked frame by frame and chunk by chunk as it arrives. It refuses at the first byte
/// that no continuation could make valid, which is what lets the parser close a connection before the rest of a bad
/// message arrives (Autobahn 6.4.x).
public struct UTF8Validator {
    /// Continuation bytes still owed by the current sequence; 0 between characters.
    private var pending: UInt8 = 0
    /// Range the next continuation byte must fall in. Only the first continuation after E0, ED, F0 and F4 is narrower
    /// than 80...BF; that is how overlongs, surrogates and code points above U+10FFFF are refused at their second byte.
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// True when no sequence is half way through: the bytes so far end on a character boundary.
    public var isComplete: Bool { pending == 0 }

    mutating func reset() {
        pending = 0
        lower = 0x80
        upper = 0xBF
    }

    /// Checks the next bytes of the stream. Returns false as soon as the stream so far can no longer be valid UTF-8;
    /// the validator's state is then meaningless until `reset`.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let end = bytes.count
        var i = 0
        var pending = self.pending
        var lower = self.lower
        var upper = self.upper
        defer {
            self.pending = pending
            self.lower = lower
            self.upper = upper
        }
        while i < end {
            if pending == 0 {
                // Chat text is mostly ASCII: skip it a word or two at a time.
                while end - i >= 16 {
                    let a = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    let b = base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
                    if (a | b) & 0x8080_8080_8080_8080 != 0 { break }
                    i += 16
                }
                if end - i >= 8, base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    i += 8
                }
                // Reached only near a non-ASCII byte or in the last few bytes.
                scalar: while i < end {
                    let byte = base.load(fromByteOffset: i, as: UInt8.self)
                    i += 1
                    if byte < 0x80 { continue }
                    switch byte {
                    case 0xC2...0xDF: pending = 1; lower = 0x80; upper = 0xBF
                    case 0xE0: pending = 2; lower = 0xA0; upper = 0xBF          // below A0 would be overlong
                    case 0xE1...0xEC, 0xEE, 0xEF: pending = 2; lower = 0x80; upper = 0xBF
                    case 0xED: pending = 2; lower = 0x80; upper = 0x9F          // above 9F would be a surrogate
                    case 0xF0: pending = 3; lower = 0x90; upper = 0xBF          // below 90 would be overlong
                    case 0xF1...0xF3: pending = 3; lower = 0x80; upper = 0xBF
                    case 0xF4: pending = 3; lower = 0x80; upper = 0x8F          // above 8F would pass U+10FFFF
                    default: return false   // stray continuation, overlong C0/C1, or F5-FF (5- and 6-byte forms)
                    }
                    // The whole character is in these bytes (the usual case): check it here and go on, rather than
                    // one continuation byte per turn of the outer loop.
                    let need = Int(pending)
                    guard end - i >= need else { break scalar }
                    let first = base.load(fromByteOffset: i, as: UInt8.self)
                    guard first >= lower && first <= upper else { return false }
                    if need >= 2 {
                        guard base.load(fromByteOffset: i + 1, as: UInt8.self) & 0xC0 == 0x80 else { return false }
                        if need == 3 {
                            guard base.load(fromByteOffset: i + 2, as: UInt8.self) & 0xC0 == 0x80 else { return false }
                        }
                    }
                    i += need
                    pending = 0
                    lower = 0x80
                    upper = 0xBF
                }
            } else {
                let byte = base.load(fromByteOffset: i, as: UInt8.self)
                i += 1
                guard byte >= lower && byte <= upper else { return false }
                pending -= 1
                lower = 0x80
                upper = 0xBF
            }
        }
        return true
    }
}
