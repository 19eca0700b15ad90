import Foundation
import Testing
@testable import UVChat

// Fixtures are made by Fixtures/images/make_fixtures.py (Pillow), which also checks that each one decodes.

private func fixture(_ name: String, filePath: String = #filePath) throws -> [UInt8] {
    let folder = URL(fileURLWithPath: filePath).deletingLastPathComponent()
    let url = folder.appendingPathComponent("Fixtures/images").appendingPathComponent(name)
    return [UInt8](try Data(contentsOf: url))
}

/// Cleans a copy; the cleaned bytes or nil.
private func clean(_ input: [UInt8], as type: ImageType) -> [UInt8]? {
    var copy = input
    let count = copy.withUnsafeMutableBytes { ImageCleaner.clean($0, as: type) }
    guard let count else { return nil }
    precondition(count <= input.count)
    return Array(copy[0..<count])
}

private func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
    contains(haystack, Array(needle.utf8))
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    occurrences(haystack, needle) > 0
}

private func occurrences(_ haystack: [UInt8], _ needle: [UInt8]) -> Int {
    guard !needle.isEmpty, haystack.count >= needle.count else { return 0 }
    var found = 0
    for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
        if Array(haystack[i..<(i + needle.count)]) == needle { found += 1 }
    }
    return found
}

private func be16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
private func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
}
private func le32(_ b: [UInt8], _ i: Int) -> Int {
    Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 | Int(b[i + 3]) << 24
}

/// The header segments of a JPEG up to and including the first SOS, as (marker, segment bytes with the length);
/// then the offset after that SOS header. Test-side parser, independent of the cleaner.
private func jpegHeaders(_ b: [UInt8]) -> (segments: [(UInt8, [UInt8])], scanStart: Int) {
    var pos = 2
    var segments: [(UInt8, [UInt8])] = []
    while pos + 4 <= b.count, b[pos] == 0xFF {
        if b[pos + 1] == 0xFF {
            pos += 1        // fill byte
            continue
        }
        let marker = b[pos + 1]
        let length = be16(b, pos + 2)
        guard pos + 2 + length <= b.count else { break }
        segments.append((marker, Array(b[(pos + 2)..<(pos + 2 + length)])))
        pos += 2 + length
        if marker == 0xDA { break }
    }
    return (segments, pos)
}

/// Markers anywhere in the file (0xFF followed by neither 0x00 nor 0xFF).
private func jpegMarkerCount(_ b: [UInt8], _ marker: UInt8) -> Int {
    occurrences(b, [0xFF, marker])
}

private struct PNGChunk {
    var type: String
    var data: [UInt8]
    var crcOK: Bool
}

private func pngChunks(_ b: [UInt8]) -> [PNGChunk] {
    var pos = 8
    var chunks: [PNGChunk] = []
    while pos + 12 <= b.count {
        let length = Int(be32(b, pos))
        guard pos + 12 + length <= b.count else { break }
        let typeAndData = Array(b[(pos + 4)..<(pos + 8 + length)])
        let crc = typeAndData.withUnsafeBytes { CRC32.checksum($0) }
        chunks.append(PNGChunk(type: String(decoding: b[(pos + 4)..<(pos + 8)], as: UTF8.self),
                               data: Array(b[(pos + 8)..<(pos + 8 + length)]), crcOK: crc == be32(b, pos + 8 + length)))
        pos += 12 + length
    }
    return chunks
}

private func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let typeAndData = Array(type.utf8) + data
    let crc = typeAndData.withUnsafeBytes { CRC32.checksum($0) }
    func bytes(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    return bytes(UInt32(data.count)) + typeAndData + bytes(crc)
}

/// Top-level RIFF chunks of a WebP as (fourCC, payload).
private func webpChunks(_ b: [UInt8], from start: Int = 12, to end: Int? = nil) -> [(String, [UInt8])] {
    let end = end ?? min(b.count, 8 + le32(b, 4))
    var pos = start
    var chunks: [(String, [UInt8])] = []
    while pos + 8 <= end {
        let size = le32(b, pos + 4)
        guard pos + 8 + size <= end else { break }
        chunks.append((String(decoding: b[pos..<(pos + 4)], as: UTF8.self), Array(b[(pos + 8)..<(pos + 8 + size)])))
        pos += 8 + size + size % 2
    }
    return chunks
}

/// GIF blocks after the colour table: "image", "trailer" or "ext:XX" (label in hex) with application identifiers.
private func gifBlocks(_ b: [UInt8]) -> [String] {
    var pos = 13 + (b[10] & 0x80 != 0 ? 3 << (Int(b[10] & 7) + 1) : 0)
    var blocks: [String] = []
    func skipSubBlocks(_ p: inout Int) {
        while p < b.count, b[p] != 0 { p += Int(b[p]) + 1 }
        p += 1
    }
    while pos < b.count {
        switch b[pos] {
        case 0x3B:
            blocks.append("trailer")
            return blocks
        case 0x2C:
            pos += 10 + (b[pos + 9] & 0x80 != 0 ? 3 << (Int(b[pos + 9] & 7) + 1) : 0) + 1
            skipSubBlocks(&pos)
            blocks.append("image")
        case 0x21:
            let label = b[pos + 1]
            var name = "ext:" + String(label, radix: 16)
            if label == 0xFF { name += ":" + String(decoding: b[(pos + 3)..<(pos + 14)], as: UTF8.self) }
            pos += 2
            skipSubBlocks(&pos)
            blocks.append(name)
        default:
            blocks.append("junk")
            return blocks
        }
    }
    return blocks
}

private let sentinels = [
    "UVCHAT-GPS-SENTINEL", "UVCHAT-COMMENT-SENTINEL", "UVCHAT-TRAILING-SENTINEL", "UVCHAT-IPTC-SENTINEL",
    "UVCHAT-APP9-SENTINEL", "UVCHAT-MAKE-SENTINEL", "UVCHAT-ZTXT-SENTINEL", "UVCHAT-PRIVATE-CHUNK-SENTINEL",
    "UVCHAT-WEBP-CHUNK-SENTINEL", "UVCHAT-PLAINTEXT-SENTINEL", "UVCHAT-IMAGE-UNIQUE-ID", "http://ns.adobe.com/xap",
    "Exif\0\0", "Pixel 8", "2024:05:17",
]

private let allFixtures: [(String, ImageType)] = [
    ("phone-gps.jpg", .jpeg), ("meta.jpg", .jpeg), ("progressive.jpg", .jpeg), ("cmyk.jpg", .jpeg),
    ("text.png", .png), ("palette.png", .png), ("anim.png", .png),
    ("lossy.webp", .webp), ("lossless.webp", .webp), ("extended.webp", .webp), ("anim.webp", .webp),
    ("anim.gif", .gif),
]

@Suite struct ImageCleanerTests {
    // MARK: - ImageType

    @Test func imageTypeMatchesExactMIMETypes() {
        for type in ImageType.allCases {
            #expect(ImageType(mime: type.mime) == type)
        }
        for wrong in ["image/JPEG", "image/jpg", "image/png ", "image/", "", "text/plain", "image/gif;x", "image/svg+xml",
                      "imagexpng", "image/webpp"] {
            #expect(ImageType(mime: wrong) == nil, "\(wrong)")
        }
        #expect(ImageType(mime: UnsafeRawBufferPointer(start: nil, count: 0)) == nil)
    }

    // MARK: - JPEG

    @Test func phonePhotoLosesExifGPSThumbnailAndXMP() throws {
        let input = try fixture("phone-gps.jpg")
        #expect(contains(input, "UVCHAT-GPS-SENTINEL") && contains(input, "Pixel 8"))
        #expect(occurrences(input, [0xFF, 0xD8, 0xFF]) == 2)            // the image and its IFD1 thumbnail
        let output = try #require(clean(input, as: .jpeg))
        for s in sentinels { #expect(!contains(output, s), "\(s)") }
        #expect(occurrences(output, [0xFF, 0xD8, 0xFF]) == 1)
        let headers = jpegHeaders(output)
        let markers = headers.segments.map(\.0)
        #expect(markers == [0xE0, 0xDB, 0xDB, 0xC0, 0xC4, 0xC4, 0xC4, 0xC4, 0xDA])
        #expect(headers.segments[0].1.count == 16 && Array(headers.segments[0].1[2..<7]) == Array("JFIF\0".utf8))
        // The entropy-coded data and EOI are untouched.
        let original = jpegHeaders(input)
        #expect(Array(output[headers.scanStart...]) == Array(input[original.scanStart...]))
        #expect(output.suffix(2) == [0xFF, 0xD9])
    }

    @Test func jpegMetadataOfEveryKindGoesICCAndAdobeStay() throws {
        let input = try fixture("meta.jpg")
        let output = try #require(clean(input, as: .jpeg))
        for s in sentinels + ["THUMB!", "JFXX", "Photoshop 3.0"] { #expect(!contains(output, s), "\(s)") }
        let segments = jpegHeaders(output).segments
        let jfif = try #require(segments.first)
        #expect(jfif.0 == 0xE0)
        // 16-byte base, thumbnail 0x0, version and densities as they were.
        #expect(jfif.1 == [0, 16] + Array("JFIF\0".utf8) + [1, 2, 0, 0, 1, 0, 1, 0, 0])
        #expect(segments.filter { $0.0 == 0xE0 }.count == 1)
        #expect(!segments.contains { $0.0 == 0xE1 || $0.0 == 0xED || $0.0 == 0xE9 || $0.0 == 0xFE })
        let adobe = try #require(segments.first { $0.0 == 0xEE })
        #expect(Array(adobe.1[2..<7]) == Array("Adobe".utf8))
        let icc = try #require(segments.first { $0.0 == 0xE2 })
        let originalICC = try #require(jpegHeaders(input).segments.first { $0.0 == 0xE2 })
        #expect(icc.1 == originalICC.1 && contains(icc.1, "ICC_PROFILE\0"))
        #expect(segments.contains { $0.0 == 0xDD })                     // DRI
        // Restart markers survive in the entropy-coded data; fill bytes and the trailer do not.
        for rst in UInt8(0xD0)...0xD7 { #expect(jpegMarkerCount(output, rst) == jpegMarkerCount(input, rst)) }
        #expect(jpegMarkerCount(input, 0xD0) > 0)
        #expect(contains(input, [0xFF, 0xFF, 0xFF, 0xDB]) && !contains(output, [0xFF, 0xFF, 0xDB]))   // fill bytes
        #expect(output.suffix(2) == [0xFF, 0xD9])
    }

    @Test func progressiveJPEGKeepsEveryScanAndTable() throws {
        let input = try fixture("progressive.jpg")
        let output = try #require(clean(input, as: .jpeg))
        #expect(!contains(output, "UVCHAT-COMMENT-SENTINEL") && !contains(output, "Exif\0\0"))
        #expect(jpegMarkerCount(input, 0xDA) > 3)
        #expect(jpegMarkerCount(output, 0xDA) == jpegMarkerCount(input, 0xDA))
        #expect(jpegMarkerCount(output, 0xC4) == jpegMarkerCount(input, 0xC4))
        #expect(jpegMarkerCount(output, 0xC2) == 1)
        // Everything from the first scan on is unchanged.
        #expect(Array(output[jpegHeaders(output).scanStart...]) == Array(input[jpegHeaders(input).scanStart...]))
    }

    @Test func cmykJPEGKeepsAdobeSegment() throws {
        let input = try fixture("cmyk.jpg")
        let output = try #require(clean(input, as: .jpeg))
        #expect(!contains(output, "UVCHAT-COMMENT-SENTINEL"))
        #expect(jpegHeaders(output).segments.contains { $0.0 == 0xEE })
        #expect(jpegHeaders(output).segments.filter { $0.0 == 0xEE }.map(\.1)
                == jpegHeaders(input).segments.filter { $0.0 == 0xEE }.map(\.1))
    }

    @Test func malformedJPEGsAreRefused() throws {
        let good = try #require(clean(try fixture("meta.jpg"), as: .jpeg))
        let headers = jpegHeaders(good)
        #expect(clean([0xFF, 0xD8, 0xFF, 0xD9], as: .jpeg) == nil)       // no frame, no scan
        #expect(clean([0xFF, 0xD8], as: .jpeg) == nil)
        #expect(clean([0xFF], as: .jpeg) == nil)
        #expect(clean(Array(good.dropFirst()), as: .jpeg) == nil)
        // The frame header removed: a scan before any frame.
        var noFrame = Array(good[0..<2])
        for (marker, segment) in headers.segments where marker != 0xC0 { noFrame += [0xFF, marker] + segment }
        noFrame += good[headers.scanStart...]
        #expect(clean(noFrame, as: .jpeg) == nil)
        // A segment length that runs past the end, or below 2.
        var long = good
        long[4] = 0xFF
        #expect(clean(long, as: .jpeg) == nil)
        var short = good
        short[4] = 0; short[5] = 1
        #expect(clean(short, as: .jpeg) == nil)
        // Zero width in the frame header.
        var sofAt = 2
        for (marker, segment) in headers.segments {
            if marker == 0xC0 { break }
            sofAt += 2 + segment.count
        }
        var zeroWidth = good
        zeroWidth[sofAt + 7] = 0; zeroWidth[sofAt + 8] = 0
        #expect(clean(zeroWidth, as: .jpeg) == nil)
        // EOI missing.
        #expect(clean(Array(good.dropLast(2)) + [0xFF, 0xFE], as: .jpeg) == nil)
    }

    // MARK: - PNG

    @Test func pngTextTimeExifAndPrivateChunksGo() throws {
        let input = try fixture("text.png")
        let before = pngChunks(input)
        #expect(before.allSatisfy { $0.crcOK })
        for t in ["tEXt", "zTXt", "iTXt", "tIME", "eXIf", "prVt", "iCCP", "pHYs"] {
            #expect(before.contains { $0.type == t }, "\(t) in the fixture")
        }
        let output = try #require(clean(input, as: .png))
        for s in sentinels { #expect(!contains(output, s), "\(s)") }
        let after = pngChunks(output)
        #expect(after.allSatisfy { $0.crcOK })
        let types = after.map(\.type).filter { $0 != "IDAT" }
        #expect(types == ["IHDR", "iCCP", "pHYs", "IEND"])
        #expect(after.filter { $0.type == "IDAT" }.map(\.data) == before.filter { $0.type == "IDAT" }.map(\.data))
        #expect(Array(output.suffix(12)) == pngChunk("IEND", []))
    }

    @Test func pngPaletteTransparencyAndAnimationStay() throws {
        let palette = try fixture("palette.png")
        let cleanedPalette = try #require(clean(palette, as: .png))
        #expect(!contains(cleanedPalette, "UVCHAT-COMMENT-SENTINEL"))
        #expect(pngChunks(cleanedPalette).map(\.type).contains("PLTE"))
        #expect(pngChunks(cleanedPalette).map(\.type).contains("tRNS"))

        let anim = try fixture("anim.png")
        let cleanedAnim = try #require(clean(anim, as: .png))
        #expect(cleanedAnim == anim)                                    // nothing in it to remove
        for t in ["acTL", "fcTL", "fdAT"] { #expect(pngChunks(cleanedAnim).contains { $0.type == t }) }
    }

    @Test func malformedPNGsAreRefused() throws {
        let good = try #require(clean(try fixture("palette.png"), as: .png))
        let chunks = pngChunks(good)
        func assemble(_ list: [PNGChunk]) -> [UInt8] {
            Array(good[0..<8]) + list.flatMap { pngChunk($0.type, $0.data) }
        }
        #expect(assemble(chunks) == good)
        // A wrong CRC, in a kept chunk and in one that would be dropped.
        var badCRC = good
        badCRC[8 + 8 + 13] ^= 1
        #expect(clean(badCRC, as: .png) == nil)
        var textBadCRC = assemble(chunks)
        let text = pngChunk("tEXt", Array("a\0b".utf8))
        textBadCRC.insert(contentsOf: text.dropLast() + [text.last! ^ 0x80], at: 8 + 25)
        #expect(clean(textBadCRC, as: .png) == nil)
        // An unknown critical chunk refuses, an unknown ancillary one is dropped.
        var critical = chunks
        critical.insert(PNGChunk(type: "ABCD", data: [1, 2], crcOK: true), at: 1)
        #expect(clean(assemble(critical), as: .png) == nil)
        var ancillary = chunks
        ancillary.insert(PNGChunk(type: "abCD", data: [1, 2], crcOK: true), at: 1)
        #expect(clean(assemble(ancillary), as: .png) == good)
        // IHDR not first, no IDAT, IDATs split by another chunk, IEND with data, bad IHDR values.
        #expect(clean(assemble(Array(chunks.dropFirst())), as: .png) == nil)
        #expect(clean(assemble(chunks.filter { $0.type != "IDAT" }), as: .png) == nil)
        let idat = try #require(chunks.firstIndex { $0.type == "IDAT" })
        var split = chunks
        split.insert(chunks[idat], at: idat + 1)
        split.insert(PNGChunk(type: "pHYs", data: [0, 0, 0, 1, 0, 0, 0, 1, 0], crcOK: true), at: idat + 1)
        #expect(clean(assemble(split), as: .png) == nil)
        var endData = chunks
        endData[endData.count - 1].data = [0]
        #expect(clean(assemble(endData), as: .png) == nil)
        var zeroWidth = chunks
        zeroWidth[0].data[0...3] = [0, 0, 0, 0]
        #expect(clean(assemble(zeroWidth), as: .png) == nil)
        var badDepth = chunks
        badDepth[0].data[8] = 16                                        // 16-bit palette
        #expect(clean(assemble(badDepth), as: .png) == nil)
        var noPalette = chunks.filter { $0.type != "PLTE" }
        noPalette[0].data[9] = 3
        #expect(clean(assemble(noPalette), as: .png) == nil)
    }

    // MARK: - WebP

    @Test func simpleWebPsAreKeptAndTrailingBytesGo() throws {
        let lossy = try fixture("lossy.webp")
        let riff = 8 + le32(lossy, 4)
        #expect(riff < lossy.count)
        let cleanedLossy = try #require(clean(lossy, as: .webp))
        #expect(cleanedLossy == Array(lossy[0..<riff]))
        #expect(webpChunks(cleanedLossy).map(\.0) == ["VP8 "])

        let lossless = try fixture("lossless.webp")
        let cleanedLossless = try #require(clean(lossless, as: .webp))
        #expect(cleanedLossless == lossless)
        #expect(webpChunks(cleanedLossless).map(\.0) == ["VP8L"])
    }

    @Test func extendedWebPLosesExifXMPAndUnknownChunks() throws {
        let input = try fixture("extended.webp")
        let before = webpChunks(input)
        for t in ["VP8X", "ICCP", "EXIF", "XMP ", "UVCx"] { #expect(before.contains { $0.0 == t }, "\(t)") }
        #expect(before[0].1[0] & 0x2C == 0x2C)
        let output = try #require(clean(input, as: .webp))
        for s in sentinels { #expect(!contains(output, s), "\(s)") }
        let after = webpChunks(output)
        #expect(after.map(\.0).filter { $0 != "ALPH" } == ["VP8X", "ICCP", "VP8 "])
        #expect(after[0].1[0] == before[0].1[0] & ~0x0C)
        #expect(Array(after[0].1[1...]) == Array(before[0].1[1...]))   // canvas size unchanged
        #expect(le32(output, 4) == output.count - 8)
        #expect(after.first { $0.0 == "VP8 " }?.1 == before.first { $0.0 == "VP8 " }?.1)
        #expect(after.first { $0.0 == "ICCP" }?.1 == before.first { $0.0 == "ICCP" }?.1)
    }

    @Test func animatedWebPKeepsFrames() throws {
        let input = try fixture("anim.webp")
        let before = webpChunks(input)
        #expect(before.contains { $0.0 == "EXIF" } && before.contains { $0.0 == "XMP " })
        let output = try #require(clean(input, as: .webp))
        for s in sentinels { #expect(!contains(output, s), "\(s)") }
        let after = webpChunks(output)
        #expect(after.map(\.0) == before.map(\.0).filter { $0 != "EXIF" && $0 != "XMP " })
        #expect(after.filter { $0.0 == "ANMF" }.map(\.1) == before.filter { $0.0 == "ANMF" }.map(\.1))
        #expect(after[0].1[0] & 0x0C == 0 && after[0].1[0] & 0x02 != 0)
        #expect(le32(output, 4) == output.count - 8)
    }

    @Test func malformedWebPsAreRefused() throws {
        let lossy = try #require(clean(try fixture("lossy.webp"), as: .webp))
        var badStart = lossy
        badStart[20 + 3] = 0
        #expect(clean(badStart, as: .webp) == nil)
        var interFrame = lossy
        interFrame[20] |= 1
        #expect(clean(interFrame, as: .webp) == nil)
        var tooLong = lossy
        tooLong[4] &+= 2
        #expect(clean(tooLong, as: .webp) == nil)
        var badChunk = lossy
        badChunk[16] &+= 2                                              // VP8 size past the RIFF size
        #expect(clean(badChunk, as: .webp) == nil)
        var wrongForm = lossy
        wrongForm[8] = UInt8(ascii: "A")
        #expect(clean(wrongForm, as: .webp) == nil)
        let lossless = try fixture("lossless.webp")
        var badSignature = lossless
        badSignature[20] = 0x2E
        #expect(clean(badSignature, as: .webp) == nil)
        // VP8X alone (no image, no frames).
        let extended = try #require(clean(try fixture("extended.webp"), as: .webp))
        var vp8xOnly = Array(extended[0..<30])
        vp8xOnly[4] = 22; vp8xOnly[5] = 0; vp8xOnly[6] = 0; vp8xOnly[7] = 0
        #expect(clean(vp8xOnly, as: .webp) == nil)
    }

    // MARK: - GIF

    @Test func gifLosesCommentsPlainTextAndXMPKeepsLooping() throws {
        let input = try fixture("anim.gif")
        let before = gifBlocks(input)
        #expect(before.contains("ext:fe") && before.contains("ext:1") && before.contains("ext:ff:XMP DataXMP"))
        let output = try #require(clean(input, as: .gif))
        for s in sentinels { #expect(!contains(output, s), "\(s)") }
        let after = gifBlocks(output)
        #expect(after == before.filter { $0 != "ext:fe" && $0 != "ext:1" && $0 != "ext:ff:XMP DataXMP" })
        #expect(after.contains("ext:ff:NETSCAPE2.0") && after.filter { $0 == "image" }.count == 3)
        #expect(after.last == "trailer" && output.last == 0x3B)
    }

    @Test func malformedGIFsAreRefused() throws {
        let good = try #require(clean(try fixture("anim.gif"), as: .gif))
        #expect(clean(Array(good.dropLast()), as: .gif) == nil)         // no trailer
        let table = good[10] & 0x80 != 0 ? 3 << (Int(good[10] & 7) + 1) : 0
        #expect(clean(Array(good[0..<(13 + table)]) + [0x3B], as: .gif) == nil)   // no image
        var badVersion = good
        badVersion[4] = UInt8(ascii: "8")
        #expect(clean(badVersion, as: .gif) == nil)
        // An unknown block introducer after the screen descriptor.
        var junk = good
        junk.insert(0x42, at: 13 + table)
        #expect(clean(junk, as: .gif) == nil)
        // LZW minimum code size 0 in the first image.
        let image = try #require((13 + table..<good.count).first { good[$0] == 0x2C })
        var codeSize = good
        let lct = good[image + 9] & 0x80 != 0 ? 3 << (Int(good[image + 9] & 7) + 1) : 0
        codeSize[image + 10 + lct] = 0
        #expect(clean(codeSize, as: .gif) == nil)
    }

    // MARK: - Every fixture

    @Test func cleaningIsIdempotentAndNeverGrows() throws {
        for (name, type) in allFixtures {
            let input = try fixture(name)
            let once = try #require(clean(input, as: type), "\(name)")
            #expect(once.count <= input.count, "\(name)")
            let twice = try #require(clean(once, as: type), "\(name)")
            #expect(twice == once, "\(name)")
        }
    }

    @Test func truncatedImagesAreRefused() throws {
        for (name, type) in allFixtures {
            // Every strict prefix of a cleaned image lacks its end (EOI, IEND, RIFF size, trailer).
            let cleaned = try #require(clean(try fixture(name), as: type))
            let step = max(1, cleaned.count / 400)
            for length in stride(from: 0, to: cleaned.count, by: step) {
                #expect(clean(Array(cleaned[0..<length]), as: type) == nil, "\(name) cut at \(length)")
            }
            for length in max(0, cleaned.count - 40)..<cleaned.count {
                #expect(clean(Array(cleaned[0..<length]), as: type) == nil, "\(name) cut at \(length)")
            }
        }
    }

    @Test func imagesOfferedAsAnotherTypeAreRefused() throws {
        for (name, type) in allFixtures {
            let input = try fixture(name)
            for other in ImageType.allCases where other != type {
                #expect(clean(input, as: other) == nil, "\(name) as \(other)")
            }
        }
    }

    @Test func emptyInputIsRefused() {
        for type in ImageType.allCases {
            #expect(ImageCleaner.clean(UnsafeMutableRawBufferPointer(start: nil, count: 0), as: type) == nil)
        }
    }

    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32.checksum($0) } == 0xCBF4_3926)
    }
}
