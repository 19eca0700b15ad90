/// Who is asking, decided once per upgrade (and per `GET /status`) from the request head alone (PROTOCOL.md B.5):
/// the operator token if keys are configured, the signed identity cookie, and what the answer must carry. Pure:
/// the wall clock and the randomness for a new cookie are passed in.
final class IdentityResolver: Sendable {
    /// Token verification; nil when no key is configured (then tokens are ignored: anonymous by default).
    let verifier: JWTVerifier?
    /// Used only where libcrypto loads (checked at the first use, so that a server nobody visits with a browser
    /// never maps it): without it every client is known by its address alone.
    let cookies: IdentityCookies?

    static let tokenCookie = "uvchat_token"

    init(verifier: JWTVerifier?, cookies: IdentityCookies?) {
        self.verifier = verifier
        self.cookies = cookies
    }

    enum TokenState: Equatable {
        /// No token was presented (or no keys are configured).
        case none
        case valid(TokenClaims)
        case invalid(TokenRejection)
    }

    struct Resolution {
        var token: TokenState
        var identity: PeerIdentity
        /// The identity cookie the request carried, if it verified.
        var cookie: IdentityCookie?
        /// True when the answer should set a (new or renewed) identity cookie.
        var wantsCookie: Bool

        /// 401 before the upgrade: an invalid token always; a missing one when authentication is required.
        func refusal(requireAuth: Bool) -> (reason: AuthRefusal, header: String)? {
            switch token {
            case .invalid: return (.invalid, #"Bearer error="invalid_token""#)
            case .none where requireAuth:
                // RFC 6750 section 3.1: a request that carried no credentials gets no error code.
                return (.missing, #"Bearer realm="uvchat""#)
            case .none, .valid: return nil
            }
        }
    }

    enum AuthRefusal { case missing, invalid }

    /// Whether `resolve` can find anything in this request: without keys and without a `Cookie` field (a load tool,
    /// a bot, a browser's first visit) every client is anonymous, and the upgrade skips the work.
    func mayIdentify(_ head: HTTPRequestHead) -> Bool {
        if verifier != nil { return true }
        return head.headerCount("cookie") > 0
    }

    static let anonymous = Resolution(token: .none, identity: .anonymous, cookie: nil, wantsCookie: true)

    func resolve(_ head: HTTPRequestHead, unixNow: UInt64) -> Resolution {
        let token = tokenState(head, unixNow: unixNow)
        var identity = PeerIdentity.anonymous
        var cookie: IdentityCookie?
        var wantsCookie = true
        if let cookies, let value = Cookies.value(named: IdentityCookies.name, in: head), HMAC.isAvailable,
           let verified = cookies.verify(value, now: unixNow) {
            cookie = verified.cookie
            wantsCookie = verified.needsRenewal
            identity.key = IdentityKeys.cookie(verified.cookie)
        }
        if case .valid(let claims) = token {
            identity.cookieKey = identity.key
            identity.key = IdentityKeys.token(subject: claims.subject)
            identity.group = claims.group
            identity.isToken = true
        }
        return Resolution(token: token, identity: identity, cookie: cookie, wantsCookie: wantsCookie)
    }

    /// The token from `Authorization: Bearer`, else the `uvchat_token` cookie, else the `token` query parameter:
    /// the first place that has one decides (README, protocol readings).
    private func tokenState(_ head: HTTPRequestHead, unixNow: UInt64) -> TokenState {
        guard let verifier else { return .none }
        guard let token = IdentityResolver.token(in: head) else { return .none }
        switch verifier.verify(token, now: Int64(clamping: unixNow)) {
        case .success(let claims): return .valid(claims)
        case .failure(let rejection): return .invalid(rejection)
        }
    }

    static func token(in head: HTTPRequestHead) -> Substring? {
        if let authorization = head.header("authorization") {
            let scheme = authorization.prefix(7)
            if HTTPRequestHead.equalsIgnoringCase(scheme.utf8, "bearer ".utf8) {
                return authorization.dropFirst(7).drop(while: { $0 == " " })
            }
        }
        if let value = Cookies.value(named: tokenCookie, in: head), !value.isEmpty { return value }
        guard let found = Query.lastValue(named: "token", in: head.query) else { return nil }
        // A JWT is base64url and dots, which need no escapes; one that was escaped anyway is decoded.
        guard found.contains("%") else { return found }
        // An undecodable escape leaves the raw text, which then fails as malformed: still a 401.
        return Interests.percentDecoded(found).map { Substring($0) } ?? found
    }
}
