// OpenSSL's libcrypto from Debian (libssl-dev): MACs and constant-time comparison for Sources/UVChat/Crypto,
// the only Swift files that import it (make check-layers).
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
