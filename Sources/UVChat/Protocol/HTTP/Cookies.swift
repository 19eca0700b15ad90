/// The `Cookie` request field (RFC 6265 section 5.4): `name=value` pairs separated by `; `, possibly over several
/// field lines. Read once per upgrade or status request, never per message.
enum Cookies {
    /// The value of the first cookie named `name`, without surrounding double quotes.
    static func value(named name: String, in head: HTTPRequestHead) -> Substring? {
        for line in head.headerValues("cookie") {
            for pair in line.split(separator: ";") {
                let trimmed = pair.drop(while: { $0 == " " || $0 == "\t" })
                guard let eq = trimmed.firstIndex(of: "="), trimmed[..<eq] == name else { continue }
                var value = trimmed[trimmed.index(after: eq)...]
                while let last = value.last, last == " " || last == "\t" { value = value.dropLast() }
                if value.count >= 2 && value.first == "\"" && value.last == "\"" { value = value.dropFirst().dropLast() }
                return value
            }
        }
        return nil
    }
}
