/// Fields sent with every page response: the page loads nothing from elsewhere, cannot be framed, and leaks no
/// referrer.
enum SecurityHeaders {
    static let all: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
}
