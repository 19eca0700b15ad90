/// Keyed message authentication from OpenSSL's libcrypto (README, "Why OpenSSL's libcrypto"): one synchronous call
/// of about a microsecond, so it runs on the loop.
enum HMAC {
    /// Whether the library is there; the daemon checks at start-up when it will need it.
    static var isAvailable: Bool { LibCrypto.shared != nil }

    /// HMAC-SHA1 (RFC 2104): what coturn's `use-auth-secret` expects of a TURN credential.
    static func sha1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        mac(key: key, message: message, length: 20) { $0.sha1() }
    }

    /// HMAC-SHA256: HS256 tokens (RFC 7518 section 3.2) and the identity cookie's signature.
    static func sha256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        mac(key: key, message: message, length: 32) { $0.sha256() }
    }

    private static func mac(key: [UInt8], message: [UInt8], length expected: UInt32,
                            digest: (LibCrypto) -> OpaquePointer?) -> [UInt8] {
        guard let crypto = LibCrypto.shared else { preconditionFailure("libcrypto is needed and was checked at start-up") }
        var out = [UInt8](repeating: 0, count: LibCrypto.maxDigestBytes)
        var length: UInt32 = 0
        let done = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    crypto.hmac(digest(crypto), k.baseAddress, Int32(k.count), m.baseAddress, m.count, o.baseAddress, &length)
                }
            }
        }
        // HMAC fails only when the digest cannot be set up, which means libcrypto itself is broken.
        precondition(done != nil && length == expected, "libcrypto's HMAC failed")
        out.removeSubrange(Int(length)...)
        return out
    }

    /// Equal bytes, compared in time that does not depend on where they differ (a MAC check must not tell an
    /// attacker how many leading bytes of a forgery were right).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count, let crypto = LibCrypto.shared else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in crypto.memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }
}

/// Ed25519 signatures (RFC 8032) through libcrypto's EVP interface: EdDSA tokens (RFC 8037).
enum Ed25519 {
    static func verify(publicKey: [UInt8], signature: [UInt8], message: [UInt8]) -> Bool {
        guard publicKey.count == 32, signature.count == 64, let crypto = LibCrypto.shared,
              let key = publicKey.withUnsafeBufferPointer({ crypto.newRawPublicKey(LibCrypto.ed25519, nil, $0.baseAddress, 32) })
        else { return false }
        defer { crypto.freeKey(key) }
        guard let context = crypto.newContext() else { return false }
        defer { crypto.freeContext(context) }
        // Ed25519 hashes inside the signature scheme: no digest is named.
        guard crypto.digestVerifyInit(context, nil, nil, nil, key) == 1 else { return false }
        return signature.withUnsafeBufferPointer { s in
            message.withUnsafeBufferPointer { m in crypto.digestVerify(context, s.baseAddress, 64, m.baseAddress, m.count) == 1 }
        }
    }

    /// For the tests, which mint EdDSA tokens: the 64-byte signature under a 32-byte private key.
    static func sign(privateKey: [UInt8], message: [UInt8]) -> [UInt8]? {
        guard privateKey.count == 32, let crypto = LibCrypto.shared,
              let key = privateKey.withUnsafeBufferPointer({ crypto.newRawPrivateKey(LibCrypto.ed25519, nil, $0.baseAddress, 32) })
        else { return nil }
        defer { crypto.freeKey(key) }
        guard let context = crypto.newContext() else { return nil }
        defer { crypto.freeContext(context) }
        guard crypto.digestSignInit(context, nil, nil, nil, key) == 1 else { return nil }
        var signature = [UInt8](repeating: 0, count: 64)
        var length = 64
        let ok = signature.withUnsafeMutableBufferPointer { s in
            message.withUnsafeBufferPointer { m in crypto.digestSign(context, s.baseAddress, &length, m.baseAddress, m.count) }
        }
        return ok == 1 && length == 64 ? signature : nil
    }
}
