#if canImport(Glibc)
import Glibc
#endif

extension ClientAddress {
    /// The peer address the kernel reported for an accepted socket. The address bytes are in network order, so
    /// reading them as big-endian words gives the numeric value.
    init(_ storage: UnsafePointer<sockaddr_storage>) {
        if Int32(storage.pointee.ss_family) == AF_INET {
            let a = storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
            self.init(ipv4: UInt32(bigEndian: a))
        } else if Int32(storage.pointee.ss_family) == AF_INET6 {
            var a = storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            self = withUnsafeBytes(of: &a) { ClientAddress(ipv6: $0) }
        } else {
            self = .unknown
        }
    }
}
