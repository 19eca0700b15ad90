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
        var bytes = [UInt8](repeating: 0, count: 16)
        if Int32(storage.pointee.ss_family) == AF_INET {
            storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                var a = sin.pointee.sin_addr.s_addr   // network order
                bytes[10] = 0xff
                bytes[11] = 0xff
                withUnsafeBytes(of: &a) { for i in 0..<4 { bytes[12 + i] = $0[i] } }
            }
        } else if Int32(storage.pointee.ss_family) == AF_INET6 {
            storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                var a = sin6.pointee.sin6_addr
                withUnsafeBytes(of: &a) { for i in 0..<16 { bytes[i] = $0[i] } }
            }
        }
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(bytes[i]) }
        self.init(high: h, low: l)
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
