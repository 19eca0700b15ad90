/// GIF (87a and 89a): validates the block structure and drops the extensions that carry text or foreign data.
///
/// Kept: the header, the logical screen descriptor and global colour table, image descriptors with their local
/// colour tables and LZW data, graphic control extensions (delays, transparency, disposal), application extensions
/// `NETSCAPE2.0` and `ANIMEXTS1.0` (looping), and the trailer. Dropped: comment extensions, plain-text extensions
/// (browsers never draw them, and they are text), every other application extension (XMP, ICC, editor data),
/// extensions with unknown labels, and everything after the trailer.
///
/// Validation: the signature, the screen descriptor and colour tables within the input, image descriptors with an
/// LZW minimum code size of 1...11 (2...8 is what encoders write; 1 and up to 11 are taken leniently, since the code
/// width never passes 12 bits), every sub-block chain ended by a zero-length block, at least one image, the trailer.
enum GIFCleaner {
    static func clean(_ b: inout CompactingBuffer) -> Int? {
        guard b.has(0, 13), b.matches(0, "GIF87a") || b.matches(0, "GIF89a") else { return nil }
        var pos = 13 + colourTableSize(b[10])
        guard b.has(0, pos) else { return nil }
        b.keep(0, pos)
        var images = 0
        while true {
            guard b.has(pos, 1) else { return nil }
            switch b[pos] {
            case 0x3B:
                guard images > 0 else { return nil }
                b.keep(pos, 1)
                return b.written
            case 0x2C:
                // Separator, left, top, width, height (2 bytes each), packed fields; then the colour table, the
                // LZW minimum code size and the data sub-blocks.
                guard b.has(pos, 10) else { return nil }
                let codeSize = pos + 10 + colourTableSize(b[pos + 9])
                guard b.has(codeSize, 1), (1...11).contains(b[codeSize]),
                      let end = skipSubBlocks(b, from: codeSize + 1) else { return nil }
                b.keep(pos, end - pos)
                images += 1
                pos = end
            case 0x21:
                guard b.has(pos, 2), let end = skipSubBlocks(b, from: pos + 2) else { return nil }
                let label = b[pos + 1]
                if label == 0xF9
                    || label == 0xFF && b[pos + 2] == 11
                        && (b.matches(pos + 3, "NETSCAPE2.0") || b.matches(pos + 3, "ANIMEXTS1.0")) {
                    b.keep(pos, end - pos)
                }
                pos = end
            default:
                return nil
            }
        }
    }

    /// The bytes of the colour table announced by a packed-fields byte (bit 7 set: 3 * 2^(n + 1) bytes).
    private static func colourTableSize(_ packed: UInt8) -> Int {
        packed & 0x80 == 0 ? 0 : 3 << (Int(packed & 0x07) + 1)
    }

    /// The position after the zero-length block that ends the sub-blocks starting at `start`.
    private static func skipSubBlocks(_ b: CompactingBuffer, from start: Int) -> Int? {
        var pos = start
        while true {
            guard b.has(pos, 1) else { return nil }
            let size = Int(b[pos])
            pos += 1
            if size == 0 { return pos }
            guard b.has(pos, size) else { return nil }
            pos += size
        }
    }
}
