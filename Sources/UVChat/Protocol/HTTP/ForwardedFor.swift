/// Who the client is when a reverse proxy stands in front (nginx in the deployment guide).
enum ForwardedFor {
    /// The proxy appends the address it saw to `X-Forwarded-For`; that rightmost entry is the one a trusted proxy
    /// vouches for (anything left of it came from the client and proves nothing). From any other peer the header
    /// is ignored, and so is an entry that is not an address.
    static func clientAddress(peer: ClientAddress, header: String?, trustedProxies: Set<ClientAddress>) -> ClientAddress {
        guard let header, trustedProxies.contains(peer) else { return peer }
        let last = header.split(separator: ",").last.map(ASCII.trimmingSpaces) ?? ""
        return ClientAddress(text: String(last)) ?? peer
    }
}

enum ASCII {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace, RFC 9110 section 5.6.3).
    static func trimmingSpaces(_ s: Substring) -> Substring {
        var t = s
        while let f = t.utf8.first, f == 0x20 || f == 0x09 { t = t.dropFirst() }
        while let l = t.utf8.last, l == 0x20 || l == 0x09 { t = t.dropLast() }
        return t
    }
}
