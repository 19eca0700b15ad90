/// Whole `200` keep-alive responses for plain `GET`s of each file, built when the files are loaded, so that the
/// common request costs one lookup and one append. Their `Date` field sits at the same offset in every one and is
/// rewritten in place when the clock moves.
struct PrebuiltResponses {
    /// Bigger files take the general path (and are not held twice).
    static let maxBodyBytes = 256 * 1024
    /// Where the `Date` value sits: right after the status line and "Date: ".
    static let dateOffset = "HTTP/1.1 200 OK\r\nDate: ".utf8.count

    private var responses: [String: [UInt8]] = [:]

    init() {}

    /// `headers` follow the file's own (the security fields); `date` is the clock's value now.
    init(_ files: StaticFiles, headers: [(String, String)], date: String) {
        for path in files.paths {
            let answer = files.respond(rawPath: path, ifNoneMatch: nil, ifModifiedSince: nil)
            guard answer.status == 200, answer.body.count <= PrebuiltResponses.maxBodyBytes else { continue }
            var bytes: [UInt8] = []
            HTTPResponseWriter.writeHead(status: .ok, headers: answer.headers + headers, bodyLength: answer.body.count,
                                         keepAlive: true, date: date, into: &bytes)
            bytes.append(contentsOf: answer.body)
            responses[path] = bytes
            if path.hasSuffix("/index.html") { responses[String(path.dropLast("index.html".count))] = bytes }
        }
    }

    /// The response for a raw request path, exactly as the general path would answer a plain keep-alive GET.
    func response(for path: String) -> [UInt8]? { responses[path] }

    mutating func rewriteDate(_ date: String) {
        var date = date
        date.withUTF8 { value in
            for i in responses.values.indices {
                responses.values[i].withUnsafeMutableBytes { bytes in
                    let offset = PrebuiltResponses.dateOffset
                    guard bytes.count >= offset + value.count else { return }
                    UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<(offset + value.count)])
                        .copyMemory(from: UnsafeRawBufferPointer(value))
                }
            }
        }
    }
}
