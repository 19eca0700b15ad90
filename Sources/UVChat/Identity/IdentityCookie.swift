/// The anonymous identity (PROTOCOL.md B.5): an opaque, signed cookie that lets blocks and reports outlive a page
/// reload. It names nobody: 128 random bits and an expiry, signed so that nobody can make up identities of their
/// own (and so many reporters) without asking the server for each. Never shown to the partner, never logged.
///
/// Value: base64url(version 1 | expiry, 8 bytes big-endian | 16 random bytes | the first 16 bytes of
/// HMAC-SHA256(key, "uvchat_id.v1" | the 25 bytes before)): 41 bytes, 55 characters.
public struct IdentityCookie: Equatable, Sendable {
    public let high: UInt64
    public let low: UInt64
    /// Seconds since 1970.
    public let expires: UInt64

    public init(high: UInt64, low: UInt64, expires: UInt64) {
        self.high = high
        self.low = low
        self.expires = expires
    }
}

public struct IdentityCookies: Sendable {
    public static let name = "uvchat_id"
    static let version: UInt8 = 1
    static let domain = Array("uvchat_id.v1".utf8)
    static let macBytes = 16
    static let valueBytes = 1 + 8 + 16 + macBytes

    let keys: [Secret]
    let lifetimeSeconds: UInt64

    /// `keys`: the first signs, every one verifies (rotation: add the new key first, drop the old one after a
    /// cookie lifetime, or at once to forget every identity).
    public init(keys: [Secret], lifetimeSeconds: UInt64) {
        precondition(!keys.isEmpty, "the identity cookie needs a key")
        self.keys = keys
        self.lifetimeSeconds = lifetimeSeconds
    }

    public func verify(_ value: Substring, now: UInt64) -> (cookie: IdentityCookie, needsRenewal: Bool)? {
        guard value.utf8.count <= 128 else { return nil }
        let text = Array(value.utf8)
        guard let bytes = text.withUnsafeBytes({ Base64.decodeURL($0) }), bytes.count == IdentityCookies.valueBytes,
              bytes[0] == IdentityCookies.version else { return nil }
        let body = Array(bytes[0..<(IdentityCookies.valueBytes - IdentityCookies.macBytes)])
        let mac = Array(bytes[(IdentityCookies.valueBytes - IdentityCookies.macBytes)...])
        guard let index = keys.firstIndex(where: { HMAC.constantTimeEqual(IdentityCookies.mac(body, key: $0), mac) })
        else { return nil }
        let expires = IdentityCookies.read(body, at: 1)
        guard expires > now else { return nil }
        let cookie = IdentityCookie(high: IdentityCookies.read(body, at: 9), low: IdentityCookies.read(body, at: 17),
                                    expires: expires)
        // Renewed when half its life has gone, or when an older key signed it (so that key can be retired).
        let renew = index != 0 || expires - now < lifetimeSeconds / 2
        return (cookie, renew)
    }

    public func issue(id: IdentityCookie?, now: UInt64, random: inout some RandomNumberGenerator) -> String {
        let high = id?.high ?? random.next()
        let low = id?.low ?? random.next()
        var body: [UInt8] = [IdentityCookies.version]
        IdentityCookies.append(now + lifetimeSeconds, to: &body)
        IdentityCookies.append(high, to: &body)
        IdentityCookies.append(low, to: &body)
        body += IdentityCookies.mac(body, key: keys[0])
        var out = Array("\(IdentityCookies.name)=".utf8)
        Base64.encode(body, url: true, into: &out)
        out += Array("; Path=/; Max-Age=\(lifetimeSeconds); Secure; HttpOnly; SameSite=Lax".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    static func mac(_ body: [UInt8], key: Secret) -> [UInt8] {
        Array(HMAC.sha256(key: key.bytes, message: domain + body).prefix(macBytes))
    }

    private static func append(_ v: UInt64, to out: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    private static func read(_ bytes: [UInt8], at i: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<8 { v = v << 8 | UInt64(bytes[i + k]) }
        return v
    }
}
