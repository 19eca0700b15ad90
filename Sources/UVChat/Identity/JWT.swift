/// Operator tokens (PROTOCOL.md B.5): JSON Web Tokens (RFC 7519) in the JWS compact serialization (RFC 7515),
/// signed with HS256 (RFC 7518 section 3.2) or EdDSA over Ed25519 (RFC 8037). Verified once per upgrade, never per
/// message. The cryptography is libcrypto's (`Crypto/`); only the parsing is ours, and it is strict: three
/// base64url segments without padding, a header whose `alg` must match a configured key type, no `crit`.
public struct TokenClaims: Equatable, Sendable {
    /// `sub`: who the operator says this is (opaque to uvchat), 1 to 256 bytes.
    public let subject: String
    /// `grp`: people with a group are paired only within it; 1 to 64 bytes when present.
    public let group: String?
    /// `exp`, in seconds since 1970 (a fraction is dropped).
    public let expires: Int64
}

public enum TokenRejection: Error, Equatable, Sendable {
    case oversized, malformed, unsupportedAlgorithm, badSignature, expired, notYetValid, missingClaim, wrongAudience
}

/// The keys tokens are checked with, from files the operator names.
public struct JWTKeys: Sendable {
    /// HS256 secrets (each at least 32 bytes; the daemon checks). Every one verifies: rotation adds the new one
    /// first and removes the old one once its tokens have expired.
    public var hmacSecrets: [Secret] = []
    /// Ed25519 public keys, 32 raw bytes each.
    public var ed25519PublicKeys: [[UInt8]] = []
    /// Clock skew allowed on `exp` and `nbf`.
    public var leewaySeconds: Int64 = 60
    /// When set, `aud` must name it.
    public var audience: String? = nil

    public init() {}

    public var isEmpty: Bool { hmacSecrets.isEmpty && ed25519PublicKeys.isEmpty }

    /// The DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410 section 4) is this fixed prefix (SEQUENCE,
    /// AlgorithmIdentifier with OID 1.3.101.112, BIT STRING of 33 bytes) and then the 32 key bytes.
    private static let spkiPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    /// From a PEM "-----BEGIN PUBLIC KEY-----" block (what `openssl pkey -pubout` and the usual JWT libraries
    /// write): the raw 32-byte key, or nil for anything else (an RSA or EC key, a private key, bad base64).
    public static func ed25519PublicKey(pem: [UInt8]) -> [UInt8]? {
        let lines = String(decoding: pem, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.filter { !$0.isWhitespace } }
        guard let b = lines.firstIndex(of: "-----BEGINPUBLICKEY-----"),
              let e = lines.firstIndex(of: "-----ENDPUBLICKEY-----"), b < e else { return nil }
        let body = lines[(b + 1)..<e].joined()
        guard let der = Base64.decode(body), der.count == spkiPrefix.count + 32,
              Array(der.prefix(spkiPrefix.count)) == spkiPrefix else { return nil }
        return Array(der.suffix(32))
    }
}

public struct JWTVerifier: Sendable {
    public static let maxTokenBytes = 4096
    static let maxSubjectBytes = 256
    static let maxGroupBytes = 64

    let keys: JWTKeys

    public init(keys: JWTKeys) { self.keys = keys }

    public func verify(_ token: Substring, now unixSeconds: Int64) -> Result<TokenClaims, TokenRejection> {
        switch verifySignature(token) {
        case .failure(let rejection): return .failure(rejection)
        case .success(let payload): return claims(payload, now: unixSeconds)
        }
    }

    /// The signature and the header's rules; the payload's bytes when they hold.
    func verifySignature(_ token: Substring) -> Result<[UInt8], TokenRejection> {
        let bytes = Array(token.utf8)
        guard bytes.count <= JWTVerifier.maxTokenBytes else { return .failure(.oversized) }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty,
              let headerBytes = JWTVerifier.decode(parts[0]), let payload = JWTVerifier.decode(parts[1]),
              let signature = JWTVerifier.decode(parts[2]), let header = JSONObject(headerBytes)
        else { return .failure(.malformed) }
        // Extensions we do not understand must not be ignored (RFC 7515 section 4.1.11).
        guard header["crit"] == nil else { return .failure(.malformed) }
        guard case .string(let alg) = header["alg"] else { return .failure(.malformed) }
        let signingInput = Array(bytes[0..<(parts[0].count + 1 + parts[1].count)])
        // The algorithm must match a configured key type: an HS256 token is never checked against a public key
        // used as an HMAC secret, and "none" is never accepted.
        switch alg {
        case "HS256" where !keys.hmacSecrets.isEmpty:
            for secret in keys.hmacSecrets
            where HMAC.constantTimeEqual(HMAC.sha256(key: secret.bytes, message: signingInput), signature) {
                return .success(payload)
            }
            return .failure(.badSignature)
        case "EdDSA" where !keys.ed25519PublicKeys.isEmpty:
            for key in keys.ed25519PublicKeys
            where Ed25519.verify(publicKey: key, signature: signature, message: signingInput) {
                return .success(payload)
            }
            return .failure(.badSignature)
        default:
            return .failure(.unsupportedAlgorithm)
        }
    }

    private func claims(_ payload: [UInt8], now: Int64) -> Result<TokenClaims, TokenRejection> {
        guard let claims = JSONObject(payload) else { return .failure(.malformed) }
        guard case .string(let subject) = claims["sub"], !subject.isEmpty else {
            return .failure(claims["sub"] == nil ? .missingClaim : .malformed)
        }
        guard subject.utf8.count <= JWTVerifier.maxSubjectBytes else { return .failure(.malformed) }
        guard case .number(let exp) = claims["exp"] else {
            return .failure(claims["exp"] == nil ? .missingClaim : .malformed)
        }
        guard exp.isFinite, exp > -1e15, exp < 1e15 else { return .failure(.malformed) }
        let expires = Int64(exp.rounded(.down))
        if expires + keys.leewaySeconds <= now { return .failure(.expired) }
        switch claims["nbf"] {
        case nil: break
        case .number(let nbf)?:
            guard nbf.isFinite, nbf > -1e15, nbf < 1e15 else { return .failure(.malformed) }
            if Int64(nbf.rounded(.down)) > now + keys.leewaySeconds { return .failure(.notYetValid) }
        default:
            return .failure(.malformed)
        }
        if let audience = keys.audience {
            switch claims["aud"] {
            case .string(let aud)? where aud == audience: break
            case .array(let list)? where list.contains(.string(audience)): break
            default: return .failure(.wrongAudience)
            }
        }
        var group: String?
        switch claims["grp"] {
        case nil, .null?: break
        case .string(let g)? where !g.isEmpty && g.utf8.count <= JWTVerifier.maxGroupBytes: group = g
        default: return .failure(.malformed)
        }
        return .success(TokenClaims(subject: subject, group: group, expires: expires))
    }

    private static func decode(_ part: ArraySlice<UInt8>) -> [UInt8]? {
        part.withUnsafeBytes { Base64.decodeURL($0) }
    }
}
