/// The image types a client may send (PROTOCOL.md B.3), named by the MIME type the client offers.
///
/// The offered type is only a claim: `ImageCleaner.clean(_:as:)` checks the bytes against it by structure, so a PNG
/// offered as `image/jpeg` is refused rather than relabelled.
public enum ImageType: UInt8, Sendable, CaseIterable {
    case jpeg, png, webp, gif

    /// Exact, case-sensitive ASCII match (`image/jpeg`, `image/png`, `image/webp`, `image/gif`), with no parameters
    /// and no surrounding space: the page sends these literals, so anything else is not ours. Compares bytes against
    /// static strings and never allocates.
    public init?(mime: UnsafeRawBufferPointer) {
        // All four share the prefix "image/"; the length alone then tells them apart but for png/gif (both 9).
        guard mime.count >= 9, Self.equal(mime, 0, "image/") else { return nil }
        switch mime.count {
        case 10 where Self.equal(mime, 6, "jpeg"): self = .jpeg
        case 10 where Self.equal(mime, 6, "webp"): self = .webp
        case 9 where Self.equal(mime, 6, "png"): self = .png
        case 9 where Self.equal(mime, 6, "gif"): self = .gif
        default: return nil
        }
    }

    /// Convenience over `init?(mime: UnsafeRawBufferPointer)`.
    public init?(mime: String) {
        var text = mime
        guard let type = text.withUTF8({ Self(mime: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = type
    }

    public var mime: String {
        switch self {
        case .jpeg: return "image/jpeg"
        case .png: return "image/png"
        case .webp: return "image/webp"
        case .gif: return "image/gif"
        }
    }

    /// `bytes[offset...]` starts with `literal` (bounds checked).
    private static func equal(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ literal: StaticString) -> Bool {
        let length = literal.utf8CodeUnitCount
        guard offset >= 0, bytes.count - offset >= length else { return false }
        let expected = literal.utf8Start
        for i in 0..<length where bytes[offset + i] != expected[i] { return false }
        return true
    }
}
