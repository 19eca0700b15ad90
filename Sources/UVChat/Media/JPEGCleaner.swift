/// JPEG (ITU-T T.81 with JFIF, Exif and Adobe usage): validates the marker structure and drops metadata segments.
///
/// Kept: SOI; a JFIF APP0 cut to its 16-byte base with the thumbnail dimensions set to 0 (a JFIF thumbnail is a
/// small copy of the picture, and can show what the main image was cropped from); APP2 `ICC_PROFILE` (colour needs
/// it); APP14 `Adobe` (it says whether the components are RGB, YCbCr or YCCK, which decoders need); frame headers,
/// DHT, DQT, DAC, DRI, DNL, DHP, EXP, scan headers with their entropy-coded data; EOI.
///
/// Dropped: every other APPn (Exif with its GPS IFD and thumbnail, XMP, Photoshop IRB, MPF and its extra images,
/// JFXX extension thumbnails, maker data), COM, the reserved JPGn markers, fill bytes (0xFF runs before a marker) and
/// everything after EOI. Dropping Exif loses the orientation tag: the uvchat page re-encodes through a canvas, which
/// applies the orientation to the pixels before the server sees the image.
///
/// Validation: SOI first; every segment length within the input; a frame header (SOF0-3, 5-7, 9-11, 13-15) with
/// precision 2...16, nonzero dimensions and 1...4 components before the first scan; scan headers consistent with
/// their length and naming 1...4 components; entropy-coded data ended by a marker; EOI after at least one scan.
/// Several frames only after DHP (hierarchical). Progressive files with tables between their scans pass.
enum JPEGCleaner {
    static func clean(_ b: inout CompactingBuffer) -> Int? {
        guard b.has(0, 2), b[0] == 0xFF, b[1] == 0xD8 else { return nil }
        b.keep(0, 2)
        var pos = 2
        var frames = 0
        var components = 0
        var hierarchical = false
        var scans = 0
        while true {
            // A marker: 0xFF, any number of fill 0xFF, then the marker code.
            guard b.has(pos, 2), b[pos] == 0xFF else { return nil }
            pos += 1
            while pos < b.count && b[pos] == 0xFF { pos += 1 }
            guard pos < b.count else { return nil }
            let marker = b[pos]
            pos += 1
            switch marker {
            case 0xD9:
                guard scans > 0 else { return nil }
                b.append(0xFF)
                b.append(0xD9)
                return b.written
            case 0x00, 0xD8, 0xD0...0xD7:
                // Stuffing, a second SOI, or a restart marker outside entropy-coded data.
                return nil
            case 0x01:
                // TEM: standalone, carries nothing.
                continue
            case 0x02...0xBF:
                return nil      // reserved
            default:
                break
            }
            // Every remaining marker has a length that counts itself.
            guard b.has(pos, 2) else { return nil }
            let length = b.be16(pos)
            guard length >= 2, b.has(pos, length) else { return nil }
            let body = pos + 2
            let bodyLength = length - 2
            let segmentEnd = pos + length
            switch marker {
            case 0xC0...0xC3, 0xC5...0xC7, 0xC9...0xCB, 0xCD...0xCF:
                guard frames == 0 || hierarchical, bodyLength >= 6 else { return nil }
                let precision = b[body]
                let height = b.be16(body + 1)
                let width = b.be16(body + 3)
                let count = Int(b[body + 5])
                guard (2...16).contains(precision), height > 0, width > 0, (1...4).contains(count),
                      bodyLength == 6 + 3 * count else { return nil }
                frames += 1
                components = max(components, count)
                keepSegment(&b, marker, pos, length)
            case 0xDA:
                guard frames > 0, bodyLength >= 4 else { return nil }
                let count = Int(b[body])
                guard (1...4).contains(count), count <= components, bodyLength == 4 + 2 * count else { return nil }
                keepSegment(&b, marker, pos, length)
                // Entropy-coded data runs to the first 0xFF that is neither stuffing (FF 00) nor a restart (FF D0-D7).
                var end = segmentEnd
                while true {
                    guard end < b.count else { return nil }
                    if b[end] != 0xFF {
                        end += 1
                        continue
                    }
                    guard end + 1 < b.count else { return nil }
                    let next = b[end + 1]
                    if next == 0x00 || (0xD0...0xD7).contains(next) {
                        end += 2
                        continue
                    }
                    break
                }
                b.keep(segmentEnd, end - segmentEnd)
                scans += 1
                pos = end
                continue
            case 0xDD:
                guard bodyLength == 2 else { return nil }
                keepSegment(&b, marker, pos, length)
            case 0xDE:
                hierarchical = true
                keepSegment(&b, marker, pos, length)
            case 0xC4, 0xCC, 0xDB, 0xDC, 0xDF:
                keepSegment(&b, marker, pos, length)
            case 0xE0:
                // JFIF base: "JFIF\0", version (2), units, X and Y density (2 each), thumbnail width and height.
                if bodyLength >= 14 && b.matches(body, "JFIF\0") {
                    let written = b.written
                    keepSegment(&b, marker, pos, 16)
                    b.patch(written + 2, 0)
                    b.patch(written + 3, 16)
                    b.patch(written + 16, 0)
                    b.patch(written + 17, 0)
                }
            case 0xE2:
                if b.matches(body, "ICC_PROFILE\0") { keepSegment(&b, marker, pos, length) }
            case 0xEE:
                if b.matches(body, "Adobe") { keepSegment(&b, marker, pos, length) }
            default:
                break   // other APPn, COM, JPGn: dropped
            }
            pos = segmentEnd
        }
    }

    /// Writes the marker, then moves the segment's first `length` bytes (length field included) behind it. The marker
    /// byte has been read already, and the segment starts at least two bytes after the write position.
    private static func keepSegment(_ b: inout CompactingBuffer, _ marker: UInt8, _ start: Int, _ length: Int) {
        b.append(0xFF)
        b.append(marker)
        b.keep(start, length)
    }
}
