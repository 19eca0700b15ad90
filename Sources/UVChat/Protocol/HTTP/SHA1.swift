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
    /// computed in the slot of W[t-16], from W[t-3], W[t-8] and W[t-14]. The four stages run as four loops, so that
    /// no round branches on its number.
    private mutating func compress(_ chunk: UnsafeRawPointer, schedule w: UnsafeMutableBufferPointer<UInt32>) {
        for t in 0..<16 { w[t] = UInt32(bigEndian: chunk.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self)) }
        var (a, b, c, d, e) = h
        @inline(__always) func round(_ f: UInt32, _ k: UInt32, _ word: UInt32) {
            let temp = rotl(a, 5) &+ f &+ e &+ k &+ word
            e = d
            d = c
            c = rotl(b, 30)
            b = a
            a = temp
        }
        @inline(__always) func word(_ t: Int) -> UInt32 {
            let s = t & 15
            w[s] = rotl(w[(s + 13) & 15] ^ w[(s + 8) & 15] ^ w[(s + 2) & 15] ^ w[s], 1)
            return w[s]
        }
        // Ch, Parity, Maj and Parity (section 4.1.1), Ch and Maj in their shorter equivalent forms.
        for t in 0..<16 { round(d ^ (b & (c ^ d)), 0x5A82_7999, w[t]) }
        for t in 16..<20 { round(d ^ (b & (c ^ d)), 0x5A82_7999, word(t)) }
        for t in 20..<40 { round(b ^ c ^ d, 0x6ED9_EBA1, word(t)) }
        for t in 40..<60 { round((b & c) | (d & (b | c)), 0x8F1B_BCDC, word(t)) }
        for t in 60..<80 { round(b ^ c ^ d, 0xCA62_C1D6, word(t)) }
        h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
    }

    @inline(__always)
    private func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}
