/// The request target's query (`a=1&b=2`), read for one parameter at a time: the `interests` of the chat and an
/// operator `token` (PROTOCOL.md, "Endpoints" and B.5). Once per upgrade, so plain Substrings are fine.
enum Query {
    /// The raw (not percent-decoded) value of the last `name=` pair, as most query parsers take a repeated one.
    static func lastValue(named name: String, in query: String?) -> Substring? {
        guard let query else { return nil }
        var value: Substring?
        for pair in query.split(separator: "&") {
            guard pair.count > name.count, pair.hasPrefix(name),
                  pair[pair.index(pair.startIndex, offsetBy: name.count)] == "=" else { continue }
            value = pair.dropFirst(name.count + 1)
        }
        return value
    }
}
