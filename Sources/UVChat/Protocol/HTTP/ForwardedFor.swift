/// Who the client is when a reverse proxy stands in front (nginx in the deployment guide).
enum ForwardedFor {
    /// The proxy appends the address it saw to `X-Forwarded-For`; that rightmost entry is the one a trusted proxy
    /// vouches for (anything left of it came from the client and proves nothing). From any other peer the header
    /// is ignored, and so is an entry that is not an address.
    ///
    /// Repeated field lines are one list (RFC 9110 section 5.3): a proxy that adds a line of its own instead of
    /// appending to the client's leaves the client's line first, and only the rightmost entry of all counts.
    static func clientAddress(peer: ClientAddress, fieldLines: [String], trustedProxies: Set<ClientAddress>) -> ClientAddress {
        clientAddress(peer: peer, header: fieldLines.isEmpty ? nil : fieldLines.joined(separator: ","),
                      trustedProxies: trustedProxies)
    }

    static func clientAddress(peer: ClientAddress, header: String?, trustedProxies: Set<ClientAddress>) -> ClientAddress {
        guard let header, trustedProxies.contains(peer) else { return peer }
        guard let last = header.split(separator: ",").last else { return peer }
        return ClientAddress(text: String(Substring(ASCII.trimmingSpaces(last.utf8)))) ?? peer
    }
}
