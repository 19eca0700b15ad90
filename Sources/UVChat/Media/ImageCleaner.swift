/// Placeholder until the cleaner lands: checks only the signature.
public enum ImageCleaner {
    public static func clean(_ bytes: UnsafeMutableRawBufferPointer, as type: ImageType) -> Int? {
        let sig: [UInt8]
        switch type {
        case .jpeg: sig = [0xFF, 0xD8, 0xFF]
        case .png: sig = [0x89, 0x50, 0x4E, 0x47]
        case .webp: sig = [0x52, 0x49, 0x46, 0x46]
        case .gif: sig = [0x47, 0x49, 0x46, 0x38]
        }
        guard bytes.count >= sig.count, zip(sig, bytes).allSatisfy({ $0 == $1 }) else { return nil }
        return bytes.count
    }
}
