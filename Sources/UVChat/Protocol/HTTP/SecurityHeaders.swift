/// Fields sent with every page response: the page loads nothing from elsewhere, cannot be framed, and leaks no
/// referrer. `connect-src 'self'` lets the page open its WebSocket to the host it came from and nowhere else
/// (CSP Level 3 matches `ws:` and `wss:` to the same host and port under `'self'`; a bare `ws: wss:` would allow
/// any host).
enum SecurityHeaders {
    static let all: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
}
