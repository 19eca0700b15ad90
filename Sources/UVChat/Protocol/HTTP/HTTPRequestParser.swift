#if canImport(Glibc)
import Glibc
#endif

/// Sans-IO parser for HTTP/1.1 request heads (RFC 9112). Bytes go in, a head or an error status comes out.
///
/// Framing (finding the end of the head, the limits, line endings) runs byte by byte as input arrives, so that a
/// limit is hit as soon as it is crossed. The structural parse runs once, over the complete head, and builds each
/// String once. Only an unfinished head is copied: a head that arrives within one read is parsed in place.
struct HTTPRequestParser {
    let limits: HTTPLimits

    /// The bytes of earlier calls that belong to the unfinished head (leading empty lines included).
    private var buffer: [UInt8] = []
    /// Offsets below are into the head as a whole, i.e. `buffer` followed by the current input.
    private var lineStart = 0
    private var inRequestLine = true
    private var methodEnd = -1
    private var targetEnd = -1
    private var headerLines = 0
    private var failure: HTTPStatus?
    private var finished = false

    init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    mutating func reset() {
        // A buffer only grows for heads split across reads; drop a big one rather than pin it to an idle connection.
        if buffer.capacity > 4096 { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
        lineStart = 0
        inRequestLine = true
        methodEnd = -1
        targetEnd = -1
        headerLines = 0
        failure = nil
        finished = false
    }

    mutating func parse(_ input: UnsafeRawBufferPointer) -> HTTPParseResult {
        if finished { reset() }
        if let failure { return .error(failure) }
        let base = buffer.count
        // Never look further than the head may reach, whatever the size of this read.
        let scanEnd = min(input.count, limits.maxHeadBytes - base)
        var previousWasCR = buffer.last == Byte.cr
        var i = 0
        while i < scanEnd {
            if inRequestLine {
                let byte = input[i]
                let offset = base + i
                if byte == Byte.lf {
                    guard previousWasCR else { return fail(.badRequest) }
                    if offset - 1 > lineStart {
                        inRequestLine = false
                    }   // else an empty line before the request line, which RFC 9112 section 2.2 lets us skip
                    lineStart = offset + 1
                } else if previousWasCR {
                    return fail(.badRequest)
                } else if byte == Byte.space {
                    if methodEnd < 0 { methodEnd = offset } else if targetEnd < 0 { targetEnd = offset }
                } else if methodEnd >= 0 && targetEnd < 0 && byte != Byte.cr && offset - methodEnd > limits.maxTargetBytes {
                    return fail(.uriTooLong)
                }
                previousWasCR = byte == Byte.cr
                i += 1
                continue
            }
            // Header section: only line ends matter here; the lines themselves are checked once the head is whole.
            guard let found = memchr(input.baseAddress.unsafelyUnwrapped + i, Int32(Byte.lf), scanEnd - i) else { break }
            let lf = UnsafeRawPointer(found) - input.baseAddress.unsafelyUnwrapped
            let crBefore = lf > 0 ? input[lf - 1] == Byte.cr : buffer.last == Byte.cr
            guard crBefore else { return fail(.badRequest) }
            let offset = base + lf
            if offset - 1 == lineStart {
                return complete(input, base: base, consumed: lf + 1)
            }
            headerLines += 1
            if headerLines > limits.maxHeaderCount { return fail(.requestHeaderFieldsTooLarge) }
            lineStart = offset + 1
            i = lf + 1
        }
        if base + scanEnd >= limits.maxHeadBytes { return fail(.requestHeaderFieldsTooLarge) }
        buffer.append(contentsOf: input)
        return .needMore
    }

    private mutating func fail(_ status: HTTPStatus) -> HTTPParseResult {
        failure = status
        return .error(status)
    }

    private mutating func complete(_ input: UnsafeRawBufferPointer, base: Int, consumed: Int) -> HTTPParseResult {
        let result: Parsed
        if base == 0 {
            result = Self.parseHead(UnsafeRawBufferPointer(rebasing: input[0..<consumed]), limits: limits,
                                    fieldLines: headerLines)
        } else {
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<consumed]))
            result = buffer.withUnsafeBytes { [headerLines] in Self.parseHead($0, limits: limits, fieldLines: headerLines) }
        }
        switch result {
        case .ok(let head):
            finished = true
            return .head(head, consumed: consumed)
        case .failed(let status):
            return fail(status)
        }
    }

    /// Parses a complete head: optional empty lines, the request line, field lines, and the final empty line.
    /// `fieldLines` is how many field lines framing counted, so that the list of them is allocated once.
    static func parseHead(_ p: UnsafeRawBufferPointer, limits: HTTPLimits, fieldLines: Int) -> Parsed {
        var pos = 0
        while pos + 1 < p.count && p[pos] == Byte.cr && p[pos + 1] == Byte.lf { pos += 2 }

        // request-line = method SP request-target SP HTTP-version CRLF
        let methodStart = pos
        while pos < p.count && isTokenByte(p[pos]) { pos += 1 }
        guard pos > methodStart, pos < p.count, p[pos] == Byte.space else { return .failed(.badRequest) }
        let methodName = string(p, methodStart, pos)
        pos += 1
        let targetStart = pos
        while pos < p.count && p[pos] > 0x20 && p[pos] < 0x7F { pos += 1 }
        guard pos > targetStart, pos < p.count, p[pos] == Byte.space else { return .failed(.badRequest) }
        guard pos - targetStart <= limits.maxTargetBytes else { return .failed(.uriTooLong) }
        let targetEnd = pos
        pos += 1
        guard pos + 10 <= p.count,
              p[pos] == UInt8(ascii: "H"), p[pos + 1] == UInt8(ascii: "T"), p[pos + 2] == UInt8(ascii: "T"),
              p[pos + 3] == UInt8(ascii: "P"), p[pos + 4] == UInt8(ascii: "/"),
              isDigit(p[pos + 5]), p[pos + 6] == UInt8(ascii: "."), isDigit(p[pos + 7]),
              p[pos + 8] == Byte.cr, p[pos + 9] == Byte.lf
        else { return .failed(.badRequest) }
        guard p[pos + 5] == UInt8(ascii: "1") else { return .failed(.httpVersionNotSupported) }
        let versionMinor = Int(p[pos + 7] - UInt8(ascii: "0"))
        pos += 10

        let method: HTTPMethod
        switch methodName {
        case "GET": method = .get
        case "HEAD": method = .head
        default: method = .other
        }
        guard let (path, query) = splitTarget(p, targetStart, targetEnd, methodName: methodName) else {
            return .failed(.badRequest)
        }

        // Fields are located here and copied once, as one block; names and values become Strings only on request.
        let fieldsStart = pos
        var fields: [HTTPRequestHead.Field] = []
        fields.reserveCapacity(fieldLines)
        while true {
            guard pos + 1 < p.count else { return .failed(.badRequest) }
            if p[pos] == Byte.cr && p[pos + 1] == Byte.lf { break }
            // A line starting with whitespace is obs-fold, which a server must reject (RFC 9112 section 5.2).
            let nameStart = pos
            while pos < p.count && isTokenByte(p[pos]) { pos += 1 }
            guard pos > nameStart, pos < p.count, p[pos] == UInt8(ascii: ":") else { return .failed(.badRequest) }
            let nameEnd = pos
            pos += 1
            while pos < p.count && (p[pos] == Byte.space || p[pos] == Byte.tab) { pos += 1 }
            let valueStart = pos
            // Field values are VCHAR, SP, HTAB or obs-text; any other control byte could smuggle a line end. One
            // test per byte finds both the CR and a byte that does not belong.
            while pos < p.count {
                let byte = p[pos]
                if byte < 0x20 || byte == 0x7F {
                    if byte == Byte.cr { break }
                    guard byte == Byte.tab else { return .failed(.badRequest) }
                }
                pos += 1
            }
            var valueEnd = pos
            while valueEnd > valueStart && (p[valueEnd - 1] == Byte.space || p[valueEnd - 1] == Byte.tab) { valueEnd -= 1 }
            guard pos + 1 < p.count, p[pos + 1] == Byte.lf else { return .failed(.badRequest) }
            pos += 2
            guard fields.count < limits.maxHeaderCount else { return .failed(.requestHeaderFieldsTooLarge) }
            fields.append(HTTPRequestHead.Field(nameStart: nameStart - fieldsStart, nameEnd: nameEnd - fieldsStart,
                                                valueStart: valueStart - fieldsStart, valueEnd: valueEnd - fieldsStart))
        }

        var head = HTTPRequestHead(method: method, methodName: methodName, target: string(p, targetStart, targetEnd),
                                   path: path, query: query, versionMinor: versionMinor,
                                   fieldBytes: Array(UnsafeRawBufferPointer(rebasing: p[fieldsStart..<pos])),
                                   fields: fields)
        // We take no request bodies, and a message with Transfer-Encoding cannot be framed without decoding it.
        if head.headerCount("transfer-encoding") > 0 { return .failed(.notImplemented) }
        guard let length = contentLength(head.headerValues("content-length")) else { return .failed(.badRequest) }
        head.contentLength = length
        // RFC 9112 section 3.2: a 1.1 request without Host, or any request with two, must get 400.
        let hosts = head.headerCount("host")
        guard hosts <= 1, hosts == 1 || versionMinor == 0 else { return .failed(.badRequest) }
        if head.headerContainsToken("connection", "close") {
            head.keepAlive = false
        } else {
            head.keepAlive = versionMinor >= 1 || head.headerContainsToken("connection", "keep-alive")
        }
        return .ok(head)
    }

    /// Splits the target into raw path and query, reducing absolute-form to its path. Returns nil for a target
    /// form the method does not allow.
    private static func splitTarget(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int,
                                    methodName: String) -> (String, String?)? {
        var pathStart = start
        if p[start] != UInt8(ascii: "/") {
            if end - start == 1 && p[start] == UInt8(ascii: "*") {
                return methodName == "OPTIONS" ? ("*", nil) : nil
            }
            if methodName == "CONNECT" { return (string(p, start, end), nil) }
            let http = hasPrefixIgnoringCase(p, start, end, "http://")
            let https = !http && hasPrefixIgnoringCase(p, start, end, "https://")
            guard http || https else { return nil }
            let authorityStart = start + (http ? 7 : 8)
            pathStart = authorityStart
            while pathStart < end, p[pathStart] != UInt8(ascii: "/"), p[pathStart] != UInt8(ascii: "?"),
                  p[pathStart] != UInt8(ascii: "#") { pathStart += 1 }
            guard pathStart > authorityStart else { return nil }
        }
        var pathEnd = pathStart
        while pathEnd < end && p[pathEnd] != UInt8(ascii: "?") && p[pathEnd] != UInt8(ascii: "#") { pathEnd += 1 }
        // An absolute-form target with an empty path means the root (RFC 9112 section 3.2.1).
        let path = pathEnd == pathStart ? "/" : string(p, pathStart, pathEnd)
        guard pathEnd < end, p[pathEnd] == UInt8(ascii: "?") else { return (path, nil) }
        var queryEnd = pathEnd + 1
        while queryEnd < end && p[queryEnd] != UInt8(ascii: "#") { queryEnd += 1 }
        return (path, string(p, pathEnd + 1, queryEnd))
    }

    /// Content-Length may repeat, or be a list, only with one value throughout (RFC 9110 section 8.6).
    private static func contentLength(_ values: [String]) -> Int? {
        var result: Int?
        for value in values {
            for element in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                let digits = ASCII.trimmingSpaces(element)
                guard !digits.isEmpty else { return nil }
                var n = 0
                for d in digits {
                    guard isDigit(d) else { return nil }
                    let (times, o1) = n.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times.addingReportingOverflow(Int(d - UInt8(ascii: "0")))
                    guard !o1 && !o2 else { return nil }
                    n = sum
                }
                if let result, result != n { return nil }
                result = n
            }
        }
        return result ?? 0
    }

    private static func hasPrefixIgnoringCase(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int,
                                              _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard end - start >= count else { return false }
        for k in 0..<count where HTTPRequestHead.lowerASCII(p[start + k]) != prefix.utf8Start[k] { return false }
        return true
    }

    private static func string(_ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: p[start..<end]), as: UTF8.self)
    }

    @inline(__always)
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// tchar from RFC 9110 section 5.6.2, as a bit per byte value below 128: `!#$%&'*+-.^_`|~`, digits, letters.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        let low: UInt64 = 0x03FF_6CFA_0000_0000    // 0x21 ! 0x23-0x27 #$%&' 0x2A * 0x2B + 0x2D - 0x2E . 0-9
        let high: UInt64 = 0x57FF_FFFF_C7FF_FFFE   // A-Z 0x5E ^ 0x5F _ 0x60 ` a-z 0x7C | 0x7E ~
        let bit = UInt64(1) << UInt64(byte & 63)
        return byte < 64 ? low & bit != 0 : byte < 128 && high & bit != 0
    }

    /// Not a `Result`: a status is not an `Error`, it is the answer to send.
    enum Parsed {
        case ok(HTTPRequestHead)
        case failed(HTTPStatus)
    }

    private enum Byte {
        static let cr: UInt8 = 0x0D
        static let lf: UInt8 = 0x0A
        static let space: UInt8 = 0x20
        static let tab: UInt8 = 0x09
    }
}
