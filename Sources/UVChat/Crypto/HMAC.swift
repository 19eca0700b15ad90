import CCrypto

/// Keyed message authentication from OpenSSL's libcrypto (README, "Dependencies", says why OpenSSL): one
/// synchronous call, microseconds, so it runs on the loop. Only this folder imports the C library.
enum HMAC {
    /// HMAC-SHA1 (RFC 2104): what coturn's `use-auth-secret` expects of a TURN credential.
    static func sha1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let done = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    CCrypto.HMAC(EVP_sha1(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, o.baseAddress, &length)
                }
            }
        }
        // HMAC fails only when the digest cannot be set up, which for SHA-1 means libcrypto itself is broken.
        precondition(done != nil && length == 20, "libcrypto's HMAC-SHA1 failed")
        out.removeSubrange(Int(length)...)
        return out
    }
}
