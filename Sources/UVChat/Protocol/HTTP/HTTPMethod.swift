/// Only the methods the server serves get a case; the rest are answered with 405, so their names need no case.
/// Method names are case-sensitive tokens (RFC 9110 section 9.1): `get` is not `GET`.
enum HTTPMethod: Equatable {
    case get
    case head
    case other
}
