/// The image types a version 2 client may offer (PROTOCOL.md B.3). Placeholder until the cleaner lands.
public enum ImageType: UInt8, Sendable {
    case jpeg, png, webp, gif

    public var mime: String {
        switch self {
        case .jpeg: "image/jpeg"
        case .png: "image/png"
        case .webp: "image/webp"
        case .gif: "image/gif"
        }
    }
}
