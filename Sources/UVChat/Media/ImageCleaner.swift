/// Checks that bytes are a well-formed image of the offered type and removes, in place, every piece of metadata that
/// can identify a person or a place (PROTOCOL.md B.3), keeping everything a browser needs to display the image.
///
/// What goes, per type (the per-type cleaners document the details and the readings taken where the rule is loose):
/// - JPEG: every APPn segment but JFIF (APP0, cut to its base with no thumbnail), ICC (APP2 `ICC_PROFILE`) and Adobe
///   (APP14); comments; fill bytes before markers. EXIF orientation goes with the Exif segment: the uvchat page
///   re-encodes images through a canvas, which applies the orientation to the pixels first.
/// - PNG: tEXt, zTXt, iTXt, tIME, eXIf and every ancillary chunk not on a list of display chunks.
/// - WebP: EXIF, XMP and unknown chunks (the VP8X flags and the RIFF size are updated).
/// - GIF: comment, plain-text and unknown extensions, application extensions other than looping.
/// - Every type: whatever follows the end of the image.
///
/// Design: cleaning is compaction in place. Each kept piece is moved toward the front (`memmove` semantics, and the
/// write position never passes the read position), so nothing is allocated; each cleaner makes one pass over the
/// container and never decodes pixels, so the cost is linear in the input. The result is itself well formed and
/// cleaning it again changes nothing (the fuzz target `image` checks both).
public enum ImageCleaner {
    /// Cleans `bytes` in place: on success the cleaned image is `bytes[0..<count]` (never longer than the input);
    /// nil when the bytes are not a well-formed image of `type` (the buffer's contents are then unspecified).
    public static func clean(_ bytes: UnsafeMutableRawBufferPointer, as type: ImageType) -> Int? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        var buffer = CompactingBuffer(base: base, count: bytes.count)
        switch type {
        case .jpeg: return JPEGCleaner.clean(&buffer)
        case .png: return PNGCleaner.clean(&buffer)
        case .webp: return WebPCleaner.clean(&buffer)
        case .gif: return GIFCleaner.clean(&buffer)
        }
    }
}

/// The input being compacted: reads anywhere at or after `written`, writes at `written`.
///
/// Readers check their ranges against `count` before they read; the accessors check again with preconditions, so a
/// mistake in a cleaner stops the process instead of reading outside the buffer.
struct CompactingBuffer {
    let base: UnsafeMutableRawPointer
    let count: Int
    /// The length of the cleaned output so far: `base[0..<written]`.
    private(set) var written = 0

    init(base: UnsafeMutableRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    /// `length` bytes from `offset` lie inside the input.
    @inline(__always)
    func has(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && count - offset >= length
    }

    @inline(__always)
    subscript(_ offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < count)
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    func be16(_ offset: Int) -> Int {
        Int(self[offset]) << 8 | Int(self[offset + 1])
    }

    func be32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8
            | UInt32(self[offset + 3])
    }

    func le16(_ offset: Int) -> Int {
        Int(self[offset]) | Int(self[offset + 1]) << 8
    }

    func le24(_ offset: Int) -> Int {
        Int(self[offset]) | Int(self[offset + 1]) << 8 | Int(self[offset + 2]) << 16
    }

    func le32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }

    /// The bytes at `offset` spell `literal` (false when they run past the end). No allocation.
    func matches(_ offset: Int, _ literal: StaticString) -> Bool {
        let length = literal.utf8CodeUnitCount
        guard has(offset, length) else { return false }
        let expected = literal.utf8Start
        for i in 0..<length where self[offset + i] != expected[i] { return false }
        return true
    }

    /// Moves `length` bytes at `offset` (at or after the write position) to the write position.
    mutating func keep(_ offset: Int, _ length: Int) {
        precondition(offset >= written && has(offset, length), "a write would overtake the read")
        if offset != written && length > 0 {
            (base + written).copyMemory(from: base + offset, byteCount: length)
        }
        written += length
    }

    /// Appends one byte; the caller has already read whatever lived at the write position.
    mutating func append(_ byte: UInt8) {
        precondition(written < count)
        base.storeBytes(of: byte, toByteOffset: written, as: UInt8.self)
        written += 1
    }

    /// Overwrites an already written byte.
    func patch(_ offset: Int, _ byte: UInt8) {
        precondition(offset >= 0 && offset < written)
        base.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
    }

    func patchLE32(_ offset: Int, _ value: UInt32) {
        for i in 0..<4 { patch(offset + i, UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))) }
    }
}
