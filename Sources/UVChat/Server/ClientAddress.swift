import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// A peer's IP address as a compact hashable key (IPv4 is stored as an IPv4-mapped IPv6 address, so a client
/// counts the same on a dual-stack listener and on an IPv4 one). Used for the per-address limits.
struct ClientAddress: Hashable {
    var high: UInt64
    var low: UInt64

    static let unknown = ClientAddress(high: 0, low: 0)

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(_ storage: UnsafePointer<sockaddr_storage>) {
        // The address bytes are in network order, so reading them as big-endian words gives the numeric value.
        if Int32(storage.pointee.ss_family) == AF_INET {
            let a = storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
            self.init(high: 0, low: 0xffff_0000_0000 | UInt64(UInt32(bigEndian: a)))
        } else if Int32(storage.pointee.ss_family) == AF_INET6 {
            var a = storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            let (h, l) = withUnsafeBytes(of: &a) {
                (UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)),
                 UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
            self.init(high: h, low: l)
        } else {
            self = .unknown
        }
    }

    /// Parses a textual IPv4 or IPv6 address (for X-Forwarded-For and the trusted-proxy list).
    init?(text: String) {
        var storage = sockaddr_storage()
        let ok: Bool = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(text, 0, $0) == 0 }
                || p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(text, 0, $0) == 0 }
        }
        guard ok else { return nil }
        self = withUnsafePointer(to: &storage) { ClientAddress($0) }
    }

    var isIPv4Mapped: Bool { high == 0 && (low >> 32) == 0xffff }

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
