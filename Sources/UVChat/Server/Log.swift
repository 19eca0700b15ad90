#if canImport(Glibc)
import Glibc
#endif

/// Levels of the logfmt lines written to standard error.
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case debug = 0, info, warn, error

    public var name: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warn: "warn"
        case .error: "error"
        }
    }

    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { $0.name == name }) else { return nil }
        self = level
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// One logfmt line per event worth an operator's attention, written straight to fd 2 (journald takes it as is).
/// Chat content is never logged.
struct Logger {
    var level: LogLevel

    func log(_ level: LogLevel, _ msg: String, _ fields: KeyValuePairs<String, String> = [:]) {
        guard level >= self.level else { return }
        log(level, msg, fields: fields.map { ($0.key, $0.value) })
    }

    func log(_ level: LogLevel, _ msg: String, fields: [(String, String)]) {
        guard level >= self.level else { return }
        var line = "level=\(level.name) msg=\(Logger.quote(msg))"
        for (k, v) in fields { line += " \(k)=\(Logger.quote(v))" }
        line += "\n"
        Logger.writeStderr(line)
    }

    static func writeStderr(_ text: String) {
        var text = text
        text.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = write(2, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { return }
                off += n
            }
        }
    }

    /// logfmt: quote values with spaces, quotes or '=' and escape what needs it.
    static func quote(_ v: String) -> String {
        if !v.isEmpty && !v.utf8.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\\") }) {
            return v
        }
        var out = "\""
        for ch in v.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if ch.value < 0x20 { out += "\\u{\(String(ch.value, radix: 16))}" } else { out.unicodeScalars.append(ch) }
            }
        }
        return out + "\""
    }
}
