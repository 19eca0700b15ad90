/// Why an upgrade request was refused: the status to answer with and any fields the client needs to retry.
struct HandshakeRejection: Error, Equatable {
    let status: HTTPStatus
    let extraHeaders: [(String, String)]

    init(status: HTTPStatus, extraHeaders: [(String, String)] = []) {
        self.status = status
        self.extraHeaders = extraHeaders
    }

    static func == (a: HandshakeRejection, b: HandshakeRejection) -> Bool {
        a.status == b.status && a.extraHeaders.count == b.extraHeaders.count
            && zip(a.extraHeaders, b.extraHeaders).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}
