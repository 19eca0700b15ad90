#if canImport(Glibc)
import Glibc
#endif

/// A peer's IP address as a compact hashable key, for the per-address limits. IPv4 is stored as an IPv4-mapped
/// IPv6 address, so a client counts the same on a dual-stack listener and on an IPv4 one.
public struct ClientAddress: Hashable, Sendable {
    var high: UInt64
    var low: UInt64

    static let unknown = ClientAddress(high: 0, low: 0)

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(ipv4 value: UInt32) {
        self.init(high: 0, low: 0xffff_0000_0000 | UInt64(value))
    }

    /// The 16 address bytes in network order.
    init(ipv6 bytes: UnsafeRawBufferPointer) {
        self.init(high: UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self)),
                  low: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    /// Parses a textual IPv4 or IPv6 address (for X-Forwarded-For and the trusted-proxy list).
    public init?(text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(ipv4: UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self = withUnsafeBytes(of: &v6) { ClientAddress(ipv6: $0) }
    }

    var isIPv4Mapped: Bool { high == 0 && (low >> 32) == 0xffff }

    /// What the per-address limits count by: the IPv4 address, or the IPv6 /64 (one IPv6 host is usually given a
    /// whole /64, so counting by /128 would give it 2^64 addresses).
    public var perAddressKey: ClientAddress {
        isIPv4Mapped ? self : ClientAddress(high: high, low: 0)
    }

    var description: String {
        if isIPv4Mapped {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\((v >> 16) & 0xff).\((v >> 8) & 0xff).\(v & 0xff)"
        }
        var groups: [String] = []
        for i in 0..<4 { groups.append(String((high >> (48 - 16 * UInt64(i))) & 0xffff, radix: 16)) }
        for i in 0..<4 { groups.append(String((low >> (48 - 16 * UInt64(i))) & 0xffff, radix: 16)) }
        return groups.joined(separator: ":")
    }
}
