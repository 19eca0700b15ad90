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
    var keepAlive: Bool
    var contentLength: Int

    /// The field section as sent, names in their own case, and where each line's name and (trimmed) value lie in
    /// it, in order. Fields are found by comparing bytes and become Strings only when a caller asks for a value:
    /// an upgrade reads a dozen fields, and a String and an array for each cost more than the rest of the parse.
    private let fieldBytes: [UInt8]
    private var fields: [Field]

    struct Field {
        let nameStart: Int
        let nameEnd: Int
        let valueStart: Int
        let valueEnd: Int
    }

    init(method: HTTPMethod, methodName: String, target: String, path: String, query: String?, versionMinor: Int,
         fieldBytes: [UInt8], fields: [Field]) {
        self.method = method
        self.methodName = methodName
        self.target = target
        self.path = path
        self.query = query
        self.versionMinor = versionMinor
        self.keepAlive = false
        self.contentLength = 0
        self.fieldBytes = fieldBytes
        self.fields = fields
    }

    var fieldCount: Int { fields.count }

    /// Every field line as (lower-cased name, value), in order: for tests and tools; the server asks by name.
    var headers: [(name: String, value: String)] {
        fieldBytes.withUnsafeBufferPointer { bytes in
            fields.map { f in
                (String(decoding: bytes[f.nameStart..<f.nameEnd].lazy.map(Self.lowerASCII), as: UTF8.self), Self.value(f, bytes))
            }
        }
    }

    // Names and tokens are StaticStrings: every caller names a field with a literal, and a literal's bytes are
    // there to compare without going through String's views.

    /// The value of the first field line named `lowercasedName`.
    func header(_ lowercasedName: StaticString) -> String? {
        var found: String?
        forEach(lowercasedName) { f, bytes in
            found = Self.value(f, bytes)
            return false
        }
        return found
    }

    func headerValues(_ lowercasedName: StaticString) -> [String] {
        var values: [String] = []
        forEach(lowercasedName) { f, bytes in
            values.append(Self.value(f, bytes))
            return true
        }
        return values
    }

    /// How many field lines are named `lowercasedName`.
    func headerCount(_ lowercasedName: StaticString) -> Int {
        var n = 0
        forEach(lowercasedName) { _, _ in
            n += 1
            return true
        }
        return n
    }

    /// The value of the only field line named `lowercasedName` as bytes, nil when there is none or more than one.
    func onlyHeaderBytes(_ lowercasedName: StaticString) -> ArraySlice<UInt8>? {
        var found: Field?, repeated = false
        forEach(lowercasedName) { f, _ in
            repeated = found != nil
            found = f
            return !repeated
        }
        guard let found, !repeated else { return nil }
        return fieldBytes[found.valueStart..<found.valueEnd]
    }

    /// Whether any field line named `lowercasedName` holds `token` in its comma-separated list. Connection, Upgrade
    /// and similar lists compare without regard to ASCII case (RFC 9110 section 7.6.1); subprotocol names do not
    /// (RFC 6455 section 4.1), hence `ignoringCase`.
    func headerContainsToken(_ lowercasedName: StaticString, _ token: StaticString, ignoringCase: Bool = true) -> Bool {
        var contains = false
        token.withUTF8Buffer { token in
            forEach(lowercasedName) { f, bytes in
                var start = f.valueStart
                while start < f.valueEnd {
                    var end = start
                    while end < f.valueEnd && bytes[end] != UInt8(ascii: ",") { end += 1 }
                    // Trimmed and compared in place rather than through `ASCII.trimmingSpaces` and
                    // `equalsIgnoringCase`: their generic slices cost an upgrade 350 instructions (1% of a session).
                    var from = start, to = end
                    while from < to && ASCII.isSpace(bytes[from]) { from += 1 }
                    while to > from && ASCII.isSpace(bytes[to - 1]) { to -= 1 }
                    // An empty element (`a,,b`) is no token (RFC 9110 section 5.6.1).
                    if to > from && to - from == token.count {
                        var k = 0
                        while k < token.count
                                && (ignoringCase ? Self.lowerASCII(bytes[from + k]) == Self.lowerASCII(token[k])
                                                 : bytes[from + k] == token[k]) { k += 1 }
                        if k == token.count {
                            contains = true
                            return false
                        }
                    }
                    start = end + 1
                }
                return true
            }
        }
        return contains
    }

    /// Drops every field line named `lowercasedName` (tests build heads the parser would refuse with it).
    mutating func removeHeaders(_ lowercasedName: StaticString) {
        let kept = lowercasedName.withUTF8Buffer { name in
            fieldBytes.withUnsafeBufferPointer { bytes in fields.filter { !Self.named($0, bytes, name) } }
        }
        fields = kept
    }

    /// Calls `body` with each field line named `lowercasedName`, and the field bytes, until it returns false.
    @inline(__always)
    private func forEach(_ lowercasedName: StaticString, _ body: (Field, UnsafeBufferPointer<UInt8>) -> Bool) {
        lowercasedName.withUTF8Buffer { name in
            fieldBytes.withUnsafeBufferPointer { bytes in
                for f in fields where Self.named(f, bytes, name) {
                    if !body(f, bytes) { return }
                }
            }
        }
    }

    private static func value(_ f: Field, _ bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[f.valueStart..<f.valueEnd]), as: UTF8.self)
    }

    @inline(__always)
    private static func named(_ f: Field, _ bytes: UnsafeBufferPointer<UInt8>, _ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard f.nameEnd - f.nameStart == name.count else { return false }
        for k in 0..<name.count where lowerASCII(bytes[f.nameStart + k]) != name[k] { return false }
        return true
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
