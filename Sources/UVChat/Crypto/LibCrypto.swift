import Glibc

/// OpenSSL's libcrypto (Debian's `libssl3`), loaded the first time a feature needs it rather than linked: a server
/// that is not configured for TURN never maps its 1.4 MB (README, "Why OpenSSL's libcrypto"). The daemon asks for
/// it at start-up when its configuration needs it, so a missing library is a start-up error, never a surprise in
/// the loop. Only this folder touches it (`make check-layers`); the signatures are those of OpenSSL 3's headers.
final class LibCrypto: Sendable {
    /// `unsigned char *HMAC(const EVP_MD *, const void *key, int key_len, const unsigned char *data,
    /// size_t data_len, unsigned char *md, unsigned int *md_len)`
    typealias HMACFunction = @convention(c) (OpaquePointer?, UnsafeRawPointer?, Int32, UnsafePointer<UInt8>?, Int,
                                             UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt32>?)
        -> UnsafeMutablePointer<UInt8>?
    /// `const EVP_MD *EVP_sha1(void)`
    typealias DigestFunction = @convention(c) () -> OpaquePointer?

    let hmac: HMACFunction
    let sha1: DigestFunction

    /// nil when the library or one of its functions cannot be found.
    static let shared = LibCrypto()

    /// EVP_MAX_MD_SIZE: the longest digest any of them writes.
    static let maxDigestBytes = 64

    private init?() {
        guard let library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL),
              let hmac = dlsym(library, "HMAC"), let sha1 = dlsym(library, "EVP_sha1") else { return nil }
        // Never closed: the functions are used for the life of the process.
        self.hmac = unsafeBitCast(hmac, to: HMACFunction.self)
        self.sha1 = unsafeBitCast(sha1, to: DigestFunction.self)
    }
}
