import Glibc

/// OpenSSL's libcrypto (Debian's `libssl3`), loaded the first time a feature needs it rather than linked: a server
/// that uses none of TURN, operator tokens or identity cookies never maps its 1.4 MB (README, "Why OpenSSL's
/// libcrypto"). The daemon asks for it at start-up when its configuration needs it, so a missing library is a
/// start-up error, never a surprise in the loop. Only this folder touches it (`make check-layers`); the signatures
/// are those of OpenSSL 3's headers.
final class LibCrypto: Sendable {
    /// `unsigned char *HMAC(const EVP_MD *, const void *key, int key_len, const unsigned char *data,
    /// size_t data_len, unsigned char *md, unsigned int *md_len)`
    typealias HMACFunction = @convention(c) (OpaquePointer?, UnsafeRawPointer?, Int32, UnsafePointer<UInt8>?, Int,
                                             UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt32>?)
        -> UnsafeMutablePointer<UInt8>?
    /// `const EVP_MD *EVP_sha1(void)`, `EVP_sha256`
    typealias DigestFunction = @convention(c) () -> OpaquePointer?
    /// `EVP_PKEY *EVP_PKEY_new_raw_public_key(int type, ENGINE *e, const unsigned char *key, size_t keylen)`, and
    /// the private-key twin.
    typealias NewRawKeyFunction = @convention(c) (Int32, OpaquePointer?, UnsafePointer<UInt8>?, Int) -> OpaquePointer?
    /// `void EVP_PKEY_free(EVP_PKEY *)`, `void EVP_MD_CTX_free(EVP_MD_CTX *)`
    typealias FreeFunction = @convention(c) (OpaquePointer?) -> Void
    /// `EVP_MD_CTX *EVP_MD_CTX_new(void)`
    typealias NewContextFunction = @convention(c) () -> OpaquePointer?
    /// `int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type, ENGINE *e,
    /// EVP_PKEY *pkey)`, and `EVP_DigestSignInit`
    typealias DigestInitFunction = @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?,
                                                   OpaquePointer?, OpaquePointer?, OpaquePointer?) -> Int32
    /// `int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs,
    /// size_t tbslen)`
    typealias DigestVerifyFunction = @convention(c) (OpaquePointer?, UnsafePointer<UInt8>?, Int,
                                                     UnsafePointer<UInt8>?, Int) -> Int32
    /// `int EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sig, size_t *siglen, const unsigned char *tbs,
    /// size_t tbslen)`
    typealias DigestSignFunction = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?,
                                                   UnsafeMutablePointer<Int>?, UnsafePointer<UInt8>?, Int) -> Int32
    /// `int CRYPTO_memcmp(const void *a, const void *b, size_t len)`: a comparison whose time does not depend on
    /// where the bytes differ.
    typealias MemcmpFunction = @convention(c) (UnsafeRawPointer?, UnsafeRawPointer?, Int) -> Int32

    let hmac: HMACFunction
    let sha1: DigestFunction
    let sha256: DigestFunction
    let newRawPublicKey: NewRawKeyFunction
    let newRawPrivateKey: NewRawKeyFunction
    let freeKey: FreeFunction
    let newContext: NewContextFunction
    let freeContext: FreeFunction
    let digestVerifyInit: DigestInitFunction
    let digestVerify: DigestVerifyFunction
    let digestSignInit: DigestInitFunction
    let digestSign: DigestSignFunction
    let memcmp: MemcmpFunction

    /// `EVP_PKEY_ED25519` (NID_ED25519).
    static let ed25519 = Int32(1087)

    /// nil when the library or one of its functions cannot be found.
    static let shared = LibCrypto()

    /// EVP_MAX_MD_SIZE: the longest digest any of them writes.
    static let maxDigestBytes = 64

    private init?() {
        guard let library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL) else { return nil }
        // Never closed: the functions are used for the life of the process.
        func symbol<T>(_ name: String, _ type: T.Type) -> T? {
            dlsym(library, name).map { unsafeBitCast($0, to: type) }
        }
        guard let hmac = symbol("HMAC", HMACFunction.self), let sha1 = symbol("EVP_sha1", DigestFunction.self),
              let sha256 = symbol("EVP_sha256", DigestFunction.self),
              let newRawPublicKey = symbol("EVP_PKEY_new_raw_public_key", NewRawKeyFunction.self),
              let newRawPrivateKey = symbol("EVP_PKEY_new_raw_private_key", NewRawKeyFunction.self),
              let freeKey = symbol("EVP_PKEY_free", FreeFunction.self),
              let newContext = symbol("EVP_MD_CTX_new", NewContextFunction.self),
              let freeContext = symbol("EVP_MD_CTX_free", FreeFunction.self),
              let digestVerifyInit = symbol("EVP_DigestVerifyInit", DigestInitFunction.self),
              let digestVerify = symbol("EVP_DigestVerify", DigestVerifyFunction.self),
              let digestSignInit = symbol("EVP_DigestSignInit", DigestInitFunction.self),
              let digestSign = symbol("EVP_DigestSign", DigestSignFunction.self),
              let memcmp = symbol("CRYPTO_memcmp", MemcmpFunction.self) else { return nil }
        self.hmac = hmac
        self.sha1 = sha1
        self.sha256 = sha256
        self.newRawPublicKey = newRawPublicKey
        self.newRawPrivateKey = newRawPrivateKey
        self.freeKey = freeKey
        self.newContext = newContext
        self.freeContext = freeContext
        self.digestVerifyInit = digestVerifyInit
        self.digestVerify = digestVerify
        self.digestSignInit = digestSignInit
        self.digestSign = digestSign
        self.memcmp = memcmp
    }
}
