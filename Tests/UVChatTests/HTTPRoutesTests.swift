import Testing
@testable import UVChat

private let plain = HTTPRoutes()
private let withEcho = HTTPRoutes(echo: true)

@Suite struct HTTPRoutesTests {
    @Test func echoIsOffByDefault() {
        #expect(!HTTPRoutes().echo)
    }

    // MARK: /ws

    @Test func getWsUpgradesToChat() {
        #expect(plain.route(method: .get, path: "/ws") == .upgrade(.chat))
        #expect(withEcho.route(method: .get, path: "/ws") == .upgrade(.chat))
    }

    @Test func headWsIs405AllowingGetWithoutBody() {
        // RFC 6455 4.1: the opening handshake is a GET; a HEAD answer carries no body (RFC 9110 9.3.2).
        #expect(plain.route(method: .head, path: "/ws") == .methodNotAllowed(allow: "GET", withBody: false))
        #expect(withEcho.route(method: .head, path: "/ws") == .methodNotAllowed(allow: "GET", withBody: false))
    }

    // MARK: /echo

    @Test func echoWithoutTheFlagIsAnOrdinaryStaticLookup() {
        #expect(plain.route(method: .get, path: "/echo") == .staticFile)
        #expect(plain.route(method: .head, path: "/echo") == .staticFile)
    }

    @Test func echoWithTheFlagUpgradesAndRefusesHead() {
        #expect(withEcho.route(method: .get, path: "/echo") == .upgrade(.echo))
        #expect(withEcho.route(method: .head, path: "/echo") == .methodNotAllowed(allow: "GET", withBody: false))
    }

    // MARK: Methods other than GET and HEAD

    @Test func otherMethodsAre405AllowingGetAndHeadWithBody() {
        // RFC 9110 15.5.6: a 405 lists the allowed methods in Allow.
        let expected = HTTPRoute.methodNotAllowed(allow: "GET, HEAD", withBody: true)
        for routes in [plain, withEcho] {
            for path in ["/ws", "/echo", "/healthz", "/online", "/metrics", "/", "/index.html", "/nope", "*", ""] {
                #expect(routes.route(method: .other, path: path) == expected, "\(path) echo=\(routes.echo)")
            }
        }
    }

    // MARK: Service endpoints

    @Test func healthOnlineAndMetricsAnswerGetAndHead() {
        for routes in [plain, withEcho] {
            for method in [HTTPMethod.get, .head] {
                #expect(routes.route(method: method, path: "/healthz") == .health)
                #expect(routes.route(method: method, path: "/online") == .online)
                #expect(routes.route(method: method, path: "/metrics") == .metrics)
            }
        }
    }

    // MARK: Everything else

    @Test func anyOtherPathIsAStaticFile() {
        // Matching is exact: a near miss, a query left on, another case or a trailing slash is a file lookup.
        let paths = ["/", "/index.html", "/app.js", "/ws/", "/WS", "/ws/x", "/wss", "/healthz/", "/Healthz",
                     "/online.json", "/metrics/", "/echo/", "/%77s", "//ws", "/ws?x=1", "ws", ""]
        for routes in [plain, withEcho] {
            for method in [HTTPMethod.get, .head] {
                for path in paths {
                    #expect(routes.route(method: method, path: path) == .staticFile, "\(method) \(path)")
                }
            }
        }
    }
}
