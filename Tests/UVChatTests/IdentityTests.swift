import Foundation
import Testing
@testable import UVChat

// Operator tokens (RFC 7519 JWTs, HS256 and EdDSA) and the signed identity cookie (PROTOCOL.md B.5), with the
// RFCs' own examples and every way a token can be refused.

private func b64url(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    Base64.encode(bytes, url: true, into: &out)
    return String(decoding: out, as: UTF8.self)
}

private func unb64url(_ text: String) -> [UInt8] {
    Array(text.utf8).withUnsafeBytes { Base64.decodeURL($0) } ?? []
}

/// RFC 7515 appendix A.1: the HS256 example and its key (the JWK's `k`).
private let rfc7515Key = unb64url("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
private let rfc7515Token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    + ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

/// RFC 8037 appendix A: the Ed25519 key pair (A.1, A.2) and the signed example (A.4).
private let rfc8037Public = unb64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
private let rfc8037Private = unb64url("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
private let rfc8037Token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    + ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

private let secret = Array("an HS256 test secret of 32 bytes+".utf8)
private let now: Int64 = 1_800_000_000

private func hsKeys() -> JWTKeys {
    var keys = JWTKeys()
    keys.hmacSecrets = [Secret(secret)]
    return keys
}

private func edKeys() -> JWTKeys {
    var keys = JWTKeys()
    keys.ed25519PublicKeys = [rfc8037Public]
    return keys
}

/// A compact JWS over these JSON texts, signed as `alg` says (HS256 with `key`, EdDSA with the RFC 8037 key).
private func token(_ claims: String, key: [UInt8] = secret) -> String {
    token(#"{"alg":"HS256","typ":"JWT"}"#, claims, key: key)
}

private func token(_ header: String, _ claims: String, key: [UInt8] = secret) -> String {
    let input = b64url(Array(header.utf8)) + "." + b64url(Array(claims.utf8))
    let signature = header.contains("EdDSA")
        ? Ed25519.sign(privateKey: rfc8037Private, message: Array(input.utf8)) ?? []
        : HMAC.sha256(key: key, message: Array(input.utf8))
    return input + "." + b64url(signature)
}

private func verify(_ t: String, _ keys: JWTKeys = hsKeys(), at time: Int64 = now) -> Result<TokenClaims, TokenRejection> {
    JWTVerifier(keys: keys).verify(Substring(t), now: time)
}

private let good = #"{"sub":"user-7","exp":1800000600,"grp":"class-3b"}"#

@Suite struct JWTTests {
    @Test func rfc7515HS256ExampleVerifiesAndLacksASubject() {
        var keys = JWTKeys()
        keys.hmacSecrets = [Secret(rfc7515Key)]
        let verifier = JWTVerifier(keys: keys)
        #expect(throws: Never.self) { try verifier.verifySignature(Substring(rfc7515Token)).get() }
        // Its claims have no `sub`: valid as a JWS, refused as a uvchat token. Before its `exp` (2011).
        #expect(verifier.verify(Substring(rfc7515Token), now: 1_300_000_000) == .failure(.missingClaim))
        // One changed character of the signature: refused.
        let forged = String(rfc7515Token.dropLast()) + "Y"
        #expect(verifier.verify(Substring(forged), now: 1_300_000_000) == .failure(.badSignature))
    }

    @Test func rfc8037Ed25519ExampleVerifies() {
        let verifier = JWTVerifier(keys: edKeys())
        let payload = try? verifier.verifySignature(Substring(rfc8037Token)).get()
        #expect(payload == Array("Example of Ed25519 signing".utf8))
        // The payload is not a claims object.
        #expect(verifier.verify(Substring(rfc8037Token), now: now) == .failure(.malformed))
        var bytes = Array(rfc8037Token.utf8)
        bytes[bytes.count - 5] ^= 0x01
        #expect((try? verifier.verifySignature(Substring(String(decoding: bytes, as: UTF8.self))).get()) == nil)
        // Our own signing helper makes the RFC's signature (Ed25519 is deterministic).
        #expect(token(#"{"alg":"EdDSA"}"#, "Example of Ed25519 signing") == rfc8037Token)
    }

    @Test func validTokensGiveTheirClaims() {
        #expect(verify(token(good)) == .success(TokenClaims(subject: "user-7", group: "class-3b", expires: 1_800_000_600)))
        let ed = token(#"{"alg":"EdDSA","typ":"JWT"}"#, #"{"sub":"a","exp":1800000600.75}"#)
        #expect(verify(ed, edKeys()) == .success(TokenClaims(subject: "a", group: nil, expires: 1_800_000_600)))
        // Rotation: every configured secret verifies.
        var two = hsKeys()
        two.hmacSecrets.insert(Secret(Array("the next HS256 secret, also 32 bytes".utf8)), at: 0)
        #expect((try? verify(token(good), two).get())?.subject == "user-7")
    }

    @Test func timeClaimsHoldWithTheLeeway() {
        #expect(verify(token(#"{"sub":"a","exp":1799999950}"#)).map(\.subject) == .success("a"))   // within 60 s
        #expect(verify(token(#"{"sub":"a","exp":1799999940}"#)) == .failure(.expired))
        #expect(verify(token(#"{"sub":"a","exp":1800000600,"nbf":1800000050}"#)).map(\.subject) == .success("a"))
        #expect(verify(token(#"{"sub":"a","exp":1800000600,"nbf":1800000061}"#)) == .failure(.notYetValid))
        #expect(verify(token(#"{"sub":"a","exp":1800000600,"nbf":"soon"}"#)) == .failure(.malformed))
        var strict = hsKeys()
        strict.leewaySeconds = 0
        #expect(verify(token(#"{"sub":"a","exp":1800000000}"#), strict) == .failure(.expired))
    }

    @Test func algorithmsMustMatchTheKeyType() {
        // No confusion: an HS256 token where only an Ed25519 key is configured (even one made with the public key
        // as its secret), an EdDSA token where only a secret is, `none`, and algorithms we do not speak.
        #expect(verify(token(good, key: rfc8037Public), edKeys()) == .failure(.unsupportedAlgorithm))
        #expect(verify(token(#"{"alg":"EdDSA"}"#, good), hsKeys()) == .failure(.unsupportedAlgorithm))
        let none = b64url(Array(#"{"alg":"none"}"#.utf8)) + "." + b64url(Array(good.utf8)) + "."
        #expect(verify(none) == .failure(.malformed))
        let noneSigned = b64url(Array(#"{"alg":"none"}"#.utf8)) + "." + b64url(Array(good.utf8)) + ".AAAA"
        #expect(verify(noneSigned) == .failure(.unsupportedAlgorithm))
        #expect(verify(token(#"{"alg":"HS512"}"#, good)) == .failure(.unsupportedAlgorithm))
        #expect(verify(token(#"{"alg":"RS256"}"#, good)) == .failure(.unsupportedAlgorithm))
        #expect(verify(token(#"{"typ":"JWT"}"#, good)) == .failure(.malformed))
        #expect(verify(token(#"{"alg":"HS256","crit":["exp"]}"#, good)) == .failure(.malformed))
        #expect(verify(token(good, key: Array("another secret entirely, 32 bytes".utf8))) == .failure(.badSignature))
    }

    @Test func malformedAndOversizedTokensAreRefused() {
        let t = token(good)
        let parts = t.split(separator: ".").map(String.init)
        #expect(verify(parts[0] + "." + parts[1]) == .failure(.malformed))
        #expect(verify(t + ".x") == .failure(.malformed))
        #expect(verify(parts[0] + "." + parts[1] + "=." + parts[2]) == .failure(.malformed))   // padding
        #expect(verify(parts[0] + ".e*J." + parts[2]) == .failure(.malformed))
        #expect(verify("") == .failure(.malformed))
        let big = token(#"{"sub":"a","exp":1800000600,"pad":""# + String(repeating: "x", count: 4000) + #""}"#)
        #expect(big.utf8.count > JWTVerifier.maxTokenBytes)
        #expect(verify(big) == .failure(.oversized))
        // A signed payload that is not JSON, or breaks the claim rules.
        #expect(verify(token("not json")) == .failure(.malformed))
        #expect(verify(token(#"{"exp":1800000600}"#)) == .failure(.missingClaim))
        #expect(verify(token(#"{"sub":"a"}"#)) == .failure(.missingClaim))
        #expect(verify(token(#"{"sub":"","exp":1800000600}"#)) == .failure(.malformed))
        #expect(verify(token(#"{"sub":7,"exp":1800000600}"#)) == .failure(.malformed))
        #expect(verify(token(#"{"sub":"a","exp":1800000600,"grp":5}"#)) == .failure(.malformed))
        #expect(verify(token(#"{"sub":"a","exp":"1800000600"}"#)) == .failure(.malformed))
        #expect(verify(token(#"{"sub":"\ud800","exp":1800000600}"#)) == .failure(.malformed))
    }

    @Test func theAudienceIsCheckedWhenConfigured() {
        var keys = hsKeys()
        keys.audience = "chat.example"
        #expect(verify(token(#"{"sub":"a","exp":1800000600,"aud":"chat.example"}"#), keys).map(\.subject) == .success("a"))
        #expect(verify(token(#"{"sub":"a","exp":1800000600,"aud":["x","chat.example"]}"#), keys).map(\.subject) == .success("a"))
        #expect(verify(token(#"{"sub":"a","exp":1800000600,"aud":"other"}"#), keys) == .failure(.wrongAudience))
        #expect(verify(token(#"{"sub":"a","exp":1800000600}"#), keys) == .failure(.wrongAudience))
    }

    @Test func pemPublicKeysAreRead() {
        // The RFC 8037 public key as `openssl pkey -pubout` writes it.
        let der: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00] + rfc8037Public
        let pem = "-----BEGIN PUBLIC KEY-----\n" + Base64.encode(der) + "\n-----END PUBLIC KEY-----\n"
        #expect(JWTKeys.ed25519PublicKey(pem: Array(pem.utf8)) == rfc8037Public)
        #expect(JWTKeys.ed25519PublicKey(pem: Array(pem.replacingOccurrences(of: "PUBLIC", with: "PRIVATE").utf8)) == nil)
        let ec = "-----BEGIN PUBLIC KEY-----\n" + Base64.encode([0x30, 0x59] + Array(repeating: 1, count: 89))
            + "\n-----END PUBLIC KEY-----\n"
        #expect(JWTKeys.ed25519PublicKey(pem: Array(ec.utf8)) == nil)
    }
}

private struct Counting: RandomNumberGenerator {
    var n: UInt64 = 0
    mutating func next() -> UInt64 { n += 1; return n &* 0x9E37_79B9_7F4A_7C15 }
}

@Suite struct IdentityCookieTests {
    let keyA = Secret(Array("identity cookie key A, 32 bytes!!".utf8))
    let keyB = Secret(Array("identity cookie key B, 32 bytes!!".utf8))

    private func value(_ header: String) -> Substring {
        let pair = header.split(separator: ";")[0]
        return pair.split(separator: "=", maxSplits: 1)[1]
    }

    @Test func aCookieRoundTripsWithItsAttributes() {
        let cookies = IdentityCookies(keys: [keyA], lifetimeSeconds: 30 * 86_400)
        var random = Counting()
        let header = cookies.issue(id: nil, now: 1_000, random: &random)
        #expect(header.hasPrefix("uvchat_id="))
        #expect(header.hasSuffix("; Path=/; Max-Age=2592000; Secure; HttpOnly; SameSite=Lax"))
        let verified = cookies.verify(value(header), now: 2_000)
        #expect(verified?.cookie.expires == 1_000 + 30 * 86_400)
        #expect(verified?.needsRenewal == false)
        // Two issues give two identities.
        let other = cookies.verify(value(cookies.issue(id: nil, now: 1_000, random: &random)), now: 2_000)
        #expect(other != nil && other?.cookie != verified?.cookie)
    }

    @Test func tamperedExpiredAndForeignCookiesFail() {
        let cookies = IdentityCookies(keys: [keyA], lifetimeSeconds: 1000)
        var random = Counting()
        let v = value(cookies.issue(id: nil, now: 0, random: &random))
        #expect(cookies.verify(v, now: 999) != nil)
        #expect(cookies.verify(v, now: 1000) == nil)
        var bytes = Array(v.utf8)
        bytes[12] = bytes[12] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(cookies.verify(Substring(String(decoding: bytes, as: UTF8.self)), now: 10) == nil)
        #expect(IdentityCookies(keys: [keyB], lifetimeSeconds: 1000).verify(v, now: 10) == nil)
        #expect(cookies.verify("", now: 10) == nil)
        #expect(cookies.verify(Substring(String(repeating: "A", count: 200)), now: 10) == nil)
    }

    @Test func keysRotateAndOldCookiesAreRenewed() {
        var random = Counting()
        let old = IdentityCookies(keys: [keyA], lifetimeSeconds: 1000)
        let v = value(old.issue(id: nil, now: 0, random: &random))
        let rotated = IdentityCookies(keys: [keyB, keyA], lifetimeSeconds: 1000)
        let verified = rotated.verify(v, now: 10)
        #expect(verified?.needsRenewal == true)
        // Renewed under the first key, the same identity.
        let renewed = value(rotated.issue(id: verified?.cookie, now: 10, random: &random))
        let again = rotated.verify(renewed, now: 20)
        #expect(again?.needsRenewal == false)
        #expect(again?.cookie.high == verified?.cookie.high && again?.cookie.low == verified?.cookie.low)
        #expect(IdentityCookies(keys: [keyB], lifetimeSeconds: 1000).verify(renewed, now: 20) != nil)
        // Past half its life, a cookie is renewed too.
        #expect(old.verify(v, now: 499)?.needsRenewal == false)
        #expect(old.verify(v, now: 501)?.needsRenewal == true)
    }
}
