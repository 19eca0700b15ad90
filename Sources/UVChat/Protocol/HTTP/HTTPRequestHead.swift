struct HTTPRequestHead {
    var method: HTTPMethod
    /// The method token exactly as sent, for logs and for methods that are answered with 405.
    var methodName: String
    /// The request-target as sent, before absolute-form is reduced to a path.
    var target: String
    /// Not percent-decoded: decoding is the business of whoever maps the path to a resource, so that `%2F` and
    /// `/` stay distinguishable until then.
    var path: String
    var query: String?
    var versionMinor: Int
    /// Names are lower-cased, values have optional whitespace trimmed; repeated fields keep their order.
    var headers: [(name: String, value: String)]
    var keepAlive: Bool
    var contentLength: Int

    func header(_ lowercasedName: String) -> String? {
        for field in headers where field.name == lowercasedName { return field.value }
        return nil
    }

    func headerValues(_ lowercasedName: String) -> [String] {
        var values: [String] = []
        for field in headers where field.name == lowercasedName { values.append(field.value) }
        return values
    }

    /// Whether any field line named `lowercasedName` holds `token` in its comma-separated list, compared without
    /// regard to ASCII case (Connection, Upgrade and similar lists are case-insensitive, RFC 9110 section 7.6.1).
    func headerContainsToken(_ lowercasedName: String, _ token: String) -> Bool {
        for field in headers where field.name == lowercasedName {
            for element in field.value.utf8.split(separator: UInt8(ascii: ",")) {
                if HTTPRequestHead.equalsIgnoringCase(ASCII.trimmingSpaces(element), token.utf8) { return true }
            }
        }
        return false
    }

    static func equalsIgnoringCase<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where lowerASCII(x) != lowerASCII(y) { return false }
        return true
    }

    @inline(__always)
    static func lowerASCII(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }
}
