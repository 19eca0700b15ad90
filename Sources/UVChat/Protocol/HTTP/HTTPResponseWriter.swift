/// Serialises response heads straight into a byte array, so a response costs one buffer and no String joins.
enum HTTPResponseWriter {
    /// `date` is the `Date` field's value (IMF-fixdate, `HTTPDate.format`), which an origin server with a clock
    /// sends on every response (RFC 9110 section 6.6.1); it comes first, at a fixed offset from the status line.
    static func writeHead(status: HTTPStatus, headers: [(String, String)], bodyLength: Int, keepAlive: Bool,
                          date: String? = nil, into out: inout [UInt8]) {
        writeStatusLine(status, into: &out)
        if let date { writeField("Date", date, into: &out) }
        for (name, value) in headers { writeField(name, value, into: &out) }
        // 1xx, 204 and 304 responses carry no body, and a Content-Length on them would describe a body that is not
        // there (RFC 9110 section 8.6), so the field is left out.
        let hasBody = status.code >= 200 && status.code != 204 && status.code != 304
        if hasBody { writeField("Content-Length", String(bodyLength), into: &out) }
        if !keepAlive { writeField("Connection", "close", into: &out) }
        out.append(0x0D)
        out.append(0x0A)
    }

    static func writeError(_ status: HTTPStatus, extraHeaders: [(String, String)] = [], includeBody: Bool = true,
                           date: String? = nil, into out: inout [UInt8]) {
        let body = "\(status.code) \(status.reason)\n"
        var headers: [(String, String)] = [("Content-Type", "text/plain; charset=utf-8")]
        headers.append(contentsOf: extraHeaders)
        writeHead(status: status, headers: headers, bodyLength: body.utf8.count, keepAlive: false, date: date, into: &out)
        if includeBody { out.append(contentsOf: body.utf8) }
    }

    private static func writeStatusLine(_ status: HTTPStatus, into out: inout [UInt8]) {
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        out.append(contentsOf: String(status.code).utf8)
        out.append(0x20)
        out.append(contentsOf: status.reason.utf8)
        out.append(0x0D)
        out.append(0x0A)
    }

    private static func writeField(_ name: String, _ value: String, into out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(0x3A)
        out.append(0x20)
        out.append(contentsOf: value.utf8)
        out.append(0x0D)
        out.append(0x0A)
    }
}
