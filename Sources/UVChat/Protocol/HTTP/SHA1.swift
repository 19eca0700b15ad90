/// SHA-1 (FIPS 180-4), needed only for the WebSocket accept value. It is not used for anything that needs
/// collision resistance.
struct SHA1 {
    private var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)

    static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 20)
        bytes.withUnsafeBytes { input in digest.withUnsafeMutableBytes { hash(input, into: $0) } }
        return digest
    }

    /// The 20-byte digest of `bytes` into the front of `digest`, on the stack only: the opening handshake runs it
    /// once per upgrade, and the schedule, the padded tail and the digest need no heap.
    static func hash(_ bytes: UnsafeRawBufferPointer, into digest: UnsafeMutableRawBufferPointer) {
        precondition(digest.count >= 20)
        var state = SHA1()
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 16) { schedule in
            withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { tail in
                let fullBlocks = bytes.count / 64
                for b in 0..<fullBlocks { state.compress(bytes.baseAddress.unsafelyUnwrapped + b * 64, schedule: schedule) }
                // Padding: a 1 bit, zeros, then the message length in bits as a big-endian 64-bit number, in one
                // block, or two when fewer than 9 bytes of the last one are free.
                let rest = bytes.count - fullBlocks * 64
                let tailCount = rest + 9 <= 64 ? 64 : 128
                tail.initializeMemory(as: UInt8.self, repeating: 0)
                if rest > 0 {
                    tail.baseAddress.unsafelyUnwrapped.copyMemory(from: bytes.baseAddress.unsafelyUnwrapped + fullBlocks * 64,
                                                                  byteCount: rest)
                }
                tail[rest] = 0x80
                tail.storeBytes(of: (UInt64(bytes.count) &* 8).bigEndian, toByteOffset: tailCount - 8, as: UInt64.self)
                for offset in stride(from: 0, to: tailCount, by: 64) {
                    state.compress(UnsafeRawPointer(tail.baseAddress.unsafelyUnwrapped + offset), schedule: schedule)
                }
            }
        }
        digest.storeBytes(of: state.h.0.bigEndian, toByteOffset: 0, as: UInt32.self)
        digest.storeBytes(of: state.h.1.bigEndian, toByteOffset: 4, as: UInt32.self)
        digest.storeBytes(of: state.h.2.bigEndian, toByteOffset: 8, as: UInt32.self)
        digest.storeBytes(of: state.h.3.bigEndian, toByteOffset: 12, as: UInt32.self)
        digest.storeBytes(of: state.h.4.bigEndian, toByteOffset: 16, as: UInt32.self)
    }

    /// One 64-byte block. The schedule is the 16-word ring of FIPS 180-4 section 6.1.3: W[t] for t >= 16 is
    /// computed in the slot of W[t-16], from W[t-3], W[t-8] and W[t-14]. Each stage of 20 rounds runs as four
    /// passes of five, and the five rounds of a pass name the working variables in turn (round t adds into the
    /// variable that plays `e`, and rotates the one that plays `b`), so that no round moves a value from one
    /// variable to another: the five stay in registers.
    private mutating func compress(_ chunk: UnsafeRawPointer, schedule w: UnsafeMutableBufferPointer<UInt32>) {
        for t in 0..<16 { w[t] = UInt32(bigEndian: chunk.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self)) }
        var (a, b, c, d, e) = h
        // Ch and Maj in their shorter equivalent forms (section 4.1.1); Parity as it is.
        for t in stride(from: 0, to: 20, by: 5) {
            e = e &+ Self.rotl(a, 5) &+ (d ^ (b & (c ^ d))) &+ 0x5A82_7999 &+ Self.word(w, t); b = Self.rotl(b, 30)
            d = d &+ Self.rotl(e, 5) &+ (c ^ (a & (b ^ c))) &+ 0x5A82_7999 &+ Self.word(w, t + 1); a = Self.rotl(a, 30)
            c = c &+ Self.rotl(d, 5) &+ (b ^ (e & (a ^ b))) &+ 0x5A82_7999 &+ Self.word(w, t + 2); e = Self.rotl(e, 30)
            b = b &+ Self.rotl(c, 5) &+ (a ^ (d & (e ^ a))) &+ 0x5A82_7999 &+ Self.word(w, t + 3); d = Self.rotl(d, 30)
            a = a &+ Self.rotl(b, 5) &+ (e ^ (c & (d ^ e))) &+ 0x5A82_7999 &+ Self.word(w, t + 4); c = Self.rotl(c, 30)
        }
        Self.parityStage(&a, &b, &c, &d, &e, from: 20, k: 0x6ED9_EBA1, w)
        for t in stride(from: 40, to: 60, by: 5) {
            e = e &+ Self.rotl(a, 5) &+ ((b & c) | (d & (b | c))) &+ 0x8F1B_BCDC &+ Self.word(w, t); b = Self.rotl(b, 30)
            d = d &+ Self.rotl(e, 5) &+ ((a & b) | (c & (a | b))) &+ 0x8F1B_BCDC &+ Self.word(w, t + 1); a = Self.rotl(a, 30)
            c = c &+ Self.rotl(d, 5) &+ ((e & a) | (b & (e | a))) &+ 0x8F1B_BCDC &+ Self.word(w, t + 2); e = Self.rotl(e, 30)
            b = b &+ Self.rotl(c, 5) &+ ((d & e) | (a & (d | e))) &+ 0x8F1B_BCDC &+ Self.word(w, t + 3); d = Self.rotl(d, 30)
            a = a &+ Self.rotl(b, 5) &+ ((c & d) | (e & (c | d))) &+ 0x8F1B_BCDC &+ Self.word(w, t + 4); c = Self.rotl(c, 30)
        }
        Self.parityStage(&a, &b, &c, &d, &e, from: 60, k: 0xCA62_C1D6, w)
        h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
    }

    /// Rounds `t0` to `t0 + 19` of a Parity stage (20 to 39 and 60 to 79, with their own constants).
    @inline(__always)
    private static func parityStage(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32, _ d: inout UInt32,
                                    _ e: inout UInt32, from t0: Int, k: UInt32, _ w: UnsafeMutableBufferPointer<UInt32>) {
        for t in stride(from: t0, to: t0 + 20, by: 5) {
            e = e &+ rotl(a, 5) &+ (b ^ c ^ d) &+ k &+ word(w, t); b = rotl(b, 30)
            d = d &+ rotl(e, 5) &+ (a ^ b ^ c) &+ k &+ word(w, t + 1); a = rotl(a, 30)
            c = c &+ rotl(d, 5) &+ (e ^ a ^ b) &+ k &+ word(w, t + 2); e = rotl(e, 30)
            b = b &+ rotl(c, 5) &+ (d ^ e ^ a) &+ k &+ word(w, t + 3); d = rotl(d, 30)
            a = a &+ rotl(b, 5) &+ (c ^ d ^ e) &+ k &+ word(w, t + 4); c = rotl(c, 30)
        }
    }

    /// W[t]: one of the block's words for t < 16, else the next word of the schedule, written over W[t-16].
    @inline(__always)
    private static func word(_ w: UnsafeMutableBufferPointer<UInt32>, _ t: Int) -> UInt32 {
        if t < 16 { return w[t] }
        let s = t & 15
        let x = rotl(w[(s + 13) & 15] ^ w[(s + 8) & 15] ^ w[(s + 2) & 15] ^ w[s], 1)
        w[s] = x
        return x
    }

    @inline(__always)
    private static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}
