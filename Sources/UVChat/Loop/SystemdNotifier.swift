import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// The systemd notify protocol spoken directly: one datagram per state change to `$NOTIFY_SOCKET` (a path, or an
/// abstract name starting with '@'). No libsystemd. The socket is non-blocking, so a stuck reader never stalls
/// the loop.
struct SystemdNotifier {
    private var fd: Int32 = -1
    private var address = sockaddr_un()
    private var addressLength: socklen_t = 0
    /// Half of `$WATCHDOG_USEC`, in milliseconds, when systemd asked for watchdog pings for this process.
    private(set) var watchdogIntervalMillis: UInt64? = nil

    var isEnabled: Bool { fd >= 0 }

    init(environment: (String) -> String? = SystemdNotifier.env) {
        if let usec = environment("WATCHDOG_USEC").flatMap({ UInt64($0) }), usec > 0,
           environment("WATCHDOG_PID").map({ Int32($0) == getpid() }) ?? true {
            watchdogIntervalMillis = max(1, usec / 2000)
        }
        guard let path = environment("NOTIFY_SOCKET"), !path.isEmpty, path.utf8.count < 107 else { return }
        let bytes = Array(path.utf8)
        let abstract = bytes[0] == UInt8(ascii: "@")
        guard bytes[0] == UInt8(ascii: "/") || abstract else { return }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = (abstract && i == 0) ? 0 : b }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        // An abstract name is exactly its bytes; a path includes its terminating NUL.
        addressLength = socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1))
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    }

    static func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    /// Sends one datagram such as "READY=1\nSTATUS=serving". Returns false if it could not be sent.
    @discardableResult
    func notify(_ state: String) -> Bool {
        guard fd >= 0 else { return false }
        var addr = address
        var text = state
        return text.withUTF8 { buf in
            withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL), $0, addressLength) == buf.count
                }
            }
        }
    }

    mutating func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }
}

/// Sockets handed over by systemd socket activation (`$LISTEN_PID`, `$LISTEN_FDS`, descriptors from 3 on).
enum SocketActivation {
    static func inheritedDescriptors() -> [Int32] {
        guard let pid = SystemdNotifier.env("LISTEN_PID").flatMap({ Int32($0) }), pid == getpid(),
              let count = SystemdNotifier.env("LISTEN_FDS").flatMap({ Int32($0) }), count > 0 else { return [] }
        // Not for our children (we have none, but the variables would mislead any).
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        return Array(3..<(3 + count))
    }
}
