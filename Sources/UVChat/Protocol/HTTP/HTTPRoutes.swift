/// What a WebSocket endpoint speaks after the upgrade.
enum WebSocketEndpoint: Equatable {
    /// `/ws`: the chat protocol (PROTOCOL.md).
    case chat
    /// `/echo`: every data message back as it came, for conformance suites.
    case echo
}

/// Where a request goes (PROTOCOL.md, "Endpoints"), decided from the method and the path alone.
enum HTTPRoute: Equatable {
    case upgrade(WebSocketEndpoint)
    case health
    case online
    case metrics
    /// `GET /status`: what the page needs before it connects (auth, terms, a ban), B.5.
    case status
    case staticFile
    /// 405 with this `Allow` value. `withBody` is false where the method was HEAD, which gets no body.
    case methodNotAllowed(allow: String, withBody: Bool)
}

/// The route table: a pure function of the request line, so that the connection glue only performs the answer.
struct HTTPRoutes {
    /// Serve `/echo` (`--echo`); without it the path is an ordinary static lookup, so 404.
    var echo = false

    func route(method: HTTPMethod, path: String) -> HTTPRoute {
        let isHead = method == .head
        guard method == .get || isHead else { return .methodNotAllowed(allow: "GET, HEAD", withBody: true) }
        switch path {
        case "/ws":
            return isHead ? .methodNotAllowed(allow: "GET", withBody: false) : .upgrade(.chat)
        case "/echo" where echo:
            return isHead ? .methodNotAllowed(allow: "GET", withBody: false) : .upgrade(.echo)
        case "/healthz":
            return .health
        case "/online":
            // The start page shows the count before the person joins (joining /ws would queue them at once).
            return .online
        case "/metrics":
            return .metrics
        case "/status":
            return .status
        default:
            return .staticFile
        }
    }
}
