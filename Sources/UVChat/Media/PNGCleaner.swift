/// PNG (ISO/IEC 15948, with the APNG chunks): validates the chunk structure and every CRC, and drops metadata chunks.
///
/// Kept chunks are moved whole, so their CRCs stay as they were. Kept: IHDR, PLTE, IDAT, IEND, and the ancillary
/// chunks a viewer uses to show the image: tRNS, gAMA, cHRM, sRGB, iCCP, sBIT, bKGD, hIST, pHYs, sPLT, cICP, mDCV,
/// cLLI and the animation chunks acTL, fcTL, fdAT. Dropped: tEXt, zTXt, iTXt (author, comments, software, XMP),
/// tIME, eXIf (with its GPS IFD), every other ancillary chunk (lowercase first letter: a decoder may skip it, and
/// unknown private chunks are where cameras and editors put their own data), and everything after IEND. An unknown
/// critical chunk (uppercase first letter) means a decoder cannot show the image, so it is refused.
///
/// Validation: the signature; IHDR first, 13 bytes, nonzero width and height up to 2^31 - 1, a valid bit depth for
/// its colour type, compression and filter 0, interlace 0 or 1; chunk types of ASCII letters; each length within
/// the input and each CRC right; a PLTE (1...256 entries) before the IDATs for colour type 3 and none for grey
/// types; at least one IDAT, all IDATs consecutive; IEND with length 0.
enum PNGCleaner {
    static func clean(_ b: inout CompactingBuffer) -> Int? {
        guard b.has(0, 8), b[0] == 0x89, b.matches(1, "PNG\r\n\u{1A}\n") else { return nil }
        b.keep(0, 8)
        var pos = 8
        var colourType: UInt8 = 0
        var sawPalette = false
        var idat = IDATState.before
        var first = true
        while true {
            guard b.has(pos, 12) else { return nil }
            let length = b.be32(pos)
            guard length <= 0x7FFF_FFFF, b.has(pos + 12, Int(length)) else { return nil }
            let dataLength = Int(length)
            let type = b.be32(pos + 4)
            for i in 4..<8 {
                let c = b[pos + i]
                guard (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) else { return nil }
            }
            let crc = CRC32.update(0, UnsafeRawPointer(b.base + pos + 4), count: 4 + dataLength)
            guard crc == b.be32(pos + 8 + dataLength) else { return nil }
            let data = pos + 8
            let chunkLength = 12 + dataLength
            if first {
                guard type == Tag.IHDR, dataLength == 13 else { return nil }
                let width = b.be32(data), height = b.be32(data + 4)
                let depth = b[data + 8]
                colourType = b[data + 9]
                guard width > 0, width <= 0x7FFF_FFFF, height > 0, height <= 0x7FFF_FFFF,
                      validDepth(depth, colourType: colourType),
                      b[data + 10] == 0, b[data + 11] == 0, b[data + 12] <= 1 else { return nil }
                first = false
                b.keep(pos, chunkLength)
                pos += chunkLength
                continue
            }
            if type != Tag.IDAT && idat == .inside { idat = .after }
            switch type {
            case Tag.IHDR:
                return nil
            case Tag.IEND:
                guard dataLength == 0, idat != .before else { return nil }
                b.keep(pos, chunkLength)
                return b.written
            case Tag.IDAT:
                if idat == .before {
                    guard colourType != 3 || sawPalette else { return nil }
                }
                guard idat != .after else { return nil }
                idat = .inside
                b.keep(pos, chunkLength)
            case Tag.PLTE:
                guard !sawPalette, idat == .before, colourType != 0, colourType != 4,
                      dataLength > 0, dataLength <= 768, dataLength % 3 == 0 else { return nil }
                sawPalette = true
                b.keep(pos, chunkLength)
            default:
                if b[pos + 4] & 0x20 == 0 { return nil }        // unknown critical chunk
                if Tag.kept.contains(type) { b.keep(pos, chunkLength) }
            }
            pos += chunkLength
        }
    }

    private enum IDATState { case before, inside, after }

    /// Table 11.1 of the PNG specification.
    private static func validDepth(_ depth: UInt8, colourType: UInt8) -> Bool {
        switch colourType {
        case 0: return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16
        case 3: return depth == 1 || depth == 2 || depth == 4 || depth == 8
        case 2, 4, 6: return depth == 8 || depth == 16
        default: return false
        }
    }

    /// Chunk types as their four bytes read big-endian.
    private enum Tag {
        static let IHDR = fourCC("IHDR")
        static let PLTE = fourCC("PLTE")
        static let IDAT = fourCC("IDAT")
        static let IEND = fourCC("IEND")
        /// The ancillary chunks that affect how the image looks (or animates).
        static let kept: [UInt32] = ([
            "tRNS", "gAMA", "cHRM", "sRGB", "iCCP", "sBIT", "bKGD", "hIST", "pHYs", "sPLT", "cICP", "mDCV", "cLLI",
            "acTL", "fcTL", "fdAT",
        ] as [StaticString]).map(fourCC)
    }
}

/// A four-character code read as a big-endian `UInt32` (PNG chunk types).
func fourCC(_ code: StaticString) -> UInt32 {
    precondition(code.utf8CodeUnitCount == 4)
    let p = code.utf8Start
    return UInt32(p[0]) << 24 | UInt32(p[1]) << 16 | UInt32(p[2]) << 8 | UInt32(p[3])
}
