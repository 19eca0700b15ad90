/// What the server sends for a static GET or HEAD; the writer adds Content-Length and drops the body for HEAD.
struct StaticResponse {
    let status: Int
    let headers: [(String, String)]
    let body: [UInt8]
}
