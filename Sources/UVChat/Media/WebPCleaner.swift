/// WebP (the RIFF container of RFC 9649): validates the container and the image chunk headers, and drops metadata.
///
/// Kept: the simple formats (`VP8 ` or `VP8L` alone), and for the extended format VP8X, ICCP, ANIM, ANMF, ALPH,
/// VP8 and VP8L. Dropped: EXIF, XMP, every unknown chunk (RFC 9649 says readers ignore them, and writers put their
/// own data there), chunks inside an ANMF frame other than ALPH, VP8 and VP8L, chunks after the image chunk of a
/// simple file, and every byte beyond the RIFF size (plus 8 for the RIFF header). The VP8X flags for EXIF (0x08) and
/// XMP (0x04) are cleared, since those chunks are always gone, and the RIFF size and each ANMF size are rewritten.
///
/// Validation: `RIFF`, a size of at least 4 that lies within the input, `WEBP`; every chunk (with its pad byte when
/// its size is odd) within the RIFF size; `VP8 ` a key frame with the start code 9d 01 2a and nonzero dimensions;
/// `VP8L` with the signature byte 0x2f and version 0; VP8X of 10 bytes first in an extended file, which needs an
/// image chunk or at least one ANMF frame, each frame needing its own image chunk.
enum WebPCleaner {
    static func clean(_ b: inout CompactingBuffer) -> Int? {
        guard b.has(0, 12), b.matches(0, "RIFF"), b.matches(8, "WEBP") else { return nil }
        let riffSize = Int(b.le32(4))
        guard riffSize >= 4, b.has(8, riffSize) else { return nil }
        let end = 8 + riffSize
        b.keep(0, 12)
        guard let first = chunk(b, at: 12, end: end) else { return nil }
        switch first.tag {
        case Tag.VP8, Tag.VP8L:
            guard validImage(b, first) else { return nil }
            b.keep(first.start, first.total)
        case Tag.VP8X:
            guard first.size == 10 else { return nil }
            let header = b.written
            b.keep(first.start, first.total)
            b.patch(header + 8, b[header + 8] & ~0x0C)
            var pos = first.start + first.total
            var images = 0
            var frames = 0
            while pos < end {
                guard let next = chunk(b, at: pos, end: end) else { return nil }
                switch next.tag {
                case Tag.VP8, Tag.VP8L:
                    guard validImage(b, next) else { return nil }
                    images += 1
                    b.keep(next.start, next.total)
                case Tag.ICCP, Tag.ANIM, Tag.ALPH:
                    b.keep(next.start, next.total)
                case Tag.ANMF:
                    guard cleanFrame(&b, next) else { return nil }
                    frames += 1
                default:
                    break   // EXIF, XMP, unknown
                }
                pos = next.start + next.total
            }
            guard images > 0 || frames > 0 else { return nil }
        default:
            return nil
        }
        b.patchLE32(4, UInt32(b.written - 8))
        return b.written
    }

    private struct Chunk {
        var start: Int
        var tag: UInt32
        var size: Int
        /// Header, payload and pad byte.
        var total: Int { 8 + size + size & 1 }
        var payload: Int { start + 8 }
    }

    /// The chunk at `start`, whole (pad byte included) before `end`.
    private static func chunk(_ b: CompactingBuffer, at start: Int, end: Int) -> Chunk? {
        guard start <= end, end - start >= 8, b.has(start, 8) else { return nil }
        let size = Int(b.le32(start + 4))
        let chunk = Chunk(start: start, tag: b.be32(start), size: size)
        guard size <= end - start - 8, chunk.total <= end - start else { return nil }
        return chunk
    }

    /// The start of a VP8 key frame or a VP8L stream (the bitstreams themselves are not decoded).
    private static func validImage(_ b: CompactingBuffer, _ c: Chunk) -> Bool {
        let p = c.payload
        if c.tag == Tag.VP8 {
            // Frame tag (3 bytes, bit 0 clear for a key frame), start code, 14-bit width and height.
            guard c.size >= 10, b[p] & 1 == 0, b[p + 3] == 0x9D, b[p + 4] == 0x01, b[p + 5] == 0x2A else { return false }
            return b.le16(p + 6) & 0x3FFF != 0 && b.le16(p + 8) & 0x3FFF != 0
        }
        // Signature, then 14-bit width - 1, 14-bit height - 1, alpha hint, 3-bit version (0).
        return c.size >= 5 && b[p] == 0x2F && b[p + 4] >> 5 == 0
    }

    /// Keeps an ANMF chunk: its 16-byte frame header and, of its sub-chunks, ALPH, VP8 and VP8L, with its size
    /// rewritten. The frame needs an image chunk.
    private static func cleanFrame(_ b: inout CompactingBuffer, _ frame: Chunk) -> Bool {
        guard frame.size >= 16 else { return false }
        let header = b.written
        b.keep(frame.start, 8 + 16)
        let end = frame.payload + frame.size
        var pos = frame.payload + 16
        var images = 0
        while pos < end {
            guard let next = chunk(b, at: pos, end: end) else { return false }
            switch next.tag {
            case Tag.VP8, Tag.VP8L:
                guard validImage(b, next) else { return false }
                images += 1
                b.keep(next.start, next.total)
            case Tag.ALPH:
                b.keep(next.start, next.total)
            default:
                break
            }
            pos = next.start + next.total
        }
        // The frame's own pad byte (odd size) is not kept: what is kept is all whole chunks, so the size is even.
        guard images > 0 else { return false }
        b.patchLE32(header + 4, UInt32(b.written - header - 8))
        return true
    }

    private enum Tag {
        static let VP8 = fourCC("VP8 ")
        static let VP8L = fourCC("VP8L")
        static let VP8X = fourCC("VP8X")
        static let ICCP = fourCC("ICCP")
        static let ANIM = fourCC("ANIM")
        static let ANMF = fourCC("ANMF")
        static let ALPH = fourCC("ALPH")
    }
}
