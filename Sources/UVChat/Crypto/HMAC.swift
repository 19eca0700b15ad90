/// Keyed message authentication from OpenSSL's libcrypto (README, "Why OpenSSL's libcrypto"): one synchronous call
/// of about a microsecond, so it runs on the loop.
enum HMAC {
    /// Whether the library is there; the daemon checks at start-up when it will need it.
    static var isAvailable: Bool { LibCrypto.shared != nil }

    /// HMAC-SHA1 (RFC 2104): what coturn's `use-auth-secret` expects of a TURN credential.
    static func sha1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        guard let crypto = LibCrypto.shared else { preconditionFailure("libcrypto is needed and was checked at start-up") }
        var out = [UInt8](repeating: 0, count: LibCrypto.maxDigestBytes)
        var length: UInt32 = 0
        let done = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    crypto.hmac(crypto.sha1(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, o.baseAddress, &length)
                }
            }
        }
        // HMAC fails only when the digest cannot be set up, which for SHA-1 means libcrypto itself is broken.
        precondition(done != nil && length == 20, "libcrypto's HMAC-SHA1 failed")
        out.removeSubrange(Int(length)...)
        return out
    }
}
